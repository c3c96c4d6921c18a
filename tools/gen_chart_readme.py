"""Writes charts/psmdb-backup-webhook/README.md from the chart's values.yaml: every value with its default and the
comment right above its key. A value without a comment is an error, so the README lists every value.

    python tools/gen_chart_readme.py           # rewrite the README
    python tools/gen_chart_readme.py --check   # exit 1 if it is stale (tests/unit/test_helm_chart.py runs this)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "psmdb-backup-webhook"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):")

HEADER = """\
# psmdb-backup-webhook Helm chart

Installs the same objects as the kustomize install in `manifests/` (the admission webhooks, the companion backup
controller, their least-privilege RBAC, the certificate Job or cert-manager objects, the CRDs), with the same Pod
Security `restricted` settings; tests render both and compare them. Installation and upgrades: docs/install.md.

```sh
kubectl create namespace psmdb-backup-system
kubectl label namespace psmdb-backup-system pod-security.kubernetes.io/enforce=restricted
helm install psmdb-backup-webhook charts/psmdb-backup-webhook -n psmdb-backup-system
```

Add `--skip-crds` where the Percona operator installed its CRDs already. Bad values are refused at install by
`values.schema.json`.

## Values

Generated from `values.yaml` by `tools/gen_chart_readme.py`; do not edit by hand.

| Key | Default | Description |
|-----|---------|-------------|
"""


def comments(text: str) -> dict[str, str]:
    """Dotted key path -> the comment block right above that key."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    block: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            block.append(stripped.lstrip("#").strip())
            continue
        m = KEY.match(line)
        if not m or stripped.startswith("-"):
            block = []
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m["key"]))
        if block:
            found[".".join(k for _, k in stack)] = " ".join(block)
        block = []
    return found


def leaves(values: dict[str, Any], described: dict[str, str], prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted paths of the documented values: a map with its own comment (resources, selectors, label maps) is one
    value; a map without one (image, webhook, ...) is a group whose keys are listed."""
    out: list[tuple[str, Any]] = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in described:
            out.extend(leaves(value, described, path + "."))
        else:
            out.append((path, value))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(values_text: str) -> str:
    values = yaml.safe_load(values_text)
    described = comments(values_text)
    rows = []
    missing = []
    for path, value in leaves(values, described):
        text = described.get(path)
        if text is None:
            missing.append(path)
            continue
        default = json.dumps(value, separators=(", ", ": "))
        rows.append(f"| `{path}` | `{_cell(default)}` | {_cell(text)} |")
    if missing:
        raise SystemExit(f"values.yaml: no comment above {', '.join(missing)} (every value needs a description)")
    return HEADER + "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    text = render((CHART / "values.yaml").read_text())
    readme = CHART / "README.md"
    if "--check" in argv:
        if not readme.exists() or readme.read_text() != text:
            print(f"{readme} is stale: run `python tools/gen_chart_readme.py`", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
