"""Signed upgrade packages: the format, and the checks made before anything is touched (issue 15).

A package is a gzip-compressed tar whose first two members are ``manifest.json``
and ``manifest.sig`` (the Ed25519 signature of the manifest's exact bytes),
followed by one member ``files/<path>`` per file of the manifest, in the
manifest's order. The manifest says which product and version it carries, the
least installed version it may replace, and each file's size, SHA-256 and mode::

    {"format": 1, "product": "open-m70", "version": "1.2.0", "min_version": "1.0.0",
     "files": [{"path": "daemon/gateway.py", "size": 1234, "sha256": "...", "mode": 420}, ...]}

Why this shape: the signature is checked on the first few kilobytes, before one
byte of payload is read, so an unsigned or foreign package costs nothing; every
payload byte is then bounded by the signed manifest (a member larger than its
declared size, a member the manifest does not name, a link, a device, an
absolute or ``..`` name is refused at its header), so a tar or gzip bomb cannot
make the gateway write more than the manifest declared, and that total is
bounded too. Files are written only inside a staging folder, created here,
removed on any refusal; the caller moves it into the inactive slot
(``daemon/upgrade/slots.py``) once ``stage`` returned.

``PackageRefused(reason, message)``: ``reason`` is one of REASONS, stable for
the web page and the audit trail; the message says what was wrong.
"""

import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import zlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

FORMAT = 1
PRODUCT = "open-m70"
MANIFEST, SIGNATURE, FILES = "manifest.json", "manifest.sig", "files/"
MAX_PACKAGE = 64 * 1024 * 1024         # compressed upload
MAX_MANIFEST = 256 * 1024
MAX_FILES = 4000
MAX_FILE = 32 * 1024 * 1024            # one file, uncompressed
MAX_TOTAL = 256 * 1024 * 1024          # every file, uncompressed: what a slot may take on the card
MAX_PATH = 240
MODES = (0o644, 0o755)
_VERSION = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\Z")
_PATH_PART = re.compile(r"[A-Za-z0-9_.+-]{1,100}\Z")
COPY_CHUNK = 65536

# why a package is refused (stable words for the page and the audit trail)
REASONS = ("malformed", "signature", "product", "version", "unsafe", "too_large", "content")


class PackageRefused(Exception):
    def __init__(self, reason, message):
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason


def parse_version(text):
    """(major, minor, patch) of "1.2.3"; ValueError for anything else."""
    match = _VERSION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError("not a version of the form 1.2.3: %r" % (text,))
    return tuple(int(part) for part in match.groups())


def safe_path(path):
    """``path`` if it is a plain relative path of plain names (no "..", no absolute, no empty part), else None."""
    if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH or path != posixpath.normpath(path):
        return None
    parts = path.split("/")
    if any(part in (".", "..") or not _PATH_PART.match(part) for part in parts):
        return None
    return path


def load_public_key(pem):
    key = load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the release key must be an Ed25519 public key")
    return key


def _check_manifest(manifest, installed_version):
    """The manifest's files list, checked; PackageRefused otherwise."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackageRefused("malformed", "the manifest is not a format-%d manifest" % FORMAT)
    if manifest.get("product") != PRODUCT:
        raise PackageRefused("product", "the package is for %r, this gateway is %r" % (manifest.get("product"),
                                                                                         PRODUCT))
    try:
        version, least = parse_version(manifest.get("version")), parse_version(manifest.get("min_version"))
        installed = parse_version(installed_version)
    except ValueError as exc:
        raise PackageRefused("malformed", "manifest: %s" % exc) from None
    if installed < least:
        raise PackageRefused("version", "version %s may replace %s or later; this gateway runs %s" % (
            manifest["version"], manifest["min_version"], installed_version))
    if version <= installed:
        raise PackageRefused("version", "version %s is not newer than the installed %s" % (
            manifest["version"], installed_version))
    files = manifest.get("files")
    if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES:
        raise PackageRefused("malformed", "the manifest must list 1 to %d files" % MAX_FILES)
    seen, total = set(), 0
    for entry in files:
        if not isinstance(entry, dict) or set(entry) != {"path", "size", "sha256", "mode"}:
            raise PackageRefused("malformed", "a manifest entry needs exactly path, size, sha256 and mode")
        path = safe_path(entry["path"])
        if path is None:
            raise PackageRefused("unsafe", "unsafe file name in the manifest: %r" % (entry["path"],))
        if path.lower() in seen:
            raise PackageRefused("malformed", "%s is listed twice" % path)
        seen.add(path.lower())
        size = entry["size"]
        if type(size) is not int or not 0 <= size <= MAX_FILE:
            raise PackageRefused("too_large", "%s: a file may have 0 to %d bytes" % (path, MAX_FILE))
        total += size
        if not (isinstance(entry["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
            raise PackageRefused("malformed", "%s: sha256 must be 64 lowercase hex digits" % path)
        if entry["mode"] not in MODES:
            raise PackageRefused("unsafe", "%s: mode must be 0644 or 0755" % path)
    if total > MAX_TOTAL:
        raise PackageRefused("too_large", "the files take %d bytes; a slot holds at most %d" % (total, MAX_TOTAL))
    return files


def _read_small(archive, member, name, limit):
    if member is None or member.name != name or not member.isreg():
        raise PackageRefused("malformed", "the package must begin with %s and %s" % (MANIFEST, SIGNATURE))
    if member.size > limit:
        raise PackageRefused("too_large", "%s is larger than %d bytes" % (name, limit))
    return archive.extractfile(member).read(limit + 1)


def _copy(source, target, expected_size):
    """Copy at most ``expected_size`` bytes; (bytes copied, sha256 hex)."""
    digest, copied = hashlib.sha256(), 0
    while copied <= expected_size:
        chunk = source.read(min(COPY_CHUNK, expected_size + 1 - copied))
        if not chunk:
            break
        digest.update(chunk)
        target.write(chunk)
        copied += len(chunk)
    return copied, digest.hexdigest()


def stage(package, public_key, installed_version, staging_parent):
    """Verify ``package`` (a binary file object) and write its files into a new folder under ``staging_parent``.

    Returns (manifest, staging folder). PackageRefused, with nothing left on disk, when anything is wrong:
    the signature and the manifest are checked before any file is written. Blocking: run it off the loop."""
    staging = tempfile.mkdtemp(prefix="staging-", dir=staging_parent)
    try:
        manifest = _stage_into(package, public_key, installed_version, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest, staging


def _stage_into(package, public_key, installed_version, staging):
    try:
        try:
            archive = tarfile.open(fileobj=_Bounded(package, MAX_PACKAGE), mode="r|gz")
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise PackageRefused("malformed", "not a gzip-compressed tar archive (%s)" % exc) from None
        with archive:
            manifest_bytes = _read_small(archive, archive.next(), MANIFEST, MAX_MANIFEST)
            signature = _read_small(archive, archive.next(), SIGNATURE, 64)
            try:
                public_key.verify(signature, manifest_bytes)
            except InvalidSignature:
                raise PackageRefused("signature", "the package is not signed by the release key") from None
            try:
                manifest = json.loads(manifest_bytes.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise PackageRefused("malformed", "the signed manifest is not JSON") from None
            files = _check_manifest(manifest, installed_version)
            for entry in files:
                member = archive.next()
                if member is None:
                    raise PackageRefused("content", "the package ends before %s" % entry["path"])
                if member.name != FILES + entry["path"]:
                    if not member.isreg():
                        raise PackageRefused("unsafe", "%r is a link or a special file" % member.name)
                    raise PackageRefused("content", "found %r where the manifest expects %s" % (
                        member.name, FILES + entry["path"]))
                if not member.isreg():
                    raise PackageRefused("unsafe", "%r is a link or a special file" % member.name)
                if member.size != entry["size"]:
                    raise PackageRefused("content", "%s has %d bytes, the manifest says %d" % (
                        entry["path"], member.size, entry["size"]))
                target = os.path.join(staging, *entry["path"].split("/"))
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                with open(target, "xb") as out:          # never through a link, never twice
                    copied, digest = _copy(archive.extractfile(member), out, entry["size"])
                if copied != entry["size"] or digest != entry["sha256"]:
                    raise PackageRefused("content", "%s does not match its hash in the manifest" % entry["path"])
                os.chmod(target, entry["mode"])
            if archive.next() is not None:
                raise PackageRefused("content", "the package holds files the manifest does not list")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise PackageRefused("malformed", "damaged archive (%s)" % exc) from None
    except _TooLarge:
        raise PackageRefused("too_large", "the package is larger than %d bytes" % MAX_PACKAGE) from None
    return manifest


class _TooLarge(Exception):
    pass


class _Bounded(io.RawIOBase):
    """A read-only view of a file object that fails past ``limit`` bytes (the compressed upload's bound)."""

    def __init__(self, raw, limit):
        self.raw, self.left = raw, limit

    def readable(self):
        return True

    def read(self, size=-1):
        data = self.raw.read(COPY_CHUNK if size is None or size < 0 else size)
        self.left -= len(data)
        if self.left < 0:
            raise _TooLarge()
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


# ---------------------------------------------------------------- building (tools/package.py, tests)

def manifest_of(tree, paths, version, min_version):
    """The manifest of ``paths`` (relative, "/"-separated) under ``tree``."""
    files = []
    for path in paths:
        full = os.path.join(tree, *path.split("/"))
        with open(full, "rb") as handle:
            data = handle.read()
        mode = 0o755 if os.stat(full).st_mode & 0o100 else 0o644
        files.append({"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "mode": mode})
    return {"format": FORMAT, "product": PRODUCT, "version": version, "min_version": min_version, "files": files}


def build(out, tree, manifest, private_key, manifest_bytes=None):
    """Write the package of ``manifest`` (files read from ``tree``) signed by ``private_key`` to ``out``.
    ``manifest_bytes``: the exact bytes to sign and ship (a test may sign something else than ``manifest``)."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ValueError("packages are signed with an Ed25519 private key")
    if manifest_bytes is None:
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")
    with tarfile.open(fileobj=out, mode="w|gz", format=tarfile.PAX_FORMAT) as archive:
        _add(archive, MANIFEST, manifest_bytes)
        _add(archive, SIGNATURE, private_key.sign(manifest_bytes))
        for entry in manifest["files"]:
            with open(os.path.join(tree, *entry["path"].split("/")), "rb") as handle:
                _add(archive, FILES + entry["path"], handle.read(), entry["mode"])


def _add(archive, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    archive.addfile(info, io.BytesIO(data))
