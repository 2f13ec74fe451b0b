"""The application customisation's pictures (SPEC §7.2: company logo, background): checks and storage.

A picture is taken only when it is what it says: PNG or JPEG, the type read
from its first bytes (magic) *and* the type the client declared, both the
same; its size and its dimensions within the bounds of its kind. The
dimensions come from the file's own header: PNG's IHDR (every chunk's CRC is
checked, the file must end with IEND after image data), JPEG's SOFn frame
header (the segments are walked from SOI to the start of scan, the file
must end with EOI). No image library: nothing is decoded, so a hostile file
costs one linear walk of at most the body limit. SVG is refused on purpose:
it is XML that can carry scripts and links, and a picture of ours is served
from the gateway's own origin.

Stored in ``<state dir>/customisation/<kind>`` (the bytes as uploaded,
replaced atomically); what is known of a stored picture (type, dimensions,
version) is read again from the file itself, so there is no second file to
disagree with it. ``store_for(state_dir)`` gives the one store of a state
directory; it keeps the pictures in memory (at most 1.3 MiB) so serving one
reads no disk on the loop; reading and writing them go through the executor.
"""

import asyncio
import hashlib
import os
import struct
import zlib

from daemon.atomicfile import atomic_write, fsync_directory
from daemon.blocking import run_blocking

DIRECTORY = "customisation"
PNG, JPEG = "image/png", "image/jpeg"
# kind: (most bytes, widest, tallest). The background's byte bound is the HTTP server's body limit (1 MiB):
# the upload's body is the file itself, and a 1920x1080 photograph as JPEG is 0.3-0.6 MB.
KINDS = {"logo": (262144, 1024, 512), "background": (1048576, 3840, 2160)}

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
# JPEG start-of-frame markers: C0-CF but DHT (C4), JPG (C8) and DAC (CC)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset([0x01] + list(range(0xD0, 0xD8)))      # TEM, RST0-7: no length field


class PictureRefused(ValueError):
    """A picture we do not take: ``key`` (catalogue) and ``params`` say why, in the caller's language."""

    def __init__(self, key, message, **params):
        ValueError.__init__(self, message)
        self.key = key
        self.params = params


def sniff(data):
    """The type the bytes say they are (PNG, JPEG) or None."""
    if data.startswith(_PNG_MAGIC):
        return PNG
    if data.startswith(_JPEG_MAGIC):
        return JPEG
    return None


def _not_a_picture(what):
    return PictureRefused("error.picture.corrupt", "the file is not a valid %s picture" % what,
                          format="PNG" if what == "PNG" else "JPEG")


def png_size(data):
    """(width, height) of a well-formed PNG: every chunk's length and CRC, IHDR first, IDAT, IEND last."""
    pos, seen, size = len(_PNG_MAGIC), [], None
    while pos < len(data):
        if pos + 12 > len(data):
            raise _not_a_picture("PNG")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 8 + length
        if length > 0x7FFFFFFF or end + 4 > len(data):
            raise _not_a_picture("PNG")
        if zlib.crc32(data[pos + 4:end]) != struct.unpack(">I", data[end:end + 4])[0]:
            raise _not_a_picture("PNG")
        if not seen:
            if kind != b"IHDR" or length != 13:
                raise _not_a_picture("PNG")
            width, height = struct.unpack(">II", data[pos + 8:pos + 16])
            if not (0 < width < 2 ** 31 and 0 < height < 2 ** 31):
                raise _not_a_picture("PNG")
            size = (width, height)
        seen.append(kind)
        pos = end + 4
        if kind == b"IEND":
            break
    if not seen or seen[-1] != b"IEND" or b"IDAT" not in seen or pos != len(data):
        raise _not_a_picture("PNG")
    return size


def jpeg_size(data):
    """(width, height) from the first SOFn frame header of a JPEG whose segments run from SOI to a scan, and
    that ends with EOI."""
    pos, size = 2, None
    while True:
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise _not_a_picture("JPEG")
        while pos < len(data) and data[pos] == 0xFF:      # fill bytes before a marker
            pos += 1
        if pos + 3 > len(data):
            raise _not_a_picture("JPEG")
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0x00, 0xD8, 0xD9):
            raise _not_a_picture("JPEG")
        length = struct.unpack(">H", data[pos:pos + 2])[0]
        if length < 2 or pos + length > len(data):
            raise _not_a_picture("JPEG")
        if marker in _SOF and size is None:
            if length < 8:
                raise _not_a_picture("JPEG")
            height, width = struct.unpack(">HH", data[pos + 3:pos + 7])
            if width == 0 or height == 0:
                raise _not_a_picture("JPEG")
            size = (width, height)
        if marker == 0xDA:                 # start of scan: entropy-coded data follows, up to EOI
            break
        pos += length
    if size is None or not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise _not_a_picture("JPEG")
    return size


def check(kind, declared, data):
    """{type, width, height, size} of ``data`` uploaded as a ``kind`` picture declared as ``declared`` (the
    Content-Type); PictureRefused when it is not one we take."""
    if kind not in KINDS:
        raise PictureRefused("error.picture.kind", "no picture kind %r" % kind[:32], kinds=", ".join(KINDS))
    return check_within(KINDS[kind], declared, data)


def check_within(bounds, declared, data):
    """As ``check``, within ``bounds`` = (most bytes, widest, tallest): the photoview's backgrounds
    (daemon/state/photoviews.py) are checked by the same rules with their own bounds."""
    most, widest, tallest = bounds
    declared = (declared or "").split(";")[0].strip().lower()
    if declared == "image/svg+xml":
        raise PictureRefused("error.picture.svg", "SVG pictures are refused: they can carry scripts")
    if declared not in (PNG, JPEG):
        raise PictureRefused("error.picture.type", "send a PNG or JPEG picture (Content-Type image/png or "
                             "image/jpeg), not %r" % declared[:40], declared=declared[:40] or "-")
    if not data:
        raise PictureRefused("error.picture.empty", "the file is empty")
    if len(data) > most:
        raise PictureRefused("error.picture.too_big", "the file has %d bytes, more than %d" % (len(data), most),
                             size=len(data), max=most)
    found = sniff(data)
    if found is None:
        raise PictureRefused("error.picture.not_picture", "the file is not a PNG or JPEG picture")
    if found != declared:
        raise PictureRefused("error.picture.mismatch", "the file is a %s picture but was sent as %s"
                             % (found, declared), found=found, declared=declared)
    width, height = png_size(data) if found == PNG else jpeg_size(data)
    if width > widest or height > tallest:
        raise PictureRefused("error.picture.dimensions", "the picture is %dx%d pixels, more than %dx%d"
                             % (width, height, widest, tallest), width=width, height=height, max_width=widest,
                             max_height=tallest)
    return {"type": found, "width": width, "height": height, "size": len(data)}


def _described(kind, data):
    """What is known of a stored picture (its checks again: a file damaged on disk is not served)."""
    info = check(kind, sniff(data) or "", data)
    info["version"] = hashlib.sha256(data).hexdigest()[:16]
    return info


class PictureStore:
    """The customisation pictures of one state directory, kept in memory; changes written atomically."""

    def __init__(self, state_dir):
        self.directory = os.path.join(state_dir, DIRECTORY)
        self._pictures = None          # kind -> (info, bytes) once loaded
        self._lock = asyncio.Lock()

    def _path(self, kind):
        return os.path.join(self.directory, kind)

    def _load(self):
        pictures = {}
        for kind in KINDS:
            try:
                with open(self._path(kind), "rb") as handle:
                    data = handle.read(KINDS[kind][0] + 1)
                pictures[kind] = (_described(kind, data), data)
            except (OSError, PictureRefused):          # none, or damaged: the default (no picture)
                continue
        return pictures

    async def _loaded(self):
        if self._pictures is None:
            self._pictures = await run_blocking(self._load)
        return self._pictures

    async def get(self, kind):
        """(info, bytes) of the ``kind`` picture, or None (the default: no picture)."""
        return (await self._loaded()).get(kind)

    async def infos(self):
        """{kind: info or None}."""
        pictures = await self._loaded()
        return dict((kind, pictures[kind][0] if kind in pictures else None) for kind in KINDS)

    async def put(self, kind, declared, data):
        """Check ``data``, then store it in place of the previous one; its info. PictureRefused: nothing stored."""
        info = await run_blocking(check, kind, declared, data)
        info["version"] = hashlib.sha256(data).hexdigest()[:16]
        async with self._lock:
            pictures = await self._loaded()
            await run_blocking(self._write, kind, data)
            pictures[kind] = (info, bytes(data))
        return info

    def _write(self, kind, data):
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        atomic_write(self._path(kind), bytes(data))

    async def delete(self, kind):
        """Back to the default (no picture); False when there was none."""
        async with self._lock:
            pictures = await self._loaded()
            await run_blocking(self._remove, kind)
            return pictures.pop(kind, None) is not None

    def _remove(self, kind):
        try:
            os.remove(self._path(kind))
        except FileNotFoundError:
            return
        fsync_directory(self.directory)


_stores = {}


def store_for(state_dir):
    """The one PictureStore of ``state_dir``."""
    key = os.path.abspath(state_dir)
    if key not in _stores:
        _stores[key] = PictureStore(state_dir)
    return _stores[key]
