"""Pure certificate helpers (``cryptography`` only): a private CA, serving certificates, and reading them back."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
SECRET_TYPE = "kubernetes.io/tls"
LOCK_FILE = ".certs.lock"

DEFAULT_CA_COMMON_NAME = "psmdb-backup-webhook-ca"
DEFAULT_DAYS = 365
DEFAULT_CA_DAYS = 3650
DEFAULT_ROTATE_BEFORE = dt.timedelta(days=30)
BACKDATE = dt.timedelta(minutes=5)  # tolerate clock skew between the issuer and the API server
MAX_CN = 64  # ub-common-name (RFC 5280)

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class CertsError(Exception):
    """A failure meant for the user: the message says what is wrong and what to do."""


# --------------------------------------------------------------------------------------------------------------
# Pure helpers (cryptography only)
# --------------------------------------------------------------------------------------------------------------


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


def load_cert(pem: bytes) -> x509.Certificate:
    """The first certificate of a PEM blob (a chain or bundle starts with the leaf, a CA bundle with the current CA)."""
    certs = x509.load_pem_x509_certificates(pem)
    return certs[0]


def _public_der(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(cert: x509.Certificate, key: Any) -> bool:
    return _public_der(cert.public_key()) == _public_der(key.public_key())


def _sign_hash(key: Any) -> hashes.SHA256 | None:
    return None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def check_days(days: int, what: str = "days") -> None:
    if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
        raise ValueError(f"{what} must be a positive whole number of days, not {days!r}")


def _general_name(san: str) -> x509.GeneralName:
    text = san.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.lower().rstrip(".")
    labels = name.split(".")
    if labels and labels[0] == "*":  # a wildcard is allowed as the whole leftmost label only
        labels = labels[1:]
    if not name or len(name) > 253 or not labels or not all(DNS_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{san!r} is neither an IP address nor a DNS name (lowercase letters, digits, '-' and "
            "'.', labels of at most 63 characters)"
        )
    return x509.DNSName(name)


def _general_names(sans: Sequence[str]) -> list[x509.GeneralName]:
    if isinstance(sans, str):
        raise TypeError("sans must be a list of names, not a single string")
    out: list[x509.GeneralName] = []
    for san in sans:
        gn = _general_name(san)
        if gn not in out:
            out.append(gn)
    if not out:
        raise ValueError("at least one subject alternative name (DNS name or IP address) is required")
    return out


def _gn_text(gn: x509.GeneralName) -> str:
    return str(gn.value)


def normalize_sans(sans: Sequence[str]) -> list[str]:
    """The SANs as they will appear in the certificate (lowercase DNS names, canonical IPs), de-duplicated, in order.

    Raises ``ValueError`` for an empty list or a name that is neither an IP address nor a DNS name.
    """
    return [_gn_text(gn) for gn in _general_names(sans)]


def make_ca(
    common_name: str = DEFAULT_CA_COMMON_NAME, days: int = DEFAULT_CA_DAYS, *, now: dt.datetime | None = None
) -> tuple[bytes, bytes]:
    """A new self-signed CA (ECDSA P-256, may sign end-entity certificates only): ``(cert_pem, key_pem)``."""
    check_days(days)
    if not common_name or len(common_name) > MAX_CN:
        raise ValueError(f"the CA common name must be 1 to {MAX_CN} characters, not {common_name!r}")
    now = now or utcnow()
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_serving_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    sans: Sequence[str],
    days: int = DEFAULT_DAYS,
    *,
    now: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A TLS server certificate signed by the CA: ``(cert_pem, key_pem)``.

    Each SAN that parses as an IP address becomes an IP SAN, anything else a DNS SAN; the subject CN is the first
    SAN (when it fits in 64 characters; otherwise the subject is empty and the SAN extension critical). The
    certificate never outlives the CA: ``days`` is cut to the CA's own expiry.
    """
    check_days(days)
    names = _general_names(sans)
    ca_cert = load_cert(ca_cert_pem)
    ca_key = load_key(ca_key_pem)
    if not key_matches(ca_cert, ca_key):
        raise ValueError("the CA key does not belong to the CA certificate")
    if not is_ca(ca_cert):
        raise ValueError("the CA certificate is not a CA (basicConstraints ca=false or missing)")
    now = now or utcnow()
    expires = now + dt.timedelta(days=days)
    if expires > ca_cert.not_valid_after_utc:
        log.warning(
            "serving certificate validity cut from %s to the CA's expiry %s",
            expires.isoformat(),
            ca_cert.not_valid_after_utc.isoformat(),
        )
        expires = ca_cert.not_valid_after_utc
    if expires <= now:
        raise ValueError(f"the CA expired at {ca_cert.not_valid_after_utc.isoformat()}; create a new CA")
    key = _new_key()
    first = _gn_text(names[0])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first)] if len(first) <= MAX_CN else [])
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - BACKDATE, ca_cert.not_valid_before_utc))
        .not_valid_after(expires)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=len(subject) == 0)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca_key, _sign_hash(ca_key))
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def service_sans(service: str, namespace: str, cluster_domain: str = "cluster.local") -> list[str]:
    """The DNS names a Service answers to: ``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.<cluster domain>``."""
    for what, value in (("service", service), ("namespace", namespace)):
        if not DNS_LABEL.match(value or ""):
            raise ValueError(
                f"{what} name {value!r} is not a valid DNS label (lowercase letters, digits and '-', "
                "at most 63 characters)"
            )
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc"]
    if cluster_domain:
        names.append(f"{service}.{namespace}.svc.{cluster_domain.strip('.')}")
    return names


def not_after(cert_pem: bytes) -> dt.datetime:
    """When the (first) certificate in ``cert_pem`` expires, timezone-aware UTC."""
    return load_cert(cert_pem).not_valid_after_utc


def needs_rotation(cert_pem: bytes, before: dt.timedelta, *, now: dt.datetime | None = None) -> bool:
    """True when the certificate expires within ``before`` from now (or already has). Raises ``ValueError`` for
    data that is not a PEM certificate."""
    return not_after(cert_pem) - (now or utcnow()) <= before


def cert_sans(cert_pem: bytes) -> list[str]:
    """The DNS and IP subject alternative names of the (first) certificate, as text."""
    try:
        ext = load_cert(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in ext.get_values_for_type(x509.DNSName)] + [
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    ]


def cert_serial(cert_pem: bytes) -> int:
    return load_cert(cert_pem).serial_number


def pair_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """True when the private key belongs to the (first) certificate; False for unreadable data."""
    try:
        return key_matches(load_cert(cert_pem), load_key(key_pem))
    except (ValueError, TypeError):
        return False
