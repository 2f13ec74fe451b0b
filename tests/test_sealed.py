"""Encrypted backup files (issue 15): what decrypts, and every way a file can be wrong."""

import io
import json
import struct

import pytest

from daemon.security import sealed

@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(sealed, "CHUNK", 1000)


def backup(data, password="Backup-Pass-2026!", kind="full"):
    out, seen = io.BytesIO(), []
    sealed.encrypt_stream(io.BytesIO(data), out, password, kind, 1796600000, total=len(data),
                          progress=lambda done, total: seen.append((done, total)))
    return out.getvalue(), seen


def restore(blob, password="Backup-Pass-2026!"):
    out = io.BytesIO()
    header = sealed.decrypt_stream(io.BytesIO(blob), out, password)
    return header, out.getvalue()


def refused(blob, reason, password="Backup-Pass-2026!"):
    with pytest.raises(sealed.BackupRefused) as caught:
        restore(blob, password)
    assert caught.value.reason == reason, str(caught.value)


DATA = bytes(range(256)) * 13 + b"tail"          # 3,332 bytes: four chunks of 1,000, the last short


def test_a_backup_round_trips_in_chunks_with_progress_and_hides_its_content(small_chunks):
    blob, seen = backup(DATA)
    assert [done for done, _total in seen] == [1000, 2000, 3000, 3332] and seen[-1][1] == 3332
    assert DATA[:64] not in blob and b"tail" not in blob
    header, data = restore(blob)
    assert data == DATA and header["kind"] == "full" and header["created"] == 1796600000
    empty, _ = backup(b"")
    assert restore(empty)[1] == b""


def test_wrong_password_damage_truncation_and_foreign_files_are_refused_apart(small_chunks):
    blob, _ = backup(DATA)
    refused(blob, "password", password="Backup-Pass-2027!")
    body = len(blob) - (3 * (1000 + 16) + 332 + 16)
    for position in (body + 5, body + 1016 + 5, len(blob) - 1):                  # a byte of a chunk or a tag
        changed = bytearray(blob)
        changed[position] ^= 0x01
        refused(bytes(changed), "damaged")
    refused(blob[:body + 2 * 1016], "damaged")                                  # cut at a chunk boundary
    refused(blob[:-10], "damaged")
    refused(blob + b"\x00" * 16, "damaged")                                     # bytes appended
    swapped = blob[:body] + blob[body + 1016:body + 2032] + blob[body:body + 1016] + blob[body + 2032:]
    refused(swapped, "damaged")                                                 # chunks reordered
    size = struct.unpack(">I", blob[9:13])[0]
    header = json.loads(blob[13:13 + size])
    header["kind"] = "config"                                                   # the header is authenticated
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    refused(blob[:9] + struct.pack(">I", len(raw)) + raw + blob[13 + size:], "damaged")
    refused(b"PK\x03\x04" + blob[4:], "foreign")
    refused(b"", "foreign")
    header["product"] = "other"
    raw = json.dumps(header).encode()
    refused(blob[:9] + struct.pack(">I", len(raw)) + raw + blob[13 + size:], "foreign")
    refused(blob[:9] + struct.pack(">I", 10 ** 6) + blob[13:], "damaged")
