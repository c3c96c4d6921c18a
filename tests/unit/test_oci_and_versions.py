"""OCI storage (operator 1.23.0), unknown storage types on newer operators, PBM versions from images, and
references the operator retries (warnings at admission)."""

from __future__ import annotations

import pytest
import yaml

from webhook.findings import Finding, Severity
from webhook.policy import RULES, check
from webhook.policy.common import pbm_version_from_image
from webhook.policy.examples import example_object, lookup_for, with_backup
from webhook.policy.live import Checked, Enforcement, LookupFailure, decide
from webhook.versions import Version


@pytest.mark.parametrize(
    "image,expected",
    [
        ("perconalab/percona-server-mongodb-operator:1.1.0-backup", None),  # an operator image: PBM unknown
        ("percona/percona-backup-mongodb:2.12.0", Version(2, 12)),
        ("my.registry:5000/mirror/percona-backup-mongodb:2.15.0-multi", Version(2, 15)),
        ("percona-backup-mongodb:2.15.1", Version(2, 15, 1)),
        ("percona/percona-backup-mongodb:2.15.0@sha256:" + "a" * 64, Version(2, 15)),
        ("percona/percona-backup-mongodb@sha256:" + "a" * 64, None),
        ("my.registry:5000/percona-backup-mongodb", None),
        ("percona/percona-backup-mongodb:latest", None),
        ("percona/percona-backup-mongodb-custom:2.1.0", None),
        (None, None),
    ],
)
def test_pbm_version_only_from_a_pbm_image(image, expected) -> None:
    assert pbm_version_from_image(image) == expected


def _codes(yaml_text: str, others: tuple[str, ...] = ()) -> list[Finding]:
    return check(example_object(("PerconaServerMongoDB",), yaml_text), lookup=lookup_for(others))


def test_operator_image_tag_does_not_gate_oss_on_pbm() -> None:
    obj = with_backup(
        "storages: {oss: {type: oss, oss: {bucket: b, credentialsSecret: o, endpointUrl: 'https://x.aliyuncs.com'}}}"
    ).replace("percona/percona-backup-mongodb:2.15.0", "perconalab/percona-server-mongodb-operator:1.1.0-backup")
    assert not [f for f in _codes(obj) if "PBM" in f.message]


def test_oci_storage_is_valid_on_1_23() -> None:
    obj = with_backup(
        "storages: {oci: {type: oci, oci: {bucket: b, namespace: n, region: us-ashburn-1, "
        "credentials: {type: userPrincipal, secretName: oci}}}}"
    )
    assert not [f for f in _codes(obj) if f.severity == Severity.ERROR]


def test_oci_storage_on_an_older_pbm_is_an_error() -> None:
    obj = with_backup(
        "storages: {oci: {type: oci, oci: {bucket: b, namespace: n, region: r, credentials: {type: okeWorkloadIdentity}}}}"
    ).replace("2.15.0", "2.14.0")
    found = [f for f in _codes(obj) if f.code == "PSB122"]
    assert found and found[0].severity == Severity.ERROR and "PBM 2.14.0" in found[0].message


def test_oci_on_1_22_is_reported_as_too_new_for_the_cr_version() -> None:
    obj = with_backup(
        "storages: {oci: {type: oci, oci: {bucket: b, namespace: n, region: r, credentials: {type: okeWorkloadIdentity}}}}",
        cr_version="1.22.0",
    )
    codes = [f.code for f in _codes(obj)]
    assert "PSB114" in codes and "PSB122" not in codes


def test_oci_secret_keys_are_checked_under_credentials_secret_name() -> None:
    obj = with_backup(
        "storages: {oci: {type: oci, oci: {bucket: b, namespace: n, region: r, credentials: {secretName: oci}}}}"
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "oci", "namespace": "default"},
        "stringData": {k: "x" for k in ("OCI_TENANCY", "OCI_USER", "OCI_FINGERPRINT", "OCI_PRIVATE_KEY")},
    }
    assert "PSB121" not in [f.code for f in _codes(obj, (yaml.safe_dump(secret),))]
    del secret["stringData"]["OCI_PRIVATE_KEY"]
    found = [f for f in _codes(obj, (yaml.safe_dump(secret),)) if f.code == "PSB121"]
    assert found and found[0].severity == Severity.ERROR and "OCI_PRIVATE_KEY" in found[0].message
    assert found[0].path[-2:] == ("credentials", "secretName")


@pytest.mark.parametrize("cr_version,severity", [("1.23.0", Severity.ERROR), ("1.24.0", Severity.WARNING)])
def test_unknown_storage_type_is_a_warning_on_a_newer_operator(cr_version, severity) -> None:
    obj = with_backup("storages: {x: {type: blob, blob: {bucket: b}}}", cr_version=cr_version)
    found = [f for f in _codes(obj) if f.code == "PSB101"]
    assert [f.severity for f in found] == [severity]


def _decision(code: str) -> tuple[bool, list[str]]:
    finding = Finding(code, Severity.ERROR, ("spec",), "the message", "the fix")
    d = decide(Checked([finding], [], []), what="x", mode=Enforcement.ENFORCE, on_lookup_failure=LookupFailure.DENY)
    return d.allowed, d.warnings


def test_references_the_operator_retries_warn_and_the_others_deny() -> None:
    assert RULES["PSB121"].retried_by_operator and not RULES["PSB402"].retried_by_operator
    allowed, warnings = _decision("PSB121")
    assert allowed and any("the message" in w for w in warnings)
    assert _decision("PSB402")[0] is False


@pytest.mark.parametrize(
    "endpoint,path",
    [  # what Go's url.Parse("https://" + endpoint).Path is, as minio-go v7.1.0 getEndpointURL computes it
        ("minio.ns.svc:9000", ""),
        ("minio:9000/", "/"),
        ("minio.ns.svc:9000/minio/", "/minio/"),
        ("http://minio:9000", "//minio:9000"),
        ("minio:9000?region=x/y", ""),
    ],
)
def test_minio_endpoint_path_as_minio_go_parses_it(endpoint, path) -> None:
    from webhook.policy.storages import minio_endpoint_path

    assert minio_endpoint_path(endpoint) == path


def test_missing_oci_secret_is_reported_at_its_path() -> None:
    obj = with_backup(
        "storages: {oci: {type: oci, oci: {bucket: b, namespace: n, region: r, credentials: {secretName: oci}}}}"
    )
    found = [f for f in _codes(obj, ("MISSING Secret oci",)) if f.code == "PSB121"]
    assert len(found) == 1 and 'Secret "oci" does not exist' in found[0].message
    assert found[0].path[-2:] == ("credentials", "secretName")
