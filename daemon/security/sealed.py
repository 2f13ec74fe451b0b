"""Encrypted backup files (issue 15); the secrets at rest are daemon/security/secrets.py's.

``encrypt_stream`` / ``decrypt_stream``: a password-derived key
(Argon2id, the parameters of the account passwords) and AES-256-GCM over chunks
of CHUNK bytes, so a full backup with its time series is written and read with
bounded memory and a progress figure::

    b"OM70BAK1\\n" | header length (4 bytes, big endian) | header (JSON) | chunks

The header (product, kind, creation time, salt, KDF parameters, a key check)
is authenticated by every chunk: each chunk's nonce is a per-file random prefix
and its index, its associated data the header's SHA-256, its index and whether
it is the last. A wrong password fails at the key check (``BackupRefused``
reason "password"); any changed, reordered, removed or appended byte fails a
chunk ("damaged"); a file that ends before the chunk flagged last is "damaged"
too; another product's or format's file is "foreign". All of this is CPU work:
run it off the loop.
"""

import base64
import hashlib
import hmac
import json
import secrets
import struct

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from daemon.security.accounts import HASH_MEMORY_KIB, HASH_PARALLELISM, HASH_TIME_COST

KEY_BYTES = 32
MAGIC = b"OM70BAK1\n"
PRODUCT = "open-m70"
CHUNK = 1024 * 1024
MAX_HEADER = 4096
TAG = 16
KDF = {"name": "argon2id", "time_cost": HASH_TIME_COST, "memory_kib": HASH_MEMORY_KIB,    # the account
       "parallelism": HASH_PARALLELISM}                                                   # passwords' cost
_KEY_CHECK = b"open-m70 backup key check"


# ---------------------------------------------------------------- backup files

def _b64(data):
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BackupRefused(ValueError):
    """reason: "password" (wrong password), "damaged" (changed or truncated), "foreign" (not our backup)."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def _derive(password, salt, kdf):
    return hash_secret_raw(password.encode("utf-8"), salt, time_cost=kdf["time_cost"], memory_cost=kdf["memory_kib"],
                           parallelism=kdf["parallelism"], hash_len=KEY_BYTES, type=Type.ID)


def _aad(header_hash, index, last):
    return header_hash + struct.pack(">Q?", index, last)


def encrypt_stream(source, target, password, kind, created, total=None, progress=None):
    """Encrypt ``source`` (a binary file object read to its end) into ``target``; bytes read.

    ``progress(done, total)`` is called after each chunk (``total``: the source's size if known)."""
    salt, prefix = secrets.token_bytes(16), secrets.token_bytes(4)
    key = _derive(password, salt, KDF)
    header = {"product": PRODUCT, "format": 1, "kind": kind, "created": created, "kdf": dict(KDF, salt=_b64(salt)),
              "nonce_prefix": _b64(prefix), "chunk": CHUNK,
              "key_check": _b64(hmac.new(key, _KEY_CHECK, hashlib.sha256).digest())}
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    target.write(MAGIC + struct.pack(">I", len(raw)) + raw)
    header_hash, aead = hashlib.sha256(raw).digest(), AESGCM(key)
    done, index, chunk = 0, 0, source.read(CHUNK)
    while True:
        following = source.read(CHUNK) if chunk else b""
        last = not following
        target.write(aead.encrypt(prefix + struct.pack(">Q", index), chunk, _aad(header_hash, index, last)))
        done += len(chunk)
        if progress is not None:
            progress(done, total)
        if last:
            return done
        chunk, index = following, index + 1


def read_header(source):
    """The backup's header (JSON object) and its raw bytes; BackupRefused("foreign") when it is not ours."""
    magic = source.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupRefused("foreign", "not an open-m70 backup file")
    size = source.read(4)
    if len(size) != 4 or not 0 < struct.unpack(">I", size)[0] <= MAX_HEADER:
        raise BackupRefused("damaged", "the backup's header is damaged")
    raw = source.read(struct.unpack(">I", size)[0])
    try:
        header = json.loads(raw)
        kdf = header["kdf"]
        ok = (header["product"] == PRODUCT and header["format"] == 1 and header["chunk"] == CHUNK
              and kdf["name"] == "argon2id" and 1 <= kdf["time_cost"] <= 10 and 8 <= kdf["memory_kib"] <= 262144
              and 1 <= kdf["parallelism"] <= 4 and len(_unb64(header["nonce_prefix"])) == 4)
    except (ValueError, KeyError, TypeError):
        raise BackupRefused("damaged", "the backup's header is damaged") from None
    if not ok:
        raise BackupRefused("foreign", "a backup of another product or format")
    return header, raw


def decrypt_stream(source, target, password, progress=None, total=None):
    """Decrypt a backup from ``source`` into ``target``; its header. BackupRefused when anything is wrong: the
    caller writes ``target`` somewhere temporary and uses it only when this returned."""
    header, raw = read_header(source)
    kdf = header["kdf"]
    key = _derive(password, _unb64(kdf["salt"]), kdf)
    if not hmac.compare_digest(hmac.new(key, _KEY_CHECK, hashlib.sha256).digest(), _unb64(header["key_check"])):
        raise BackupRefused("password", "wrong password for this backup")
    header_hash, aead, prefix = hashlib.sha256(raw).digest(), AESGCM(key), _unb64(header["nonce_prefix"])
    index, done, sealed = 0, len(MAGIC) + 4 + len(raw), source.read(CHUNK + TAG)
    while True:
        following = source.read(CHUNK + TAG) if sealed else b""
        last = not following
        try:
            clear = aead.decrypt(prefix + struct.pack(">Q", index), sealed, _aad(header_hash, index, last))
        except InvalidTag:
            raise BackupRefused("damaged", "the backup is damaged or incomplete (part %d)" % (index + 1)) from None
        target.write(clear)
        done += len(sealed)
        if progress is not None:
            progress(done, total)
        if last:
            return header
        sealed, index = following, index + 1
