"""One version parser (webhook/policy/versions.py) for the rules and the sidecar, with go-version's ordering."""

from __future__ import annotations

import pytest

from webhook import sidecar
from webhook.policy import check
from webhook.policy.examples import with_backup
from webhook.versions import Version


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("1.22.0-rc1", "1.22.0"),  # a pre-release sorts before its release
        ("1.22.0-rc1", "1.22.0-rc2"),
        ("1.21.9", "1.22.0-rc1"),
        ("1.22", "1.22.1"),
        ("v1.22.0", "1.22.0.1"),  # a fourth segment counts
        ("2.9.1", "2.10.0"),  # numeric, not lexical
    ],
)
def test_go_version_ordering(low: str, high: str) -> None:
    a, b = Version.parse(low), Version.parse(high)
    assert a is not None and b is not None
    assert a < b and b > a and a != b


@pytest.mark.parametrize(
    ("a", "b"), [("1.22", "1.22.0"), ("v1.22.0", "1.22.0"), ("1.22.0+build.5", "1.22.0"), ("1.22.0.0", "1.22.0")]
)
def test_equal_versions_and_hash(a: str, b: str) -> None:
    va, vb = Version.parse(a), Version.parse(b)
    assert va == vb and hash(va) == hash(vb)


@pytest.mark.parametrize("text", ["", "latest", "1.x", "1..2", "-rc1", 1.22, None, ["1.22.0"]])
def test_what_go_version_refuses(text: object) -> None:
    assert Version.parse(text) is None


def test_str_keeps_the_pre_release() -> None:
    assert str(Version.parse("1.22.0-rc1")) == "1.22.0-rc1"
    assert str(Version.parse("1.22")) == "1.22.0"


def test_a_pre_release_cr_version_is_a_version_to_the_rules_and_the_sidecar() -> None:
    """The operator (go-version) accepts `1.22.0-rc1`; so must the rule engine and the renderer, and they gate it
    the same way: before 1.22.0, so the 1.22.0 features are off in both."""
    findings = check(
        with_backup(
            "{s3-us-west: {type: s3, s3: {bucket: b, region: us-west-2, credentialsSecret: s}}}",
            cr_version="1.22.0-rc1",
        )
    )
    assert not [f for f in findings if f.path == "spec.crVersion"], findings
    assert sidecar._key("1.22.0-rc1") < sidecar._key("1.22.0")
    assert sidecar._vkey("1.22.0-rc1") == Version.parse("1.22.0-rc1")
