"""A rule that raises is never silent: WARNING log, `psmdb_backup_rule_errors_total{rule}` in the server and the
controller, an info finding naming the rule; strict mode raises; an object the schema rejects may stay quiet."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from webhook.admission.server import AdmissionApp, Settings
from webhook.findings import Severity
from webhook.kube import LiveLookup
from webhook.policy import RULES, check, kinds
from webhook.policy.engine import _rules_for
from webhook.policy.failures import RULE_ERROR_CODE, STRICT_ENV, RuleFailed
from webhook.policy.registry import rule

from .test_admission import CLUSTER, review, run, world

CODE = "PSB999"


@pytest.fixture
def broken_rule() -> Iterator[str]:
    """A registered cluster rule with a bug: it reads a key a valid cluster does not have."""

    @rule(CODE, title="broken", severity=Severity.ERROR, kind=kinds.CLUSTER, source="-", hint="-", bad=[], good=[])
    def _broken(ctx):
        return [ctx.spec["noSuchKey"]]

    _rules_for.cache_clear()
    yield CODE
    del RULES[CODE]
    _rules_for.cache_clear()


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STRICT_ENV, raising=False)


def rule_errors(registry, code: str) -> float | None:
    return registry.get_sample_value("psmdb_backup_rule_errors_total", {"rule": code})


def test_a_raising_rule_gives_a_warning_log_and_an_info_finding(broken_rule, lenient, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        findings = check(CLUSTER)
    notes = [f for f in findings if f.code == RULE_ERROR_CODE]
    assert len(notes) == 1 and notes[0].severity == Severity.INFO
    assert f"rule {CODE} failed internally (KeyError: 'noSuchKey')" in notes[0].message
    [record] = [r for r in caplog.records if CODE in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "PerconaServerMongoDB psmdb/my-cluster" in record.getMessage()


def test_the_info_finding_can_be_disabled_but_the_rule_still_does_not_run(broken_rule, lenient) -> None:
    codes = [f.code for f in check(CLUSTER, disabled=[RULE_ERROR_CODE])]
    assert RULE_ERROR_CODE not in codes and CODE not in codes


def test_strict_mode_raises(broken_rule, monkeypatch) -> None:
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(RuleFailed, match=f"rule {CODE} raised on PerconaServerMongoDB psmdb/my-cluster") as info:
        check(CLUSTER)
    assert isinstance(info.value.__cause__, KeyError)


def test_the_suite_runs_strict() -> None:
    assert os.environ.get(STRICT_ENV) == "1"


def test_an_object_the_schema_rejects_stays_quiet_even_in_strict_mode(broken_rule, monkeypatch) -> None:
    monkeypatch.setenv(STRICT_ENV, "1")
    obj = copy.deepcopy(CLUSTER)
    obj["spec"]["backup"]["enabled"] = "yes"  # PSB001: not a boolean
    codes = [f.code for f in check(obj)]
    assert "PSB001" in codes and RULE_ERROR_CODE not in codes


def test_the_admission_server_counts_rule_errors(broken_rule, lenient) -> None:
    app = AdmissionApp(Settings(), LiveLookup(world(), ttl=0.0))
    status, body = run(_post_to(app, review(CLUSTER)))
    assert status == 200 and f"rule {CODE} failed internally" not in str(body)  # info findings are not warnings
    assert rule_errors(app.metrics.registry, CODE) == 1


async def _post_to(app: AdmissionApp, body: dict):
    client = TestClient(TestServer(app.build(), host="127.0.0.1"))
    await client.start_server()
    try:
        resp = await client.post("/validate", json=body)
        return resp.status, await resp.json()
    finally:
        await client.close()


def test_the_operator_stand_in_counts_rule_errors(broken_rule, lenient) -> None:
    from tools.operator_standin.runtime import Ctx

    ctx = Ctx(kube=None, driver=None, lookup=LiveLookup(world(), ttl=0.0))  # type: ignore[arg-type]
    message = run(ctx.validation_error(CLUSTER))
    assert CODE not in (message or "")  # the broken rule neither denies nor admits
    assert rule_errors(ctx.metrics.registry, CODE) == 1


def test_without_errors_nothing_is_counted() -> None:
    app = AdmissionApp(Settings(), LiveLookup(world(), ttl=0.0))
    run(_post_to(app, review(CLUSTER)))
    assert rule_errors(app.metrics.registry, CODE) is None
