"""The product runs no PBM command that changes anything (issue 17 item 6): a scan of every module under webhook/.

What it proves, statically:
* the exec API and local processes are reached only in webhook/controller/kubeexec.py (the transports);
* every `pbm` command goes through `PBMReader._run`/`_json` with a literal subcommand among READ_ONLY (or, inside
  pbmread.py, a variable that `_run` itself checks against `PBMReader.commands`), never with a whole `argv=`;
* no module loosens `PBMReader.commands` or subclasses the reader, and any literal `["pbm", X, ...]` has X read-only.
At run time `_run` refuses the rest (tests/unit/test_controller_parts.py).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook.controller import pbmread

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK = ROOT / "webhook"
READ_ONLY = frozenset({"status", "describe-backup", "describe-restore", "list", "version"})
TRANSPORTS = {
    ("api", "connect_get_namespaced_pod_exec"),
    ("asyncio", "create_subprocess_exec"),
    ("asyncio", "create_subprocess_shell"),
    *(("subprocess", f) for f in ("run", "Popen", "call", "check_call", "check_output")),
    *(("os", f) for f in ("system", "popen", "execv", "execvp")),
}
# Processes the product starts that are not PBM, each reviewed: file -> what it runs.
OTHER_PROCESSES = {"webhook/lint/kustomize.py": "kubectl kustomize DIR (lint -k)"}
TRANSPORT_HOME = "webhook/controller/kubeexec.py"
READER_HOME = "webhook/controller/pbmread.py"


def _name(node: ast.AST) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def violations(source: str, where: str) -> Iterator[str]:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = _name(node.func)
            owner = _name(node.func.value) if isinstance(node.func, ast.Attribute) else ""
            if (owner, callee) in TRANSPORTS and where not in (TRANSPORT_HOME, *OTHER_PROCESSES):
                yield f"{where}:{node.lineno}: {owner}.{callee}() outside the exec transports ({TRANSPORT_HOME})"
            if callee in ("_run", "_json") and isinstance(node.func, ast.Attribute) and len(node.args) >= 2:
                if any(k.arg == "argv" for k in node.keywords):
                    yield f"{where}:{node.lineno}: {callee}(argv=...) runs a whole command line past the check"
                cmd = node.args[1]
                first = cmd.elts[0] if isinstance(cmd, (ast.List, ast.Tuple)) and cmd.elts else cmd
                if isinstance(first, ast.Constant):
                    if first.value not in READ_ONLY:
                        yield f"{where}:{node.lineno}: pbm {first.value} is not a read"
                elif where != READER_HOME:
                    yield f"{where}:{node.lineno}: {callee}() with a computed pbm subcommand outside {READER_HOME}"
        if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) >= 2:
            head, sub = node.elts[0], node.elts[1]
            if isinstance(head, ast.Constant) and head.value == "pbm" and isinstance(sub, ast.Constant):
                if sub.value not in READ_ONLY:
                    yield f"{where}:{node.lineno}: ['pbm', {sub.value!r}, ...] is not a read"
        if isinstance(node, ast.ClassDef) and any(_name(b) == "PBMReader" for b in node.bases):
            yield f"{where}:{node.lineno}: class {node.name} extends PBMReader (it could run writes)"
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_name(t) == "commands" for t in targets) and where != READER_HOME:
                yield f"{where}:{node.lineno}: assigns a reader's `commands`"


def scan() -> list[str]:
    out: list[str] = []
    for path in sorted(WEBHOOK.rglob("*.py")):
        out += violations(path.read_text(), str(path.relative_to(ROOT)))
    return out


def test_nothing_under_webhook_runs_a_pbm_command_that_changes_anything() -> None:
    assert scan() == []


def test_the_reader_allows_reads_only() -> None:
    assert pbmread.READ_COMMANDS <= READ_ONLY
    assert pbmread.PBMReader.commands == pbmread.READ_COMMANDS


@pytest.mark.parametrize(
    ("snippet", "found"),
    [
        ("await self._run(ref, ['backup', '--type', 'logical'])", "pbm backup is not a read"),
        ("await reader._json(ref, ('config', '--set', 'pitr.enabled=false'))", "pbm config is not a read"),
        ("await r._run(ref, ['status'], argv=['pbm', 'cancel-backup'])", "runs a whole command line"),
        ("await r._json(ref, args)", "computed pbm subcommand"),
        ("argv = ['pbm', 'delete-backup', name, '--yes']", "'delete-backup'"),
        ("await api.connect_get_namespaced_pod_exec(pod, ns, command=cmd)", "outside the exec transports"),
        ("subprocess.run([pbm, 'backup'], check=True)", "outside the exec transports"),
        ("class Writer(PBMReader):\n    pass", "extends PBMReader"),
        ("reader.commands = None", "assigns a reader's `commands`"),
    ],
)
def test_the_scan_finds_each_way_of_running_a_write(snippet: str, found: str) -> None:
    """The scan is not vacuous: each pattern above, placed in a product module, is reported."""
    assert any(found in v for v in violations(snippet, "webhook/controller/status.py"))


def test_reads_pass_the_scan() -> None:
    ok = "await self._json(ref, ['describe-backup', name])\nawait self._run(ref, ['version'])\nx = ['pbm', 'list']"
    assert list(violations(ok, "webhook/controller/status.py")) == []
