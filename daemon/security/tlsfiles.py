"""The gateway's TLS material: its web certificate and key, and the CA store its own clients trust (issue 15).

``check_pair(cert_pem, key_pem, now)`` is what an upload goes through before
anything is used or stored: one PEM certificate, one unencrypted PEM private key,
the key must be the certificate's, an RSA key of 2048 bits (SPEC §8: RSA up to
2048 bits; below that is no longer safe, so exactly 2048) or an ECDSA key on
P-256 or P-384, and the certificate must be valid now. Each refusal is a
``TlsRefused(field, key, message)`` naming the form field (``certificate`` or
``key``) and a catalogue key, so the page shows it next to the right field.

``self_signed(names, now)`` makes the first-start certificate: ECDSA P-256,
the gateway's name and addresses as subject alternative names, valid
SELF_SIGNED_DAYS. ``check_ca(pem)`` accepts one or more CA certificates for the
store. ``expiry_state(not_after, now)`` is alarm 7's rule: expired, or within
EXPIRY_WARNING_DAYS. Parsing and key generation are CPU work: callers run them
off the loop (daemon/blocking.run_blocking).
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

MAX_PEM = 64 * 1024                 # one certificate chain or one key; more is not a PEM upload
RSA_BITS = 2048
CURVES = ("secp256r1", "secp384r1")
EXPIRY_WARNING_DAYS = 30            # alarm 7 from 30 days before a certificate expires (issue 15)
SELF_SIGNED_DAYS = 825              # the longest validity browsers accept for a server certificate
MAX_CA = 50                         # certificates in one CA upload


class TlsRefused(ValueError):
    def __init__(self, field, key, message):
        super().__init__(message)
        self.field, self.key = field, key


def _utc(moment):
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _pem_blocks(pem, field):
    if not isinstance(pem, (bytes, str)) or not pem:
        raise TlsRefused(field, "tls.empty", "no %s was given" % field)
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    if len(data) > MAX_PEM:
        raise TlsRefused(field, "tls.too_large", "the %s is larger than %d bytes" % (field, MAX_PEM))
    if b"-----BEGIN " not in data:
        raise TlsRefused(field, "tls.not_pem", "the %s is not in PEM format" % field)
    return data


def load_certificates(pem, field="certificate"):
    """Every certificate of a PEM text (at least one); TlsRefused otherwise."""
    data = _pem_blocks(pem, field)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsRefused(field, "tls.not_certificate", "the %s is not a readable PEM certificate" % field) from None
    return certificates


def load_key(pem):
    data = _pem_blocks(pem, "key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsRefused("key", "tls.key_encrypted", "the private key is encrypted: upload it without a passphrase") \
            from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsRefused("key", "tls.not_key", "the key is not a readable PEM private key") from None


def key_problem(key):
    """Why ``key`` may not serve the web (text), or None."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size != RSA_BITS:
            return "an RSA key must have %d bits, this one has %d" % (RSA_BITS, key.key_size)
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in CURVES:
            return "an ECDSA key must be on P-256 or P-384, not %s" % key.curve.name
        return None
    return "the key must be RSA (%d bits) or ECDSA (P-256, P-384), not %s" % (RSA_BITS, type(key).__name__)


def _public_bytes(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_pair(cert_pem, key_pem, now):
    """The summary of a usable web certificate and key; TlsRefused naming the field and the reason."""
    certificates = load_certificates(cert_pem)
    leaf = certificates[0]
    key = load_key(key_pem)
    problem = key_problem(key)
    if problem:
        raise TlsRefused("key", "tls.key_type", problem)
    if _public_bytes(leaf.public_key()) != _public_bytes(key.public_key()):
        raise TlsRefused("key", "tls.mismatch", "the private key does not belong to the certificate")
    now = _utc(now)
    if now < leaf.not_valid_before_utc:
        raise TlsRefused("certificate", "tls.not_yet_valid", "the certificate is valid only from %s" %
                         leaf.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC"))
    if now >= leaf.not_valid_after_utc:
        raise TlsRefused("certificate", "tls.expired", "the certificate expired on %s" %
                         leaf.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC"))
    return summary(leaf)


def summary(certificate):
    """What a page shows of a certificate."""
    return {"subject": certificate.subject.rfc4514_string(), "issuer": certificate.issuer.rfc4514_string(),
            "not_before": int(certificate.not_valid_before_utc.timestamp()),
            "not_after": int(certificate.not_valid_after_utc.timestamp()),
            "serial": "%X" % certificate.serial_number,
            "sha256": certificate.fingerprint(hashes.SHA256()).hex(":").upper()}


def expiry_state(not_after, now):
    """Alarm 7's rule for a certificate: "expired", "expiring" (within EXPIRY_WARNING_DAYS) or "valid"."""
    now_s = _utc(now).timestamp() if isinstance(now, datetime.datetime) else float(now)
    if now_s >= not_after:
        return "expired"
    if now_s >= not_after - EXPIRY_WARNING_DAYS * 86400:
        return "expiring"
    return "valid"


def check_ca(pem, now):
    """Summaries of the CA certificates in ``pem`` (each must be a CA: basic constraints CA true)."""
    certificates = load_certificates(pem, "ca")
    if len(certificates) > MAX_CA:
        raise TlsRefused("ca", "tls.too_many", "at most %d certificates in one upload" % MAX_CA)
    out = []
    for certificate in certificates:
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise TlsRefused("ca", "tls.not_ca", "%s is not a certificate authority" %
                             certificate.subject.rfc4514_string())
        entry = summary(certificate)
        entry["state"] = expiry_state(entry["not_after"], now)
        out.append(entry)
    return out


def self_signed(names, now):
    """(certificate PEM, key PEM) for the gateway's own names (host names or IP addresses), ECDSA P-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _utc(now)
    common = next((n for n in names if not _is_ip(n)), names[0])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "open-m70 gateway (self-signed)")])
    alternatives = [x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n) for n in names]
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256()))
    return (certificate.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _is_ip(name):
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
