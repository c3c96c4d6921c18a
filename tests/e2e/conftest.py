"""Session fixture: one local cluster with the webhooks installed (tools/devcluster.py) for every e2e test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools import devcluster
from tools.devcluster import Cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = devcluster.start(tmp_path_factory.mktemp("control-plane"))
    try:
        yield c
    finally:
        devcluster.stop(c)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failed e2e test, attach the tails of every process log (API server, kwok, webhook) to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "cluster" in getattr(item, "funcargs", {}):
        c: Cluster = item.funcargs["cluster"]
        report.sections.append(("control-plane logs", c.cp.log_tail()))
        report.sections.append(("psmdb-backup serve log", c.webhook.log_tail()))
