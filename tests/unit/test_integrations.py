"""The ways in from other tools: pre-commit hook, GitHub Action, kubectl plugin, shell completion.

Each is run for real where this machine can: pre-commit installs the hook from a git snapshot of the working tree
(PyPI for its dependencies), the action's lint step runs in bash exactly as the runner starts it, the plugin runs
under the real kubectl built by tools/build-control-plane.sh, and the bash completion script is sourced and asked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook.cli import build_parser, prog_name
from webhook.completion import SHELLS
from webhook.findings import Severity
from webhook.lint.formats import FORMATS
from webhook.lint.run import LintRun

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent  # where `pip install -e .` put the console scripts
BAD = ROOT / "examples" / "bad" / "cluster.yaml"
GOOD = ROOT / "examples" / "good" / "cluster.yaml"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def console_script(name: str) -> Path:
    path = VENV_BIN / name
    assert path.exists(), f"{path} is missing: reinstall the project (pip install -e .) after editing pyproject.toml"
    return path


def error_codes(path: Path) -> set[str]:
    """What the linter itself reports for a file, so the tests follow the examples when they change."""
    report = LintRun().lint_paths([str(path)])
    codes = {f.code for f in report.findings if f.severity == Severity.ERROR}
    assert codes, f"{path} was expected to have errors"
    return codes


def run(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


# --- pre-commit hook -------------------------------------------------------------------------------------------

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(*args: str, cwd: Path) -> str:
    proc = run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def snapshot(src: Path, dest: Path) -> str:
    """Commit the working tree (tracked and untracked, less what .gitignore excludes) into a new repository.

    pre-commit installs a hook repository from a commit; a snapshot makes the uncommitted hook manifest and code
    count, where `pre-commit try-repo` on the project would see only what is committed plus edits to tracked files.
    """
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=src).split("\0")
    for rel in filter(None, files):
        source = src / rel
        if not source.is_symlink() and not source.exists():
            continue  # deleted in the working tree
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / rel, follow_symlinks=False)
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "--no-gpg-sign", "-m", "snapshot", cwd=dest)
    return git("rev-parse", "HEAD", cwd=dest).strip()


@pytest.mark.timeout(300)
def test_pre_commit_hook_fails_bad_manifests_and_passes_good_ones(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    rev = snapshot(ROOT, hooks)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(BAD, work / "bad.yaml")
    shutil.copy(GOOD, work / "good.yaml")
    (work / "broken.json").write_text('{"kind": ')  # JSON is linted too ...
    (work / "notes.txt").write_text('{"kind": ')  # ... other files are not
    config = {"repos": [{"repo": str(hooks), "rev": rev, "hooks": [{"id": "psmdb-backup-lint"}]}]}
    (work / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config))
    git("init", "-q", cwd=work)
    git("add", "-A", cwd=work)
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "NO_COLOR": "1"}
    pre_commit = [sys.executable, "-m", "pre_commit", "run", "--color", "never"]

    failed = run([*pre_commit, "--all-files"], cwd=work, env=env, timeout=240)
    out = failed.stdout + failed.stderr
    assert failed.returncode == 1, out
    assert re.search(r"^psmdb-backup lint\.+Failed$", out, re.M), out
    for code in error_codes(BAD):
        assert re.search(rf"^bad\.yaml:\d+:\d+ error {code} ", out, re.M), (code, out)
    assert re.search(r"^broken\.json:\d+:\d+ error PSB000 ", out, re.M), out
    assert "good.yaml" not in out and "notes.txt" not in out

    passed = run([*pre_commit, "--files", "good.yaml", "notes.txt"], cwd=work, env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert re.search(r"^psmdb-backup lint\.+Passed$", passed.stdout, re.M), passed.stdout


def test_pre_commit_hook_manifest() -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "psmdb-backup-lint"
    assert hook["language"] == "python"
    assert hook["types_or"] == ["yaml", "json"]
    # The entry is a real invocation of the console script the package installs.
    script, *args = hook["entry"].split()
    assert script == "psmdb-backup"
    assert build_parser().parse_args([*args, "x.yaml"]).command == "lint"


# --- GitHub Action ---------------------------------------------------------------------------------------------

ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def strings(node: Any):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def test_action_declares_every_input_it_uses() -> None:
    runs = ACTION["runs"]
    assert runs["using"] == "composite"
    steps = runs["steps"]
    ids = {s["id"] for s in steps if "id" in s}
    used_inputs = set()
    for expr in (e for s in strings(steps) for e in EXPRESSION.findall(s)):
        scope, _, rest = expr.partition(".")
        if scope == "inputs":
            used_inputs.add(rest)
        elif scope == "steps":
            assert rest.split(".")[0] in ids, expr
        else:
            assert expr == "github.action_path", f"unexpected expression {expr!r}"
    assert used_inputs == set(ACTION["inputs"])  # each one declared, and each declared one used
    assert ACTION["inputs"]["paths"]["default"] == "."
    assert ACTION["inputs"]["fail-on"]["default"] == "error"
    assert ACTION["inputs"]["python-version"]["default"] == "3.11"
    assert ACTION["inputs"]["version"]["default"] == "" and ACTION["inputs"]["sarif-file"]["default"] == ""
    for choice in ("error", "warning", "info"):
        build_parser().parse_args(["lint", "--fail-on", choice])
    setup = steps[0]
    assert setup["uses"] == "actions/setup-python@v5"
    assert setup["with"] == {"python-version": "${{ inputs.python-version }}"}
    for step in steps[1:]:
        assert step["shell"] == "bash"
        # Inputs are passed through env, never pasted into the script (no shell injection from a path or version).
        assert not EXPRESSION.search(step["run"]), step["run"]
        syntax = run(["bash", "-n", "-c", step["run"]])
        assert syntax.returncode == 0, syntax.stderr


def recording_cli(path: Path, log: Path) -> Path:
    """A `psmdb-backup` that writes down its arguments before running the real CLI."""
    path.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"with open({str(log)!r}, 'a') as f: f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "from webhook.cli import main\nsys.exit(main())\n"
    )
    path.chmod(0o755)
    return path


def run_lint_step(tmp_path: Path, **inputs: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run the action's lint step as the runner does (`bash --noprofile --norc -eo pipefail`), expressions
    substituted from the inputs (defaults applied) and the install step's output."""
    log = tmp_path / "argv.jsonl"
    context = {f"inputs.{k}": v.get("default", "") for k, v in ACTION["inputs"].items()}
    context |= {f"inputs.{k}": v for k, v in inputs.items()}
    context["steps.install.outputs.bin"] = str(recording_cli(tmp_path / "psmdb-backup", log))
    (step,) = [s for s in ACTION["runs"]["steps"] if s.get("name") == "Lint"]
    env = {**os.environ, "RUNNER_TEMP": str(tmp_path)}
    env |= {k: EXPRESSION.sub(lambda m: context[m.group(1)], v) for k, v in step["env"].items()}
    script = tmp_path / "step.sh"
    script.write_text(step["run"])
    proc = run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=tmp_path / "ws", env=env)
    argvs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, argvs


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "ws" / "deploy")
    return tmp_path / "ws"


def test_action_annotates_and_writes_sarif(tmp_path: Path, workspace: Path) -> None:
    proc, argvs = run_lint_step(
        tmp_path, paths="deploy/bad/cluster.yaml\n deploy/good ", **{"sarif-file": "reports/psmdb.sarif"}
    )
    assert proc.returncode == 1, proc.stderr  # the annotations run's exit code, though the SARIF run came first
    for code in error_codes(BAD):
        assert re.search(
            rf"^::error file=deploy/bad/cluster\.yaml,line=\d+,col=\d+,title={code} ", proc.stdout, re.M
        ), (code, proc.stdout)
    sarif = json.loads((workspace / "reports" / "psmdb.sarif").read_text())
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= error_codes(BAD)
    # Both commands are valid invocations of the real parser, with the inputs where they belong.
    parsed = [build_parser().parse_args(a) for a in argvs]
    assert [(a.format, a.output, a.paths) for a in parsed] == [
        ("sarif", "reports/psmdb.sarif", ["deploy/bad/cluster.yaml", "deploy/good"]),
        ("github", None, ["deploy/bad/cluster.yaml", "deploy/good"]),
    ]
    assert parsed[1].fail_on == "error"


def test_action_passes_clean_manifests_without_sarif(tmp_path: Path, workspace: Path) -> None:
    proc, argvs = run_lint_step(tmp_path, paths="deploy/good", **{"fail-on": "warning"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""  # no annotations
    assert [(a.format, a.fail_on) for a in map(build_parser().parse_args, argvs)] == [("github", "warning")]


def test_action_lints_the_workspace_by_default(tmp_path: Path, workspace: Path) -> None:
    proc, argvs = run_lint_step(tmp_path)
    assert proc.returncode == 1 and "deploy/bad/cluster.yaml" in proc.stdout
    assert build_parser().parse_args(argvs[0]).paths == ["."]


# --- kubectl plugin --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv0", "prog"),
    [
        ("/venv/bin/kubectl-psmdb_backup", "kubectl psmdb-backup"),
        ("kubectl-psmdb_backup", "kubectl psmdb-backup"),
        ("/usr/local/bin/psmdb-backup", "psmdb-backup"),
        ("/venv/lib/python3.11/site-packages/webhook/cli.py", "psmdb-backup"),
    ],
)
def test_prog_name(argv0: str, prog: str) -> None:
    assert prog_name(argv0) == prog


@pytest.fixture(scope="module")
def kubectl() -> Path:
    from tools.controlplane import ControlPlaneError, find_bin_dir

    try:
        return find_bin_dir() / "kubectl"
    except ControlPlaneError as exc:
        if os.environ.get("PSMDB_REQUIRE_E2E") == "1":
            raise
        pytest.skip(f"kubectl is not built (tools/build-control-plane.sh): {exc}")


@pytest.mark.e2e
def test_kubectl_plugin(kubectl: Path, tmp_path: Path) -> None:
    plugin = console_script("kubectl-psmdb_backup")
    # Only the venv's scripts on PATH, so no other plugin of the same name shadows ours; no cluster is needed.
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(VENV_BIN), "/usr/bin", "/bin"]),
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
        "NO_COLOR": "1",
    }

    listed = run([str(kubectl), "plugin", "list"], env=env)
    assert str(plugin) in listed.stdout.splitlines(), listed.stdout + listed.stderr

    lint = run([str(kubectl), "psmdb-backup", "lint", str(BAD)], env=env)
    assert lint.returncode == 1, lint.stderr
    for code in error_codes(BAD):
        assert re.search(rf"^{re.escape(str(BAD))}:\d+:\d+ error {code} ", lint.stdout, re.M), (code, lint.stdout)
    assert run([str(kubectl), "psmdb-backup", "lint", str(GOOD)], env=env).returncode == 0

    usage = run([str(kubectl), "psmdb-backup", "lint", "--help"], env=env)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: kubectl psmdb-backup lint ")


# --- shell completion ------------------------------------------------------------------------------------------

# Ask the completion function registered for psmdb-backup what it offers for a command line (cursor at the end).
ASK = """
source <(psmdb-backup completion bash)
complete -p psmdb-backup
fn=$(complete -p psmdb-backup | sed -E 's/.* -F ([^ ]+) .*/\\1/')
ask() {
  COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
  "$fn" psmdb-backup "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
  echo "${COMPREPLY[*]}"
}
ask psmdb-backup ''
ask psmdb-backup lint --f
ask psmdb-backup lint --format ''
ask psmdb-backup lint --fail-on ''
ask psmdb-backup completion ''
ask psmdb-backup lint exa
"""


def test_bash_completion_registers_and_completes(tmp_path: Path) -> None:
    console_script("psmdb-backup")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])}
    proc = run(["bash", "--norc", "--noprofile", "-c", ASK], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    registered, *answers = proc.stdout.splitlines()
    assert registered.startswith("complete ") and registered.endswith(" psmdb-backup")
    subcommands, flags, formats, severities, shells, files = (set(a.split()) for a in answers)
    assert {"lint", "serve", "inject", "certs", "completion"} <= subcommands
    assert flags == {"--format", "--fail-on"}
    assert formats == set(FORMATS)
    assert severities == {"error", "warning", "info"}
    assert shells == set(SHELLS)
    assert files == {"examples"}  # PATH arguments complete file names


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_script_for_every_shell(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    import shtab

    from webhook.cli import main

    assert shell in shtab.SUPPORTED_SHELLS
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert "psmdb-backup" in out and "--fail-on" in out
    assert all(name in out for name in FORMATS)
