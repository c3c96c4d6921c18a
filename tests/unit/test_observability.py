"""manifests/observability (alerts, ServiceMonitors, Grafana dashboard) and docs/metrics.md, held to the metrics the
code exports.

- Every project metric named in a PromQL expression of the PrometheusRule or the dashboard is exported: the admission
  server's names come from a scrape of a running `psmdb-backup serve` over HTTPS, the controller's from its registry.
- Every label those expressions select, group or match on is a label of the metrics involved (or a target label).
- The rule file has the structure the Prometheus Operator expects, and promtool (Prometheus' own parser, from
  tools/get-promtool.sh) accepts the rules and every dashboard expression, and passes the alert unit tests in
  tests/data/observability/alerts_test.yaml.
- The dashboard is valid Grafana JSON with the datasource, namespace and cluster variables; kustomize renders the
  directory into ServiceMonitors, the PrometheusRule and the dashboard ConfigMap, none of which the default install
  contains.
- docs/metrics.md lists exactly the exported metrics (name, type, labels) and every alert.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from webhook import certs
from webhook.admission import metrics as admission_metrics
from webhook.controller import metrics as controller_metrics
from webhook.controller import slo, slo_metrics

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import controlplane  # noqa: E402

OBS = ROOT / "manifests" / "observability"
RULE_FILE = OBS / "prometheusrule.yaml"
SERVICEMONITOR_FILE = OBS / "servicemonitor.yaml"
DASHBOARD_FILE = OBS / "dashboard.json"
ALERT_TESTS = ROOT / "tests" / "data" / "observability" / "alerts_test.yaml"
METRICS_DOC = ROOT / "docs" / "metrics.md"
TROUBLESHOOTING_DOC = ROOT / "docs" / "troubleshooting.md"
EXAMPLES = ROOT / "examples"

NAMESPACE = "psmdb-backup-system"
TLS_SECRET = "psmdb-backup-webhook-tls"
RUNBOOK_BASE = "https://github.com/psmdb-backup-webhook/psmdb-backup-webhook/blob/main/docs/troubleshooting.md#"
SEVERITIES = {"critical", "warning", "info"}
# Prometheus' duration syntax (model.ParseDuration): units in decreasing order, each at most once.
DURATION = re.compile(r"^(?!$)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
# The watchdog's SLO gauges (webhook/controller/slo.py) have no component infix: their names are in slo.METRICS.
PROJECT_METRIC = re.compile(
    r"psmdb_backup_(?:(?:webhook|controller)_[A-Za-z0-9_]+|rule_errors_total)|"
    + "|".join(sorted(slo.METRICS, key=len, reverse=True))
)
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels Prometheus and the ServiceMonitors attach to every scraped series. `namespace` is deliberately not here: on
# the controller's series it is the PerconaServerMongoDB's namespace (honorLabels), so a metric may only be selected
# or grouped by it when the metric itself has it.
TARGET_LABELS = {"job", "instance", "pod", "service", "container", "endpoint"}
# Concrete values for the dashboard's variables (and Grafana's built-ins), so its queries become plain PromQL.
GRAFANA_VALUES = {
    "datasource": "prometheus",
    "namespace": "psmdb",
    "cluster": "cluster1",
    "window": "1d",
    "__rate_interval": "2m",
    "__interval": "1m",
    "__range": "7d",
}


# ---------------------------------------------------------------------------------------------------------------
# What the code exports
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    name: str  # as exposed: counters with _total
    type: str
    labels: tuple[str, ...]
    help: str
    component: str  # webhook, controller, or both (psmdb_backup_rule_errors_total)


def metric_specs() -> dict[str, Spec]:
    """Every metric both Metrics classes define, by its exposed name (what `# TYPE` lines say)."""
    specs: dict[str, Spec] = {}
    for component, module in (("webhook", admission_metrics), ("controller", controller_metrics)):
        for value in vars(module.Metrics()).values():
            if isinstance(value, MetricWrapperBase):
                name = value._name + ("_total" if value._type == "counter" else "")
                shared = name in specs and specs[name].component != component
                specs[name] = Spec(
                    name, value._type, tuple(value._labelnames), value._documentation, "both" if shared else component
                )
    for name, (doc, labels) in slo.METRICS.items():  # served by the controller, from the watchdog's passes
        specs[name] = Spec(name, "gauge", labels, doc, "controller")
    return specs


def type_lines(exposition: str) -> dict[str, str]:
    """`# TYPE name kind` lines of a Prometheus text exposition. prometheus_client prints them for every metric,
    labelled ones without children included, and adds `<name>_created` gauges for counters and histograms that have
    samples; those are dropped here (an artefact of the client library, not a name anyone should query)."""
    found = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M))
    return {
        n: t
        for n, t in found.items()
        if not (n.endswith("_created") and (n[:-8] in found or n[:-8] + "_total" in found))
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Scrape:
    text: str
    tls: ssl.SSLContext
    url: str


@pytest.fixture(scope="module")
def admission_scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrape]:
    """`psmdb-backup serve` as its own process (TLS, no cluster), after one good and one bad Backup review."""
    tls_dir = tmp_path_factory.mktemp("tls")
    certs.load_or_create(tls_dir, ["127.0.0.1", "localhost"])
    port = _free_port()
    log = (tls_dir / "serve.log").open("w+")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSMDB_BACKUP_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webhook.cli",
            "serve",
            "--tls-dir",
            str(tls_dir),
            "--no-cluster",
            "--listen",
            f"127.0.0.1:{port}",
            "--log-format",
            "text",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    tls = ssl.create_default_context(cafile=str(tls_dir / certs.CA_CERT))
    url = f"https://127.0.0.1:{port}"

    def get(path: str, body: bytes | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(url + path, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=tls, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"psmdb-backup serve exited with {proc.returncode}:\n{log.read()}")
            try:
                if get("/readyz")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, ssl.SSLError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("psmdb-backup serve did not become ready in 60s")
            time.sleep(0.1)
        for example in ("good", "bad"):
            backup = yaml.safe_load((EXAMPLES / example / "backup.yaml").read_text())
            review = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": f"{example}-0",
                    "kind": {"group": "psmdb.percona.com", "version": "v1", "kind": backup["kind"]},
                    "resource": {
                        "group": "psmdb.percona.com",
                        "version": "v1",
                        "resource": "perconaservermongodbbackups",
                    },
                    "operation": "CREATE",
                    "namespace": backup["metadata"].get("namespace", "psmdb"),
                    "name": backup["metadata"]["name"],
                    "object": backup,
                    "oldObject": None,
                    "dryRun": False,
                    "userInfo": {"username": "test"},
                },
            }
            status, _ = get("/validate", json.dumps(review).encode())
            assert status == 200
        status, body = get("/metrics")
        assert status == 200
        yield Scrape(body.decode(), tls, url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def exported_names(admission_exposition: str) -> dict[str, str]:
    """Every metric name the two components export, with its type. The admission server's come from a scrape of a
    running server; the controller's from its registry rendered exactly as its /metrics endpoint renders it
    (generate_latest); a scrape of a running controller is part of the controller's end-to-end tests."""
    controller = generate_latest(controller_metrics.Metrics().registry).decode()
    watchdog = generate_latest(slo_metrics.SloMetrics().registry).decode()
    return {**type_lines(admission_exposition), **type_lines(controller), **type_lines(watchdog)}


def base_metric(used: str, specs: dict[str, Spec]) -> tuple[Spec | None, str]:
    """The metric a name in an expression refers to, and the suffix it was used with (histogram series)."""
    if used in specs:
        return specs[used], ""
    for suffix in HISTOGRAM_SUFFIXES:
        spec = specs.get(used.removesuffix(suffix))
        if used.endswith(suffix) and spec is not None and spec.type == "histogram":
            return spec, suffix
    return None, ""


# ---------------------------------------------------------------------------------------------------------------
# PromQL, just enough of it: tokens, selectors and their matchers, grouping and matching clauses
# ---------------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|=~|!~|<=|>=|[-+*/%^<>=(){},@])
""",
    re.X,
)
AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}


def tokenize(expr: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        assert m, f"cannot tokenize {expr[pos : pos + 40]!r} in {expr!r}"
        if m.lastgroup != "ws":
            tokens.append((m.lastgroup, m.group()))
        pos = m.end()
    return tokens


def _close(tokens: list[tuple[str, str]], open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(tokens)):
        depth += {"(": 1, ")": -1}.get(tokens[i][1], 0) if tokens[i][0] == "op" else 0
        if depth == 0:
            return i
    raise AssertionError("unbalanced parentheses")


def _open(tokens: list[tuple[str, str]], close_at: int) -> int:
    depth = 0
    for i in range(close_at, -1, -1):
        depth += {")": 1, "(": -1}.get(tokens[i][1], 0) if tokens[i][0] == "op" else 0
        if depth == 0:
            return i
    raise AssertionError("unbalanced parentheses")


def _label_list(tokens: list[tuple[str, str]], open_at: int) -> list[str]:
    close = _close(tokens, open_at)
    return [t for k, t in tokens[open_at + 1 : close] if k == "ident"]


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]]  # label, op, value


@dataclass
class Analysis:
    selectors: list[Selector]
    grouping: list[tuple[str, list[str], list[str]]]  # (clause, labels, project metrics in its scope)


def analyse(expr: str) -> Analysis:
    tokens = tokenize(expr)
    selectors: list[Selector] = []
    grouping: list[tuple[str, list[str], list[str]]] = []

    def metrics_in(lo: int, hi: int) -> list[str]:
        return [t for k, t in tokens[lo : hi + 1] if k == "ident" and PROJECT_METRIC.fullmatch(t)]

    for i, (kind, text) in enumerate(tokens):
        if kind == "ident" and PROJECT_METRIC.fullmatch(text):
            matchers = []
            if i + 1 < len(tokens) and tokens[i + 1][1] == "{":
                j = i + 2
                while tokens[j][1] != "}":
                    if tokens[j][1] == ",":
                        j += 1
                        continue
                    (lk, label), (_, op), (vk, value) = tokens[j : j + 3]
                    assert lk == "ident" and op in ("=", "!=", "=~", "!~") and vk == "string", expr
                    matchers.append((label, op, value[1:-1]))
                    j += 3
            selectors.append(Selector(text, matchers))
        elif kind == "ident" and text in ("by", "without") and i + 1 < len(tokens) and tokens[i + 1][1] == "(":
            labels_close = _close(tokens, i + 1)
            if tokens[i - 1][0] == "ident" and tokens[i - 1][1] in AGGREGATIONS:  # sum by (x) (expr)
                scope = (labels_close + 1, _close(tokens, labels_close + 1))
            else:  # sum (expr) by (x)
                assert tokens[i - 1][1] == ")", f"{text} (...) not after an aggregation in {expr!r}"
                scope = (_open(tokens, i - 1), i - 1)
            grouping.append((text, _label_list(tokens, i + 1), metrics_in(*scope)))
        elif (
            kind == "ident"
            and text in ("on", "ignoring", "group_left", "group_right")
            and i + 1 < len(tokens)
            and tokens[i + 1][1] == "("
        ):
            grouping.append((text, _label_list(tokens, i + 1), metrics_in(0, len(tokens) - 1)))
    return Analysis(selectors, grouping)


def labels_allowed(used: str, specs: dict[str, Spec]) -> set[str]:
    spec, suffix = base_metric(used, specs)
    assert spec is not None, used
    return set(spec.labels) | TARGET_LABELS | ({"le"} if suffix == "_bucket" else set())


def grafana_substitute(text: str) -> str:
    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        assert name in GRAFANA_VALUES, f"unknown dashboard variable ${name} in {text!r}"
        return GRAFANA_VALUES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, text)


# ---------------------------------------------------------------------------------------------------------------
# The files
# ---------------------------------------------------------------------------------------------------------------


def load_rule() -> dict[str, Any]:
    return yaml.safe_load(RULE_FILE.read_text())


def rules() -> list[dict[str, Any]]:
    return [r for g in load_rule()["spec"]["groups"] for r in g["rules"]]


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows hold their panels
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, PromQL with the variables substituted) for every panel query."""
    return [
        (f"panel {p['id']} {p.get('title')!r} target {t.get('refId')}", grafana_substitute(t["expr"]))
        for p in all_panels(load_dashboard())
        for t in p.get("targets", [])
    ]


def variable_queries() -> list[tuple[str, str]]:
    out = []
    for v in load_dashboard()["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append((f"variable {v['name']}", q))
    return out


def all_exprs() -> list[tuple[str, str]]:
    return [(f"alert {r.get('alert') or r.get('record')}", r["expr"]) for r in rules()] + dashboard_exprs()


# ---------------------------------------------------------------------------------------------------------------
# Names and labels
# ---------------------------------------------------------------------------------------------------------------


def test_registries_and_scrape_agree_with_the_metric_classes(admission_scrape: Scrape) -> None:
    specs = metric_specs()
    exported = exported_names(admission_scrape.text)
    assert {n: s.type for n, s in specs.items()} == exported
    # Labelled metrics with no children still print HELP and TYPE: both components' names are all there before any
    # traffic (the controller's registry above is untouched).
    untouched = type_lines(generate_latest(admission_metrics.Metrics().registry).decode())
    assert untouched == {n: s.type for n, s in specs.items() if s.component in ("webhook", "both")}
    # The samples the running server produced carry exactly the declared labels (plus le on buckets).
    for family in text_string_to_metric_families(admission_scrape.text):
        for sample in family.samples:
            spec, suffix = base_metric(sample.name, specs)
            if spec is None:
                assert sample.name.endswith("_created"), sample.name
                continue
            assert set(sample.labels) == set(spec.labels) | ({"le"} if suffix == "_bucket" else set()), sample


def test_every_metric_used_in_alerts_and_dashboard_is_exported(admission_scrape: Scrape) -> None:
    exported = exported_names(admission_scrape.text)
    specs = metric_specs()
    used: dict[str, list[str]] = {}
    for where, expr in all_exprs() + variable_queries():
        for name in PROJECT_METRIC.findall(expr):
            used.setdefault(name, []).append(where)
    assert used, "no project metric found in the alerts or the dashboard"
    missing = {}
    for name, where in used.items():
        spec, _ = base_metric(name, specs)
        if spec is None or spec.name not in exported:
            missing[name] = where
    assert not missing, f"used but not exported: {missing}"
    # And both components are covered at all.
    assert {base_metric(n, specs)[0].component for n in used} == {"webhook", "controller"}


def test_every_selected_grouped_or_matched_label_exists_on_the_metric() -> None:
    specs = metric_specs()
    problems = []
    for where, expr in all_exprs():
        analysis = analyse(expr)
        for sel in analysis.selectors:
            for label, _, _ in sel.matchers:
                if label not in labels_allowed(sel.metric, specs):
                    problems.append(f"{where}: {sel.metric} has no label {label!r}")
        for clause, labels, metrics in analysis.grouping:
            for metric in metrics:
                for label in labels:
                    if label not in labels_allowed(metric, specs):
                        problems.append(f"{where}: {clause} ({label}) over {metric}, which has no such label")
    for where, query in variable_queries():
        m = re.fullmatch(r"label_values\((\w+)(?:\{([^}]*)\})?,\s*(\w+)\)", query)
        assert m, f"{where}: expected label_values(metric{{...}}, label), got {query!r}"
        metric, matchers, label = m.groups()
        assert label in labels_allowed(metric, specs), f"{where}: {metric} has no label {label!r}"
        for matcher_label in re.findall(r"(\w+)\s*[=!]~?", matchers or ""):
            assert matcher_label in labels_allowed(metric, specs), f"{where}: {metric} has no {matcher_label!r}"
    assert not problems, "\n".join(problems)


def test_label_values_in_selectors_are_ones_the_code_produces(admission_scrape: Scrape) -> None:
    """state values against the controller's state lists; decision values against what the running server said."""
    known = {
        ("psmdb_backup_controller_backups", "state"): set(controller_metrics.BACKUP_STATES),
        ("psmdb_backup_controller_restores", "state"): set(controller_metrics.RESTORE_STATES),
        ("psmdb_backup_webhook_requests_total", "decision"): {
            s.labels["decision"]
            for f in text_string_to_metric_families(admission_scrape.text)
            for s in f.samples
            if s.name == "psmdb_backup_webhook_requests_total"
        },
    }
    assert "denied" in known[("psmdb_backup_webhook_requests_total", "decision")]  # the bad example was denied
    checked = 0
    for where, expr in all_exprs():
        for sel in analyse(expr).selectors:
            for label, op, value in sel.matchers:
                values = known.get((sel.metric, label))
                if values is None or op not in ("=", "=~"):
                    continue
                wanted = value.split("|") if op == "=~" else [value]
                assert all(re.fullmatch(r"[\w-]*", v) for v in wanted), f"{where}: only simple alternations: {value}"
                assert set(wanted) <= values, f"{where}: {sel.metric}{{{label}{op}{value!r}}} but the code has {values}"
                checked += 1
    assert checked >= 3


def test_legends_and_annotations_name_labels_the_query_has() -> None:
    """A {{label}} in a legend or $labels.x in an annotation must come from a by/on clause, a matcher or a target
    label; otherwise it renders empty."""
    specs = metric_specs()

    def available(expr: str) -> set[str]:
        analysis = analyse(expr)
        labels = set(TARGET_LABELS)
        for _, group_labels, _ in analysis.grouping:
            labels |= set(group_labels)
        for sel in analysis.selectors:
            labels |= {m[0] for m in sel.matchers}
            if not analysis.grouping:  # no aggregation: the selected series keep all their labels
                labels |= labels_allowed(sel.metric, specs)
        return labels

    for r in rules():
        used = set()
        for text in r.get("annotations", {}).values():
            used |= set(re.findall(r"\$labels\.(\w+)", text))
        assert used <= available(r["expr"]), f"{r['alert']}: {used - available(r['expr'])}"
    for p in all_panels(load_dashboard()):
        for t in p.get("targets", []):
            used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")))
            expr = grafana_substitute(t["expr"])
            assert used <= available(expr), f"panel {p['id']}: legend {t['legendFormat']!r}"


# ---------------------------------------------------------------------------------------------------------------
# The PrometheusRule
# ---------------------------------------------------------------------------------------------------------------


def test_prometheusrule_structure() -> None:
    doc = load_rule()
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["metadata"]["name"]
    groups = doc["spec"]["groups"]
    assert len({g["name"] for g in groups}) == len(groups)
    seen = set()
    for g in groups:
        assert g["name"] and g["rules"], g
        assert set(g) <= {"name", "interval", "rules", "limit"}
        for r in g["rules"]:
            assert ("alert" in r) != ("record" in r), r
            assert isinstance(r["expr"], str) and r["expr"].strip(), r
            assert set(r) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}, r
            if "for" in r:
                assert DURATION.match(r["for"]), r["for"]
            if "record" in r:
                continue
            name = r["alert"]
            assert re.fullmatch(r"PSMDB[A-Za-z]+", name)
            assert r["labels"]["severity"] in SEVERITIES, name
            key = (name, r["labels"]["severity"])
            assert key not in seen, f"duplicate {key}"
            seen.add(key)
            ann = r["annotations"]
            assert ann["summary"].strip() and ann["description"].strip(), name
            assert ann["runbook_url"] == RUNBOOK_BASE + name.lower(), name
            assert "\n" not in ann["description"].strip(), f"{name}: description should be one folded paragraph"
    # The brief's alerts are all there.
    assert {a for a, _ in seen} >= {
        "PSMDBBackupOverdue",
        "PSMDBBackupNeverSucceeded",
        "PSMDBBackupFailed",
        "PSMDBRestoreFailed",
        "PSMDBBackupScheduleInvalid",
        "PSMDBWebhookDenialsSpiking",
        "PSMDBWebhookCertificateExpiring",
        "PSMDBBackupControllerNotLeading",
        "PSMDBWebhookDown",
        "PSMDBBackupControllerDown",
        "PSMDBBackupStuck",
        "PSMDBScheduleMissedSlots",
        "PSMDBPITRLagging",
    }


def test_up_alerts_use_the_jobs_the_servicemonitors_set() -> None:
    jobs = set()
    for doc in yaml.safe_load_all(SERVICEMONITOR_FILE.read_text()):
        for ep in doc["spec"]["endpoints"]:
            jobs |= {r["replacement"] for r in ep.get("relabelings", []) if r.get("targetLabel") == "job"}
    used = {m for _, expr in all_exprs() for m in re.findall(r'\bup\{job="([^"]+)"', expr)}
    assert used and used <= jobs, (used, jobs)


def troubleshooting_anchors() -> set[str]:
    return {r["annotations"]["runbook_url"].removeprefix(RUNBOOK_BASE) for r in rules() if "alert" in r}


def test_runbook_anchors_exist_once_the_troubleshooting_guide_does() -> None:
    if not TROUBLESHOOTING_DOC.exists():
        pytest.skip(
            "docs/troubleshooting.md is not written yet; anchors used: " + ", ".join(sorted(troubleshooting_anchors()))
        )
    text = TROUBLESHOOTING_DOC.read_text()
    slugs = set()
    for heading in re.findall(r"^#+\s+(.+?)\s*$", text, re.M):  # GitHub's heading anchors
        slugs.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    slugs |= set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    assert troubleshooting_anchors() <= slugs, troubleshooting_anchors() - slugs


# ---------------------------------------------------------------------------------------------------------------
# promtool
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> Path:
    """promtool from tools/get-promtool.sh (Debian's prometheus package, cached outside the repository)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "tools" / "get-promtool.sh")], capture_output=True, text=True, check=False, timeout=300
    )
    if proc.returncode != 0:
        if os.environ.get("PSMDB_REQUIRE_E2E") == "1":
            pytest.fail(f"tools/get-promtool.sh failed:\n{proc.stderr}")
        pytest.skip(f"promtool unavailable (tools/get-promtool.sh: {proc.stderr.strip()[-300:]})")
    return Path(proc.stdout.strip().splitlines()[-1])


def _promtool(promtool: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(promtool), *args], capture_output=True, text=True, check=False, cwd=cwd, timeout=120)


def test_promtool_check_rules(promtool: Path, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(load_rule()["spec"], sort_keys=False))
    proc = _promtool(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout


def test_promtool_parses_every_dashboard_expression(promtool: Path, tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    group = {
        "name": "dashboard",
        "rules": [{"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(exprs)],
    }
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False))
    proc = _promtool(promtool, "check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\n".join(f"{i}: {w}" for i, (w, _) in enumerate(exprs))


def test_promtool_alert_unit_tests(promtool: Path, tmp_path: Path) -> None:
    spec = load_rule()["spec"]
    for g in spec["groups"]:
        for r in g["rules"]:
            if "annotations" in r:
                r["annotations"] = {"summary": r["annotations"]["summary"]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(ALERT_TESTS, tmp_path / "alerts_test.yaml")
    proc = _promtool(promtool, "test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


# ---------------------------------------------------------------------------------------------------------------
# The dashboard
# ---------------------------------------------------------------------------------------------------------------


def test_dashboard_json() -> None:
    d = load_dashboard()
    assert d["uid"] and d["title"] and 36 <= d["schemaVersion"] <= 41
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "cluster"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    panels = all_panels(d)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    boxes = []
    for p in panels:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        pos = p["gridPos"]
        assert {"x", "y", "w", "h"} <= set(pos) and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
        boxes.append((pos["x"], pos["y"], pos["w"], pos["h"], p["title"]))
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert t["expr"].strip() and t["refId"], p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]
    for i, (x1, y1, w1, h1, a) in enumerate(boxes):  # no two panels overlap
        for x2, y2, w2, h2, b in boxes[i + 1 :]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1, (a, b)
    # Every dashboard query of a metric that has namespace and cluster filters by the variables.
    specs = metric_specs()
    for where, expr in (
        (w, t) for p in panels for w, t in ((f"panel {p['id']}", t["expr"]) for t in p.get("targets", []))
    ):
        for sel in analyse(expr.replace("$", "")).selectors:
            spec, _ = base_metric(sel.metric, specs)
            if {"namespace", "cluster"} <= set(spec.labels):
                assert {m[0] for m in sel.matchers} >= {"namespace", "cluster"}, f"{where}: {sel.metric}"


# ---------------------------------------------------------------------------------------------------------------
# kustomize: the optional component and the default install
# ---------------------------------------------------------------------------------------------------------------


def _kubectl() -> Path:
    """The kubectl built by tools/build-control-plane.sh (as in test_install_manifests)."""
    built = list((controlplane._cache_dir() / "control-plane").glob("k8s-*/kubectl"))
    if not built and os.environ.get("PSMDB_REQUIRE_E2E") != "1":
        pytest.skip("needs the control-plane kubectl: run `make control-plane` (make test does)")
    return controlplane.find_bin_dir() / "kubectl"


_RENDERED: dict[str, list[dict[str, Any]]] = {}


def render(path: Path) -> list[dict[str, Any]]:
    if str(path) not in _RENDERED:
        proc = subprocess.run([str(_kubectl()), "kustomize", str(path)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        _RENDERED[str(path)] = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return _RENDERED[str(path)]


def test_observability_kustomization_renders() -> None:
    docs = render(OBS)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == [
        ("ConfigMap", "psmdb-backup-dashboard"),
        ("PrometheusRule", "psmdb-backup-webhook"),
        ("ServiceMonitor", "psmdb-backup-controller"),
        ("ServiceMonitor", "psmdb-backup-webhook"),
    ]
    for d in docs:
        assert d["metadata"]["namespace"] == NAMESPACE
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "psmdb-backup-webhook"
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["psmdb-backup.json"]) == load_dashboard()
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"] == load_rule()["spec"]


@pytest.mark.parametrize("path", ["", "base", "overlays/cert-manager"])
def test_default_installs_do_not_need_the_prometheus_operator(path: str) -> None:
    docs = render(ROOT / "manifests" / path)
    assert not [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    text = (ROOT / "manifests" / path / "kustomization.yaml").read_text()
    assert "observability" not in yaml.safe_load(text).get("resources", [])


def _service_for(monitor: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    wanted = monitor["spec"]["selector"]["matchLabels"]
    found = [d for d in docs if d["kind"] == "Service" and wanted.items() <= d["metadata"].get("labels", {}).items()]
    assert len(found) <= 1, f"{monitor['metadata']['name']} selects several Services"
    return found[0] if found else None


def test_servicemonitors_select_the_metrics_services() -> None:
    install = render(ROOT / "manifests")
    monitors = {d["metadata"]["name"]: d for d in render(OBS) if d["kind"] == "ServiceMonitor"}

    webhook = monitors["psmdb-backup-webhook"]
    svc = _service_for(webhook, install)
    assert svc is not None and svc["metadata"]["name"] == "psmdb-backup-webhook-metrics"
    ep = webhook["spec"]["endpoints"][0]
    port = next(p for p in svc["spec"]["ports"] if p["name"] == ep["port"])
    deploy = next(d for d in install if d["kind"] == "Deployment" and d["metadata"]["name"] == "psmdb-backup-webhook")
    container_ports = {p["name"] for c in deploy["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    assert port["targetPort"] in container_ports
    assert ep["scheme"] == "https"
    assert ep["tlsConfig"]["serverName"] in certs.service_sans("psmdb-backup-webhook", NAMESPACE)
    assert ep["tlsConfig"]["ca"]["secret"] == {"name": TLS_SECRET, "key": certs.CA_CERT}

    # The controller's Service is added with its Deployment; until then only the selector's shape is fixed.
    controller = monitors["psmdb-backup-controller"]
    assert controller["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "psmdb-backup-webhook",
        "app.kubernetes.io/component": "controller",
    }
    cep = controller["spec"]["endpoints"][0]
    assert cep["port"] == "metrics" and cep["honorLabels"] is True
    has_controller = any(
        d["kind"] == "Deployment" and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "controller"
        for d in install
    )
    if has_controller:
        svc = _service_for(controller, install)
        assert svc is not None, "the controller Deployment has no Service the ServiceMonitor selects"
        assert cep["port"] in {p["name"] for p in svc["spec"]["ports"]}


# ---------------------------------------------------------------------------------------------------------------
# docs/metrics.md
# ---------------------------------------------------------------------------------------------------------------

_ROW = re.compile(r"^\| `(psmdb_backup_\w+)` \| (\w+) \| ([^|]*) \| [^|]+ \|$", re.M)


def test_metrics_doc_lists_exactly_the_exported_metrics(admission_scrape: Scrape) -> None:
    text = METRICS_DOC.read_text()
    rows = {name: (kind, labels) for name, kind, labels in _ROW.findall(text)}
    specs = metric_specs()
    assert set(rows) == set(exported_names(admission_scrape.text)), (
        f"missing: {set(specs) - set(rows)}, stale: {set(rows) - set(specs)}"
    )
    for name, (kind, labels) in rows.items():
        spec = specs[name]
        assert kind == spec.type, name
        documented = set(re.findall(r"`(\w+)`", labels))
        assert documented == set(spec.labels), f"{name}: doc says {sorted(documented)}, code has {spec.labels}"


def test_metrics_doc_lists_every_alert() -> None:
    text = METRICS_DOC.read_text()
    documented = set(re.findall(r"^\| \[`?(PSMDB\w+)`?\]", text, re.M))
    assert documented == {r["alert"] for r in rules() if "alert" in r}
