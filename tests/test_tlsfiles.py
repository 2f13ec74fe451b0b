"""The web certificate and CA checks (issue 15): what the upload accepts and refuses, with the field and reason.

Certificates are made here with ``cryptography`` and, for an independent reading of the self-signed one,
checked with Python's ``ssl`` module (OpenSSL): a TLS server loads it and a client verifying against it
connects under the gateway's name.
"""

import datetime
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from daemon.security import tlsfiles

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def pem_key(key, password=None):
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def certificate(key, start=NOW - DAY, end=NOW + 365 * DAY, ca=False, name="gw.example", signer=None):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(signer[1] if signer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    signing_key = signer[0] if signer else key
    algorithm = None if isinstance(signing_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signing_key, algorithm).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def rsa2048():
    return rsa.generate_private_key(65537, 2048)


def refused(field, key, call):
    with pytest.raises(tlsfiles.TlsRefused) as caught:
        call()
    assert (caught.value.field, caught.value.key) == (field, key), str(caught.value)
    return str(caught.value)


def test_an_rsa_2048_or_ecdsa_pair_is_accepted_and_summarised(rsa2048):
    for key in (rsa2048, ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1())):
        cert = certificate(key)
        info = tlsfiles.check_pair(cert, pem_key(key), NOW)
        parsed = x509.load_pem_x509_certificate(cert)
        assert info["subject"] == "CN=gw.example" == info["issuer"]
        assert info["not_after"] == int(parsed.not_valid_after_utc.timestamp())
        assert info["sha256"].replace(":", "").lower() == parsed.fingerprint(hashes.SHA256()).hex()


def test_a_mismatched_expired_future_or_wrong_type_pair_is_refused_with_its_field(rsa2048):
    other = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(rsa2048)
    refused("key", "tls.mismatch", lambda: tlsfiles.check_pair(cert, pem_key(other), NOW))
    text = refused("certificate", "tls.expired", lambda: tlsfiles.check_pair(
        certificate(rsa2048, NOW - 400 * DAY, NOW - DAY), pem_key(rsa2048), NOW))
    assert (NOW - DAY).strftime("%Y-%m-%d") in text
    refused("certificate", "tls.not_yet_valid", lambda: tlsfiles.check_pair(
        certificate(rsa2048, NOW + DAY, NOW + 400 * DAY), pem_key(rsa2048), NOW))
    big = rsa.generate_private_key(65537, 4096)
    assert "4096" in refused("key", "tls.key_type", lambda: tlsfiles.check_pair(certificate(big), pem_key(big), NOW))
    small = rsa.generate_private_key(65537, 1024)
    refused("key", "tls.key_type", lambda: tlsfiles.check_pair(certificate(small), pem_key(small), NOW))
    edwards = ed25519.Ed25519PrivateKey.generate()
    refused("key", "tls.key_type", lambda: tlsfiles.check_pair(certificate(edwards), pem_key(edwards), NOW))
    curve = ec.generate_private_key(ec.SECP521R1())
    refused("key", "tls.key_type", lambda: tlsfiles.check_pair(certificate(curve), pem_key(curve), NOW))


def test_malformed_uploads_are_refused_before_parsing_beyond_their_bound(rsa2048):
    cert, key = certificate(rsa2048), pem_key(rsa2048)
    refused("certificate", "tls.empty", lambda: tlsfiles.check_pair(b"", key, NOW))
    refused("certificate", "tls.not_pem", lambda: tlsfiles.check_pair(b"\x30\x82\x01\x00 DER bytes", key, NOW))
    refused("certificate", "tls.not_certificate", lambda: tlsfiles.check_pair(cert[:len(cert) // 2], key, NOW))
    refused("certificate", "tls.too_large", lambda: tlsfiles.check_pair(cert + b"\n" * tlsfiles.MAX_PEM, key, NOW))
    refused("certificate", "tls.not_certificate", lambda: tlsfiles.check_pair(key, key, NOW))     # a key as cert
    refused("key", "tls.not_key", lambda: tlsfiles.check_pair(cert, cert, NOW))                   # a cert as key
    refused("key", "tls.key_encrypted", lambda: tlsfiles.check_pair(cert, pem_key(rsa2048, b"secret"), NOW))
    refused("key", "tls.not_key", lambda: tlsfiles.check_pair(cert, key.replace(b"A", b"B", 40), NOW))


def test_alarm_7_rule_thirty_days_before_expiry():
    end = int((NOW + 30 * DAY).timestamp())
    assert tlsfiles.expiry_state(end, NOW - DAY) == "valid"
    assert tlsfiles.expiry_state(end, NOW) == "expiring"
    assert tlsfiles.expiry_state(end, NOW + 30 * DAY) == "expired"


def test_the_ca_store_takes_ca_certificates_only_and_says_which_expire():
    root = ec.generate_private_key(ec.SECP256R1())
    soon = ec.generate_private_key(ec.SECP256R1())
    bundle = certificate(root, ca=True, name="Root CA") + certificate(soon, end=NOW + 10 * DAY, ca=True,
                                                                        name="Soon CA")
    entries = tlsfiles.check_ca(bundle, NOW)
    assert [(e["subject"], e["state"]) for e in entries] == [("CN=Root CA", "valid"), ("CN=Soon CA", "expiring")]
    leaf = certificate(ec.generate_private_key(ec.SECP256R1()), name="server")
    assert "CN=server" in refused("ca", "tls.not_ca", lambda: tlsfiles.check_ca(bundle + leaf, NOW))
    refused("ca", "tls.not_pem", lambda: tlsfiles.check_ca(b"not a certificate", NOW))


def test_the_self_signed_certificate_serves_tls_that_openssl_verifies_under_the_gateways_name(tmp_path):
    now = datetime.datetime.now(datetime.timezone.utc)        # OpenSSL checks the dates against the real clock
    cert, key = tlsfiles.self_signed(["m70-lab.local", "127.0.0.1"], now)
    info = tlsfiles.check_pair(cert, key, now)
    assert tlsfiles.expiry_state(info["not_after"], now) == "valid"
    assert "CN=m70-lab.local" in info["subject"].split(",")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        with server_context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"hello")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with client_context.wrap_socket(raw, server_hostname="m70-lab.local") as tls:
            assert tls.recv(5) == b"hello"
            assert tls.getpeercert()["subjectAltName"] == (("DNS", "m70-lab.local"), ("IP Address", "127.0.0.1"))
    thread.join(5)
    listener.close()
