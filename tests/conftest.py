"""Session-wide guards: a run that skipped the end-to-end tests must not pass silently; a rule that raises fails the
test that ran it (strict rule mode, also inherited by the servers the end-to-end tests start)."""

from __future__ import annotations

import os

import pytest

os.environ["PSMDB_STRICT_RULES"] = "1"
_e2e_passed = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _e2e_passed
    if report.when == "call" and report.passed and "e2e" in report.keywords:
        _e2e_passed += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    terminalreporter.write_line(f"end-to-end tests passed against the real kube-apiserver: {_e2e_passed}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("PSMDB_REQUIRE_E2E") == "1" and _e2e_passed == 0 and exitstatus == 0:
        session.exitstatus = 1
        print("\nFAILED: PSMDB_REQUIRE_E2E=1 but no end-to-end test ran and passed against the real API server")
