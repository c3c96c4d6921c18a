"""`psmdb-backup probe URL`: GET one HTTPS URL, trusting only a given CA, and say whether it answered 2xx. The Helm
chart's `helm test` Pod runs it from the project's own image (which has no curl) against the webhook's /readyz through
its Service, so the test proves the Service, the serving certificate's names and the CA all fit together."""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit


class ProbeUsageError(ValueError):
    """The URL or CA file cannot be used at all (exit code 2, not a failed probe)."""


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str


def _context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ProbeUsageError(f"cannot load CA file {ca_file}: {exc}") from None


def probe(url: str, ca_file: str | None, timeout: float = 5.0, connect: tuple[str, int] | None = None) -> ProbeResult:
    """GET `url`; `connect` sends the connection to another address while the certificate is still checked against
    the URL's host name (what `curl --connect-to` does; the tests use it to reach a local server)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ProbeUsageError(f"expected an https:// URL, got {url!r}")
    host, port = parts.hostname, parts.port or 443
    context = _context(ca_file)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    try:
        raw = socket.create_connection(connect or (host, port), timeout=timeout)
        try:
            conn.sock = context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read(512).decode("utf-8", "replace").strip()
    except ssl.SSLCertVerificationError as exc:
        return ProbeResult(False, f"{url}: certificate not trusted ({exc.verify_message}); check --ca-file")
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, f"{url}: {type(exc).__name__}: {exc}")
    finally:
        conn.close()
    return ProbeResult(200 <= resp.status < 300, f"{url}: HTTP {resp.status} {body}")
