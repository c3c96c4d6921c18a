"""`psmdb-backup probe` (webhook/probe.py), the command of the Helm chart's `helm test` Pod, against a local HTTPS
server whose certificate names the webhook's Service."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook import certs
from webhook.cli import main
from webhook.probe import ProbeUsageError, probe

SERVICE = "psmdb-backup-webhook.psmdb-backup-system.svc"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/readyz" else 503
        body = b'{"status": "ready"}' if status == 200 else b'{"status": "starting"}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """(port, CA file) of a server for 127.0.0.1 and the Service's name."""
    tmp = tmp_path_factory.mktemp("probe")
    ca, ca_key = certs.make_ca("probe test CA", 1)
    cert, key = certs.make_serving_cert(ca, ca_key, ["127.0.0.1", SERVICE], 1)
    (tmp / "ca.crt").write_bytes(ca)
    (tmp / "tls.crt").write_bytes(cert)
    (tmp / "tls.key").write_bytes(key)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], tmp / "ca.crt"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_ready_server_is_exit_0(server: tuple[int, Path], capsys: pytest.CaptureFixture[str]) -> None:
    port, ca = server
    assert main(["probe", f"https://127.0.0.1:{port}/readyz", "--ca-file", str(ca)]) == 0
    assert f"https://127.0.0.1:{port}/readyz: HTTP 200" in capsys.readouterr().out


def test_a_non_2xx_answer_is_exit_1(server: tuple[int, Path], capsys: pytest.CaptureFixture[str]) -> None:
    port, ca = server
    assert main(["probe", f"https://127.0.0.1:{port}/other", "--ca-file", str(ca)]) == 1
    assert "HTTP 503" in capsys.readouterr().err


def test_another_ca_is_not_trusted(server: tuple[int, Path], tmp_path: Path, capsys) -> None:
    port, _ = server
    other, _ = certs.make_ca("another CA", 1)
    (tmp_path / "other.crt").write_bytes(other)
    assert main(["probe", f"https://127.0.0.1:{port}/readyz", "--ca-file", str(tmp_path / "other.crt")]) == 1
    assert "certificate not trusted" in capsys.readouterr().err


def test_the_certificate_is_checked_against_the_urls_host_name(server: tuple[int, Path]) -> None:
    """`connect` reaches the local server, the Service name in the URL is what the certificate must carry."""
    port, ca = server
    assert probe(f"https://{SERVICE}:{port}/readyz", str(ca), connect=("127.0.0.1", port)).ok
    wrong = probe(f"https://other.psmdb-backup-system.svc:{port}/readyz", str(ca), connect=("127.0.0.1", port))
    assert not wrong.ok and "certificate not trusted" in wrong.message


def test_nothing_listening_is_exit_1(server: tuple[int, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, ca = server
    assert main(["probe", "https://127.0.0.1:1/readyz", "--ca-file", str(ca), "--timeout", "2"]) == 1
    assert "ConnectionRefusedError" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://127.0.0.1/readyz"], "expected an https:// URL"),
        (["https://127.0.0.1/readyz", "--ca-file", "/nonexistent/ca.crt"], "cannot load CA file /nonexistent/ca.crt"),
    ],
)
def test_unusable_url_or_ca_file_is_exit_2(args: list[str], message: str, capsys) -> None:
    assert main(["probe", *args]) == 2
    assert message in capsys.readouterr().err
    with pytest.raises(ProbeUsageError):
        probe(args[0], args[2] if len(args) > 2 else None)
