"""`psmdb-backup inject` produces exactly what the mutating webhook's patch produces."""

from __future__ import annotations

import base64
import copy
import io
import json
import sys

import jsonpatch
import yaml

from webhook.cli import main
from webhook.inject import inject_documents

from .test_admission import CLUSTER, POD, post, review, run, world


def test_inject_and_the_webhook_give_identical_pods() -> None:
    resp = run(post(world(), "/mutate", review(POD, group="")))[1]["response"]
    via_webhook = jsonpatch.apply_patch(copy.deepcopy(POD), json.loads(base64.b64decode(resp["patch"])))
    (offline,) = inject_documents([copy.deepcopy(POD)], [CLUSTER], ssl_secret_keys=None)
    assert offline.obj == via_webhook
    assert [c["name"] for c in offline.obj["spec"]["containers"]] == ["mongod", "backup-agent"]


def test_statefulset_template_gets_the_agent_with_volume_claim_templates() -> None:
    template = {k: v for k, v in copy.deepcopy(POD).items() if k in ("metadata", "spec")}
    template["spec"]["volumes"] = []  # mongod-data comes from the claim template
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "my-cluster-rs0", "namespace": "psmdb"},
        "spec": {"template": template, "volumeClaimTemplates": [{"metadata": {"name": "mongod-data"}}]},
    }
    (out,) = inject_documents([sts, CLUSTER])[:1]
    names = [c["name"] for c in out.obj["spec"]["template"]["spec"]["containers"]]
    assert names == ["mongod", "backup-agent"], out.reason
    assert "mongod-data" not in [v["name"] for v in out.obj["spec"]["template"]["spec"].get("volumes", [])]


def test_other_objects_pass_through_unchanged_and_twice_is_once() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    once = inject_documents([copy.deepcopy(POD), cm, CLUSTER])
    twice = inject_documents([once[0].obj, cm, CLUSTER])
    assert once[1].obj == cm and twice[0].obj == once[0].obj and "already has" in twice[0].reason


def test_cli_reads_stdin_and_writes_yaml(capsys, tmp_path) -> None:
    cluster_file = tmp_path / "cluster.yaml"
    cluster_file.write_text(yaml.safe_dump(CLUSTER))
    sys.stdin = io.TextIOWrapper(io.BytesIO(yaml.safe_dump(POD).encode()))
    try:
        assert main(["inject", "-f", "-", "--cluster-file", str(cluster_file)]) == 0
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    pod = yaml.safe_load(out)
    assert pod["spec"]["containers"][1]["name"] == "backup-agent"
    uri = next(e["value"] for e in pod["spec"]["containers"][1]["env"] if e["name"] == "PBM_MONGODB_URI")
    assert "tls=true" in uri  # the default assumes the operator's SSL Secret keys
    assert "Pod psmdb/my-cluster-rs0-0: add backup-agent" in err
    assert main(["inject", "-f", str(tmp_path / "missing.yaml")]) == 2
