"""Secrets at rest (SPEC §8): AES-256-GCM under a per-device key.

The key is 32 random bytes in ``state-dir/device.key`` (mode 0600), made on
first start. Secret settings (SNMP communities and v3 passwords, later FTP
and SMTP passwords) are stored only in encrypted form; the name of the
setting is the associated data, so a ciphertext cannot be moved to another
setting.
"""

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from daemon.atomicfile import atomic_write

KEY_FILE = "device.key"


class SecretBox:
    def __init__(self, key):
        if len(key) != 32:
            raise ValueError("device key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def for_state_dir(cls, state_dir):
        path = os.path.join(state_dir, KEY_FILE)
        try:
            with open(path, "rb") as handle:
                key = handle.read()
            if len(key) == 32:
                return cls(key)
        except FileNotFoundError:
            pass
        key = os.urandom(32)
        atomic_write(path, key)
        return cls(key)

    def encrypt(self, name, text):
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, text.encode("utf-8"), name.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, name, token):
        """The clear text, or None if the token is not ours (tampered, other key)."""
        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
            return self._aead.decrypt(raw[:12], raw[12:], name.encode()).decode("utf-8")
        except (ValueError, InvalidTag, UnicodeDecodeError):
            return None
