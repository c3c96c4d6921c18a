"""`make demo`: the project end to end on a local cluster.

1. lints the bundled examples (examples/) the way CI would;
2. builds or reuses a real kube-apiserver + etcd + kwok (+ controller-manager, scheduler), starts `psmdb-backup
   serve` with a local CA, registers the project's webhook configurations, and starts an S3 endpoint (moto) with a
   bucket on 127.0.0.1;
3. applies the examples with kubectl: shows what the API server rejects (with the webhook's message) and accepts;
4. creates a database pod and shows the backup-agent sidecar the mutating webhook injected;
5. starts the operator stand-in (tools/operator_standin, playing the stock Percona operator) and gives the cluster a
   task that runs every 20 seconds: the operator's cron makes the Backup, which runs through PBM in that sidecar
   (kwok runs the PBM simulator there), and its files land in the S3 bucket;
6. keeps everything running, with a KUBECONFIG line to paste, until Ctrl-C; then stops every process it started.

`--no-wait` stops after step 5 (used by the tests).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import devcluster  # noqa: E402
from tools.ctlcluster import ControllerProcess, StandinProcess  # noqa: E402
from tools.pbm_sim import SIM_DIR, kwok_exec_docs  # noqa: E402
from tools.storage_servers import Moto, start_moto  # noqa: E402

NS = "psmdb"
BOLD, RED, GREEN, DIM, RESET = (
    ("\x1b[1m", "\x1b[31m", "\x1b[32m", "\x1b[2m", "\x1b[0m") if sys.stdout.isatty() else ("",) * 5
)


def step(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def lint() -> int:
    step("1. psmdb-backup lint examples/ (what a CI job sees)")
    return subprocess.call(
        [
            sys.executable,
            "-m",
            "webhook.cli",
            "lint",
            "--color",
            "always" if sys.stdout.isatty() else "never",
            "examples/good",
            "examples/bad",
        ],
        cwd=ROOT,
    )


def scheduled_backup(cluster: devcluster.Cluster, work: Path, s3: Moto, started: list[ControllerProcess]) -> None:
    """Step 5: the operator stand-in runs the cluster's 20-second task; wait for the first Backup to be ready in S3.
    The stand-in is added to `started` (the caller stops it with the cluster)."""
    cluster.kubectl(
        "patch",
        "psmdb",
        "my-cluster",
        "-n",
        NS,
        "--type=json",
        "-p",
        json.dumps(
            [
                {
                    "op": "add",
                    "path": "/spec/backup/tasks/-",
                    "value": {
                        "name": "demo-every-20s",
                        "enabled": True,
                        "schedule": "@every 20s",
                        "storageName": "s3-us-west",
                        "compressionType": "gzip",
                        "retention": {"type": "count", "count": 3, "deleteFromStorage": True},
                    },
                }
            ]
        ),
    )
    cluster.kubectl(
        "patch",
        "psmdb",
        "my-cluster",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"state": "ready", "replsets": {"rs0": {"ready": 3, "status": "ready"}}}}),
    )
    standin = StandinProcess(
        "operator-standin",
        cluster.cp.kubeconfig,
        work / "operator-standin.log",
        ["--namespace", NS, "--poll-interval", "1"],
    ).start()
    started.append(standin)
    print("task demo-every-20s (@every 20s, retention 3) added; the operator stand-in plays the operator", flush=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        items = json.loads(
            cluster.kubectl(
                "get", "psmdb-backup", "-n", NS, "-l", "percona.com/backup-ancestor=demo-every-20s", "-o", "json"
            ).stdout
        )["items"]
        ready = [b for b in items if (b.get("status") or {}).get("state") == "ready"]
        if ready:
            b = ready[0]
            print(f"the operator stand-in's cron created {b['metadata']['name']} and ran it through PBM:")
            print(cluster.kubectl("get", "psmdb-backup", "-n", NS, b["metadata"]["name"]).stdout)
            prefix = b["status"]["destination"].split("psmdb-backups/", 1)[1]
            keys = [
                o["Key"] for o in s3.client().list_objects_v2(Bucket="psmdb-backups", Prefix=prefix).get("Contents", [])
            ]
            print(f"objects in s3://psmdb-backups/{prefix}*:")
            for k in sorted(keys):
                print(f"  {k}")
            return
        time.sleep(1)
    raise RuntimeError(f"no scheduled backup became ready:\n{standin.log_tail()}")


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
    labels = {
        "app.kubernetes.io/name": "percona-server-mongodb",
        "app.kubernetes.io/instance": "my-cluster",
        "app.kubernetes.io/component": "mongod",
        "app.kubernetes.io/replset": "rs0",
        "app.kubernetes.io/managed-by": "percona-server-mongodb-operator",
        "app.kubernetes.io/part-of": "percona-server-mongodb",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "my-cluster-rs0-0", "namespace": NS, "labels": labels},
        "spec": {
            "nodeName": "kwok-node-0",
            "containers": [{"name": "mongod", "image": "percona/percona-server-mongodb:8.0.12-4"}],
            "volumes": [{"name": "mongod-data", "emptyDir": {}}],
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description="psmdb-backup-webhook demo on a local cluster")
    ap.add_argument("--no-wait", action="store_true", help="stop after showing the results")
    args = ap.parse_args()
    lint_rc = lint()
    step("2. starting kube-apiserver, etcd, kwok, controller-manager, scheduler, psmdb-backup serve and S3 (moto)")
    print(
        f"{DIM}(the first run builds the control plane from Go modules: about 10 minutes; later runs reuse it){RESET}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="psmdb-backup-demo-"))
    t0 = time.monotonic()
    s3 = start_moto()
    endpoint = s3.endpoint
    s3.client().create_bucket(Bucket="psmdb-backups")
    sim_env = {"PSMDB_PBM_SIM_PYTHON": sys.executable, "AWS_EC2_METADATA_DISABLED": "true"}
    cluster = devcluster.start(
        work,
        extra_path=[SIM_DIR],
        exec_env=sim_env,
        kwok_extra_docs=kwok_exec_docs(
            [(NS, "my-cluster-rs0-0", "my-cluster")], state_root=work / "pbm-state", work_dir=work, extra_env=sim_env
        ),
    )
    controllers: list[ControllerProcess] = []
    try:
        print(f"ready in {time.monotonic() - t0:.1f} s; S3 endpoint {endpoint} with bucket psmdb-backups")
        cluster.cp.create_namespace(NS)
        step("3. kubectl apply the examples (the webhook decides)")
        secrets = docs("good/secrets.yaml")
        for secret in secrets:
            secret["stringData"] = {k: "demo" for k in secret["stringData"]}
        apply(cluster, "examples/good/secrets.yaml", secrets)
        psmdb = docs("good/cluster.yaml")[0]
        s3_storage = psmdb["spec"]["backup"]["storages"]["s3-us-west"]
        s3_storage["s3"].update(endpointUrl=endpoint, forcePathStyle=True, region="us-east-1", bucket="psmdb-backups")
        psmdb["spec"]["backup"]["storages"] = {"s3-us-west": s3_storage}  # the one storage this machine has
        psmdb["spec"]["backup"]["tasks"] = [
            t for t in psmdb["spec"]["backup"]["tasks"] if t["storageName"] == "s3-us-west"
        ]
        apply(cluster, "examples/good/cluster.yaml (its S3 storage, on the local S3)", [psmdb])
        for path in (
            "good/backup.yaml",
            "good/restore.yaml",
            "bad/cluster.yaml",
            "bad/backup.yaml",
            "bad/restore.yaml",
        ):
            apply(cluster, f"examples/{path}", docs(path))
        step("4. a replica-set pod created through the API server gets the backup-agent sidecar")
        cluster.apply(demo_pod(), check=True)
        pod = json.loads(cluster.kubectl("get", "pod", "my-cluster-rs0-0", "-n", NS, "-o", "json").stdout)
        agent = next(c for c in pod["spec"]["containers"] if c["name"] == "backup-agent")
        print(f"pod my-cluster-rs0-0 containers: {[c['name'] for c in pod['spec']['containers']]}")
        print(
            yaml.safe_dump(
                {"backup-agent": {k: agent[k] for k in ("image", "command", "args", "env", "volumeMounts")}},
                sort_keys=False,
                width=120,
            )
        )
        step("5. the operator stand-in (playing the Percona operator) runs a scheduled backup through PBM into S3")
        scheduled_backup(cluster, work, s3, controllers)
        if args.no_wait:
            return 0 if lint_rc == 1 else 1
        step("6. the cluster keeps running; try it:")
        print(f"  export KUBECONFIG={cluster.cp.kubeconfig}")
        print(f"  export PATH={cluster.cp.bin_dir}:$PATH   # kubectl {cluster.cp.bin_dir}/kubectl matches the server")
        print(f"  kubectl -n {NS} get psmdb,psmdb-backup,psmdb-restore,pods")
        print("  kubectl apply -f examples/bad/cluster.yaml")
        print(
            f"webhook log: {cluster.webhook.log_file}\noperator stand-in log: {work / 'operator-standin.log'}\n"
            "Press Ctrl-C to stop and clean up.",
            flush=True,
        )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping ...")
        return 0
    finally:
        for controller in controllers:
            controller.stop()
        s3.stop()
        devcluster.stop(cluster)


if __name__ == "__main__":
    sys.exit(main())
