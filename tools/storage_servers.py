"""Real object storages for tests, on 127.0.0.1: moto's S3 server (PyPI) and Azurite's blob service (npm, installed
by `make azurite` into the cache). Shared by the PBM contract tests and the controller's end-to-end tests."""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AZURITE_ACCOUNT = "devstoreaccount1"  # Azurite's well-known development account and key
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class Unavailable(RuntimeError):
    """The storage server cannot run here (a dependency is missing)."""


@dataclass
class Moto:
    endpoint: str
    _server: Any

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        self._server.stop()


def start_moto() -> Moto:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return Moto(f"http://{host}:{port}", server)


@dataclass
class Azurite:
    endpoint: str  # the account URL: http://127.0.0.1:<port>/devstoreaccount1
    _proc: subprocess.Popen

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            account_url=self.endpoint, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}
        )

    def stop(self) -> None:
        self._proc.kill()  # a throwaway server on a temp dir; it takes seconds to honour SIGTERM
        self._proc.wait(5)


def azurite_executable() -> str | None:
    cache = Path(os.environ.get("PSMDB_BACKUP_CACHE", Path.home() / ".cache" / "psmdb-backup-webhook"))
    cached = cache / "node" / "node_modules" / ".bin" / "azurite-blob"
    return str(cached) if cached.exists() else shutil.which("azurite-blob")


def start_azurite(location: Path, timeout: float = 30.0) -> Azurite:
    try:
        import azure.storage.blob  # noqa: F401
    except ImportError:
        raise Unavailable("azure-storage-blob is not installed (pip install -e '.[test]')") from None
    exe = azurite_executable()
    if exe is None:
        raise Unavailable("azurite-blob is not installed (make azurite)")
    proc = subprocess.Popen(
        [
            exe,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--location",
            str(location),
            "--loose",
            "--skipApiVersionCheck",
            "--silent",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline, line, endpoint = time.monotonic() + timeout, "", ""
    assert proc.stdout is not None
    while time.monotonic() < deadline and not endpoint and proc.poll() is None:
        if select.select([proc.stdout], [], [], 1)[0]:
            line = proc.stdout.readline()
            m = re.search(r"listens on (http://127\.0\.0\.1:\d+)", line)
            endpoint = m.group(1) if m else ""
    if not endpoint:
        proc.kill()
        proc.wait(5)
        raise Unavailable(f"azurite did not start: {line!r}")
    return Azurite(f"{endpoint}/{AZURITE_ACCOUNT}", proc)
