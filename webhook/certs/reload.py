"""The server side: one ``ssl.SSLContext`` whose certificate is swapped in place when the files change."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from .pki import TLS_CERT, TLS_KEY, CertsError, key_matches, load_cert, load_key

log = logging.getLogger(__name__)


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
        cert = load_cert(cert_pem)
        key = load_key(key_pem)
        if not key_matches(cert, key):
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

    async def watch(self, interval: float = 10.0, on_reload: Callable[[CertReloader], None] | None = None) -> None:
        """Check for new files every ``interval`` seconds, forever (cancel the task to stop); ``on_reload`` is called
        after each new pair went live (e.g. to update an expiry metric). The one reload loop: servers run this."""
        while True:
            # neither raises out of here: the watcher must not die, or rotation would silently stop
            if self.maybe_reload() and on_reload is not None:
                try:
                    on_reload(self)
                except Exception:
                    log.exception("certificate reload callback failed")
            await asyncio.sleep(interval)
