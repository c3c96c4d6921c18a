"""`psmdb-backup certs` against the real API server: Secret stored, caBundle patched into both webhook
configurations, and a rerun changes nothing."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from webhook import certs

from .conftest import Cluster

pytestmark = pytest.mark.e2e


def run_certs(cluster: Cluster, directory) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook.cli",
            "certs",
            "--dir",
            str(directory),
            "--san",
            "127.0.0.1",
            "--service",
            "psmdb-backup-webhook",
            "--namespace",
            "default",
            "--secret",
            "default/psmdb-backup-webhook-tls",
            "--patch-webhooks",
            "mutating=psmdb-backup-webhook,validating=psmdb-backup-webhook",
            "--kubeconfig",
            str(cluster.cp.kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_certs_stores_the_secret_and_patches_ca_bundle(cluster: Cluster, tmp_path) -> None:
    # Reuse the running webhook's CA, so the patched caBundle keeps the live webhook trusted.
    (tmp_path / "ca.crt").write_bytes(cluster.ca_pem)
    (tmp_path / "ca.key").write_bytes(cluster.ca_key_pem)
    first = run_certs(cluster, tmp_path)
    assert first.returncode == 0, first.stderr
    secret = json.loads(
        cluster.kubectl("get", "secret", "psmdb-backup-webhook-tls", "-n", "default", "-o", "json").stdout
    )
    assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) >= {"tls.crt", "tls.key", "ca.crt"}
    sans = certs.cert_sans(base64.b64decode(secret["data"]["tls.crt"]))
    assert "127.0.0.1" in sans and "psmdb-backup-webhook.default.svc" in sans
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        cfg = json.loads(cluster.kubectl("get", kind, "psmdb-backup-webhook", "-o", "json").stdout)
        bundles = {base64.b64decode(h["clientConfig"]["caBundle"]) for h in cfg["webhooks"]}
        # The test CA lives 2 days, inside the 30-day rotation window: a new CA is made and the old one stays in the
        # bundle, so the running webhook (serving from the old CA) stays trusted.
        assert bundles == {base64.b64decode(secret["data"]["ca.crt"])}
        assert cluster.ca_pem.strip() in bundles.pop()
        assert all(h["clientConfig"]["url"].startswith("https://127.0.0.1:") for h in cfg["webhooks"])  # rest kept
    rv = secret["metadata"]["resourceVersion"]
    second = run_certs(cluster, tmp_path)
    assert second.returncode == 0, second.stderr
    again = json.loads(
        cluster.kubectl("get", "secret", "psmdb-backup-webhook-tls", "-n", "default", "-o", "json").stdout
    )
    assert again["metadata"]["resourceVersion"] == rv  # idempotent: nothing rewritten
    denied = cluster.apply(
        {
            "apiVersion": "psmdb.percona.com/v1",
            "kind": "PerconaServerMongoDBBackup",
            "metadata": {"name": "after-certs", "namespace": "default"},
            "spec": {"clusterName": "x"},
        }
    )
    assert "PSB403" in denied.stderr  # the webhook is still called and trusted
