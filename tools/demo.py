"""`make demo`: the project end to end on a local cluster.

1. lints the bundled examples (examples/) the way CI would;
2. builds or reuses a real kube-apiserver + etcd + kwok (+ controller-manager, scheduler), starts `psmdb-backup
   serve` with a local CA, registers the project's webhook configurations, and starts S3 (moto) and Azure Blob
   (Azurite) endpoints on 127.0.0.1; the PBM simulator reaches AWS and Azure through them;
3. applies every example with kubectl, as written: the API server accepts each one of examples/good (Restores as a
   server-side dry run, so that the demo's cluster is not restored over) and rejects each one of examples/bad with
   the webhook's findings (asked directly when the API server refuses an object before it calls the webhook);
4. creates a database pod and shows the backup-agent sidecar the mutating webhook injected;
5. adds a 20-second task to the cluster, turns its tasks into schedules with `psmdb-backup schedules import`, and
   starts the operator stand-in (tools/operator_standin, playing the stock Percona operator) and `psmdb-backup
   controller` (the companion): the companion's schedule makes a Backup, the stand-in runs it through PBM in the
   sidecar (kwok runs the PBM simulator there), and its files land in the S3 bucket;
6. prints `psmdb-backup status my-cluster`;
7. shows an operator fault the stand-in reproduces (`--fault leave-lease-of-deleted-backup`: a Backup deleted while it
   holds the cluster's lock Lease leaves the Lease, and no backup can start again) found by the companion's watchdog
   (a StaleLock Event on the Lease), and the status again;
8. keeps everything running, with a KUBECONFIG line to paste, until Ctrl-C; then stops every process it started.

`--no-wait` stops after step 7 (used by the tests).
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools import devcluster  # noqa: E402
from tools.ctlcluster import ControllerProcess, StandinProcess  # noqa: E402
from tools.pbm_sim import SIM_DIR, kwok_exec_docs  # noqa: E402
from tools.storage_servers import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Moto, start_azurite, start_moto  # noqa: E402
from webhook.policy import kinds  # noqa: E402

NS = "psmdb"
FAULT = "leave-lease-of-deleted-backup"  # the operator's fault step 7 shows the watchdog finding
LEASE = "psmdb-my-cluster-backup-lock"
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


def psmdb_backup(cluster: devcluster.Cluster, *args: str) -> None:
    """Run a psmdb-backup command against the demo's cluster, its output shown as a user would see it."""
    print(f"{DIM}$ psmdb-backup {' '.join(args)}{RESET}", flush=True)
    subprocess.run(
        [sys.executable, "-m", "webhook.cli", *args, "--kubeconfig", str(cluster.cp.kubeconfig)], cwd=ROOT, check=True
    )


def companion(cluster: devcluster.Cluster, work: Path, *args: str) -> ControllerProcess:
    """`psmdb-backup controller` with the credentials of the install's controller ServiceAccount."""
    kubeconfig = cluster.cp.service_account_kubeconfig(
        devcluster.install_rbac(ROOT / "manifests" / "base" / "controller.yaml"),
        devcluster.INSTALL_NAMESPACE,
        "psmdb-backup-controller",
    )
    return ControllerProcess(
        "companion",
        kubeconfig,
        work / "companion.log",
        ["--namespace", NS, "--lease-namespace", NS, *args],
    ).start()


def scheduled_backup(cluster: devcluster.Cluster, work: Path, s3: Moto, started: list[ControllerProcess]) -> None:
    """Step 5: a 20-second task joins the example cluster's tasks; `psmdb-backup schedules import` turns them all into
    schedules and disables the tasks; the operator stand-in and the companion start, and the companion's schedule
    makes a Backup that the stand-in runs into S3. Started processes go into `started` (the caller stops them)."""
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
    print("task demo-every-20s (@every 20s, retention 3) added to my-cluster beside the example's three tasks")
    psmdb_backup(cluster, "schedules", "import", "my-cluster", "-n", NS)
    started.append(
        StandinProcess(
            "operator-standin",
            cluster.cp.kubeconfig,
            work / "operator-standin.log",
            ["--namespace", NS, "--poll-interval", "1", "--fault", FAULT],  # shown in step 7
        ).start()
    )
    # a watchdog pass every 2 s, and a Lease held 5 s by a gone holder is stale (defaults: 30 s, 2 min)
    started.append(companion(cluster, work, "--watchdog-interval", "2", "--watchdog-threshold", "lock-grace=5"))
    print(
        "the operator stand-in plays the operator; psmdb-backup controller (the companion) runs the schedules",
        flush=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        items = json.loads(
            cluster.kubectl(
                "get", "psmdb-backup", "-n", NS, "-l", "psmdb-backup-webhook.io/schedule=demo-every-20s", "-o", "json"
            ).stdout
        )["items"]
        ready = [b for b in items if (b.get("status") or {}).get("state") == "ready"]
        if ready:
            b = ready[0]
            print(f"the companion's schedule demo-every-20s created {b['metadata']['name']}; the operator ran it:")
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
    logs = "\n".join(f"--- {p.name}\n{p.log_tail(30)}" for p in started)
    raise RuntimeError(f"no scheduled backup became ready:\n{logs}")


def kube_json(cluster: devcluster.Cluster, *args: str) -> dict:
    return json.loads(cluster.kubectl(*args, "-o", "json").stdout)


def fault_found(cluster: devcluster.Cluster, started: list[ControllerProcess]) -> None:
    """Step 7: the stand-in runs with the operator's fault FAULT: a Backup deleted while it holds the cluster's lock
    Lease leaves the Lease behind, and no backup of the cluster can start again. The companion's watchdog finds it."""
    backup = {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDBBackup",
        "metadata": {"name": "demo-interrupted", "namespace": NS},
        "spec": {"clusterName": "my-cluster", "storageName": "s3-us-west"},
    }
    cluster.apply(backup, check=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = (kube_json(cluster, "get", "psmdb-backup", "demo-interrupted", "-n", NS).get("status") or {}).get(
            "state"
        )
        if state in ("requested", "running"):
            break
        time.sleep(0.3)
    else:
        raise RuntimeError("Backup demo-interrupted never started")
    holder = kube_json(cluster, "get", "lease", LEASE, "-n", NS)["spec"]["holderIdentity"]
    print(f"Backup demo-interrupted is {state} and holds Lease {LEASE} ({holder}); deleting it", flush=True)
    cluster.kubectl("delete", "psmdb-backup", "demo-interrupted", "-n", NS, "--wait=false")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = kube_json(
            cluster, "get", "events", "-n", NS, "--field-selector", f"involvedObject.name={LEASE},reason=StaleLock"
        )["items"]
        if found:
            e = found[0]
            print(f"the companion's watchdog found it: Event {e['type']} {e['reason']} on Lease {LEASE}:")
            print(f"  {e['message']}")
            return
        time.sleep(1)
    logs = "\n".join(f"--- {p.name}\n{p.log_tail(30)}" for p in started)
    raise RuntimeError(f"the watchdog did not report the stale Lease:\n{logs}")


def docs(path: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / "examples" / path).read_text()) if d]


# A Restore would restore the demo's cluster over (and these restore from backups that do not exist here): the API
# server checks them, and the webhook decides, without storing them.
DRY_RUN_KINDS = ("PerconaServerMongoDBRestore",)


def webhook_answer(cluster: devcluster.Cluster, obj: dict) -> dict:
    """The validating webhook's own answer for creating `obj`, asked directly with the AdmissionReview the API server
    would send (for objects the API server refuses before it calls the webhook: a misspelt field, a CRD pattern)."""
    kind = obj["kind"]
    group, version = kinds.api_version(kind).split("/")
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": kinds.PLURALS[kind]},
            "namespace": obj["metadata"]["namespace"],
            "name": obj["metadata"]["name"],
            "operation": "CREATE",
            "userInfo": {"username": "demo"},
            "object": obj,
        },
    }
    tls = ssl.create_default_context(cafile=str(cluster.webhook.tls_dir / "ca.crt"))
    conn = http.client.HTTPSConnection("127.0.0.1", cluster.webhook.port, timeout=10, context=tls)
    conn.request("POST", "/validate", json.dumps(review), {"Content-Type": "application/json"})
    return json.loads(conn.getresponse().read())["response"]


def apply(cluster: devcluster.Cluster, path: str, objs: list[dict]) -> list[tuple[bool, bool]]:
    """kubectl apply each object; print accepted/rejected with what the API server (the webhook) said. Per object:
    (accepted, denied by the webhook)."""
    out = []
    for obj in objs:
        ref = f"{obj['kind']} {obj['metadata']['name']}"
        dry = obj["kind"] in DRY_RUN_KINDS
        result = cluster.apply(obj, *(["--dry-run=server"] if dry else []))
        accepted, denied = result.returncode == 0, "denied the request" in result.stderr
        if accepted:
            print(f"{GREEN}accepted{RESET} {path}: {ref}" + (f" {DIM}(server-side dry run){RESET}" if dry else ""))
        else:
            print(f"{RED}rejected{RESET} {path}: {ref}")
        for line in result.stderr.strip().splitlines():
            print(f"  {line}")
        if not accepted and not denied and obj["kind"] in kinds.PLURALS:
            answer = webhook_answer(cluster, obj)
            denied = not answer["allowed"]
            print("  the API server refused it before calling the webhook; the webhook's own findings:")
            for line in (answer.get("status") or {}).get("message", "allowed").splitlines():
                print(f"    {line}")
        out.append((accepted, denied))
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
    verdicts: dict[str, list[tuple[bool, bool]]] = {"good": [], "bad": []}
    for folder in ("good", "bad"):
        for path in example_order(folder):
            objs = docs(path)
            for obj in objs:
                if obj["kind"] == "Secret":
                    secret_values(obj, azurite)
            verdicts[folder] += apply(cluster, f"examples/{path}", objs)
    good = [accepted for accepted, _ in verdicts["good"]]
    bad = [not accepted and denied for accepted, denied in verdicts["bad"]]
    print(
        f"examples/good: {sum(good)} of {len(good)} accepted; examples/bad: {sum(bad)} of {len(bad)} rejected, each "
        "with the webhook's findings"
    )
    return all(good) and all(bad)


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
        "PBM_SIM_BACKUP_SECONDS": "5",  # long enough to delete a running Backup in step 7
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
        step(
            "5. the tasks become schedules; the companion's schedule makes a Backup, the operator stand-in runs it into S3"
        )
        scheduled_backup(cluster, work, s3, controllers)
        step("6. psmdb-backup status my-cluster")
        psmdb_backup(cluster, "status", "my-cluster", "-n", NS)
        step(f"7. an operator fault (the stand-in's --fault {FAULT}), found by the companion's watchdog")
        fault_found(cluster, controllers)
        psmdb_backup(cluster, "status", "my-cluster", "-n", NS, "--watchdog-threshold", "lock-grace=5")
        if args.no_wait:
            return 0 if lint_rc == 1 and examples_ok else 1
        step("8. the cluster keeps running; try it:")
        print(f"  export KUBECONFIG={cluster.cp.kubeconfig}")
        print(f"  export PATH={cluster.cp.bin_dir}:$PATH   # kubectl {cluster.cp.bin_dir}/kubectl matches the server")
        print(f"  kubectl -n {NS} get psmdb,psmdb-backup,psmdb-restore,pods")
        print("  kubectl apply -f examples/bad/cluster.yaml")
        print(f"  psmdb-backup status my-cluster -n {NS}   # the stale Lease: kubectl -n {NS} delete lease {LEASE}")
        print(f"  psmdb-backup backup my-cluster -n {NS} --wait")
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
