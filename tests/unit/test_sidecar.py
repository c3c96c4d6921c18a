"""The backup-agent sidecar and its JSON Patch (webhook/sidecar.py; OP v1.23.0@b15af500
pkg/psmdb/statefulset.go:546-747).

Golden files: tests/data/sidecar/<case>.json hold the container the operator renders for each case in GOLDEN below.
They are the specification in test form, reviewed line by line against the operator's backupAgentContainer (env
order, URI, mounts, gates), not a snapshot of what the code prints. The default run only compares. To rewrite them after a deliberate change:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_sidecar.py -k golden

then read the diff against the operator's backupAgentContainer before committing it.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from webhook import sidecar
from webhook.sidecar import (
    INJECTED_ANNOTATION,
    OPT_OUT_ANNOTATION,
    PodIdentity,
    SidecarError,
    identify,
    plan,
    pod_patch,
    render_container,
    replset_name_and_port,
    required_volumes,
    tls_enabled,
    wants_sidecar,
)

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "sidecar"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
TLS_KEYS = ("ca.crt", "tls.crt", "tls.key")
PBM_IMAGE = {
    "1.20.0": "percona/percona-backup-mongodb:2.8.0",
    "1.21.0": "percona/percona-backup-mongodb:2.9.1",
    "1.22.0": "percona/percona-backup-mongodb:2.11.0",
    "1.23.0": "percona/percona-backup-mongodb:2.12.0",
}
RS0 = PodIdentity("my-cluster", "rs0", "mongod")
CFG = PodIdentity("my-cluster", "cfg", "cfg")


def make_cluster(version: str = "1.23.0", *, tls: bool = True, sharded: bool = False, **backup) -> dict:
    spec: dict = {
        "crVersion": version,
        "image": "percona/percona-server-mongodb:8.0.12-4",
        "secrets": {"users": "my-cluster-secrets"},
        "replsets": [{"name": "rs0", "size": 3, "volumeSpec": {"persistentVolumeClaim": {}}}],
        "sharding": {
            "enabled": sharded,
            "configsvrReplSet": {"size": 3, "volumeSpec": {"persistentVolumeClaim": {}}},
            "mongos": {"size": 2},
        },
        "backup": {
            "enabled": True,
            "image": PBM_IMAGE.get(version, PBM_IMAGE["1.23.0"]),
            "storages": {
                "s3-us-west": {
                    "type": "s3",
                    "s3": {"bucket": "backups", "region": "us-west-2", "credentialsSecret": "my-cluster-backup-s3"},
                }
            },
            **backup,
        },
    }
    if not tls:
        spec["tls"] = {"mode": "disabled"}
        spec["unsafeFlags"] = {"tls": True}
    return {
        "apiVersion": "psmdb.percona.com/v1",
        "kind": "PerconaServerMongoDB",
        "metadata": {"name": "my-cluster", "namespace": "psmdb"},
        "spec": spec,
    }


def with_spec(cluster: dict, **fields) -> dict:
    cluster = copy.deepcopy(cluster)
    cluster["spec"].update(fields)
    return cluster


MINIO = {
    "minio-b": {
        "type": "minio",
        "minio": {
            "bucket": "b",
            "endpointUrl": "minio.minio.svc:9000",
            "credentialsSecret": "minio-creds",
            "caBundle": {"name": "minio-ca", "key": "ca.pem"},
        },
    },
    "minio-a": {
        "type": "minio",
        "main": True,
        "minio": {
            "bucket": "a",
            "endpointUrl": "minio.minio.svc:9000",
            "credentialsSecret": "minio-creds",
            "caBundle": {"name": "minio-tls"},  # empty key = ca.crt
        },
    },
    "minio-dup": {  # same Secret/key as minio-a: deduplicated
        "type": "minio",
        "minio": {"bucket": "c", "endpointUrl": "x:9000", "caBundle": {"name": "minio-tls", "key": "ca.crt"}},
    },
    "s3-ignored": {"type": "s3", "s3": {"bucket": "s", "caBundle": {"name": "never"}}},
}
PROBES = {
    "livenessProbe": {"exec": {"command": ["pbm", "status"]}, "periodSeconds": 60, "timeoutSeconds": 10},
    "readinessProbe": {"exec": {"command": ["pbm-agent", "version"]}, "periodSeconds": 30},
}
USER_MOUNTS = [
    {"name": "backup-nfs", "mountPath": "/mnt/nfs"},
    {"name": "extra-certs", "mountPath": "/etc/extra", "readOnly": True},
]
ALIYUN = {
    "oss-compat": {
        "type": "s3",
        "s3": {"bucket": "b", "endpointUrl": "https://oss-eu-central-1.aliyuncs.com", "credentialsSecret": "ali"},
    }
}
RORFS = {"readOnlyRootFilesystem": True, "runAsNonRoot": True, "runAsUser": 1001}


def _golden_cases() -> dict[str, tuple[dict, PodIdentity, dict]]:
    cases: dict[str, tuple[dict, PodIdentity, dict]] = {}
    for version in ("1.20.0", "1.21.0", "1.22.0", "1.23.0"):
        for tls in (True, False):
            keys = {"ssl_secret_keys": TLS_KEYS}
            tag = "tls" if tls else "notls"
            cases[f"v{version}-rs0-{tag}"] = (make_cluster(version, tls=tls), RS0, keys)
            cases[f"v{version}-sharded-cfg-{tag}"] = (make_cluster(version, tls=tls, sharded=True), CFG, keys)
    keys = {"ssl_secret_keys": TLS_KEYS}
    cases["v1.23.0-tls-secret-incomplete"] = (make_cluster(), RS0, {"ssl_secret_keys": ("ca.crt", "tls.crt")})
    cases["v1.22.0-minio-cabundle"] = (make_cluster("1.22.0", storages=MINIO), RS0, keys)
    cases["v1.21.0-minio-cabundle-ignored"] = (make_cluster("1.21.0", storages=MINIO), RS0, keys)
    cases["v1.23.0-readonly-rootfs"] = (make_cluster(containerSecurityContext=RORFS), RS0, keys)
    cases["v1.22.0-readonly-rootfs-no-tmp"] = (make_cluster("1.22.0", containerSecurityContext=RORFS), RS0, keys)
    cases["v1.23.0-hookscript"] = (make_cluster(hookScript={"script": "echo hi"}), RS0, keys)
    cases["v1.22.0-hookscript-configmapref"] = (
        make_cluster("1.22.0", hookScript={"configMapRef": {"name": "my-hook"}}),
        RS0,
        keys,
    )
    cases["v1.21.0-hookscript-ignored"] = (make_cluster("1.21.0", hookScript={"script": "echo hi"}), RS0, keys)
    custom = make_cluster(sharded=True)
    custom["spec"]["replsets"][0]["configuration"] = (
        "# custom mongod options\nreplication:\n  replSetName: shard-a  # renamed\n  oplogSizeMB: 2048\n"
        "net:\n  bindIpAll: true\n  port: 27018\n"
    )
    cases["v1.23.0-custom-replset-name-port"] = (custom, RS0, keys)
    cases["v1.23.0-probes"] = (make_cluster(**PROBES), RS0, keys)
    cases["v1.22.0-probes-ignored"] = (make_cluster("1.22.0", **PROBES), RS0, keys)
    cases["v1.23.0-volumemounts-order"] = (
        make_cluster(
            volumeMounts=USER_MOUNTS,
            containerSecurityContext=RORFS,
            hookScript={"script": "echo hi"},
            storages={**MINIO, **ALIYUN},
        ),
        RS0,
        {**keys, "pbm_version": "2.11.0"},
    )
    cases["v1.23.0-aliyuncs-old-pbm"] = (make_cluster(storages=ALIYUN), RS0, {**keys, "pbm_version": "2.11.0"})
    cases["v1.22.0-aliyuncs-old-pbm-ignored"] = (
        make_cluster("1.22.0", storages=ALIYUN),
        RS0,
        {**keys, "pbm_version": "2.11.0"},
    )
    cases["v1.23.0-custom-security-resources-pullpolicy"] = (
        with_spec(
            make_cluster(
                containerSecurityContext={"runAsUser": 2000, "allowPrivilegeEscalation": False},
                resources={"requests": {"cpu": "300m", "memory": "1Gi"}, "limits": {"cpu": "300m", "memory": "1.2Gi"}},
            ),
            imagePullPolicy="IfNotPresent",
        ),
        RS0,
        keys,
    )
    cases["v1.23.0-allow-unsafe-configurations"] = (
        with_spec(make_cluster(), allowUnsafeConfigurations=True),
        RS0,
        keys,
    )
    return cases


GOLDEN = _golden_cases()


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_golden_container(case: str) -> None:
    cluster, identity, kwargs = GOLDEN[case]
    got = render_container(cluster, identity, **kwargs)
    path = GOLDEN_DIR / f"{case}.json"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=2) + "\n")
    assert path.exists(), (
        f"missing golden file {path}; run with UPDATE_GOLDEN=1 and review it against the operator's pkg/psmdb/statefulset.go"
    )
    assert got == json.loads(path.read_text())


def test_golden_files_all_belong_to_a_case() -> None:
    assert {p.stem for p in GOLDEN_DIR.glob("*.json")} == set(GOLDEN)


# --- pods -------------------------------------------------------------------------------------------------------


def operator_labels(component: str, replset: str | None = "rs0", cluster: str = "my-cluster") -> dict:
    labels = {
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/instance": cluster,
        "app.kubernetes.io/managed-by": "percona-server-mongodb-operator",
        "app.kubernetes.io/name": "percona-server-mongodb",
        "app.kubernetes.io/part-of": "percona-server-mongodb",
    }
    if replset is not None:
        labels["app.kubernetes.io/replset"] = replset
    return labels


def operator_pod(component: str = "mongod", replset: str | None = "rs0", *, extra_containers=("logs", "logrotate")):
    """A pod as the operator (1.23, backup disabled, log collector on) and the API server create it."""
    name = f"my-cluster-{replset}-0"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "psmdb",
            "labels": {
                **operator_labels(component, replset),
                "controller-revision-hash": "my-cluster-rs0-6c9f7d9b8",
                "statefulset.kubernetes.io/pod-name": name,
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": f"my-cluster-{replset}"}],
        },
        "spec": {
            "initContainers": [{"name": "mongo-init", "image": "percona/percona-server-mongodb-operator:1.23.0"}],
            "containers": [
                {"name": "mongod", "image": "percona/percona-server-mongodb:8.0.12-4"},
                *({"name": c, "image": "percona/fluentbit:4.0.1"} for c in extra_containers),
            ],
            "volumes": [
                {"name": "mongod-data", "persistentVolumeClaim": {"claimName": f"mongod-data-{name}"}},
                {"name": "bin", "emptyDir": {}},
                {"name": "mongosh", "emptyDir": {}},
                {"name": "ssl", "secret": {"secretName": "my-cluster-ssl", "defaultMode": 288, "optional": False}},
                {"name": "ssl-internal", "secret": {"secretName": "my-cluster-ssl-internal", "optional": True}},
                {"name": "users-secret-file", "secret": {"secretName": "internal-my-cluster-users"}},
                {"name": "kube-api-access-x7k2p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
            ],
        },
    }


def apply_patch(doc: dict, ops: list[dict]) -> dict:
    """A tiny RFC 6902 `add` (all this module emits), strict about missing parents and indexes."""
    doc = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add", op
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        parent = doc
        for token in tokens[:-1]:
            parent = parent[int(token)] if isinstance(parent, list) else parent[token]
        last, value = tokens[-1], copy.deepcopy(op["value"])
        if isinstance(parent, list):
            if last == "-":
                parent.append(value)
            else:
                assert 0 <= int(last) <= len(parent)
                parent.insert(int(last), value)
        else:
            parent[last] = value
    return doc


def names(items) -> list[str]:
    return [i["name"] for i in items]


# --- identity ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("component", "replset", "wanted"),
    [
        ("mongod", "rs0", True),
        ("cfg", "cfg", True),
        ("nonVoting", "rs0", True),
        ("hidden", "rs0", True),
        ("arbiter", "rs0", False),
        ("mongos", None, False),
        ("search", "rs0", False),
        ("external-service", "rs0", False),
    ],
)
def test_identify_reads_operator_labels(component: str, replset: str | None, wanted: bool) -> None:
    identity = identify({"metadata": {"labels": operator_labels(component, replset)}})
    assert identity == PodIdentity("my-cluster", replset, component)
    assert wants_sidecar(identity) is wanted


@pytest.mark.parametrize(
    "labels",
    [
        None,
        {"app": "nginx"},
        {"app.kubernetes.io/name": "percona-server-mongodb", "app.kubernetes.io/component": "mongod"},
        {"app.kubernetes.io/name": "percona-server-mongodb", "app.kubernetes.io/instance": "my-cluster"},
        {**operator_labels("mongod"), "app.kubernetes.io/name": "psmdb-operator"},
    ],
)
def test_identify_rejects_foreign_pods(labels) -> None:
    assert identify({"metadata": {"labels": labels}}) is None


def test_mongod_component_without_replset_label_gets_no_sidecar() -> None:
    assert not wants_sidecar(PodIdentity("my-cluster", None, "mongod"))


# --- plan / patch -----------------------------------------------------------------------------------------------


def test_patch_on_operator_pod_adds_sidecar_before_log_collectors_and_nothing_else() -> None:
    pod, cluster = operator_pod(), make_cluster()
    ops, reason = plan(pod, cluster, ssl_secret_keys=TLS_KEYS)
    assert reason == "add backup-agent (crVersion 1.23.0, replset rs0:27017) and 0 volume(s)"
    patched = apply_patch(pod, ops)
    assert names(patched["spec"]["containers"]) == ["mongod", "backup-agent", "logs", "logrotate"]
    assert patched["spec"]["containers"][1] == render_container(cluster, RS0, ssl_secret_keys=TLS_KEYS)
    assert patched["spec"]["volumes"] == pod["spec"]["volumes"]  # bin, ssl, mongod-data already there
    assert patched["metadata"]["annotations"] == {INJECTED_ANNOTATION: "1.23.0"}


def test_patch_adds_only_missing_volumes_once() -> None:
    pod = operator_pod()
    cluster = make_cluster("1.23.0", storages=MINIO, hookScript={"script": "x"}, containerSecurityContext=RORFS)
    patched = apply_patch(pod, pod_patch(pod, cluster, ssl_secret_keys=TLS_KEYS))
    vols = names(patched["spec"]["volumes"])
    assert vols == names(pod["spec"]["volumes"]) + ["tmp", "pbm-hookscript", "ca-bundle-in", "ca-bundle"]
    assert len(vols) == len(set(vols))
    mounted = {m["name"] for c in patched["spec"]["containers"] for m in c.get("volumeMounts", [])}
    assert mounted <= set(vols)


def test_second_application_gives_empty_patch() -> None:
    pod, cluster = operator_pod(), make_cluster(storages=MINIO)
    once = apply_patch(pod, pod_patch(pod, cluster, ssl_secret_keys=TLS_KEYS))
    ops, reason = plan(once, cluster, ssl_secret_keys=TLS_KEYS)
    assert ops == []
    assert reason == "the pod already has a backup-agent container"


def test_operator_made_pod_with_backup_enabled_gets_empty_patch() -> None:
    pod, cluster = operator_pod(), make_cluster()
    pod["spec"]["containers"].insert(1, render_container(cluster, RS0))
    assert pod_patch(pod, cluster) == []


@pytest.mark.parametrize(
    ("component", "replset"),
    [("arbiter", "rs0"), ("mongos", None), ("search", "rs0")],
)
def test_arbiter_mongos_and_search_pods_get_empty_patch(component: str, replset: str | None) -> None:
    pod = operator_pod(component, replset)
    ops, reason = plan(pod, make_cluster())
    assert ops == []
    assert reason == f"{component} pods never run the backup agent"


def test_non_psmdb_pod_gets_empty_patch() -> None:
    pod = {"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"containers": [{"name": "web"}]}}
    ops, reason = plan(pod, make_cluster())
    assert ops == []
    assert reason.startswith("not a Percona Server for MongoDB pod")


@pytest.mark.parametrize("where", ["annotations", "labels"])
@pytest.mark.parametrize("value", ["false", "False", " FALSE "])
def test_opt_out_is_honoured(where: str, value: str) -> None:
    pod = operator_pod()
    pod["metadata"].setdefault(where, {})[OPT_OUT_ANNOTATION] = value
    ops, reason = plan(pod, make_cluster())
    assert ops == []
    assert OPT_OUT_ANNOTATION in reason


def test_opt_out_with_other_value_still_injects() -> None:
    pod = operator_pod()
    pod["metadata"]["annotations"] = {OPT_OUT_ANNOTATION: "true"}
    assert pod_patch(pod, make_cluster())


@pytest.mark.parametrize("backup", [{"enabled": False, "image": "pbm"}, None])
def test_backup_disabled_gives_empty_patch(backup) -> None:
    cluster = make_cluster()
    if backup is None:
        del cluster["spec"]["backup"]
    else:
        cluster["spec"]["backup"] = backup
    ops, reason = plan(operator_pod(), cluster)
    assert ops == []
    assert reason == "spec.backup.enabled is not true in PerconaServerMongoDB my-cluster"


def test_without_cluster_no_patch_because_the_image_is_unknown() -> None:
    ops, reason = plan(operator_pod(), None)
    assert ops == []
    assert "spec.backup.image is unknown" in reason


def test_cluster_of_another_name_is_not_used() -> None:
    cluster = make_cluster()
    cluster["metadata"]["name"] = "other"
    assert plan(operator_pod(), cluster)[0] == []


def test_pod_prepared_for_physical_restore_is_left_alone() -> None:
    pod = operator_pod()
    pod["spec"]["initContainers"].append({"name": "pbm-init", "image": PBM_IMAGE["1.23.0"]})
    pod["spec"]["volumes"].append({"name": "pbm-config", "secret": {"secretName": "my-cluster-pbm-config"}})
    ops, reason = plan(pod, make_cluster())
    assert ops == []
    assert "physical restore" in reason


@pytest.mark.parametrize("version", ["1.19.1", "1.24.0", "2.0.0", "latest"])
def test_unmodelled_cr_versions_are_not_rendered(version: str) -> None:
    cluster = make_cluster(version)
    ops, reason = plan(operator_pod(), cluster)
    assert ops == []
    assert reason.startswith("cannot render the backup agent: spec.crVersion")
    with pytest.raises(SidecarError):
        render_container(cluster, RS0)


def test_empty_cr_version_means_the_operator_version() -> None:
    cluster = make_cluster("")
    assert render_container(cluster, RS0) == render_container(make_cluster("1.23.0"), RS0)
    assert pod_patch(operator_pod(), cluster)[-1]["value"] == {INJECTED_ANNOTATION: "1.23.0"}


def test_two_segment_and_patch_versions_follow_go_version() -> None:
    assert render_container(make_cluster("1.23"), RS0) == render_container(make_cluster("1.23.0"), RS0)
    image = PBM_IMAGE["1.22.0"]
    assert render_container(make_cluster("1.22.1", image=image, **PROBES), RS0) == render_container(
        make_cluster("1.22.0", **PROBES), RS0
    )


def test_replset_missing_from_spec_gets_empty_patch() -> None:
    ops, reason = plan(operator_pod(replset="rs1"), make_cluster())
    assert ops == []
    assert reason == "cannot render the backup agent: replset 'rs1' is not in the cluster spec"


def test_missing_backup_image_gets_empty_patch() -> None:
    cluster = make_cluster()
    cluster["spec"]["backup"]["image"] = ""
    assert plan(operator_pod(), cluster) == ([], "cannot render the backup agent: spec.backup.image is empty")


def test_insert_position_is_before_pmm_client() -> None:
    pod = operator_pod(extra_containers=("my-sidecar", "pmm-client", "logs"))
    ops = pod_patch(pod, make_cluster())
    assert [op["path"] for op in ops] == ["/spec/containers/2", "/metadata/annotations"]
    patched = apply_patch(pod, ops)
    assert names(patched["spec"]["containers"]) == ["mongod", "my-sidecar", "backup-agent", "pmm-client", "logs"]


def test_append_when_no_later_containers() -> None:
    ops = pod_patch(operator_pod(extra_containers=()), make_cluster())
    assert ops[0]["path"] == "/spec/containers/-"


def test_annotation_path_is_an_escaped_json_pointer() -> None:
    pod = operator_pod()
    pod["metadata"]["annotations"] = {"percona.com/configuration-hash": "abc"}
    ops = pod_patch(pod, make_cluster())
    assert ops[-1] == {
        "op": "add",
        "path": "/metadata/annotations/psmdb-backup-webhook.io~1injected",
        "value": "1.23.0",
    }
    assert apply_patch(pod, ops)["metadata"]["annotations"] == {
        "percona.com/configuration-hash": "abc",
        INJECTED_ANNOTATION: "1.23.0",
    }
    assert sidecar._pointer("a~b/c") == "a~0b~1c"


def test_null_annotations_are_replaced_by_a_map() -> None:
    pod = operator_pod()
    pod["metadata"]["annotations"] = None
    patched = apply_patch(pod, pod_patch(pod, make_cluster()))
    assert patched["metadata"]["annotations"] == {INJECTED_ANNOTATION: "1.23.0"}


def test_pod_template_without_volumes_gets_the_volume_array() -> None:
    """Offline injection into a StatefulSet template: mongod-data comes from volumeClaimTemplates."""
    template = {"metadata": {"labels": operator_labels("mongod")}, "spec": {"containers": [{"name": "mongod"}]}}
    ops = pod_patch(template, make_cluster(), known_volumes=("mongod-data",))
    assert ops[0] == {
        "op": "add",
        "path": "/spec/volumes",
        "value": [
            {"name": "bin", "emptyDir": {}},
            {"name": "ssl", "secret": {"secretName": "my-cluster-ssl", "defaultMode": 288, "optional": False}},
        ],
    }
    patched = apply_patch(template, ops)
    assert names(patched["spec"]["containers"]) == ["mongod", "backup-agent"]


def test_pod_lacking_a_mounted_volume_is_left_alone() -> None:
    """A mount of an undefined volume would make the API server reject the pod."""
    template = {"metadata": {"labels": operator_labels("mongod")}, "spec": {"containers": [{"name": "mongod"}]}}
    ops, reason = plan(template, make_cluster())
    assert ops == []
    assert reason == "the pod lacks volume(s) mongod-data that the backup agent mounts"
    pod = operator_pod()
    ops, reason = plan(pod, make_cluster(volumeMounts=USER_MOUNTS))
    assert (ops, reason) == ([], "the pod lacks volume(s) backup-nfs, extra-certs that the backup agent mounts")
    pod["spec"]["volumes"] += [{"name": "backup-nfs", "nfs": {"server": "nfs", "path": "/"}}, {"name": "extra-certs"}]
    assert pod_patch(pod, make_cluster(volumeMounts=USER_MOUNTS))


@pytest.mark.parametrize(("component", "replset"), [("nonVoting", "rs0"), ("hidden", "rs0")])
def test_non_voting_and_hidden_pods_get_the_replset_container(component: str, replset: str) -> None:
    cluster = make_cluster()
    pod = operator_pod(component, replset)
    patched = apply_patch(pod, pod_patch(pod, cluster, ssl_secret_keys=TLS_KEYS))
    assert patched["spec"]["containers"][1] == render_container(cluster, RS0, ssl_secret_keys=TLS_KEYS)


def test_cfg_pod_uses_the_config_server_replset_and_sharded_env() -> None:
    cluster = make_cluster(sharded=True)
    cluster["spec"]["sharding"]["configsvrReplSet"]["configuration"] = "net:\n  port: 27019\n"
    pod = operator_pod("cfg", "cfg")
    ops, reason = plan(pod, cluster)
    assert reason.startswith("add backup-agent (crVersion 1.23.0, replset cfg:27019)")
    env = {e["name"]: e.get("value") for e in ops[0]["value"]["env"]}
    assert env["SHARDED"] == "TRUE"


def test_cfg_pod_of_an_unsharded_cluster_gets_empty_patch() -> None:
    ops, reason = plan(operator_pod("cfg", "cfg"), make_cluster(sharded=False))
    assert (ops, reason) == ([], "cannot render the backup agent: replset 'cfg' is not in the cluster spec")


def test_unsharded_data_replset_may_be_named_cfg() -> None:
    cluster = make_cluster()
    cluster["spec"]["replsets"][0]["name"] = "cfg"
    cluster["spec"]["replsets"][0]["configuration"] = "net:\n  port: 27040\n"
    env = render_container(cluster, PodIdentity("my-cluster", "cfg", "mongod"))["env"]
    assert env[2:4] == [{"name": "PBM_MONGODB_REPLSET", "value": "cfg"}, {"name": "PBM_MONGODB_PORT", "value": "27040"}]


def test_unnamed_replsets_default_to_rs_index() -> None:
    cluster = make_cluster()
    cluster["spec"]["replsets"] = [{"size": 3}, {"size": 3}]
    env = render_container(cluster, PodIdentity("my-cluster", "rs1", "mongod"))["env"]
    assert env[2] == {"name": "PBM_MONGODB_REPLSET", "value": "rs1"}


def test_reason_says_when_tls_is_on_but_the_secret_keys_are_unknown() -> None:
    _, reason = plan(operator_pod(), make_cluster())
    assert "TLS is on but the SSL Secret lacks" in reason
    _, reason = plan(operator_pod(), make_cluster(tls=False))
    assert "TLS" not in reason


def test_patch_values_do_not_alias_the_cluster() -> None:
    cluster = make_cluster(**PROBES, volumeMounts=USER_MOUNTS)
    pod = operator_pod()
    pod["spec"]["volumes"] += [{"name": "backup-nfs"}, {"name": "extra-certs"}]
    ops = pod_patch(pod, cluster)
    ops[0]["value"]["livenessProbe"]["periodSeconds"] = 1
    ops[0]["value"]["volumeMounts"][3]["mountPath"] = "/x"
    assert cluster["spec"]["backup"]["livenessProbe"]["periodSeconds"] == 60
    assert cluster["spec"]["backup"]["volumeMounts"][0]["mountPath"] == "/mnt/nfs"


# --- container details beyond the goldens ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "enabled"),
    [
        ({}, True),
        ({"tls": None}, True),
        ({"tls": {"mode": "preferTLS"}}, True),
        ({"tls": {"mode": "allowTLS"}}, True),
        ({"tls": {"mode": "requireTLS"}}, True),
        ({"tls": {"mode": ""}}, True),
        ({"tls": {"mode": "disabled"}, "unsafeFlags": {"tls": True}}, False),
        ({"unsafeFlags": {"tls": True}}, True),  # the flag only allows disabling; TLSEnabled() ignores it
        ({"allowUnsafeConfigurations": True}, False),  # CheckNSetDefaults forces mode disabled
    ],
)
def test_tls_enabled_matches_operator(spec: dict, enabled: bool) -> None:
    assert tls_enabled({"spec": spec}) is enabled


@pytest.mark.parametrize("missing", TLS_KEYS)
def test_uri_tls_options_need_all_three_secret_keys(missing: str) -> None:
    keys = [k for k in TLS_KEYS if k != missing] + ["other"]
    env = {e["name"]: e.get("value") for e in render_container(make_cluster(), RS0, ssl_secret_keys=keys)["env"]}
    assert env["PBM_MONGODB_URI"].endswith("@localhost:$(PBM_MONGODB_PORT)")
    assert env["PBM_AGENT_TLS_ENABLED"] == "true"


def test_uri_has_no_tls_options_when_tls_is_disabled_even_with_keys() -> None:
    env = render_container(make_cluster(tls=False), RS0, ssl_secret_keys=TLS_KEYS)["env"]
    assert "?" not in next(e["value"] for e in env if e["name"] == "PBM_MONGODB_URI")


def _env_names(cluster: dict, **kwargs) -> list[str]:
    return [e["name"] for e in render_container(cluster, RS0, **kwargs)["env"]]


@pytest.mark.parametrize(
    ("version", "pbm", "storages", "expected"),
    [
        ("1.23.0", "2.11.0", ALIYUN, True),
        ("1.23.0", "2.10.5", ALIYUN, True),
        ("1.23.0", "2.11.0-rc1", ALIYUN, True),
        ("1.23.0", "2.11.1", ALIYUN, False),
        ("1.23.0", "2.12.0", ALIYUN, False),
        ("1.23.0", None, ALIYUN, False),  # status.backupVersion unknown
        ("1.23.0", "not-a-version", ALIYUN, False),
        ("1.22.0", "2.11.0", ALIYUN, False),
        ("1.23.0", "2.11.0", {"oss": {"type": "oss", "oss": {"endpointUrl": "https://oss.aliyuncs.com"}}}, False),
        ("1.23.0", "2.11.0", {"m": {"type": "minio", "minio": {"endpointUrl": "oss.aliyuncs.com"}}}, False),
        ("1.23.0", "2.11.0", {"s": {"type": "s3", "s3": {"bucket": "b"}}}, False),
    ],
)
def test_aws_checksum_vars_gates(version: str, pbm: str | None, storages: dict, expected: bool) -> None:
    got = _env_names(make_cluster(version, storages=storages), pbm_version=pbm)
    assert ("AWS_REQUEST_CHECKSUM_CALCULATION" in got) is expected
    assert ("AWS_RESPONSE_CHECKSUM_VALIDATION" in got) is expected


def test_pbm_version_defaults_to_status_backup_version() -> None:
    cluster = make_cluster(storages=ALIYUN)
    cluster["status"] = {"backupVersion": "2.11.0"}
    assert "AWS_REQUEST_CHECKSUM_CALCULATION" in _env_names(cluster)
    assert "AWS_REQUEST_CHECKSUM_CALCULATION" not in _env_names(cluster, pbm_version="2.12.0")


def test_openshift_default_security_context_has_no_run_as_user() -> None:
    assert render_container(make_cluster(), RS0, openshift=True)["securityContext"] == {"runAsNonRoot": True}


# --- volumes ----------------------------------------------------------------------------------------------------


def test_required_volumes_default() -> None:
    assert required_volumes(make_cluster(), RS0) == [
        {"name": "bin", "emptyDir": {}},
        {"name": "ssl", "secret": {"secretName": "my-cluster-ssl", "defaultMode": 288, "optional": False}},
    ]


def test_ssl_volume_follows_secrets_ssl_and_unsafe_tls() -> None:
    cluster = with_spec(make_cluster(tls=False), secrets={"ssl": "custom-ssl"})
    assert required_volumes(cluster, RS0)[1] == {
        "name": "ssl",
        "secret": {"secretName": "custom-ssl", "defaultMode": 288, "optional": True},
    }
    unsafe = with_spec(make_cluster(), allowUnsafeConfigurations=True)
    assert required_volumes(unsafe, RS0)[1]["secret"]["optional"] is True


def test_required_volumes_all_features() -> None:
    cluster = make_cluster(storages=MINIO, hookScript={"script": "x"}, containerSecurityContext=RORFS)
    assert required_volumes(cluster, RS0) == [
        {"name": "bin", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "ssl", "secret": {"secretName": "my-cluster-ssl", "defaultMode": 288, "optional": False}},
        {"name": "pbm-hookscript", "configMap": {"name": "my-cluster-pbm-hookscript", "optional": True}},
        {
            "name": "ca-bundle-in",
            "projected": {
                "sources": [
                    # storages sorted by name: minio-a (minio-tls/ca.crt), minio-b (minio-ca/ca.pem); minio-dup
                    # repeats minio-tls/ca.crt and the s3 storage's caBundle is not read.
                    {"secret": {"name": "minio-tls", "items": [{"key": "ca.crt", "path": "ca-0.crt"}]}},
                    {"secret": {"name": "minio-ca", "items": [{"key": "ca.pem", "path": "ca-1.crt"}]}},
                ]
            },
        },
        {"name": "ca-bundle", "emptyDir": {}},
    ]


def test_required_volumes_version_gates() -> None:
    cluster = make_cluster("1.22.0", storages=MINIO, hookScript={"configMapRef": {"name": "my-hook"}})
    cluster["spec"]["backup"]["containerSecurityContext"] = RORFS
    assert names(required_volumes(cluster, RS0)) == ["bin", "ssl", "pbm-hookscript", "ca-bundle-in", "ca-bundle"]
    assert required_volumes(cluster, RS0)[2]["configMap"]["name"] == "my-hook"
    cluster["spec"]["crVersion"] = "1.21.0"
    assert names(required_volumes(cluster, RS0)) == ["bin", "ssl"]


def test_minio_storage_without_ca_name_adds_nothing() -> None:
    storages = {"m": {"type": "minio", "minio": {"endpointUrl": "x", "caBundle": {"key": "ca.crt"}}}}
    cluster = make_cluster(storages=storages)
    assert names(required_volumes(cluster, RS0)) == ["bin", "ssl"]
    assert "SSL_CERT_FILE" not in _env_names(cluster)


# --- replsets[].configuration ------------------------------------------------------------------------------------

CONFIGS = [
    ("", ("rs0", 27017)),
    ("replication:\n  replSetName: custom\n", ("custom", 27017)),
    ("net:\n  port: 27018\n", ("rs0", 27018)),
    ("net:\n  port: '27018'\n", ("rs0", 27017)),  # a string does not decode into int32
    ('net:\n  port: "27018"\n', ("rs0", 27017)),
    ("net:\n  port: 0\n", ("rs0", 27017)),
    ("net:\n  port: 99999999999\n", ("rs0", 27017)),
    ("net:\n    bindIpAll: true\n    port: 27020 # comment\n", ("rs0", 27020)),
    ("net:\n  tls:\n    port: 1\n  bindIpAll: true\n", ("rs0", 27017)),  # only net.port counts
    ("operationProfiling:\n  port: 1\nreplication:\n  oplogSizeMB: 10\n", ("rs0", 27017)),
    ("replication:\n  replSetName: 'quoted name'\n", ("quoted name", 27017)),
    ('replication:\n  replSetName: "a#b"\n', ("a#b", 27017)),
    ("replication:\n  replSetName: plain#x # c\n", ("plain#x", 27017)),
    ("replication:\n  replSetName: ''\n", ("rs0", 27017)),
    ("replication:\n  replSetName:\n", ("rs0", 27017)),
    ("replication: # section\n  replSetName: x1\n# note\nnet:\n\n  port: 30000\n", ("x1", 30000)),
    ("security:\n  enableEncryption: true\nreplication:\n  replSetName: r\nnet:\n  port: 1234\n", ("r", 1234)),
]


@pytest.mark.parametrize(("text", "expected"), CONFIGS)
def test_configuration_scanner(text: str, expected: tuple[str, int]) -> None:
    assert replset_name_and_port({"configuration": text}, "rs0") == expected


@pytest.mark.parametrize(("text", "expected"), CONFIGS)
def test_configuration_with_a_yaml_loader_agrees(text: str, expected: tuple[str, int]) -> None:
    assert replset_name_and_port({"configuration": text}, "rs0", yaml.safe_load) == expected


def test_configuration_loader_errors_fall_back_like_the_operator() -> None:
    text = "net:\n  port: 27018\n  - broken"
    assert replset_name_and_port({"configuration": text}, "rs0", yaml.safe_load) == ("rs0", 27017)


def test_configuration_loader_flow_style() -> None:
    text = "{replication: {replSetName: flow}, net: {port: 27030}}"
    assert replset_name_and_port({"configuration": text}, "rs0", yaml.safe_load) == ("flow", 27030)


def test_config_loader_is_passed_through_plan() -> None:
    cluster = make_cluster()
    cluster["spec"]["replsets"][0]["configuration"] = "net: {port: 27031}"
    _, reason = plan(operator_pod(), cluster, config_loader=yaml.safe_load)
    assert "replset rs0:27031" in reason


def test_module_is_pure_stdlib() -> None:
    tree = ast.parse(Path(sidecar.__file__).read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__", "versions"}  # `from .versions`: pure too


@pytest.mark.parametrize(
    "pod",
    [
        {"metadata": {"labels": 1.5}},
        {"metadata": [], "spec": {}},
        {"metadata": {}, "spec": "x"},
        {
            "metadata": {
                "labels": {
                    "app.kubernetes.io/name": "percona-server-mongodb",
                    "app.kubernetes.io/instance": ["a"],
                    "app.kubernetes.io/component": "mongod",
                }
            },
            "spec": {},
        },
        {"metadata": {"labels": {}}, "spec": {"containers": [1, 2]}},
    ],
)
def test_malformed_pods_get_no_patch_and_no_crash(pod) -> None:
    assert sidecar.plan(pod, None)[0] == []
