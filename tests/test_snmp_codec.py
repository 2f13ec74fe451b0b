"""The fast path's BER codec (protocols/snmp/ber.py): round trips, exact encodings, garbage refused."""

import pytest
from hypothesis import given, settings, strategies as st

from protocols.snmp import ber

subid = st.integers(min_value=0, max_value=2 ** 32 - 1)
oids = st.tuples(st.integers(0, 2), st.integers(0, 39)).flatmap(
    lambda head: st.lists(subid, min_size=0, max_size=20).map(lambda tail: head + tuple(tail)))


@given(oid=oids)
def test_oid_round_trip(oid):
    encoded = ber.encode_oid(oid)
    tag, start, end = ber.read_tlv(encoded, 0, len(encoded))
    assert tag == ber.OBJECT_IDENTIFIER and end == len(encoded)
    assert ber.decode_oid(encoded, start, end) == oid


@given(version=st.sampled_from((0, 1)), community=st.binary(max_size=40), request_id=st.integers(-2 ** 31, 2 ** 31 - 1),
       pdu=st.sampled_from((ber.GET, ber.GETNEXT, ber.SET)), names=st.lists(oids, max_size=8))
def test_request_round_trip(version, community, request_id, pdu, names):
    message = ber.encode_request(version, community, pdu, request_id, names)
    req = ber.decode_request(message)
    assert (req.version, req.community, req.pdu_type, req.request_id, req.oids) == (
        version, community, pdu, request_id, names)


@given(non_repeaters=st.integers(-5, 10), repetitions=st.integers(-5, 10 ** 6), names=st.lists(oids, max_size=4))
def test_getbulk_round_trip(non_repeaters, repetitions, names):
    req = ber.decode_request(ber.encode_request(1, b"c", ber.GETBULK, 7, names, non_repeaters, repetitions))
    assert (req.non_repeaters, req.max_repetitions, req.oids) == (non_repeaters, repetitions, names)


@settings(max_examples=500)
@given(data=st.binary(max_size=300))
def test_garbage_is_refused_with_ber_error_only(data):
    try:
        ber.decode_request(data)
    except ber.BerError:
        pass


@settings(max_examples=300)
@given(names=st.lists(oids, min_size=1, max_size=4), cut=st.integers(0, 200), flip=st.integers(0, 255))
def test_damaged_requests_never_escape_as_other_errors(names, cut, flip):
    message = bytearray(ber.encode_request(1, b"publicV2", ber.GET, 1, names))
    position = cut % len(message)
    truncated = bytes(message[:position])
    message[position] ^= flip or 1
    for data in (truncated, bytes(message)):
        try:
            ber.decode_request(data)
        except ber.BerError:
            pass


def test_exact_encodings():
    assert ber.encode_integer(0) == b"\x02\x01\x00"
    assert ber.encode_integer(127) == b"\x02\x01\x7f"
    assert ber.encode_integer(128) == b"\x02\x02\x00\x80"
    assert ber.encode_integer(-1) == b"\x02\x01\xff"
    assert ber.encode_integer(-129) == b"\x02\x02\xff\x7f"
    assert ber.encode_integer(2 ** 32 - 1, ber.GAUGE32) == b"\x42\x05\x00\xff\xff\xff\xff"
    assert ber.encode_integer(2 ** 63, ber.COUNTER64) == b"\x46\x09\x00\x80" + bytes(7)
    assert ber.encode_oid((1, 3, 6, 1, 4, 1, 4555)) == b"\x06\x07\x2b\x06\x01\x04\x01\xa3\x4b"
    assert ber.encode_length(200) == b"\x81\xc8" and ber.encode_length(300) == b"\x82\x01\x2c"
    # net-snmp writes SEQUENCE lengths in the long form even when short: accepted.
    message = ber.encode_request(1, b"publicV2", ber.GET, 1, [(1, 3, 6, 1, 2, 1, 1, 5, 0)])
    long_form = b"\x30\x82\x00" + message[1:]
    assert ber.decode_request(long_form).oids == [(1, 3, 6, 1, 2, 1, 1, 5, 0)]


def test_refusals():
    good = ber.encode_request(1, b"publicV2", ber.GET, 1, [(1, 3, 6, 1)])
    for bad in (b"", b"\x30", b"\x30\x80" + good[2:] + b"\x00\x00",        # indefinite length
                b"\x30\x84\xff\xff\xff\xff" + good[2:],                   # huge length
                good + b"\x00",                                           # trailing byte
                good[:-1],                                                # truncated
                ber.encode_request(2, b"publicV2", ber.GET, 1, [(1, 3)]),  # not v1/v2c
                ber.encode_request(0, b"public", ber.GETBULK, 1, [(1, 3)]),  # GETBULK in v1
                b"\x1f" + good[1:]):                                      # multi-byte tag
        try:
            ber.decode_request(bad)
        except ber.BerError:
            continue
        raise AssertionError("accepted %r" % bad)


def test_a_varbind_value_that_is_no_snmp_syntax_is_refused():
    """A GET whose value has a constructed universal tag (0x2E) is not SNMP: the strict codec refuses it
    (the datagram then goes to pysnmp, which counts a parse error) instead of echoing it back."""
    from protocols.snmp import ber
    oid = ber.tlv(ber.OBJECT_IDENTIFIER, bytes((0x2B, 6, 1, 2, 1, 1, 5, 0)))
    for value, accepted in ((ber.tlv(ber.NULL, b""), True), (bytes((0x2E, 0)), False), (bytes((0x64, 0)), False)):
        pdu = ber.tlv(ber.GET, ber.tlv(ber.INTEGER, b"\x01") + ber.tlv(ber.INTEGER, b"\x00")
                      + ber.tlv(ber.INTEGER, b"\x00") + ber.tlv(ber.SEQUENCE, ber.tlv(ber.SEQUENCE, oid + value)))
        message = ber.tlv(ber.SEQUENCE, ber.tlv(ber.INTEGER, b"\x00") + ber.tlv(ber.OCTET_STRING, b"public") + pdu)
        if accepted:
            assert ber.decode_request(message).oids == [(1, 3, 6, 1, 2, 1, 1, 5, 0)]
        else:
            with pytest.raises(ber.BerError):
                ber.decode_request(message)


def test_usm_keys_hmac_and_aes_cfb_against_the_standards_vectors():
    """RFC 3414 A.3.1/A.3.2 (password "maplesyrup", engine ID 0...02), the standard library's hmac, and NIST
    SP 800-38A F.3.13 (CFB128-AES128, first block): the v3 fast path's primitives (usm.py)."""
    import hmac

    from protocols.snmp import usm
    engine_id = bytes(11) + b"\x02"
    md5 = usm.localised_user(b"u", "MD5", "maplesyrup", "none", None, engine_id)
    sha = usm.localised_user(b"u", "SHA", "maplesyrup", "AES", "maplesyrup", engine_id)
    assert usm.password_key(b"maplesyrup", "md5").hex() == "9faf3283884e92834ebc9847d8edd963"
    assert md5.auth_key.hex() == "526f5eed9fcce26f8964c2930787d82b"
    assert usm.password_key(b"maplesyrup", "sha1").hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    assert sha.auth_key.hex() == "6695febc9288e36282235fc7151f128497b38f3f"
    assert sha.priv_key == sha.auth_key[:16]                   # RFC 3826 §3.1.2.1: the first 128 bits
    for auth, (name, length) in usm.AUTH.items():
        user = usm.localised_user(b"u", auth, "maplesyrup", "none", None, engine_id)
        for message in (b"", b"x" * 1000, bytes(range(256))):
            assert user.sign(message) == hmac.digest(user.auth_key, message, name)[:length]
    nist = usm.User()
    nist.hash_name, nist.auth_key, nist.priv_key = "sha1", bytes(20), bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    nist.prepare()
    plain = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    cipher = nist.crypt(plain, 0x00010203, 0x04050607, bytes.fromhex("08090a0b0c0d0e0f"), True)
    assert cipher.hex() == "3b3fd92eb72dad20333449f8e83cfb4a"
    assert nist.crypt(cipher, 0x00010203, 0x04050607, bytes.fromhex("08090a0b0c0d0e0f"), False) == plain
    # AES-256 (draft-blumenthal): a 20-byte SHA key is extended with its own hash
    aes256 = usm.localised_user(b"u", "SHA", "maplesyrup", "AES256", "maplesyrup", engine_id)
    import hashlib
    assert aes256.priv_key == (sha.auth_key + hashlib.sha1(sha.auth_key).digest())[:32]
    assert usm.localised_user(b"u", "SHA", "maplesyrup", "DES", "maplesyrup", engine_id) is None   # pysnmp's


def test_aes_cfb_of_several_blocks_and_cut_messages_against_nist_vectors():
    """NIST SP 800-38A F.3.13 (CFB128-AES128) and F.3.17 (CFB128-AES256), all four blocks: decryption makes
    the keystream from the ciphertext blocks in one call (usm.User.crypt), so every length is checked,
    including a last block cut short (CFB: the first n octets of the ciphertext decrypt to the first n of the
    plaintext), and a block boundary."""
    from protocols.snmp import usm
    plain = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a" "ae2d8a571e03ac9c9eb76fac45af8e51"
                          "30c81c46a35ce411e5fbc1191a0a52ef" "f69f2445df4f9b17ad2b417be66c3710")
    vectors = (("2b7e151628aed2a6abf7158809cf4f3c",
                "3b3fd92eb72dad20333449f8e83cfb4a" "c8a64537a0b3a93fcde3cdad9f1ce58b"
                "26751f67a3cbb140b1808cf187a4f4df" "c04b05357c5d1c0eeac4c66f9ff7f2e6"),
               ("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "dc7e84bfda79164b7ecd8486985d3860" "39ffed143b28b1c832113c6331e5407b"
                "df10132415e54b92a13ed0a8267ae2f9" "75a385741ab9cef82031623d55b1e471"))
    boots, engine_time, salt = 0x00010203, 0x04050607, bytes.fromhex("08090a0b0c0d0e0f")   # IV 00..0f
    for key, cipher_hex in vectors:
        user = usm.User()
        user.hash_name, user.auth_key, user.priv_key = "sha1", bytes(20), bytes.fromhex(key)
        user.prepare()
        cipher = bytes.fromhex(cipher_hex)
        for size in range(len(plain) + 1):
            assert user.crypt(plain[:size], boots, engine_time, salt, True) == cipher[:size], (key, size)
            assert user.crypt(cipher[:size], boots, engine_time, salt, False) == plain[:size], (key, size)
        # the block encryptor keeps no state between messages: the same message decrypts the same again
        assert user.crypt(cipher, boots, engine_time, salt, False) == plain
