"""`make demo`: the project end to end on a local cluster.

1. lints the bundled examples (examples/) the way CI would;
2. builds or reuses a real kube-apiserver + etcd + kwok (+ controller-manager, scheduler), starts `psmdb-backup
   serve` with a local CA, registers the project's webhook configurations, and starts an S3 endpoint (moto) with a
   bucket on 127.0.0.1;
3. applies the examples with kubectl: shows what the API server rejects (with the webhook's message) and accepts;
4. creates a database pod and shows the backup-agent sidecar the mutating webhook injected;
5. keeps everything running, with a KUBECONFIG line to paste, until Ctrl-C; then stops every process it started.

`--no-wait` stops after step 4 (used by the tests).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import devcluster  # noqa: E402

NS = "psmdb"
BOLD, RED, GREEN, DIM, RESET = ("\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[2m", "\x1b[0m") if sys.stdout.isatty() \
    else ("",) * 5


def step(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def lint() -> int:
    step("1. psmdb-backup lint examples/ (what a CI job sees)")
    return subprocess.call([sys.executable, "-m", "webhook.cli", "lint", "--color",
                            "always" if sys.stdout.isatty() else "never", "examples/good", "examples/bad"], cwd=ROOT)


def start_s3() -> tuple[object, str]:
    from moto.server import ThreadedMotoServer
    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="demo",
                 aws_secret_access_key="demo").create_bucket(Bucket="psmdb-backups")
    return server, endpoint


def docs(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / "examples" / path).read_text()) if d]


def apply(cluster: devcluster.Cluster, path: str, objs: list[dict]) -> None:
    for obj in objs:
        ref = f"{obj['kind']} {obj['metadata']['name']}"
        result = cluster.apply(obj)
        if result.returncode == 0:
            print(f"{GREEN}accepted{RESET} {path}: {ref}")
            for line in result.stderr.splitlines():
                print(f"  {line}")
        else:
            print(f"{RED}rejected{RESET} {path}: {ref}")
            for line in result.stderr.strip().splitlines():
                print(f"  {line}")


def demo_pod() -> dict:
    labels = {"app.kubernetes.io/name": "percona-server-mongodb", "app.kubernetes.io/instance": "my-cluster",
              "app.kubernetes.io/component": "mongod", "app.kubernetes.io/replset": "rs0",
              "app.kubernetes.io/managed-by": "percona-server-mongodb-operator",
              "app.kubernetes.io/part-of": "percona-server-mongodb"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "my-cluster-rs0-0", "namespace": NS, "labels": labels},
            "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "mongod", "image": "percona/percona-server-mongodb:8.0.12-4"}],
                     "volumes": [{"name": "mongod-data", "emptyDir": {}}]}}


def main() -> int:
    ap = argparse.ArgumentParser(description="psmdb-backup-webhook demo on a local cluster")
    ap.add_argument("--no-wait", action="store_true", help="stop after showing the results")
    args = ap.parse_args()
    lint_rc = lint()
    step("2. starting kube-apiserver, etcd, kwok, controller-manager, scheduler, psmdb-backup serve and S3 (moto)")
    print(f"{DIM}(the first run builds the control plane from Go modules: about 10 minutes; later runs reuse it){RESET}",
          flush=True)
    work = Path(tempfile.mkdtemp(prefix="psmdb-backup-demo-"))
    t0 = time.monotonic()
    cluster = devcluster.start(work)
    s3, endpoint = start_s3()
    try:
        print(f"ready in {time.monotonic() - t0:.1f} s; S3 endpoint {endpoint} with bucket psmdb-backups")
        cluster.cp.create_namespace(NS)
        step("3. kubectl apply the examples (the webhook decides)")
        secrets = docs("good/secrets.yaml")
        for secret in secrets:
            secret["stringData"] = {k: "demo" for k in secret["stringData"]}
        apply(cluster, "examples/good/secrets.yaml", secrets)
        psmdb = docs("good/cluster.yaml")[0]
        s3_storage = psmdb["spec"]["backup"]["storages"]["s3-us-west"]["s3"]
        s3_storage.update(endpointUrl=endpoint, forcePathStyle=True, region="us-east-1")
        apply(cluster, "examples/good/cluster.yaml (main storage on the local S3)", [psmdb])
        for path in ("good/backup.yaml", "good/restore.yaml", "bad/cluster.yaml", "bad/backup.yaml", "bad/restore.yaml"):
            apply(cluster, f"examples/{path}", docs(path))
        step("4. a replica-set pod created through the API server gets the backup-agent sidecar")
        cluster.apply(demo_pod(), check=True)
        pod = json.loads(cluster.kubectl("get", "pod", "my-cluster-rs0-0", "-n", NS, "-o", "json").stdout)
        agent = next(c for c in pod["spec"]["containers"] if c["name"] == "backup-agent")
        print(f"pod my-cluster-rs0-0 containers: {[c['name'] for c in pod['spec']['containers']]}")
        print(yaml.safe_dump({"backup-agent": {k: agent[k] for k in ("image", "command", "args", "env", "volumeMounts")}},
                             sort_keys=False, width=120))
        if args.no_wait:
            return 0 if lint_rc == 1 else 1
        step("5. the cluster keeps running; try it:")
        print(f"  export KUBECONFIG={cluster.cp.kubeconfig}")
        print(f"  export PATH={cluster.cp.bin_dir}:$PATH   # kubectl {cluster.cp.bin_dir}/kubectl matches the server")
        print(f"  kubectl -n {NS} get psmdb,psmdb-backup,psmdb-restore,pods")
        print("  kubectl apply -f examples/bad/cluster.yaml")
        print(f"webhook log: {cluster.webhook.log_file}\nPress Ctrl-C to stop and clean up.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping ...")
        return 0
    finally:
        s3.stop()
        devcluster.stop(cluster)


if __name__ == "__main__":
    sys.exit(main())
