"""`make demo`: the project end to end on a local cluster.

1. lints the bundled examples (examples/) the way CI would;
2. builds or reuses a real kube-apiserver + etcd + kwok (+ controller-manager, scheduler), starts `psmdb-backup
   serve` with a local CA, registers the project's webhook configurations, and starts an S3 endpoint (moto) with a
   bucket on 127.0.0.1;
3. applies every example with kubectl, unmodified: shows that the API server accepts each one of examples/good and
   rejects each one of examples/bad with the webhook's own findings (Backups and Restores as a server-side dry run:
   accepted, but not run, so that the demo's cluster is not restored over);
4. creates a database pod and shows the backup-agent sidecar the mutating webhook injected;
5. starts the operator stand-in (tools/operator_standin, playing the stock Percona operator) and gives the cluster a
   task that runs every 20 seconds: the operator's cron makes the Backup, which runs through PBM in that sidecar
   (kwok runs the PBM simulator there, its AWS endpoint is the local S3), and its files land in the S3 bucket;
6. prints `psmdb-backup status my-cluster`;
7. keeps everything running, with a KUBECONFIG line to paste, until Ctrl-C; then stops every process it started.

`--no-wait` stops after step 6 (used by the tests).
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
from tools.storage_servers import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Moto, start_azurite, start_moto  # noqa: E402

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


def show_status(cluster: devcluster.Cluster) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook.cli",
            "status",
            "my-cluster",
            "-n",
            NS,
            "--kubeconfig",
            str(cluster.cp.kubeconfig),
        ],
        cwd=ROOT,
        check=True,
    )


def docs(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / "examples" / path).read_text()) if d]


# A Restore would restore the demo's cluster over (and these restore from backups that do not exist here): the API
# server checks them, and the webhook decides, without storing them.
DRY_RUN_KINDS = ("PerconaServerMongoDBRestore",)


def apply(cluster: devcluster.Cluster, path: str, objs: list[dict]) -> list[bool]:
    """kubectl apply each object; print accepted/rejected with what the API server (the webhook) said."""
    out = []
    for obj in objs:
        ref = f"{obj['kind']} {obj['metadata']['name']}"
        dry = obj["kind"] in DRY_RUN_KINDS
        result = cluster.apply(obj, *(["--dry-run=server"] if dry else []))
        out.append(result.returncode == 0)
        if result.returncode == 0:
            print(f"{GREEN}accepted{RESET} {path}: {ref}" + (f" {DIM}(server-side dry run){RESET}" if dry else ""))
        else:
            print(f"{RED}rejected{RESET} {path}: {ref}")
        for line in result.stderr.strip().splitlines():
            print(f"  {line}")
    return out


def example_order(folder: str) -> list[str]:
    """Every manifest of examples/<folder>: Secrets first, then clusters (the others look them up), then the rest."""
    files = sorted(p.name for p in (ROOT / "examples" / folder).glob("*.yaml"))
    first = [f for f in ("secrets.yaml", "cluster.yaml") if f in files]
    return [f"{folder}/{f}" for f in first + [f for f in files if f not in first]]


def secret_values(obj: dict, azurite: Azurite) -> None:
    """The examples' Secrets hold placeholders: Azurite's well-known account for the Azure one, any value for S3."""
    if "AZURE_STORAGE_ACCOUNT_NAME" in obj["stringData"]:
        obj["stringData"] = {"AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT, "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY}
    else:
        obj["stringData"] = {k: "demo" for k in obj["stringData"]}


def apply_examples(cluster: devcluster.Cluster, azurite: Azurite) -> bool:
    """Step 3: every example as written (the Secrets' placeholder values aside); True when every good one was
    accepted and every bad one rejected."""
    verdicts: dict[str, list[bool]] = {"good": [], "bad": []}
    for folder in ("good", "bad"):
        for path in example_order(folder):
            objs = docs(path)
            for obj in objs:
                if obj["kind"] == "Secret":
                    secret_values(obj, azurite)
            verdicts[folder] += apply(cluster, f"examples/{path}", objs)
    good, bad = verdicts["good"], verdicts["bad"]
    print(
        f"examples/good: {sum(good)} of {len(good)} accepted; examples/bad: {len(bad) - sum(bad)} of {len(bad)} rejected"
    )
    return all(good) and not any(bad)


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
    step(
        "2. starting kube-apiserver, etcd, kwok, controller-manager, scheduler, psmdb-backup serve, S3 (moto) and "
        "Azure Blob (Azurite)"
    )
    print(
        f"{DIM}(the first run builds the control plane from Go modules: about 10 minutes; later runs reuse it){RESET}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="psmdb-backup-demo-"))
    t0 = time.monotonic()
    s3 = start_moto()
    endpoint = s3.endpoint
    s3.client().create_bucket(Bucket="psmdb-backups")
    (work / "azurite").mkdir()
    azurite = start_azurite(work / "azurite")
    azurite.service().create_container("psmdb-backups")
    # The PBM simulator's AWS S3 is the local moto and its Azure the local Azurite: the example cluster's storages
    # (no endpointUrl) land there unchanged. Its MinIO storage names a host that does not exist here: unused.
    sim_env = {
        "PSMDB_PBM_SIM_PYTHON": sys.executable,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_S3": endpoint,
        "PBM_SIM_AZURE_ENDPOINT": azurite.endpoint,
    }
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
        print(
            f"ready in {time.monotonic() - t0:.1f} s; S3 endpoint {endpoint} and Azure endpoint {azurite.endpoint}, "
            "each with a bucket (container) psmdb-backups"
        )
        cluster.cp.create_namespace(NS)
        step("3. kubectl apply the examples (the webhook decides)")
        examples_ok = apply_examples(cluster, azurite)
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
        step("6. psmdb-backup status my-cluster")
        show_status(cluster)
        if args.no_wait:
            return 0 if lint_rc == 1 and examples_ok else 1
        step("7. the cluster keeps running; try it:")
        print(f"  export KUBECONFIG={cluster.cp.kubeconfig}")
        print(f"  export PATH={cluster.cp.bin_dir}:$PATH   # kubectl {cluster.cp.bin_dir}/kubectl matches the server")
        print(f"  kubectl -n {NS} get psmdb,psmdb-backup,psmdb-restore,pods")
        print("  kubectl apply -f examples/bad/cluster.yaml")
        print(f"  psmdb-backup status my-cluster -n {NS}; psmdb-backup backup my-cluster -n {NS} --wait")
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
        azurite.stop()
        devcluster.stop(cluster)


if __name__ == "__main__":
    sys.exit(main())
