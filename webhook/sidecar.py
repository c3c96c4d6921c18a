"""The PBM ``backup-agent`` sidecar, rendered exactly as the Percona Operator for MongoDB renders it.

Pure: stdlib only, no file, network or Kubernetes client. The model is operator 1.23.0 (commit b15af50), which
renders every crVersion from 1.20.0 to 1.23.x behind version gates. Source of truth: OP v1.23.0@b15af500 pkg/psmdb/statefulset.go:546-693
(backupAgentContainer) and the operator's
``backupAgentContainer`` / ``StatefulSpec`` (pkg/psmdb/statefulset.go). The output is what the operator's Go structs
serialise to: fields the operator leaves empty are absent (``readOnly: false`` is dropped, ``resources: {}`` and
``optional: false`` are kept), so a rendered container compares equal to the one in an operator-made pod.

``plan()`` decides and explains; ``pod_patch()`` is its patch alone. Both are idempotent: a pod that already has a
``backup-agent`` container gets ``[]``.

Choices where the operator gives no answer:

* Without the ``PerconaServerMongoDB`` there is no ``spec.backup.image``, so no sidecar (``[]`` with a reason).
* ``replsets[].configuration`` is a YAML string. The operator reads ``replication.replSetName`` and ``net.port`` with
  gopkg.in/yaml.v2. This module stays stdlib-only, so by default it reads the two keys with a small block-YAML line
  scanner (top-level section, first-level key, plain or quoted scalar). Callers that have a YAML parser pass
  ``config_loader=yaml.safe_load`` and get exact parsing; the scanner does not detect YAML syntax errors, flow
  mappings (``net: {port: 1}``) or anchors.
* A sidecar whose mounts name a volume the pod lacks (``mongod-data``, a ``backup.volumeMounts`` entry) would make
  the API server reject the pod, so such pods are left alone.
* Pods being prepared for a physical/snapshot restore (init container ``pbm-init`` or volume ``pbm-config``) must run
  without the sidecar: the operator removes it on purpose
  (OP v1.23.0@b15af500 pkg/controller/perconaservermongodbrestore/physical.go:45-332).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .versions import Version

CONTAINER_NAME = "backup-agent"
OPT_OUT_ANNOTATION = "psmdb-backup-webhook.io/inject"  # value "false" disables injection (annotation or label)
INJECTED_ANNOTATION = "psmdb-backup-webhook.io/injected"  # set on injection; value = the crVersion rendered

LATEST_CR_VERSION = "1.23.0"  # the operator patches an empty spec.crVersion to its own version
OLDEST_CR_VERSION = "1.20.0"
_NEWEST_UNSUPPORTED = "1.24.0"

# app.kubernetes.io/* labels the operator puts on its pods (pkg/naming/labels.go, naming.go).
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_REPLSET = "app.kubernetes.io/replset"
APP_NAME = "percona-server-mongodb"
CFG = "cfg"
# mongod, config servers (every cfg StatefulSet is labelled "cfg"), non-voting and hidden members. Never "arbiter",
# "mongos" or "search" (mongot).
_DATA_COMPONENTS = frozenset({"mongod", CFG, "nonVoting", "hidden"})
# Containers the operator appends after backup-agent (pmm.go, logcollector/container.go).
_AFTER_SIDECAR = frozenset({"pmm-client", "logs", "logrotate"})

_SSL_DIR = "/etc/mongodb-ssl"
_BIN_DIR = "/opt/percona"
_CA_DIR = "/etc/s3/certs"
_SECRET_MODE = 288  # 0440
_TLS_KEYS = frozenset({"ca.crt", "tls.crt", "tls.key"})
_DEFAULT_PORT = 27017
_OSS_HOST = "aliyuncs.com"

ConfigLoader = Callable[[str], Any]


class SidecarError(ValueError):
    """The cluster spec cannot be rendered (unsupported crVersion, unknown replset, no backup image)."""


@dataclass(frozen=True)
class PodIdentity:
    """What the operator's labels say about a pod."""

    cluster: str
    replset: str | None
    component: str  # "mongod", "cfg", "arbiter", "mongos", "nonVoting", "hidden", "search"


def identify(pod: Mapping[str, Any]) -> PodIdentity | None:
    """The pod's cluster, replset and component, or None when the operator did not make it."""
    labels = _get(pod, "metadata", "labels")
    if not isinstance(labels, Mapping) or labels.get(LABEL_NAME) != APP_NAME:
        return None
    cluster, component, replset = (labels.get(k) for k in (LABEL_INSTANCE, LABEL_COMPONENT, LABEL_REPLSET))
    if not isinstance(cluster, str) or not isinstance(component, str) or not cluster or not component:
        return None
    return PodIdentity(
        cluster=cluster, replset=replset if isinstance(replset, str) and replset else None, component=component
    )


def _well_formed(pod: Mapping[str, Any]) -> bool:
    """The shape a Pod has after API-server validation; anything else (a fuzzer, a hand-made file) is left alone."""
    meta, spec = pod.get("metadata"), pod.get("spec")
    if not isinstance(meta, Mapping) or not isinstance(spec, Mapping):
        return False
    if any(not isinstance(meta.get(k), (Mapping, type(None))) for k in ("labels", "annotations")):
        return False
    lists = [spec.get(k) for k in ("containers", "volumes", "initContainers")]
    return all(v is None or (isinstance(v, list) and all(isinstance(i, Mapping) for i in v)) for v in lists)


def wants_sidecar(identity: PodIdentity) -> bool:
    return identity.component in _DATA_COMPONENTS and identity.replset is not None


# --- versions (the policy engine's go-version parser) --------------------------------------------------------


def _vkey(text: object) -> Version | None:
    return Version.parse(text)  # a malformed crVersion may be any YAML value


def _key(text: str) -> Version:
    """The version of a constant or an already checked string (a bad one is a bug here, not user input)."""
    version = Version.parse(text)
    if version is None:
        raise SidecarError(f"{text!r} is not a version")
    return version


def cr_version(cluster: Mapping[str, Any]) -> str:
    return str(_get(cluster, "spec", "crVersion") or LATEST_CR_VERSION)


def _at_least(version: str, gate: str) -> bool:
    return _key(version) >= _key(gate)  # both checked by render_container


# --- cluster facts ---------------------------------------------------------------------------------------------


def tls_enabled(cluster: Mapping[str, Any]) -> bool:
    """``cr.TLSEnabled()`` after ``CheckNSetDefaults``.

    Only ``spec.tls.mode: disabled`` turns TLS off, and ``allowUnsafeConfigurations: true`` forces that mode.
    ``unsafeFlags.tls`` does not: it only allows the disabled mode and makes the ``ssl`` volume optional.
    """
    spec = cluster.get("spec") or {}
    if spec.get("allowUnsafeConfigurations") is True:
        return False
    return bool(_get(spec, "tls", "mode") != "disabled")


def _replset_spec(cluster: Mapping[str, Any], identity: PodIdentity) -> Mapping[str, Any] | None:
    spec = cluster.get("spec") or {}
    if identity.component == CFG:
        # Every config server StatefulSet is labelled component=cfg, replset=cfg (CheckNSetDefaults names it "cfg");
        # it exists only while sharding is enabled.
        cfg = _get(spec, "sharding", "configsvrReplSet")
        return cfg if isinstance(cfg, Mapping) and _get(spec, "sharding", "enabled") is True else None
    for i, rs in enumerate(spec.get("replsets") or []):
        if isinstance(rs, Mapping) and (rs.get("name") or f"rs{i}") == identity.replset:
            return rs
    return None


def replset_name_and_port(
    replset: Mapping[str, Any], default_name: str, config_loader: ConfigLoader | None = None
) -> tuple[str, int]:
    """``CustomReplsetName()`` or the spec name, and ``GetPort()`` (27017 unless ``net.port`` is a positive int)."""
    text = replset.get("configuration") or ""
    name: object = None
    port: object = None
    if isinstance(text, str) and text.strip():
        if config_loader is not None:
            try:
                doc = config_loader(text)
            except Exception:  # yaml.v2 syntax error: the operator falls back for both values
                doc = None
            if isinstance(doc, Mapping):
                name = _get(doc, "replication", "replSetName")
                port = _get(doc, "net", "port")
        else:
            name = _scan(text, "replication", "replSetName")
            raw = _scan(text, "net", "port", keep_quotes=True)
            port = int(raw) if raw and raw.isdigit() else None  # a quoted port fails to decode into int32
    if isinstance(name, bool):
        name = "true" if name else "false"  # yaml.v2 keeps the scalar's text for a string field
    elif isinstance(name, int):
        name = str(name)
    rs_name = name if isinstance(name, str) and name else default_name
    valid = isinstance(port, int) and not isinstance(port, bool) and 0 < port < 2**31
    return rs_name, port if valid and isinstance(port, int) else _DEFAULT_PORT  # (isinstance again for mypy)


def _scan(text: str, section: str, key: str, *, keep_quotes: bool = False) -> str | None:
    """Value of ``section.key`` in block-style YAML, or None. See the module docstring for what it cannot read."""
    if section not in text or key not in text:
        return None  # both are matched literally below: most configurations lack them, so skip the line walk
    in_section, child_indent = False, None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        stripped = raw.strip()
        if indent == 0:
            head, sep, rest = stripped.partition(":")
            in_section = sep == ":" and head.strip() == section and _plain(rest) == ""
            child_indent = None
            continue
        if not in_section:
            continue
        child_indent = indent if child_indent is None else child_indent
        if indent != child_indent:
            continue
        head, sep, rest = stripped.partition(":")
        if sep and head.strip() == key:
            value = rest.strip()
            if value[:1] in ("'", '"'):
                end = value.find(value[0], 1)
                if end < 0:
                    return None
                return value[: end + 1] if keep_quotes else value[1:end]
            return _plain(value) or None
    return None


_COMMENT = re.compile(r"\s#")


def _plain(value: str) -> str:
    """A plain scalar without its trailing comment."""
    return _COMMENT.split(" " + value, maxsplit=1)[0].strip()


def _ca_bundles(cluster: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``CollectStorageCABundles``: minio caBundles by storage name, empty key = ca.crt, deduplicated."""
    storages = _get(cluster, "spec", "backup", "storages") or {}
    out: list[tuple[str, str]] = []
    for name in sorted(storages):
        stg = storages[name] or {}
        ca = _get(stg, "minio", "caBundle") or {}
        if stg.get("type") != "minio" or not ca.get("name"):
            continue
        item = (ca["name"], ca.get("key") or "ca.crt")
        if item not in out:
            out.append(item)
    return out


def _hook_configmap(cluster: Mapping[str, Any]) -> str | None:
    hook = _get(cluster, "spec", "backup", "hookScript") or {}
    ref = _get(hook, "configMapRef", "name")
    if not hook.get("script") and not ref:
        return None
    return ref or f"{cluster['metadata']['name']}-pbm-hookscript"


def _aws_checksum_vars(cluster: Mapping[str, Any], pbm_version: str | None) -> bool:
    """``ShouldSetAWSSDKChecksumEnvVars``: PBM <= 2.11.0 (unknown/unparsable = no) and an s3 storage on aliyuncs."""
    version = pbm_version if pbm_version is not None else _get(cluster, "status", "backupVersion")
    key = _vkey(version)
    if key is None or key > _key("2.11.0"):
        return False
    storages = _get(cluster, "spec", "backup", "storages") or {}
    return any(
        (s or {}).get("type") == "s3" and _OSS_HOST in str(_get(s, "s3", "endpointUrl") or "")
        for s in storages.values()
    )


def _read_only_root(cluster: Mapping[str, Any]) -> bool:
    return _get(cluster, "spec", "backup", "containerSecurityContext", "readOnlyRootFilesystem") is True


def _check_version(cluster: Mapping[str, Any]) -> str:
    version = cr_version(cluster)
    key = _vkey(version)
    if key is None:
        raise SidecarError(f"spec.crVersion {version!r} is not a version")
    if not (_key(OLDEST_CR_VERSION) <= key < _key(_NEWEST_UNSUPPORTED)):
        raise SidecarError(
            f"spec.crVersion {version} is outside {OLDEST_CR_VERSION}-1.23.x, the versions this webhook renders"
        )
    return version


# --- rendering -------------------------------------------------------------------------------------------------


def render_container(
    cluster: Mapping[str, Any],
    identity: PodIdentity,
    *,
    ssl_secret_keys: Collection[str] | None = None,
    pbm_version: str | None = None,
    config_loader: ConfigLoader | None = None,
    openshift: bool = False,
) -> dict[str, Any]:
    """The ``backup-agent`` container the operator puts into this pod (OP v1.23.0@b15af500 pkg/psmdb/statefulset.go:546-747).

    ``ssl_secret_keys``: data keys of the SSL Secret (its ``data`` dict works too); None (unknown) counts as
    missing, so the URI gets no TLS options.
    ``pbm_version``: PBM agent version; defaults to ``status.backupVersion``.
    ``openshift``: the default securityContext leaves ``runAsUser`` unset there.
    """
    version = _check_version(cluster)
    spec = cluster.get("spec") or {}
    backup = spec.get("backup") or {}
    name = cluster["metadata"]["name"]
    if not backup.get("image"):
        raise SidecarError("spec.backup.image is empty")
    rs = _replset_spec(cluster, identity)
    if rs is None:
        raise SidecarError(f"replset {identity.replset!r} is not in the cluster spec")
    default_name = CFG if identity.component == CFG else str(identity.replset)
    rs_name, port = replset_name_and_port(rs, default_name, config_loader)
    tls = tls_enabled(cluster)
    users = f"internal-{name}-users"  # UserSecretName() for crVersion >= 1.5.0, keys *_ESCAPED for >= 1.19.0
    hook = _at_least(version, "1.22.0") and _hook_configmap(cluster) is not None
    cas = _ca_bundles(cluster) if _at_least(version, "1.22.0") else []

    mounts: list[dict[str, Any]] = [
        {"name": "ssl", "readOnly": True, "mountPath": _SSL_DIR},
        {"name": "bin", "mountPath": _BIN_DIR} if hook else {"name": "bin", "readOnly": True, "mountPath": _BIN_DIR},
        {"name": "mongod-data", "mountPath": "/data/db"},
    ]
    mounts += copy.deepcopy(list(backup.get("volumeMounts") or []))
    if _at_least(version, "1.23.0") and _read_only_root(cluster):
        mounts.append({"name": "tmp", "mountPath": "/tmp"})  # pbm-entry.sh writes /tmp/tls.pem
    if hook:
        mounts.append({"name": "pbm-hookscript", "mountPath": f"{_BIN_DIR}/pbm-hookscript"})

    env: list[dict[str, Any]] = [
        _secret_env("PBM_AGENT_MONGODB_USERNAME", users, "MONGODB_BACKUP_USER_ESCAPED"),
        _secret_env("PBM_AGENT_MONGODB_PASSWORD", users, "MONGODB_BACKUP_PASSWORD_ESCAPED"),
        {"name": "PBM_MONGODB_REPLSET", "value": rs_name},
        {"name": "PBM_MONGODB_PORT", "value": str(port)},
        {"name": "PBM_AGENT_SIDECAR", "value": "true"},
        {"name": "PBM_AGENT_SIDECAR_SLEEP", "value": "5"},
    ]
    if _at_least(version, "1.23.0") and _aws_checksum_vars(cluster, pbm_version):
        env += [
            {"name": "AWS_REQUEST_CHECKSUM_CALCULATION", "value": "when_required"},
            {"name": "AWS_RESPONSE_CHECKSUM_VALIDATION", "value": "when_required"},
        ]
    if _get(spec, "sharding", "enabled") is True:
        env.append({"name": "SHARDED", "value": "TRUE"})
    uri = "mongodb://$(PBM_AGENT_MONGODB_USERNAME):$(PBM_AGENT_MONGODB_PASSWORD)@localhost:$(PBM_MONGODB_PORT)"
    if tls and set(ssl_secret_keys or ()) >= _TLS_KEYS:
        uri += f"/?tls=true&tlsCertificateKeyFile=/tmp/tls.pem&tlsCAFile={_SSL_DIR}/ca.crt&tlsInsecure=true"
    env += [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "PBM_MONGODB_URI", "value": uri},
        {"name": "PBM_AGENT_TLS_ENABLED", "value": "true" if tls else "false"},
    ]
    if cas:
        mounts += [
            {"name": "ca-bundle-in", "readOnly": True, "mountPath": f"{_CA_DIR}-in"},
            {"name": "ca-bundle", "mountPath": _CA_DIR},
        ]
        env.append({"name": "SSL_CERT_FILE", "value": f"{_CA_DIR}/ca-bundle.crt"})

    security = backup.get("containerSecurityContext")
    if security is None:  # CheckNSetDefaults, when backup is enabled
        security = {"runAsNonRoot": True} if openshift else {"runAsUser": 1001, "runAsNonRoot": True}

    # Key order follows corev1.Container, so golden files read like `kubectl get -o json`.
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": backup["image"],
        "command": [f"{_BIN_DIR}/pbm-entry.sh"],
        "args": ["pbm-agent-entrypoint"],
        "env": env,
        "resources": copy.deepcopy(dict(backup.get("resources") or {})),
        "volumeMounts": mounts,
    }
    if _at_least(version, "1.23.0"):
        for probe in ("livenessProbe", "readinessProbe"):
            if backup.get(probe) is not None:
                container[probe] = copy.deepcopy(backup[probe])
    container["imagePullPolicy"] = spec.get("imagePullPolicy") or "Always"
    container["securityContext"] = copy.deepcopy(security)
    return container


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": False}}}


def required_volumes(cluster: Mapping[str, Any], identity: PodIdentity) -> list[dict[str, Any]]:
    """Pod volumes the sidecar mounts that the operator adds, in the operator's order.

    ``mongod-data`` (a PVC, emptyDir or hostPath) and volumes for ``backup.volumeMounts`` are not ours to invent.
    ``identity`` is accepted for symmetry with ``render_container``: the set is the same for every data member.
    """
    version = _check_version(cluster)
    spec = cluster.get("spec") or {}
    name = cluster["metadata"]["name"]
    ssl_secret = _get(spec, "secrets", "ssl") or f"{name}-ssl"
    volumes: list[dict[str, Any]] = [{"name": "bin", "emptyDir": {}}]
    if _at_least(version, "1.23.0") and _read_only_root(cluster):
        volumes.append({"name": "tmp", "emptyDir": {}})
    volumes.append(
        {
            "name": "ssl",
            "secret": {
                "secretName": ssl_secret,
                "defaultMode": _SECRET_MODE,
                "optional": _get(spec, "unsafeFlags", "tls") is True or spec.get("allowUnsafeConfigurations") is True,
            },
        }
    )
    if _at_least(version, "1.22.0"):
        hook = _hook_configmap(cluster)
        if hook is not None:
            volumes.append({"name": "pbm-hookscript", "configMap": {"name": hook, "optional": True}})
        cas = _ca_bundles(cluster)
        if cas:
            sources = [
                {"secret": {"name": secret, "items": [{"key": key, "path": f"ca-{i}.crt"}]}}
                for i, (secret, key) in enumerate(cas)
            ]
            volumes += [
                {"name": "ca-bundle-in", "projected": {"sources": sources}},
                {"name": "ca-bundle", "emptyDir": {}},
            ]
    return volumes


# --- patch -----------------------------------------------------------------------------------------------------


def plan(
    pod: Mapping[str, Any],
    cluster: Mapping[str, Any] | None,
    *,
    ssl_secret_keys: Collection[str] | None = None,
    pbm_version: str | None = None,
    config_loader: ConfigLoader | None = None,
    openshift: bool = False,
    known_volumes: Collection[str] = (),
) -> tuple[list[dict[str, Any]], str]:
    """The RFC 6902 patch that adds the sidecar to ``pod`` (maybe ``[]``) and one sentence saying why.

    ``known_volumes``: volume names that exist without being in ``spec.volumes``, e.g. a StatefulSet's
    ``volumeClaimTemplates`` (``mongod-data``) when patching its pod template offline.
    """
    if not isinstance(pod, Mapping) or not _well_formed(pod):
        return [], "not a well-formed pod"
    identity = identify(pod)
    if identity is None:
        return [], f"not a Percona Server for MongoDB pod (no {LABEL_NAME}={APP_NAME} with instance and component)"
    if not wants_sidecar(identity):
        return [], f"{identity.component} pods never run the backup agent"
    meta = pod.get("metadata") or {}
    for where in ("annotations", "labels"):
        if str((meta.get(where) or {}).get(OPT_OUT_ANNOTATION, "")).strip().lower() == "false":
            return [], f"injection disabled by the {where[:-1]} {OPT_OUT_ANNOTATION}=false"
    pod_spec = pod.get("spec") or {}
    containers = list(pod_spec.get("containers") or [])
    if any(c.get("name") == CONTAINER_NAME for c in containers):
        return [], f"the pod already has a {CONTAINER_NAME} container"
    volume_names = {v.get("name") for v in pod_spec.get("volumes") or []} | set(known_volumes)
    if "pbm-config" in volume_names or any(c.get("name") == "pbm-init" for c in pod_spec.get("initContainers") or []):
        return [], "the pod is prepared for a physical restore, which runs without the backup agent"
    if cluster is None:
        return [], f"PerconaServerMongoDB {identity.cluster} is not available, so spec.backup.image is unknown"
    if _get(cluster, "metadata", "name") != identity.cluster:
        return [], f"the pod belongs to cluster {identity.cluster}, not {_get(cluster, 'metadata', 'name')}"
    if _get(cluster, "spec", "backup", "enabled") is not True:
        return [], f"spec.backup.enabled is not true in PerconaServerMongoDB {identity.cluster}"
    try:
        container = render_container(
            cluster,
            identity,
            ssl_secret_keys=ssl_secret_keys,
            pbm_version=pbm_version,
            config_loader=config_loader,
            openshift=openshift,
        )
        missing = [v for v in required_volumes(cluster, identity) if v["name"] not in volume_names]
    except SidecarError as err:
        return [], f"cannot render the backup agent: {err}"
    have = volume_names | {v["name"] for v in missing}
    absent = sorted({m["name"] for m in container["volumeMounts"]} - have)
    if absent:
        return [], f"the pod lacks volume(s) {', '.join(absent)} that the backup agent mounts"

    ops: list[dict[str, Any]] = []
    if missing and pod_spec.get("volumes"):
        ops += [{"op": "add", "path": "/spec/volumes/-", "value": v} for v in missing]
    elif missing:  # absent or empty: one add creates the array
        ops.append({"op": "add", "path": "/spec/volumes", "value": missing})
    # The operator's order: mongod, user sidecars, backup-agent, pmm-client, log collectors.
    at = next((i for i, c in enumerate(containers) if c.get("name") in _AFTER_SIDECAR), None)
    ops.append({"op": "add", "path": "/spec/containers/" + ("-" if at is None else str(at)), "value": container})
    annotations = meta.get("annotations")
    version = cr_version(cluster)
    if not annotations:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {INJECTED_ANNOTATION: version}})
    elif INJECTED_ANNOTATION not in annotations:
        ops.append({"op": "add", "path": "/metadata/annotations/" + _pointer(INJECTED_ANNOTATION), "value": version})

    uri = next(e["value"] for e in container["env"] if e["name"] == "PBM_MONGODB_URI")
    note = ""
    if tls_enabled(cluster) and "tls=true" not in uri:
        note = "; TLS is on but the SSL Secret lacks ca.crt/tls.crt/tls.key (or was not read), so the URI has no TLS"
    rs_env = {e["name"]: e.get("value") for e in container["env"]}
    return ops, (
        f"add {CONTAINER_NAME} (crVersion {version}, replset {rs_env['PBM_MONGODB_REPLSET']}:"
        f"{rs_env['PBM_MONGODB_PORT']}) and {len(missing)} volume(s){note}"
    )


def pod_patch(
    pod: Mapping[str, Any],
    cluster: Mapping[str, Any] | None,
    *,
    ssl_secret_keys: Collection[str] | None = None,
    pbm_version: str | None = None,
    config_loader: ConfigLoader | None = None,
    openshift: bool = False,
    known_volumes: Collection[str] = (),
) -> list[dict[str, Any]]:
    """``plan(...)[0]``: the patch alone."""
    return plan(
        pod,
        cluster,
        ssl_secret_keys=ssl_secret_keys,
        pbm_version=pbm_version,
        config_loader=config_loader,
        openshift=openshift,
        known_volumes=known_volumes,
    )[0]


def _pointer(token: str) -> str:
    """One RFC 6901 reference token: ``~`` -> ``~0`` first, then ``/`` -> ``~1``."""
    return token.replace("~", "~0").replace("/", "~1")


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if type(obj) is not dict and not isinstance(obj, Mapping):  # dict first: the ABC check is slow
            return None
        obj = obj.get(key)
    return obj
