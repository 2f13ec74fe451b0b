"""The photoview pages (SPEC §7.2, WEBVIEW-M manual §8.4 and §9.8): live values placed on a picture.

Up to MAX_PAGES pages, each a name, an optional background picture and its widgets: a measurement table (a
device's load and the values chosen), a text with its colours, a device icon or clickable area (both open the
device's Monitor page) and a link to another page. A widget's place is in the page's own pixels (the
background's, else DEFAULT_CANVAS), so it stays on the same spot of the picture whatever the screen.

Stored in ``<state dir>/photoviews/``: ``pages.json`` (atomic JSON) and one ``<page id>.img`` per background,
checked by the customisation pictures' rules (daemon/pictures.py) within SPEC §10's bounds. Blocking (file
I/O): the door calls these in the executor; one lock makes each read-change-write whole. Everything is checked
field by field before anything is written (``PhotoviewRefused`` names the field and a catalogue key).
"""

import hashlib
import os
import re
import threading

from core import registry
from daemon import pictures
from daemon.atomicfile import atomic_write, fsync_directory, read_json, write_json

DIRECTORY = "photoviews"
MAX_PAGES = 21                       # SPEC §10
BACKGROUND = (10485760, 1920, 1080)  # SPEC §10: bytes, widest, tallest
MAX_WIDGETS = 40                     # per page: a readable page, a bounded live read
MAX_NAME = 40                        # characters of a page's name, a table's title, a link's label
MAX_TEXT = 200
MAX_KEYS = 8                         # values in one measurement table
DEFAULT_CANVAS = (1280, 720)         # a page without a background
MIN_AREA, MAX_ADDRESS, MAX_LOAD = 16, 255, 255
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
PAGE_ID = re.compile(r"^p[0-9]{1,6}$")
# widget type -> its own fields (besides x, y): the one table the checks and the pages follow
WIDGETS = {
    "measure": ("address", "load", "keys", "title"),
    "text": ("text", "color", "background"),
    "device": ("address", "load", "mode", "w", "h"),
    "link": ("target", "label"),
}
MODES = ("icon", "area")

_lock = threading.Lock()


class PhotoviewRefused(Exception):
    """A change not made: ``field``, catalogue ``key`` and ``params`` say why (the page's words)."""

    def __init__(self, message, field, key, **params):
        Exception.__init__(self, message)
        self.field, self.key, self.params = field, key, params


def _folder(state_dir):
    return os.path.join(state_dir, DIRECTORY)


def _pages_path(state_dir):
    return os.path.join(_folder(state_dir), "pages.json")


def _image_path(state_dir, page_id):
    return os.path.join(_folder(state_dir), page_id + ".img")


def _load(state_dir):
    try:
        doc = read_json(_pages_path(state_dir), {}) or {}
    except ValueError:                       # a damaged file: no pages, the views still open
        doc = {}
    pages = doc.get("pages") if isinstance(doc, dict) else None
    return [p for p in pages if isinstance(p, dict) and PAGE_ID.match(str(p.get("id", "")))] \
        if isinstance(pages, list) else []


def _write(state_dir, pages):
    os.makedirs(_folder(state_dir), mode=0o755, exist_ok=True)
    write_json(_pages_path(state_dir), {"pages": pages})


def canvas(page):
    """(width, height) of a page: its background's, else DEFAULT_CANVAS."""
    info = page.get("background")
    return (info["width"], info["height"]) if isinstance(info, dict) else DEFAULT_CANVAS


def listing(state_dir):
    """Every page, in the order they were made."""
    with _lock:
        return _load(state_dir)


def _name(value, field="name", empty_ok=False):
    if not isinstance(value, str) or (not value.strip() and not empty_ok):
        raise PhotoviewRefused("%s must not be empty" % field, field, "web.photoview.error.name_empty")
    value = value.strip()
    if len(value) > MAX_NAME or any(ord(c) < 32 for c in value):
        raise PhotoviewRefused("%s is at most %d printable characters" % (field, MAX_NAME), field,
                               "web.photoview.error.name_long", max=MAX_NAME)
    return value


def _int(widget, field, low, high, index):
    value = widget.get(field)
    if type(value) is not int or not low <= value <= high:
        raise PhotoviewRefused("widget %d: %s must be a whole number from %d to %d" % (index + 1, field, low, high),
                               field, "web.photoview.error.range", widget=index + 1, name=field, low=low, high=high)
    return value


def _known(key):
    try:
        registry.get(key)
    except KeyError:
        return False
    return True


def _widget(widget, index, size, page_ids):
    """One widget as stored (only its type's fields), or PhotoviewRefused."""
    if not isinstance(widget, dict) or widget.get("type") not in WIDGETS:
        raise PhotoviewRefused("widget %d: the type must be one of %s" % (index + 1, ", ".join(WIDGETS)), "type",
                               "web.photoview.error.type", widget=index + 1)
    kind = widget["type"]
    kept = {"type": kind, "x": _int(widget, "x", 0, size[0] - 1, index), "y": _int(widget, "y", 0, size[1] - 1, index)}
    if "address" in WIDGETS[kind]:
        kept["address"] = _int(widget, "address", 0, MAX_ADDRESS, index)
        kept["load"] = _int(widget, "load", 0, MAX_LOAD, index)
    if kind == "measure":
        keys = widget.get("keys")
        if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS or len(set(map(str, keys))) != len(keys) \
                or not all(isinstance(k, str) and _known(k) for k in keys):
            raise PhotoviewRefused("widget %d: a table shows 1 to %d different known values" % (index + 1, MAX_KEYS),
                                   "keys", "web.photoview.error.keys", widget=index + 1, max=MAX_KEYS)
        kept.update(keys=list(keys), title=_name(widget.get("title", ""), "title", empty_ok=True))
    elif kind == "text":
        text = widget.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise PhotoviewRefused("widget %d: a text has 1 to %d characters" % (index + 1, MAX_TEXT), "text",
                                   "web.photoview.error.text", widget=index + 1, max=MAX_TEXT)
        for field in ("color", "background"):
            if not isinstance(widget.get(field), str) or not COLOUR.match(widget[field]):
                raise PhotoviewRefused("widget %d: %s must be a colour #rrggbb" % (index + 1, field), field,
                                       "web.photoview.error.colour", widget=index + 1)
        kept.update(text=text.strip(), color=widget["color"].lower(), background=widget["background"].lower())
    elif kind == "device":
        if widget.get("mode") not in MODES:
            raise PhotoviewRefused("widget %d: the mode must be icon or area" % (index + 1), "mode",
                                   "web.photoview.error.type", widget=index + 1)
        kept.update(mode=widget["mode"], w=_int(widget, "w", MIN_AREA, size[0], index),
                    h=_int(widget, "h", MIN_AREA, size[1], index))
    else:
        if widget.get("target") not in page_ids:
            raise PhotoviewRefused("widget %d: a link goes to another existing page" % (index + 1), "target",
                                   "web.photoview.error.target", widget=index + 1)
        kept.update(target=widget["target"], label=_name(widget.get("label"), "label"))
    return kept


def create(state_dir, name):
    """A new empty page named ``name``; refused past MAX_PAGES."""
    name = _name(name)
    with _lock:
        pages = _load(state_dir)
        if len(pages) >= MAX_PAGES:
            raise PhotoviewRefused("at most %d photoview pages: delete one first" % MAX_PAGES, "name",
                                   "web.photoview.error.too_many_pages", max=MAX_PAGES)
        number = max([int(p["id"][1:]) for p in pages] + [0]) + 1
        page = {"id": "p%d" % number, "name": name, "background": None, "widgets": []}
        _write(state_dir, pages + [page])
    return page


def _find(pages, page_id):
    for page in pages:
        if page["id"] == page_id:
            return page
    raise PhotoviewRefused("no photoview page %r" % str(page_id)[:16], "id", "web.photoview.error.no_page")


def save(state_dir, page_id, name, widgets):
    """Replace the name and the widgets of page ``page_id`` (the background stays); the page as stored."""
    name = _name(name)
    if not isinstance(widgets, list) or len(widgets) > MAX_WIDGETS:
        raise PhotoviewRefused("at most %d widgets on a page" % MAX_WIDGETS, "widgets",
                               "web.photoview.error.too_many_widgets", max=MAX_WIDGETS)
    with _lock:
        pages = _load(state_dir)
        page = _find(pages, page_id)
        others = set(p["id"] for p in pages) - {page_id}
        size = canvas(page)
        page.update(name=name, widgets=[_widget(w, i, size, others) for i, w in enumerate(widgets)])
        _write(state_dir, pages)
    return page


def delete(state_dir, page_id):
    """Remove a page, its background and the links to it."""
    with _lock:
        pages = _load(state_dir)
        _find(pages, page_id)
        kept = [p for p in pages if p["id"] != page_id]
        for page in kept:
            page["widgets"] = [w for w in page.get("widgets", []) if w.get("target") != page_id]
        _write(state_dir, kept)
        try:
            os.remove(_image_path(state_dir, page_id))
            fsync_directory(_folder(state_dir))
        except FileNotFoundError:
            pass


def set_background(state_dir, page_id, declared, data):
    """Check ``data`` (daemon/pictures.py's rules within BACKGROUND) and make it the page's background; its info.
    Widgets outside the new picture are moved back inside it (and areas cut to it)."""
    info = pictures.check_within(BACKGROUND, declared, data)
    info["version"] = hashlib.sha256(data).hexdigest()[:16]
    with _lock:
        pages = _load(state_dir)
        page = _find(pages, page_id)
        os.makedirs(_folder(state_dir), mode=0o755, exist_ok=True)
        atomic_write(_image_path(state_dir, page_id), bytes(data))
        page["background"] = info
        for widget in page.get("widgets", []):
            widget["x"] = min(widget.get("x", 0), info["width"] - 1)
            widget["y"] = min(widget.get("y", 0), info["height"] - 1)
            for side, most in (("w", info["width"]), ("h", info["height"])):
                if side in widget:
                    widget[side] = max(MIN_AREA, min(widget[side], most))
        _write(state_dir, pages)
    return info


def background(state_dir, page_id):
    """(info, bytes) of a page's background, or None."""
    with _lock:
        pages = _load(state_dir)
        page = next((p for p in pages if p["id"] == page_id), None)
        if page is None or not isinstance(page.get("background"), dict):
            return None
        try:
            with open(_image_path(state_dir, page_id), "rb") as handle:
                data = handle.read(BACKGROUND[0] + 1)
        except OSError:
            return None
    return page["background"], data
