"""Certificates for the admission webhooks: a private CA, a serving certificate, and keeping both fresh.

Four layers, each usable on its own:

* pure functions (``cryptography`` only): :func:`make_ca`, :func:`make_serving_cert`, :func:`service_sans`,
  :func:`not_after`, :func:`needs_rotation`, :func:`cert_sans`, :func:`cert_serial`;
* files: :func:`write_dir` (atomic, ordered) and :func:`load_or_create` (idempotent issue/rotate);
* Kubernetes (async, ``kubernetes_asyncio``): :func:`store_secret`, :func:`read_secret`, :func:`patch_ca_bundle`;
* the server side: :class:`CertReloader`, one ``ssl.SSLContext`` whose certificate is swapped in place when the
  files change, so a rotation needs no restart and never drops a connection.

Files in a certificate directory: ``ca.crt`` (the CA bundle to trust: the current CA first, then any older CA that
is still valid, so a CA rotation does not break servers still presenting a certificate from the old CA), ``ca.key``
(the current CA's key; absent when the directory was seeded from a Secret), ``tls.crt`` and ``tls.key`` (the
serving pair, the names a ``kubernetes.io/tls`` Secret uses).

**Write order.** Every file is replaced atomically (temporary file in the same directory, ``fsync``,
``os.replace``), so a reader sees either the whole old file or the whole new one. A *pair* of files cannot be
replaced atomically, though, so the order is chosen to make the intermediate states harmless:

1. ``ca.key`` then ``ca.crt`` -- the new CA is trusted (and its key is in place) before anything it signed appears;
2. ``tls.key`` then ``tls.crt`` -- ``tls.crt`` is the commit point: once it is new, the key beside it is new too.
   A reader that looks between the two steps sees a new key with the old certificate. :class:`CertReloader`
   validates a pair before loading it, so it keeps serving the old certificate and picks up the complete pair on
   its next tick. Key first is also the order that is safe for a less careful reader: OpenSSL refuses a key that
   does not match the context's certificate and leaves the old pair in place, whereas loading a *certificate* that
   does not match the context's key makes it drop that key, after which every handshake fails (checked in
   ``tests/unit/test_certs.py``). Certificate first would also let the file a watcher keys on land before its key.

Concurrent ``load_or_create`` calls on one directory are serialised with an advisory ``flock``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import ipaddress
import logging
import os
import re
import ssl
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
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

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class CertsError(Exception):
    """A failure meant for the user: the message says what is wrong and what to do."""


class CredentialsError(CertsError):
    """No usable Kubernetes credentials (a setup problem, exit 2 in the CLI)."""


# --------------------------------------------------------------------------------------------------------------
# Pure helpers (cryptography only)
# --------------------------------------------------------------------------------------------------------------


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


def _load_cert(pem: bytes) -> x509.Certificate:
    """The first certificate of a PEM blob (a chain or bundle starts with the leaf, a CA bundle with the current CA)."""
    certs = x509.load_pem_x509_certificates(pem)
    return certs[0]


def _public_der(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_matches(cert: x509.Certificate, key: Any) -> bool:
    return _public_der(cert.public_key()) == _public_der(key.public_key())


def _sign_hash(key: Any) -> hashes.SHA256 | None:
    return None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_days(days: int, what: str = "days") -> None:
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
    if not name or len(name) > 253 or not labels or not all(_DNS_LABEL.match(label) for label in labels):
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
    _check_days(days)
    if not common_name or len(common_name) > MAX_CN:
        raise ValueError(f"the CA common name must be 1 to {MAX_CN} characters, not {common_name!r}")
    now = now or _utcnow()
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
    _check_days(days)
    names = _general_names(sans)
    ca_cert = _load_cert(ca_cert_pem)
    ca_key = _load_key(ca_key_pem)
    if not _key_matches(ca_cert, ca_key):
        raise ValueError("the CA key does not belong to the CA certificate")
    if not _is_ca(ca_cert):
        raise ValueError("the CA certificate is not a CA (basicConstraints ca=false or missing)")
    now = now or _utcnow()
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
        if not _DNS_LABEL.match(value or ""):
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
    return _load_cert(cert_pem).not_valid_after_utc


def needs_rotation(cert_pem: bytes, before: dt.timedelta, *, now: dt.datetime | None = None) -> bool:
    """True when the certificate expires within ``before`` from now (or already has). Raises ``ValueError`` for
    data that is not a PEM certificate."""
    return not_after(cert_pem) - (now or _utcnow()) <= before


def cert_sans(cert_pem: bytes) -> list[str]:
    """The DNS and IP subject alternative names of the (first) certificate, as text."""
    try:
        ext = _load_cert(cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in ext.get_values_for_type(x509.DNSName)] + [
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    ]


def cert_serial(cert_pem: bytes) -> int:
    return _load_cert(cert_pem).serial_number


def pair_matches(cert_pem: bytes, key_pem: bytes) -> bool:
    """True when the private key belongs to the (first) certificate; False for unreadable data."""
    try:
        return _key_matches(_load_cert(cert_pem), _load_key(key_pem))
    except (ValueError, TypeError):
        return False


# --------------------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, mode: int) -> bool:
    """Replace ``path`` with ``data`` atomically (temp file in the same directory + ``os.replace``).

    Returns False, writing nothing, when the file already holds exactly ``data`` with the right mode (so an
    idempotent rerun does not touch mtimes and a watching server does not reload for nothing).
    """
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return False
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return True


def write_dir(
    directory: str | os.PathLike[str],
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
    *,
    ca_key_pem: bytes | None = None,
) -> list[str]:
    """Write ``ca.crt``, ``tls.key``, ``tls.crt`` (and ``ca.key`` when given) atomically, in the order explained in
    the module docstring: ``ca.key``, ``ca.crt``, ``tls.key``, ``tls.crt``. Keys get mode 0600, certificates 0644.

    Refuses (``ValueError``, nothing written) a key that does not belong to its certificate. Returns the names of
    the files that changed; files already holding the same bytes are left untouched.
    """
    if not pair_matches(cert_pem, key_pem):
        raise ValueError("tls.key does not belong to tls.crt; refusing to write a mismatched pair")
    if ca_key_pem is not None and not pair_matches(ca_pem, ca_key_pem):
        raise ValueError("ca.key does not belong to the first certificate of ca.crt; refusing to write it")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    plan: list[tuple[str, bytes, int]] = []
    if ca_key_pem is not None:
        plan.append((CA_KEY, ca_key_pem, 0o600))
    plan += [(CA_CERT, ca_pem, 0o644), (TLS_KEY, key_pem, 0o600), (TLS_CERT, cert_pem, 0o644)]
    return [name for name, data, mode in plan if _atomic_write(d / name, data, mode)]


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class CertState:
    """What :func:`load_or_create` left in the directory and what it did."""

    ca_pem: bytes  # the CA bundle (ca.crt): current CA first
    cert_pem: bytes
    key_pem: bytes
    ca_created: bool
    cert_issued: bool
    reason: str  # why the serving certificate was (re-)issued, or why it was kept
    written: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.written)


def _serving_problem(
    cert_pem: bytes | None,
    key_pem: bytes | None,
    sans: Sequence[str],
    trust: Sequence[x509.Certificate],
    rotate_before: dt.timedelta,
    now: dt.datetime,
) -> str | None:
    """Why the serving pair cannot be kept, or None when it can."""
    if cert_pem is None or key_pem is None:
        return f"no {TLS_CERT}" if cert_pem is None else f"no {TLS_KEY}"
    try:
        cert = _load_cert(cert_pem)
        key = _load_key(key_pem)
    except (ValueError, TypeError) as e:
        return f"{TLS_CERT} or {TLS_KEY} is unreadable ({e})"
    if not _key_matches(cert, key):
        return f"{TLS_KEY} does not belong to {TLS_CERT}"
    for ca in trust:
        try:
            cert.verify_directly_issued_by(ca)
            break
        except (ValueError, TypeError, InvalidSignature):
            continue
    else:
        return f"{TLS_CERT} was not issued by the CA in {CA_CERT}"
    missing = [s for s in sans if s not in set(cert_sans(cert_pem))]
    if missing:
        return f"{TLS_CERT} lacks SAN(s) {', '.join(missing)}"
    if cert.not_valid_before_utc > now + BACKDATE:
        return f"{TLS_CERT} is not valid before {cert.not_valid_before_utc.isoformat()}"
    if cert.not_valid_after_utc - now <= rotate_before:
        return f"{TLS_CERT} expires at {cert.not_valid_after_utc.isoformat()}, within the rotation window"
    return None


def _ca_problem(
    ca_certs: Sequence[x509.Certificate], ca_key_pem: bytes | None, rotate_before: dt.timedelta, now: dt.datetime
) -> str | None:
    """Why the current CA (first in ca.crt + ca.key) cannot sign new certificates, or None when it can."""
    if not ca_certs:
        return f"no usable {CA_CERT}"
    if ca_key_pem is None:
        return f"no {CA_KEY}"
    try:
        key = _load_key(ca_key_pem)
    except (ValueError, TypeError) as e:
        return f"{CA_KEY} is unreadable ({e})"
    ca = ca_certs[0]
    if not _key_matches(ca, key):
        return f"{CA_KEY} does not belong to the first certificate in {CA_CERT}"
    if not _is_ca(ca):
        return f"the first certificate in {CA_CERT} is not a CA"
    if ca.not_valid_before_utc > now + BACKDATE:
        return f"the CA is not valid before {ca.not_valid_before_utc.isoformat()}"
    if ca.not_valid_after_utc - now <= rotate_before:
        return f"the CA expires at {ca.not_valid_after_utc.isoformat()}, within the rotation window"
    return None


def load_or_create(
    directory: str | os.PathLike[str],
    sans: Sequence[str],
    *,
    days: int = DEFAULT_DAYS,
    ca_days: int = DEFAULT_CA_DAYS,
    rotate_before: dt.timedelta = DEFAULT_ROTATE_BEFORE,
    ca_common_name: str = DEFAULT_CA_COMMON_NAME,
    now: dt.datetime | None = None,
) -> CertState:
    """Make sure ``directory`` holds a CA and a serving certificate for ``sans`` valid beyond ``rotate_before``.

    * A valid existing CA (``ca.crt`` + ``ca.key``, not expiring within the window) is reused.
    * The serving pair is re-issued when it is missing, unreadable, mismatched, not issued by the CA, expiring within
      ``rotate_before``, or lacks a requested SAN (extra SANs are fine).
    * Without a usable CA key (e.g. the directory was seeded from a Secret) a serving pair that passes all of the
      above against ``ca.crt`` is kept; otherwise a new CA is created. The new ``ca.crt`` lists the new CA first and
      then every older CA that is still valid, so the caBundle keeps trusting certificates already being served.

    A rerun with nothing to do writes nothing.
    """
    _check_days(days, "days")
    _check_days(ca_days, "ca_days")
    if rotate_before >= dt.timedelta(days=days):
        raise ValueError(
            f"the rotation window ({rotate_before}) must be shorter than the certificate validity "
            f"({days} days), or every run would issue a new certificate"
        )
    wanted = normalize_sans(sans)
    now = now or _utcnow()
    d = Path(directory)
    with _dir_lock(d):
        ca_pem, ca_key_pem = _read(d / CA_CERT), _read(d / CA_KEY)
        cert_pem, key_pem = _read(d / TLS_CERT), _read(d / TLS_KEY)
        try:
            bundle = x509.load_pem_x509_certificates(ca_pem) if ca_pem else []
        except ValueError:
            log.warning("%s is unreadable; a new CA will be created", d / CA_CERT)
            bundle = []
        valid_now = [
            c for c in bundle if _is_ca(c) and c.not_valid_before_utc <= now + BACKDATE and c.not_valid_after_utc > now
        ]

        ca_problem = _ca_problem(bundle, ca_key_pem, rotate_before, now)
        if ca_problem is None:
            assert ca_pem is not None and ca_key_pem is not None
            problem = _serving_problem(cert_pem, key_pem, wanted, bundle[:1], rotate_before, now)
            if problem is None:
                assert cert_pem is not None and key_pem is not None
                return CertState(ca_pem, cert_pem, key_pem, False, False, "valid")
            log.info("issuing a new serving certificate: %s", problem)
            new_cert, new_key = make_serving_cert(ca_pem, ca_key_pem, wanted, days, now=now)
            written = write_dir(d, ca_pem, new_cert, new_key)
            return CertState(ca_pem, new_cert, new_key, False, True, problem, tuple(written))

        problem = _serving_problem(cert_pem, key_pem, wanted, valid_now, rotate_before, now)
        if problem is None and ca_pem is not None:
            assert cert_pem is not None and key_pem is not None
            log.info(
                "keeping the valid serving certificate; the CA cannot sign new ones (%s), so the next rotation "
                "will create a new CA",
                ca_problem,
            )
            return CertState(ca_pem, cert_pem, key_pem, False, False, f"valid ({ca_problem})")
        log.info("creating a new CA (%s) and serving certificate (%s)", ca_problem, problem or "new CA")
        new_ca, new_ca_key = make_ca(ca_common_name, ca_days, now=now)
        new_ca_serial = _load_cert(new_ca).serial_number
        keep = [c.public_bytes(serialization.Encoding.PEM) for c in valid_now if c.serial_number != new_ca_serial]
        new_bundle = new_ca + b"".join(keep)
        new_cert, new_key = make_serving_cert(new_ca, new_ca_key, wanted, days, now=now)
        written = write_dir(d, new_bundle, new_cert, new_key, ca_key_pem=new_ca_key)
        return CertState(new_bundle, new_cert, new_key, True, True, problem or ca_problem, tuple(written))


# --------------------------------------------------------------------------------------------------------------
# Kubernetes (async)
# --------------------------------------------------------------------------------------------------------------

REQUEST_TIMEOUT = 30


@dataclass(frozen=True)
class CertBundle:
    ca_pem: bytes | None
    cert_pem: bytes | None
    key_pem: bytes | None

    @property
    def complete(self) -> bool:
        return bool(self.ca_pem and self.cert_pem and self.key_pem)


@dataclass(frozen=True)
class WebhookPatch:
    """The outcome of :func:`patch_ca_bundle` for one webhook configuration."""

    kind: str
    name: str
    webhooks: int  # entries in the configuration
    changed: int  # entries whose caBundle was set


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def secret_data(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> dict[str, str]:
    """The ``data`` of the ``kubernetes.io/tls`` Secret (base64 values)."""
    return {TLS_CERT: _b64(cert_pem), TLS_KEY: _b64(key_pem), CA_CERT: _b64(ca_pem)}


def ca_bundle_ops(webhooks: Sequence[tuple[str, str | None]], ca_bundle_b64: str) -> list[dict[str, Any]]:
    """JSON Patch setting ``clientConfig.caBundle`` on every entry of a webhook configuration's ``webhooks`` list.

    ``webhooks`` is ``[(name, current caBundle or None), ...]`` in list order. Entries that already hold the bundle
    are skipped; each change is guarded by a ``test`` of the entry's name so a concurrent reorder fails the patch
    instead of writing into the wrong entry. Only ``caBundle`` is touched: every other field stays as it is.
    """
    ops: list[dict[str, Any]] = []
    for i, (name, current) in enumerate(webhooks):
        if current == ca_bundle_b64:
            continue
        ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": name})
        ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca_bundle_b64})
    return ops


def _api_error(e: Exception) -> str:
    import json

    status, reason, body = getattr(e, "status", None), getattr(e, "reason", None), getattr(e, "body", None)
    message = None
    if body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError, TypeError):
            message = None
    return f"{status} {reason}" + (f": {message}" if message else "")


async def read_secret(api_client: Any, namespace: str, name: str) -> CertBundle | None:
    """The certificate material of a Secret, or None when the Secret does not exist. Missing keys are None."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    try:
        secret = await core.read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as e:
        if e.status == 404:
            return None
        raise CertsError(f"could not read Secret {namespace}/{name}: {_api_error(e)}") from None
    data = secret.data or {}

    def get(key: str) -> bytes | None:
        value = data.get(key)
        return base64.b64decode(value) if value else None

    return CertBundle(get(CA_CERT), get(TLS_CERT), get(TLS_KEY))


async def store_secret(
    api_client: Any,
    namespace: str,
    name: str,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
    *,
    labels: dict[str, str] | None = None,
) -> str:
    """Create or update the ``kubernetes.io/tls`` Secret with ``tls.crt``, ``tls.key`` and ``ca.crt``.

    Other keys, labels and annotations already on the Secret are kept (merge patch of ``data`` only, guarded by the
    ``resourceVersion`` read). Returns ``"created"``, ``"updated"`` or ``"unchanged"``.
    """
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    data = secret_data(ca_pem, cert_pem, key_pem)
    for _attempt in range(5):
        try:
            existing = await core.read_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as e:
            if e.status != 404:
                raise CertsError(f"could not read Secret {namespace}/{name}: {_api_error(e)}") from None
            body = client.V1Secret(
                api_version="v1",
                kind="Secret",
                type=SECRET_TYPE,
                data=data,
                metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=labels or None),
            )
            try:
                await core.create_namespaced_secret(namespace, body, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as e2:
                if e2.status == 409:  # created meanwhile: update it instead
                    continue
                raise CertsError(f"could not create Secret {namespace}/{name}: {_api_error(e2)}") from None
            log.info("created Secret %s/%s", namespace, name)
            return "created"
        if existing.type != SECRET_TYPE:
            raise CertsError(
                f"Secret {namespace}/{name} has type {existing.type!r}, not {SECRET_TYPE!r}; the type "
                "of a Secret cannot change: delete it or choose another name"
            )
        current = existing.data or {}
        if all(current.get(k) == v for k, v in data.items()):
            return "unchanged"
        patch = {"metadata": {"resourceVersion": existing.metadata.resource_version}, "data": data}
        try:
            await core.patch_namespaced_secret(
                name,
                namespace,
                patch,
                _content_type="application/merge-patch+json",  # type: ignore[call-arg]  # accepted; not in the annotations
                _request_timeout=REQUEST_TIMEOUT,
            )
        except ApiException as e:
            if e.status == 409:  # changed since we read it
                continue
            raise CertsError(f"could not update Secret {namespace}/{name}: {_api_error(e)}") from None
        log.info("updated Secret %s/%s", namespace, name)
        return "updated"
    raise CertsError(f"Secret {namespace}/{name} kept changing while it was being updated; try again")


async def patch_ca_bundle(
    api_client: Any, ca_pem: bytes, mutating_names: Iterable[str] = (), validating_names: Iterable[str] = ()
) -> list[WebhookPatch]:
    """Set ``clientConfig.caBundle`` (base64 of ``ca_pem``) on every webhook entry of the named
    MutatingWebhookConfiguration and ValidatingWebhookConfiguration objects, with a JSON Patch that touches nothing
    else. Entries already holding the bundle are not patched; a configuration that is already right is not written.
    """
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.rest import ApiException

    api = client.AdmissionregistrationV1Api(api_client)
    bundle = _b64(ca_pem)
    # (kind, name, read, patch): the client's read/patch methods differ only in the object type they return.
    targets: list[tuple[str, str, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]]] = [
        (
            "MutatingWebhookConfiguration",
            n,
            api.read_mutating_webhook_configuration,
            api.patch_mutating_webhook_configuration,
        )
        for n in mutating_names
    ]
    targets += [
        (
            "ValidatingWebhookConfiguration",
            n,
            api.read_validating_webhook_configuration,
            api.patch_validating_webhook_configuration,
        )
        for n in validating_names
    ]
    results: list[WebhookPatch] = []
    for kind, name, read, patch in targets:
        for attempt in range(4):
            try:
                obj = await read(name, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as e:
                if e.status == 404:
                    raise CertsError(f"{kind} {name!r} not found; apply the webhook manifests first") from None
                raise CertsError(f"could not read {kind} {name!r}: {_api_error(e)}") from None
            entries = [(w.name, w.client_config.ca_bundle if w.client_config else None) for w in (obj.webhooks or [])]
            ops = ca_bundle_ops(entries, bundle)
            if not entries:
                log.warning("%s %r has no webhooks; nothing to patch", kind, name)
            if not ops:
                results.append(WebhookPatch(kind, name, len(entries), 0))
                break
            try:
                await patch(name, ops, _content_type="application/json-patch+json", _request_timeout=REQUEST_TIMEOUT)
            except ApiException as e:
                # a failed `test` (the list changed under us) or a conflict: read again and retry
                if e.status in (409, 422, 400, 500) and attempt < 3:
                    log.info("patching %s %r failed (%s); retrying", kind, name, _api_error(e))
                    continue
                raise CertsError(f"could not patch caBundle into {kind} {name!r}: {_api_error(e)}") from None
            log.info("set caBundle on %d of %d webhooks of %s %r", len(ops) // 2, len(entries), kind, name)
            results.append(WebhookPatch(kind, name, len(entries), len(ops) // 2))
            break
    return results


async def api_client_from_config(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An ``ApiClient`` from ``kubeconfig`` if given, else ``$KUBECONFIG`` / ``~/.kube/config`` if present, else the
    in-cluster service account. The caller closes it."""
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.config.config_exception import ConfigException

    try:
        if kubeconfig:
            if not os.path.exists(kubeconfig):
                raise CredentialsError(f"kubeconfig {kubeconfig!r} does not exist")
            return await config.new_client_from_config(config_file=kubeconfig, context=context, persist_config=False)
        if os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config")):
            return await config.new_client_from_config(context=context, persist_config=False)
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(configuration=cfg)
    except (ConfigException, OSError, ValueError) as e:
        raise CredentialsError(f"could not load Kubernetes credentials: {e}") from None
    raise CredentialsError(
        "no Kubernetes credentials: pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account"
    )


# --------------------------------------------------------------------------------------------------------------
# Server side: hot reload
# --------------------------------------------------------------------------------------------------------------


class CertReloader:
    """An ``ssl.SSLContext`` (TLS server, TLS 1.2 minimum) serving ``tls.crt``/``tls.key`` from ``directory``, and
    kept up to date in place.

    :meth:`maybe_reload` notices changed files (inode, size, mtime), reads the pair once, validates it on a scratch
    context and only then loads those same bytes into :attr:`context` -- the object the server was started with --
    so new handshakes get the new certificate while established connections keep theirs. A pair that does not load
    (e.g. caught mid-rotation: new key, old certificate) is ignored with one warning, the old certificate stays in
    service, and the next tick tries again.
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, cert_file: str = TLS_CERT, key_file: str = TLS_KEY
    ) -> None:
        self.directory = Path(directory)
        self.cert_path = self.directory / cert_file
        self.key_path = self.directory / key_file
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.reloads = 0
        self._signature: tuple[int, ...] | None = None
        self._digest: bytes | None = None
        self._failed_signature: tuple[int, ...] | None = None
        self._cert: x509.Certificate | None = None
        try:
            signature = self._stat()
            cert_pem, key_pem = self.cert_path.read_bytes(), self.key_path.read_bytes()
            self._apply(cert_pem, key_pem)
        except (OSError, ValueError, TypeError, ssl.SSLError) as e:
            raise CertsError(
                f"cannot serve TLS from {self.cert_path} and {self.key_path}: {e}; run "
                "`psmdb-backup certs` or mount the TLS Secret there"
            ) from None
        self._signature, self._digest = signature, self._hash(cert_pem, key_pem)

    @staticmethod
    def _hash(cert_pem: bytes, key_pem: bytes) -> bytes:
        return hashlib.sha256(cert_pem + b"\0" + key_pem).digest()

    def _stat(self) -> tuple[int, ...]:
        # os.stat follows symlinks: a Secret volume's atomic `..data` swap changes the target's inode and mtime
        out: list[int] = []
        for p in (self.cert_path, self.key_path):
            st = os.stat(p)
            out += [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        return tuple(out)

    def _apply(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Validate the pair, then load exactly these bytes into the live context. Raises on a bad pair, leaving
        the live context untouched."""
        cert = _load_cert(cert_pem)
        key = _load_key(key_pem)
        if not _key_matches(cert, key):
            raise ValueError(f"{self.key_path.name} does not belong to {self.cert_path.name}")
        if self._cert is not None and type(self._cert.public_key()) is not type(cert.public_key()):
            # OpenSSL keeps one certificate per key type in a context: loading an ECDSA pair over an RSA one adds
            # it beside the old pair instead of replacing it, and a client may still be offered the old one
            log.warning(
                "the serving key type changed (%s -> %s); restart the server to retire the old certificate",
                type(self._cert.public_key()).__name__,
                type(cert.public_key()).__name__,
            )
        # load_cert_chain() wants paths: stage the bytes read above in a private directory, so that what is
        # validated is what is served even if the watched files change again meanwhile
        with tempfile.TemporaryDirectory(prefix="psmdb-tls-") as tmp:
            c, k = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
            for path, data in ((c, cert_pem), (k, key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            scratch.load_cert_chain(c, k)  # OpenSSL's own checks (key match, key size, format)
            self.context.load_cert_chain(c, k)
        self._cert = cert

    def maybe_reload(self) -> bool:
        """Load the files into the context if they changed and form a valid pair. True when a new pair went live.

        Never raises: whatever goes wrong is logged and the certificate in service stays, so a periodic caller's
        loop cannot die on it.
        """
        try:
            return self._maybe_reload()
        except Exception:
            log.exception("certificate reload check failed; still serving serial %#x", self.serial)
            return False

    def _maybe_reload(self) -> bool:
        try:
            signature = self._stat()
        except OSError as e:
            self._warn_once(
                None, f"cannot stat the serving certificate files ({e}); still serving serial {self.serial:#x}"
            )
            return False
        if signature == self._signature:
            return False
        try:
            cert_pem, key_pem = self.cert_path.read_bytes(), self.key_path.read_bytes()
            if self._stat() != signature:
                log.debug("certificate files changed while being read; retrying next tick")
                return False
        except OSError as e:
            self._warn_once(
                signature, f"cannot read the serving certificate files ({e}); still serving serial {self.serial:#x}"
            )
            return False
        digest = self._hash(cert_pem, key_pem)
        if digest == self._digest:  # touched or rewritten with the same content
            self._signature = signature
            return False
        try:
            self._apply(cert_pem, key_pem)
        except (ValueError, TypeError, ssl.SSLError, OSError) as e:
            self._warn_once(
                signature,
                f"not reloading {self.cert_path} / {self.key_path}: {e}; still serving "
                f"serial {self.serial:#x} (retrying)",
            )
            return False
        self._signature, self._digest, self._failed_signature = signature, digest, None
        self.reloads += 1
        log.info(
            "reloaded the serving certificate from %s: serial %#x, expires %s",
            self.cert_path,
            self.serial,
            self.expiry.isoformat(),
        )
        return True

    def _warn_once(self, signature: tuple[int, ...] | None, message: str) -> None:
        key = signature or ()
        if key != self._failed_signature:
            log.warning(message)
            self._failed_signature = key
        else:
            log.debug(message)

    @property
    def certificate(self) -> x509.Certificate:
        assert self._cert is not None
        return self._cert

    @property
    def expiry(self) -> dt.datetime:
        """When the certificate in service expires (UTC), e.g. for a metric."""
        return self.certificate.not_valid_after_utc

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    async def watch(self, interval: float = 10.0) -> None:
        """Check for new files every ``interval`` seconds, forever (cancel the task to stop)."""
        while True:
            self.maybe_reload()  # never raises: the watcher must not die, or rotation would silently stop
            await asyncio.sleep(interval)


# --------------------------------------------------------------------------------------------------------------
# CLI: `psmdb-backup certs`
# --------------------------------------------------------------------------------------------------------------

EXIT_USAGE = 2
_DURATION = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``1d12h``, ``90m``, ``2w``, ``3600s``; ``0`` means none. Raises ``ValueError``."""
    s = text.strip().lower()
    if s == "0":
        return dt.timedelta(0)
    if not s or _DURATION.sub("", s) != "":
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 30d, 12h, 1d12h, 90m, 2w")
    total = dt.timedelta(0)
    for n, unit in _DURATION.findall(s):
        total += dt.timedelta(**{_UNITS[unit]: int(n)})
    return total


def parse_webhook_targets(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """``mutating=NAME,validating=NAME`` (repeatable, either part optional) -> (mutating names, validating names)."""
    mutating: list[str] = []
    validating: list[str] = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            kind, sep, name = part.partition("=")
            kind, name = kind.strip().lower(), name.strip()
            if not sep or kind not in ("mutating", "validating") or not name:
                raise ValueError(
                    f"invalid --patch-webhooks entry {part!r}: use mutating=NAME and/or "
                    "validating=NAME, comma-separated"
                )
            if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", name):
                raise ValueError(
                    f"invalid webhook configuration name {name!r}: a DNS subdomain (lowercase letters, "
                    "digits, '-' and '.') is expected"
                )
            target = mutating if kind == "mutating" else validating
            if name not in target:
                target.append(name)
    return mutating, validating


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _duration_arg(text: str) -> dt.timedelta:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_certs_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``certs`` on the ``add_subparsers()`` object of the main parser."""
    p = subparsers.add_parser(
        "certs",
        help="create or rotate the webhook CA and serving certificate",
        description="Create a CA and a serving certificate for the admission webhooks in --dir (ca.crt, ca.key, "
        "tls.crt, tls.key), or keep the existing ones while they are valid, cover every requested name and do not "
        "expire within --rotate-before. Optionally store them in a kubernetes.io/tls Secret and patch the CA into "
        "the webhook configurations' caBundle. Rerunning is safe. Exit 0: done; 1: a Kubernetes call failed; "
        "2: bad arguments, unusable directory or no credentials.",
    )
    p.add_argument("--dir", required=True, metavar="DIR", help="directory for ca.crt, ca.key, tls.crt and tls.key")
    p.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="DNS name or IP address for the serving certificate (repeatable), e.g. 127.0.0.1",
    )
    p.add_argument("--service", metavar="NAME", help="add the Service's DNS names (needs --namespace)")
    p.add_argument("--namespace", metavar="NS", help="namespace of --service (and of --secret without NS/)")
    p.add_argument(
        "--cluster-domain",
        default="cluster.local",
        metavar="DOMAIN",
        help="cluster DNS domain for the Service names (default: cluster.local)",
    )
    p.add_argument(
        "--days",
        type=_positive_int,
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"validity of the serving certificate in days (default: {DEFAULT_DAYS})",
    )
    p.add_argument(
        "--ca-days",
        type=_positive_int,
        default=DEFAULT_CA_DAYS,
        metavar="N",
        help=f"validity of a new CA in days (default: {DEFAULT_CA_DAYS})",
    )
    p.add_argument(
        "--rotate-before",
        type=_duration_arg,
        default=DEFAULT_ROTATE_BEFORE,
        metavar="DURATION",
        help="re-issue when the certificate expires within this time, e.g. 30d, 12h (default: 30d)",
    )
    p.add_argument("--ca-common-name", default=DEFAULT_CA_COMMON_NAME, metavar="CN", help="common name of a new CA")
    p.add_argument(
        "--secret",
        metavar="[NS/]NAME",
        help="also store tls.crt, tls.key and ca.crt in this "
        "kubernetes.io/tls Secret (and seed an empty --dir from it)",
    )
    p.add_argument(
        "--patch-webhooks",
        action="append",
        default=[],
        metavar="mutating=NAME,validating=NAME",
        help="set caBundle on every webhook of these configurations (repeatable)",
    )
    p.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig for --secret/--patch-webhooks (default: "
        "$KUBECONFIG, ~/.kube/config, then the in-cluster service account)",
    )
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")
    p.set_defaults(func=cmd_certs)
    return p


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    sys.stderr.write(f"psmdb-backup certs: {message}\n")
    return code


def _fmt_time(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_certs(args: argparse.Namespace) -> int:
    sans: list[str] = list(args.san)
    if args.service or (args.namespace and not args.secret):
        if not (args.service and args.namespace):
            return _fail(
                "--service and --namespace go together: give both, e.g. --service psmdb-backup-webhook "
                "--namespace psmdb-backup"
            )
    try:
        if args.service:
            sans += service_sans(args.service, args.namespace, args.cluster_domain)
        if not sans:
            return _fail("no names for the certificate: give --san NAME (repeatable) and/or --service with --namespace")
        sans = normalize_sans(sans)
        mutating, validating = parse_webhook_targets(args.patch_webhooks)
    except ValueError as e:
        return _fail(str(e))
    if args.rotate_before >= dt.timedelta(days=args.days):
        return _fail(
            f"--rotate-before ({args.rotate_before}) must be shorter than --days ({args.days}), or every "
            "run would issue a new certificate"
        )
    if not args.ca_common_name or len(args.ca_common_name) > MAX_CN:
        return _fail(f"--ca-common-name must be 1 to {MAX_CN} characters")
    secret: tuple[str, str] | None = None
    if args.secret:
        ns, sep, name = args.secret.rpartition("/")
        ns = ns if sep else (args.namespace or "")
        if not ns or not _DNS_LABEL.match(ns) or not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", name):
            return _fail(f"invalid --secret {args.secret!r}: use NAMESPACE/NAME (or NAME with --namespace)")
        secret = (ns, name)
    directory = Path(args.dir)
    if directory.exists() and not directory.is_dir():
        return _fail(f"--dir {args.dir!r} exists and is not a directory")

    def issue() -> CertState:
        return load_or_create(
            directory,
            sans,
            days=args.days,
            ca_days=args.ca_days,
            rotate_before=args.rotate_before,
            ca_common_name=args.ca_common_name,
        )

    before: list[str] = []  # what happened before issuing (seeding from the Secret)
    lines: list[str] = []  # and after (Secret, caBundle)
    cluster = secret is not None or bool(mutating) or bool(validating)
    try:
        if not cluster:
            state = issue()
        else:
            state = asyncio.run(_with_cluster(args, directory, secret, mutating, validating, issue, before, lines))
    except CredentialsError as e:
        return _fail(str(e))
    except CertsError as e:
        return _fail(str(e), 1)
    except OSError as e:
        if cluster and getattr(e, "filename", None) is None:  # aiohttp connection errors and timeouts are OSErrors
            return _fail(f"cannot reach the Kubernetes API server: {e or 'timed out'}", 1)
        return _fail(f"cannot use --dir {args.dir!r}: {e.strerror or e}" + (f" ({e.filename})" if e.filename else ""))
    except ValueError as e:
        return _fail(str(e))
    except Exception as e:  # aiohttp errors, timeouts, anything unexpected from the client: a sentence, no traceback
        log.debug("certs failed", exc_info=True)
        return _fail(f"Kubernetes request failed: {type(e).__name__}: {e or 'timed out'}", 1)
    ca = _load_cert(state.ca_pem)
    out = [
        f"CA: {'created' if state.ca_created else 'kept'} ({ca.subject.rfc4514_string()}, serial "
        f"{ca.serial_number:#x}, expires {_fmt_time(ca.not_valid_after_utc)})",
        f"serving certificate: {'issued' if state.cert_issued else 'kept'} ({state.reason}); serial "
        f"{cert_serial(state.cert_pem):#x}, expires {_fmt_time(not_after(state.cert_pem))}, SANs "
        f"{', '.join(cert_sans(state.cert_pem))}",
        f"files: {', '.join(state.written) + ' written' if state.written else 'unchanged'} in {directory}",
    ]
    sys.stdout.write("\n".join(before + out + lines) + "\n")
    return 0


async def _with_cluster(
    args: argparse.Namespace,
    directory: Path,
    secret: tuple[str, str] | None,
    mutating: list[str],
    validating: list[str],
    issue: Any,
    before: list[str],
    lines: list[str],
) -> CertState:
    api = await api_client_from_config(args.kubeconfig, args.context)
    try:
        if secret is not None and not (directory / TLS_CERT).exists():
            stored = await read_secret(api, *secret)
            if stored is not None and stored.complete:
                assert stored.ca_pem and stored.cert_pem and stored.key_pem
                if pair_matches(stored.cert_pem, stored.key_pem):
                    write_dir(directory, stored.ca_pem, stored.cert_pem, stored.key_pem)
                    before.append(f"seeded {directory} from Secret {secret[0]}/{secret[1]}")
                else:
                    log.warning("Secret %s/%s holds a mismatched pair; ignoring it", *secret)
        state = issue()
        if secret is not None:
            outcome = await store_secret(api, secret[0], secret[1], state.ca_pem, state.cert_pem, state.key_pem)
            lines.append(f"Secret {secret[0]}/{secret[1]}: {outcome}")
        if mutating or validating:
            for r in await patch_ca_bundle(api, state.ca_pem, mutating, validating):
                what = f"caBundle set on {r.changed} of {r.webhooks} webhooks" if r.changed else "caBundle unchanged"
                lines.append(f"{r.kind} {r.name}: {what}")
        return state
    finally:
        await api.close()
