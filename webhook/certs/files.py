"""Certificate directories: atomic, ordered writes and idempotent issue/rotate (see the package docstring)."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from .pki import (
    BACKDATE,
    CA_CERT,
    CA_KEY,
    DEFAULT_CA_COMMON_NAME,
    DEFAULT_CA_DAYS,
    DEFAULT_DAYS,
    DEFAULT_ROTATE_BEFORE,
    LOCK_FILE,
    TLS_CERT,
    TLS_KEY,
    cert_sans,
    check_days,
    is_ca,
    key_matches,
    load_cert,
    load_key,
    make_ca,
    make_serving_cert,
    normalize_sans,
    pair_matches,
    utcnow,
)

log = logging.getLogger(__name__)


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
        cert = load_cert(cert_pem)
        key = load_key(key_pem)
    except (ValueError, TypeError) as e:
        return f"{TLS_CERT} or {TLS_KEY} is unreadable ({e})"
    if not key_matches(cert, key):
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
        key = load_key(ca_key_pem)
    except (ValueError, TypeError) as e:
        return f"{CA_KEY} is unreadable ({e})"
    ca = ca_certs[0]
    if not key_matches(ca, key):
        return f"{CA_KEY} does not belong to the first certificate in {CA_CERT}"
    if not is_ca(ca):
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
    check_days(days, "days")
    check_days(ca_days, "ca_days")
    if rotate_before >= dt.timedelta(days=days):
        raise ValueError(
            f"the rotation window ({rotate_before}) must be shorter than the certificate validity "
            f"({days} days), or every run would issue a new certificate"
        )
    wanted = normalize_sans(sans)
    now = now or utcnow()
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
            c for c in bundle if is_ca(c) and c.not_valid_before_utc <= now + BACKDATE and c.not_valid_after_utc > now
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
        new_ca_serial = load_cert(new_ca).serial_number
        keep = [c.public_bytes(serialization.Encoding.PEM) for c in valid_now if c.serial_number != new_ca_serial]
        new_bundle = new_ca + b"".join(keep)
        new_cert, new_key = make_serving_cert(new_ca, new_ca_key, wanted, days, now=now)
        written = write_dir(d, new_bundle, new_cert, new_key, ca_key_pem=new_ca_key)
        return CertState(new_bundle, new_cert, new_key, True, True, problem or ca_problem, tuple(written))
