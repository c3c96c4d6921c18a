"""Admission throughput and latency against a bare aiohttp TLS echo server, with wrk as the load generator.

    python bench/admission.py [--seconds S] [--rounds N] [--connections C] [--quick]

Each server runs alone in its own process (pinned to one core with `taskset` when there is one; wrk gets the other
core): the echo reads the body, parses it with the standard library's JSON and answers an allowed AdmissionReview
with the uid; the webhook is `psmdb-backup serve`'s production path (`serve()`: the connection guard, metrics, a
JSON log line per request to /dev/null), with the API server's answers (Namespace, Secrets, clusters) served from
memory behind the usual lookup cache. wrk (Debian's `wrk`; `make wrk` installs it) sends, over C keep-alive TLS
connections, AdmissionReviews picked in turn from a corpus of distinct objects:
- validate: 128 cluster CRs made from examples/good/cluster.yaml (names, namespaces, replsets, storages, tasks and
  PITR varied; one in four an UPDATE carrying its oldObject), each valid with its Secrets present;
- mutate: 128 database pods as the operator renders them (replset members and config servers of 32 of those
  clusters), each patched with the backup-agent sidecar.
Every body is sent once before the timing and its answer checked (allowed, and for mutate a patch), so no answer
can be a cached one. The two servers are measured in alternating rounds; the medians are compared. Targets: >= 0.6x
the echo's requests/s and p99 <= 2x the echo's p99. The last line is machine-readable:
RESULT validate_rps_ratio=<x> validate_p99_ratio=<y> mutate_rps_ratio=<x> mutate_p99_ratio=<y>
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

GROUP = "psmdb.percona.com"
CLUSTER = yaml.safe_load((ROOT / "examples/good/cluster.yaml").read_text())
SECRETS = list(yaml.safe_load_all((ROOT / "examples/good/secrets.yaml").read_text()))
CORPUS_SIZE = 128

# wrk picks the bodies in turn (one JSON document a line) and reports its figures from `done`.
WRK_SCRIPT = r"""
local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d seconds=%.6f p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


# --- the corpus ---------------------------------------------------------------------------------------------------


def cluster_variant(i: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A distinct valid cluster CR and the Secrets it names."""
    name, ns = f"cluster-{i:03d}", f"team-{i % 8}"
    cr = copy.deepcopy(CLUSTER)
    cr["metadata"] = {
        "name": name,
        "namespace": ns,
        "labels": {"team": f"team-{i % 8}", "tier": ("prod", "dev")[i % 2]},
    }
    spec = cr["spec"]
    spec["secrets"] = {"users": f"{name}-secrets"}
    spec["replsets"] = [{"name": f"rs{r}", "size": 3 + 2 * (i % 2)} for r in range(1 + i % 3)]
    if i % 4 == 3:
        spec["sharding"] = {"enabled": True, "configsvrReplSet": {"size": 3}, "mongos": {"size": 2}}
    backup = spec["backup"]
    storages = backup["storages"]
    storages["s3-us-west"]["s3"].update(bucket=f"backups-{i % 16}", prefix=name, credentialsSecret=f"{name}-backup-s3")
    storages["azure-blob"]["azure"].update(prefix=name, credentialsSecret=f"{name}-backup-azure")
    storages["minio-dr"]["minio"].update(bucket=f"dr-{i % 4}", credentialsSecret=f"{name}-backup-minio")
    if i % 5 == 4:
        del storages["minio-dr"]
        backup["tasks"] = [t for t in backup["tasks"] if t["storageName"] != "minio-dr"]
    backup["pitr"]["enabled"] = i % 3 != 0
    backup["pitr"]["oplogSpanMin"] = 5 + i % 20
    for t in backup["tasks"]:
        t["name"] = f"{t['name']}-{i}"
        if t["schedule"].startswith("0 0"):
            t["schedule"] = f"{i % 60} {i % 24} * * *"
        t["retention"]["count"] = 3 + i % 10
    secrets = []
    for s in SECRETS:
        kind = s["metadata"]["name"].rsplit("-", 1)[1]
        if f"{name}-backup-{kind}" in json.dumps(cr):
            secrets.append({**s, "metadata": {"name": f"{name}-backup-{kind}", "namespace": ns}})
    return cr, secrets


def pod_variant(i: int, cr: dict[str, Any]) -> dict[str, Any]:
    """Database pod i of cluster `cr` (a replset member or config server) as the operator (1.23) and the API server
    create it."""
    cluster, ns = cr["metadata"]["name"], cr["metadata"]["namespace"]
    members = [("mongod", r["name"]) for r in cr["spec"]["replsets"]]
    members += [("cfg", "cfg")] if "sharding" in cr["spec"] else []
    component, replset = members[i % len(members)]
    name = f"{cluster}-{replset}-{i % 3}"
    labels = {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": cluster,
        "app.kubernetes.io/managed-by": "percona-server-mongodb-operator",
        "app.kubernetes.io/name": "percona-server-mongodb",
        "app.kubernetes.io/part-of": "percona-server-mongodb",
        "app.kubernetes.io/replset": replset,
        "controller-revision-hash": f"{cluster}-{replset}-{uuid.uuid4().hex[:9]}",
        "statefulset.kubernetes.io/pod-name": name,
    }
    mounts = [
        {"name": "mongod-data", "mountPath": "/data/db"},
        {"name": "ssl", "readOnly": True, "mountPath": "/etc/mongodb-ssl"},
        {"name": "ssl-internal", "readOnly": True, "mountPath": "/etc/mongodb-ssl-internal"},
        {"name": "bin", "mountPath": "/opt/percona"},
        {"name": "users-secret-file", "mountPath": "/etc/users-secret"},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{cluster}-{replset}-",
            "name": name,
            "namespace": ns,
            "labels": labels,
            "annotations": {
                "percona.com/ssl-hash": uuid.uuid4().hex,
                "percona.com/configuration-hash": uuid.uuid4().hex,
            },
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": f"{cluster}-{replset}", "controller": True}
            ],
        },
        "spec": {
            "initContainers": [
                {
                    "name": "mongo-init",
                    "image": "percona/percona-server-mongodb-operator:1.23.0",
                    "command": ["/init-entrypoint.sh"],
                    "volumeMounts": [{"name": "bin", "mountPath": "/opt/percona"}],
                }
            ],
            "containers": [
                {
                    "name": "mongod",
                    "image": "percona/percona-server-mongodb:8.0.12-4",
                    "args": ["--bind_ip_all", "--auth", "--dbpath=/data/db", "--port=27017", f"--replSet={replset}"],
                    "ports": [{"name": "mongodb", "containerPort": 27017, "protocol": "TCP"}],
                    "env": [
                        {"name": "SERVICE_NAME", "value": cluster},
                        {"name": "NAMESPACE", "value": ns},
                        {"name": "MONGODB_PORT", "value": "27017"},
                        {"name": "MONGODB_REPLSET", "value": replset},
                    ],
                    "envFrom": [{"secretRef": {"name": f"internal-{cluster}-users", "optional": False}}],
                    "resources": {
                        "limits": {"cpu": "1", "memory": "2Gi"},
                        "requests": {"cpu": "500m", "memory": "1Gi"},
                    },
                    "livenessProbe": {
                        "exec": {"command": ["/opt/percona/mongodb-healthcheck", "k8s", "liveness"]},
                        "initialDelaySeconds": 60,
                        "timeoutSeconds": 10,
                    },
                    "readinessProbe": {"tcpSocket": {"port": 27017}, "initialDelaySeconds": 10},
                    "volumeMounts": mounts,
                    "workingDir": "/data/db",
                },
                {"name": "logs", "image": "percona/fluentbit:4.0.1"},
            ],
            "securityContext": {"fsGroup": 1001},
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 60,
            "hostname": name,
            "subdomain": f"{cluster}-{replset}",
            "volumes": [
                {"name": "mongod-data", "persistentVolumeClaim": {"claimName": f"mongod-data-{name}"}},
                {"name": "bin", "emptyDir": {}},
                {"name": "ssl", "secret": {"secretName": f"{cluster}-ssl", "defaultMode": 288, "optional": False}},
                {"name": "ssl-internal", "secret": {"secretName": f"{cluster}-ssl-internal", "optional": True}},
                {"name": "users-secret-file", "secret": {"secretName": f"internal-{cluster}-users"}},
            ],
        },
    }


def review(obj: dict[str, Any], group: str, old: dict[str, Any] | None = None) -> str:
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": "v1", "kind": obj["kind"]},
        "resource": {"group": group, "version": "v1", "resource": obj["kind"].lower() + "s"},
        "operation": "UPDATE" if old else "CREATE",
        "namespace": obj["metadata"]["namespace"],
        "name": obj["metadata"]["name"],
        "userInfo": {
            "username": "system:serviceaccount:argocd:argocd-application-controller",
            "groups": ["system:authenticated"],
        },
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})


def corpus() -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """(validate bodies, mutate bodies, the objects the API server holds)."""
    validate, objects = [], []
    clusters = []
    for i in range(CORPUS_SIZE):
        cr, secrets = cluster_variant(i)
        clusters.append(cr)
        objects += secrets
        old = None
        if i % 4 == 1:  # an update, as `kubectl apply` or a GitOps sync sends it: the stored object as oldObject
            old = copy.deepcopy(cr)
            old["spec"]["backup"]["pitr"]["oplogSpanMin"] += 1
        validate.append(review(cr, GROUP, old))
    namespaces = sorted({c["metadata"]["namespace"] for c in clusters})
    objects += [{"kind": "Namespace", "metadata": {"name": n}} for n in namespaces]
    objects += clusters
    tls_keys = {"ca.crt": "", "tls.crt": "", "tls.key": ""}
    objects += [
        {
            "kind": "Secret",
            "metadata": {"name": f"{c['metadata']['name']}-ssl", "namespace": c["metadata"]["namespace"]},
            "data": tls_keys,
        }
        for c in clusters
    ]
    mutate = [review(pod_variant(i, clusters[i // 4]), "") for i in range(CORPUS_SIZE)]
    return validate, mutate, objects


# --- the servers (each `python bench/admission.py --serve ...` in its own process) ---------------------------------


def server_ssl(tls_dir: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(f"{tls_dir}/tls.crt", f"{tls_dir}/tls.key")
    return ctx


def run_echo(port: int, tls_dir: str, objects_file: str) -> None:
    """The baseline: read the body, parse it as JSON, answer an allowed AdmissionReview echoing the uid."""
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        return web.json_response(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": body["request"]["uid"], "allowed": True},
            }
        )

    app = web.Application()
    app.router.add_post("/validate", echo)
    app.router.add_post("/mutate", echo)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=server_ssl(tls_dir), print=None, access_log=None)


def run_webhook(port: int, tls_dir: str, objects_file: str) -> None:
    import asyncio

    from webhook import logs
    from webhook.admission.server import Settings, serve
    from webhook.kube import LiveLookup

    logs.setup("info", "json")  # the production default: a JSON line per request (stderr goes to /dev/null)

    class MemoryReader:  # the API server's answers; the lookup cache in front of it is the production one
        timeout = 1.0

        def __init__(self, objects: list[dict[str, Any]]) -> None:
            self.objects = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects}

        async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            return self.objects.get((kind, namespace, name))

    lookup = LiveLookup(MemoryReader(json.loads(Path(objects_file).read_text())), ttl=3600)
    asyncio.run(serve(Settings(listen_port=port, tls_dir=tls_dir), lookup=lookup))


SERVERS = {"echo": run_echo, "webhook": run_webhook}


# --- the driver ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: int | None) -> list[str]:
    return ["taskset", "-c", str(core)] if core is not None else []


def start(name: str, tls_dir: str, objects_file: str, core: int | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [*pinned(core), sys.executable, __file__, "--serve", name, str(port), tls_dir, objects_file]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"bench: the {name} server did not start (run `{' '.join(cmd)}` to see why)")


def check_answers(port: int, path: str, bodies: list[str], ca: str, want_patch: bool) -> None:
    """Every body once: each answer must carry its uid, allow, and (mutate) patch."""
    ctx = ssl.create_default_context(cafile=ca)
    for body in bodies:
        req = urllib.request.Request(
            f"https://127.0.0.1:{port}{path}", body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            answer = json.loads(resp.read())["response"]
        uid = json.loads(body)["request"]["uid"]
        if answer.get("uid") != uid or answer.get("allowed") is not True:
            raise SystemExit(f"bench: {path} answered {json.dumps(answer)[:400]} for a valid object")
        if want_patch:
            patch = json.loads(base64.b64decode(answer.get("patch", "")) or "[]")
            if not any(op.get("path", "").startswith("/spec/containers") for op in patch):
                raise SystemExit(f"bench: {path} did not add the sidecar: {json.dumps(answer)[:400]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc; 0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(
    server: tuple[subprocess.Popen[bytes], int],
    path: str,
    bodies_file: str,
    seconds: float,
    connections: int,
    core: int | None,
) -> dict[str, float]:
    """One wrk run against `server`: requests/s, p50 and p99 (ms), and the server's CPU time per request (us), which
    other load on the machine disturbs less than the first three."""
    proc, port = server
    cpu_before = cpu_seconds(proc.pid)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT)
    try:
        out = subprocess.run(
            [
                *pinned(core),
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds:g}s",
                "-s",
                f.name,
                f"https://127.0.0.1:{port}{path}",
            ],
            env={**os.environ, "BENCH_BODIES": bodies_file},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    cpu = cpu_seconds(proc.pid) - cpu_before
    m = re.search(r"^WRK (.*)$", out, re.M)
    if m is None:
        raise SystemExit(f"bench: no figures from wrk:\n{out}")
    fig = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    if fig["errors"] or fig["non2xx"]:
        raise SystemExit(f"bench: wrk saw {fig['errors']:.0f} socket errors and {fig['non2xx']:.0f} non-2xx answers")
    return {
        "rps": fig["requests"] / fig["seconds"],
        "p50": fig["p50_us"] / 1000,
        "p99": fig["p99_us"] / 1000,
        "cpu": cpu / max(fig["requests"], 1) * 1e6,
    }


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds per measured round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per server and scenario")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="2 rounds of 4 s (about 50 s in all)")
    ap.add_argument("--serve", nargs=4, metavar=("SERVER", "PORT", "TLS_DIR", "OBJECTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        name, port, tls_dir, objects_file = args.serve
        SERVERS[name](int(port), tls_dir, objects_file)
        return 0
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed; `make wrk` installs Debian's package", file=sys.stderr)
        return 2
    seconds, rounds = (4.0, 2) if args.quick else (args.seconds, args.rounds)
    # wrk on one core, the server under load alone on the other (the servers take turns).
    cores = sorted(os.sched_getaffinity(0)) if shutil.which("taskset") else []
    load_core, server_core = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)

    from webhook import certs

    validate, mutate, objects = corpus()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ca, ca_key = certs.make_ca("bench CA", 1)
        crt, key = certs.make_serving_cert(ca, ca_key, ["127.0.0.1", "localhost"], 1)
        certs.write_dir(tmp, ca, crt, key)
        objects_file = f"{tmp}/objects.json"
        Path(objects_file).write_text(json.dumps(objects))
        procs = {name: start(name, tmp, objects_file, server_core) for name in SERVERS}
        try:
            for scenario, bodies in (("validate", validate), ("mutate", mutate)):
                path = f"/{scenario}"
                bodies_file = f"{tmp}/{scenario}.jsonl"
                Path(bodies_file).write_text("\n".join(bodies) + "\n")
                check_answers(procs["webhook"][1], path, bodies, f"{tmp}/ca.crt", want_patch=scenario == "mutate")
                for name in SERVERS:  # warm-up
                    wrk(procs[name], path, bodies_file, 1, args.connections, load_core)
                figures: dict[str, list[dict[str, float]]] = {name: [] for name in SERVERS}
                for _ in range(rounds):
                    for name in SERVERS:
                        figures[name].append(wrk(procs[name], path, bodies_file, seconds, args.connections, load_core))
                echo, ours = median_of(figures["echo"]), median_of(figures["webhook"])
                results[f"{scenario}_rps_ratio"] = ours["rps"] / echo["rps"]
                results[f"{scenario}_p99_ratio"] = ours["p99"] / echo["p99"]
                size = statistics.mean(len(b) for b in bodies)
                print(
                    f"{scenario} ({len(bodies)} distinct reviews, {size / 1024:.1f} KiB on average; wrk -t1 "
                    f"-c{args.connections}, {rounds} x {seconds:g} s each; medians):"
                )
                for label, fig in (("echo", echo), ("webhook", ours)):
                    print(
                        f"  {label:<8} {fig['rps']:8.0f} req/s   p50 {fig['p50']:6.2f} ms   p99 {fig['p99']:6.2f} ms   "
                        f"server CPU {fig['cpu']:5.0f} us/request"
                    )
                print(
                    f"  ratio    rps {results[f'{scenario}_rps_ratio']:.2f} (target >= 0.60)   "
                    f"p99 {results[f'{scenario}_p99_ratio']:.2f} (target <= 2.00)",
                    flush=True,
                )
        finally:
            for proc, _ in procs.values():
                proc.terminate()
                proc.wait(5)
    print("RESULT " + " ".join(f"{k}={v:.2f}" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
