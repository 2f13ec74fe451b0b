"""The photoview store (daemon/state/photoviews.py): its limits and checks, without a gateway."""

import struct
import zlib

import pytest

from daemon import pictures
from daemon.state import photoviews


def png(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def refused(call, *args):
    with pytest.raises(photoviews.PhotoviewRefused) as info:
        call(*args)
    return info.value


def test_at_most_21_pages(tmp_path):
    for n in range(21):
        photoviews.create(str(tmp_path), "Page %d" % n)
    assert refused(photoviews.create, str(tmp_path), "One too many").key == "web.photoview.error.too_many_pages"
    assert len(photoviews.listing(str(tmp_path))) == 21


def test_widgets_are_checked_field_by_field_and_nothing_is_written_on_a_refusal(tmp_path):
    state = str(tmp_path)
    first, second = photoviews.create(state, "A"), photoviews.create(state, "B")
    good = [{"type": "measure", "x": 1, "y": 2, "address": 4, "load": 1, "keys": ["v1", "p"], "title": "",
             "extra": "dropped"},
            {"type": "link", "x": 3, "y": 4, "target": second["id"], "label": "B"}]
    page = photoviews.save(state, first["id"], "A", good)
    assert "extra" not in page["widgets"][0] and page["widgets"][1]["target"] == second["id"]
    for bad, key in ((dict(good[0], x=1280), "web.photoview.error.range"),
                     (dict(good[0], keys=["no_such_key"]), "web.photoview.error.keys"),
                     (dict(good[0], keys=["v1"] * 9), "web.photoview.error.keys"),
                     ({"type": "text", "x": 0, "y": 0, "text": "t", "color": "red", "background": "#ffffff"},
                      "web.photoview.error.colour"),
                     (dict(good[1], target=first["id"]), "web.photoview.error.target"),
                     ({"type": "script", "x": 0, "y": 0}, "web.photoview.error.type")):
        assert refused(photoviews.save, state, first["id"], "A", [bad]).key == key
    assert refused(photoviews.save, state, first["id"], "A", [good[0]] * 41).key == \
        "web.photoview.error.too_many_widgets"
    assert photoviews.listing(state)[0]["widgets"] == page["widgets"]
    photoviews.delete(state, second["id"])            # the link to it goes with it
    assert [w["type"] for w in photoviews.listing(state)[0]["widgets"]] == ["measure"]


def test_a_background_is_checked_by_the_pictures_rules_within_1920x1080(tmp_path):
    state = str(tmp_path)
    page = photoviews.create(state, "A")
    photoviews.save(state, page["id"], "A", [{"type": "text", "x": 1000, "y": 700, "text": "t", "color": "#000000",
                                              "background": "#ffffff"}])
    info = photoviews.set_background(state, page["id"], "image/png", png(800, 600))
    assert (info["width"], info["height"]) == (800, 600)
    stored = photoviews.listing(state)[0]
    assert photoviews.canvas(stored) == (800, 600)
    assert (stored["widgets"][0]["x"], stored["widgets"][0]["y"]) == (799, 599)
    assert photoviews.background(state, page["id"])[1] == png(800, 600)
    for data, declared, key in ((png(1921, 4), "image/png", "error.picture.dimensions"),
                                (png(8, 8), "image/jpeg", "error.picture.mismatch"),
                                (b"<svg/>", "image/svg+xml", "error.picture.svg"),
                                (png(8, 8)[:-3], "image/png", "error.picture.corrupt")):
        with pytest.raises(pictures.PictureRefused) as info:
            photoviews.set_background(state, page["id"], declared, data)
        assert info.value.key == key
    assert photoviews.background(state, page["id"])[1] == png(800, 600)


def test_a_damaged_file_leaves_no_page_and_the_store_still_works(tmp_path):
    (tmp_path / "photoviews").mkdir()
    (tmp_path / "photoviews" / "pages.json").write_text("{not json")
    assert photoviews.listing(str(tmp_path)) == []
    assert photoviews.create(str(tmp_path), "Fresh")["id"] == "p1"
