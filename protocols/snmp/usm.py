"""USM keys and cryptography for the v3 fast path: RFC 3414 (keys, HMAC-MD5/SHA-96), RFC 7860 (HMAC-SHA-2),
RFC 3826 (AES-128-CFB) and the draft-blumenthal AES-256 key extension (net-snmp's ``-x AES256``).

Why our own: pysnmp spends ~5 ms of pyasn1 per authPriv GETBULK; the same work
with hashlib's HMAC and the cryptography package's AES is ~30 µs. Keys are
localised once per (password, engine ID) when the agent opens, in the
bounded executor (1 MB of hashing per password): ``localised_user`` is a
blocking call. DES (and anything else) is left to pysnmp: ``localised_user``
returns None for it and such users' messages pass to pysnmp as before.
"""

import hashlib

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:                                   # cryptography >= 47 keeps CFB among the "decrepit" modes
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:                    # older releases
    from cryptography.hazmat.primitives.ciphers.modes import CFB
try:                                   # the context maker Cipher.encryptor() ends in, without its per-call checks
    from cryptography.hazmat.bindings._rust import openssl as _rust_openssl
    _encryption_ctx = _rust_openssl.ciphers.create_encryption_ctx
except (ImportError, AttributeError):  # another layout: the public path
    _encryption_ctx = None

# auth protocol (the setting's choice) → (hashlib name, msgAuthenticationParameters length)
AUTH = {"MD5": ("md5", 12), "SHA": ("sha1", 12), "SHA224": ("sha224", 16), "SHA256": ("sha256", 24),
        "SHA384": ("sha384", 32), "SHA512": ("sha512", 48)}
# privacy protocol → AES key length in bytes; "none" is authNoPriv
PRIV = {"none": 0, "AES": 16, "AES256": 32}
PASSWORD_BYTES = 1048576           # RFC 3414 A.2: the password repeated over 1 MB


def password_key(password, hash_name):
    """Ku: the hash of the password repeated to 1 MB (RFC 3414 A.2.1/A.2.2, RFC 7860 §9.3)."""
    if not password:
        raise ValueError("empty password")
    ring = password * (PASSWORD_BYTES // len(password) + 1)
    return hashlib.new(hash_name, ring[:PASSWORD_BYTES]).digest()


def localise(key, engine_id, hash_name):
    """Kul = H(Ku || engineID || Ku) (RFC 3414 §2.6)."""
    return hashlib.new(hash_name, key + engine_id + key).digest()


class User:
    """One user's localised keys and algorithms, for our engine ID."""

    __slots__ = ("name", "level", "hash_name", "mac_length", "auth_key", "priv_key", "_inner", "_outer", "_aes",
                 "_block")

    def prepare(self):
        """The HMAC's keyed inner and outer hash states (RFC 2104) and the AES key schedule, computed once, and
        one AES block encryptor (ECB: it keeps no state between blocks) for the decryption keystream."""
        block = hashlib.new(self.hash_name).block_size
        key = self.auth_key.ljust(block, b"\0")
        self._inner = hashlib.new(self.hash_name, bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.new(self.hash_name, bytes(b ^ 0x5C for b in key))
        self._aes = algorithms.AES(self.priv_key) if self.priv_key else None
        self._block = Cipher(self._aes, modes.ECB()).encryptor() if self.priv_key else None
        return self

    def sign(self, message):
        """The truncated HMAC of ``message`` (whose authentication parameters are zeros)."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:self.mac_length]

    def crypt(self, data, boots, engine_time, salt, encrypt):
        """AES-CFB128 with IV = boots || time || salt (RFC 3826 §3.1.2.1 / §3.1.3.1); CFB needs no finalize.

        Decryption needs no new context: CFB's keystream is E(IV), E(C1), E(C2)... and every ciphertext block
        is known, so the persistent block encryptor makes it in one call (~1 µs instead of ~7 µs for a new
        CFB context and its key schedule). Encryption chains (each block's input is the previous output): a
        CFB context, made without the public wrapper's per-call checks where the binding allows."""
        iv = boots.to_bytes(4, "big") + engine_time.to_bytes(4, "big") + salt
        if not encrypt:
            size = len(data)
            if not size:
                return b""
            stream = self._block.update(iv + data[:(size - 1) & ~15])
            return (int.from_bytes(data, "big") ^ int.from_bytes(stream[:size], "big")).to_bytes(size, "big")
        if _encryption_ctx is not None:
            return _encryption_ctx(self._aes, CFB(iv)).update(data)
        return Cipher(self._aes, CFB(iv)).encryptor().update(data)


def localised_user(name, auth, auth_password, priv, priv_password, engine_id):
    """A User for the fast path, or None when an algorithm is not one of ours (pysnmp serves that user).
    Blocking: two 1 MB hashes."""
    if auth not in AUTH or priv not in PRIV:
        return None
    hash_name, mac_length = AUTH[auth]
    user = User()
    user.name = name
    user.level = 2 if priv == "none" else 3
    user.hash_name = hash_name
    user.mac_length = mac_length
    user.auth_key = localise(password_key(auth_password.encode("utf-8"), hash_name), engine_id, hash_name)
    user.priv_key = None
    if priv != "none":
        key = localise(password_key(priv_password.encode("utf-8"), hash_name), engine_id, hash_name)
        while len(key) < PRIV[priv]:                  # draft-blumenthal: Kul || H(Kul) ...
            key += hashlib.new(hash_name, key).digest()
        user.priv_key = key[:PRIV[priv]]
    return user.prepare()


def localised_users(config, engine_id):
    """{user name (bytes): User} for the configured v3 users the fast path serves; one name used twice is
    the write user's entry (as engine.build makes it). Blocking."""
    users = {}
    for which in ("read", "write"):
        prefix = "snmp.v3.%s_" % which
        name = config[prefix + "user"].encode("utf-8")
        users[name] = localised_user(name, config[prefix + "auth"], config[prefix + "auth_password"],
                                     config[prefix + "priv"], config[prefix + "priv_password"], engine_id)
    return dict((name, user) for name, user in users.items() if user is not None)
