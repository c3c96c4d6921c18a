"""Collect tests/data/realworld/: manifests written outside this project, with their provenance.

    python tools/collect_realworld.py --operator DIR --charts DIR --docs DIR --helm BIN [--out tests/data/realworld]

Each DIR is a git checkout or bare clone of percona/percona-server-mongodb-operator, percona/percona-helm-charts and
percona/k8spsmdb-docs; files are read at the commits pinned below (`git show`), never from a work tree, so a rerun
gives the same corpus. Files are copied byte for byte, except that documentation snippets are taken out of their
Markdown code blocks (dedented, mkdocs variables such as `{{ release }}` replaced from the docs' variables.yml, as
the published page shows them). The psmdb-db chart is rendered with `helm template` twice: with its default values
and with the examples its values.yaml documents in comments (values-documented.yaml, written here by hand).
README.md lists every file with its repository, path, commit and licence.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

OPERATOR = ("percona/percona-server-mongodb-operator", "b15af50030bfc5558813b86b160e87fd304a409c", "Apache-2.0")
CHARTS = ("percona/percona-helm-charts", "dd5ceba1c1af1a07b2cf5ab4d177ab7dd19a85b3", "Apache-2.0")
DOCS = ("percona/k8spsmdb-docs", "dbe20c14453193079e99bd7290b0bf70bee29c5c", "CC-BY-4.0")
PSMDB_KIND = re.compile(r"^kind:\s*PerconaServerMongoDB(Backup|Restore)?\s*$", re.M)
OPERATOR_PATHS = ("deploy/cr.yaml", "deploy/cr-minimal.yaml", "deploy/backup", "deploy/backup-s3.yaml",
                  "deploy/backup-gcs.yaml", "e2e-tests")  # fmt: skip
CODE_BLOCK = re.compile(r"^(?P<indent>[ \t]*)```\s*\{?\.?ya?ml[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
MKDOCS_VAR = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")

# The examples values.yaml of psmdb-db 1.22.2 shows in comments under `backup:`, uncommented (the comments' own
# indentation puts azure-blob under minio and backup-nfs outside storages; they are placed as storages here).
DOCUMENTED_VALUES = """\
# psmdb-db values.yaml, the commented examples of `backup:` switched on (see tools/collect_realworld.py).
backup:
  enabled: true
  storages:
    s3-us-west:
      main: true
      type: s3
      s3:
        bucket: S3-BACKUP-BUCKET-NAME-HERE
        credentialsSecret: my-cluster-name-backup-s3
        serverSideEncryption:
          kmsKeyID: 1234abcd-12ab-34cd-56ef-1234567890ab
          sseAlgorithm: aws:kms
          sseCustomerAlgorithm: AES256
          sseCustomerKey: Y3VzdG9tZXIta2V5
        retryer:
          numMaxRetries: 3
          minRetryDelay: 30ms
          maxRetryDelay: 5m
        region: us-west-2
        prefix: ""
        uploadPartSize: 10485760
        maxUploadParts: 10000
        storageClass: STANDARD
        insecureSkipTLSVerify: false
    gcs:
      type: gcs
      gcs:
        bucket: GCS-BACKUP-BUCKET-NAME-HERE
        prefix: ""
        credentialsSecret: my-cluster-name-backup-gcs
        chunkSize: 10485760
        retryer:
          backoffInitial: 1
          backoffMax: 30
          backoffMultiplier: 2
    minio:
      type: minio
      minio:
        bucket: MINIO-BACKUP-BUCKET-NAME-HERE
        region: us-east-1
        credentialsSecret: my-cluster-name-backup-minio
        endpointUrl: minio.psmdb.svc.cluster.local:9000/minio/
        insecureSkipTLSVerify: false
        caBundle:
          name: minio-ca-bundle
          key: ca.crt
        prefix: ""
        secure: false
    azure-blob:
      type: azure
      azure:
        container: CONTAINER-NAME
        prefix: PREFIX-NAME
        endpointUrl: https://accountName.blob.core.windows.net
        credentialsSecret: SECRET-NAME
  pitr:
    enabled: false
    oplogOnly: false
    compressionType: gzip
    compressionLevel: 6
  tasks:
  - name: daily-s3-us-west
    enabled: true
    schedule: "0 0 * * *"
    retention:
      count: 3
      type: count
      deleteFromStorage: true
    storageName: s3-us-west
    compressionType: gzip
  - name: weekly-s3-us-west
    enabled: false
    schedule: "0 0 * * 0"
    retention:
      count: 3
      type: count
      deleteFromStorage: true
    storageName: s3-us-west
    compressionType: gzip
  - name: weekly-s3-us-west-physical
    enabled: false
    schedule: "0 5 * * 0"
    retention:
      count: 3
      type: count
      deleteFromStorage: true
    type: physical
    storageName: s3-us-west
    compressionType: gzip
    compressionLevel: 6
"""


@dataclass(frozen=True)
class Entry:
    out: str  # path under the corpus
    repo: str
    source: str  # path in the repository (and how it was derived)
    commit: str
    licence: str


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def operator_files(repo: Path, out: Path) -> list[Entry]:
    name, commit, licence = OPERATOR
    entries = []
    for path in git(repo, "ls-tree", "-r", "--name-only", commit, "--", *OPERATOR_PATHS).splitlines():
        if not path.endswith((".yaml", ".yml")):
            continue
        text = git(repo, "show", f"{commit}:{path}")
        if PSMDB_KIND.search(text):
            target = out / "operator" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            entries.append(Entry(f"operator/{path}", name, path, commit, licence))
    return entries


def chart_renders(repo: Path, out: Path, helm: str) -> list[Entry]:
    name, commit, licence = CHARTS
    work = out.parent / ".psmdb-db-chart"
    work.mkdir(exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", commit, "charts/psmdb-db"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    chart = work / "charts" / "psmdb-db"
    target = out / "psmdb-db"
    target.mkdir(parents=True, exist_ok=True)
    (target / "values-documented.yaml").write_text(DOCUMENTED_VALUES)
    entries = []
    for label, extra in (("default", []), ("documented", ["-f", str(target / "values-documented.yaml")])):
        rendered = subprocess.run(
            [helm, "template", "my-db", str(chart), "--namespace", "psmdb", *extra],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (target / f"rendered-{label}.yaml").write_text(rendered)
        how = "helm template my-db charts/psmdb-db --namespace psmdb" + (" -f values-documented.yaml" if extra else "")
        entries.append(Entry(f"psmdb-db/rendered-{label}.yaml", name, f"charts/psmdb-db ({how})", commit, licence))
    subprocess.run(["rm", "-rf", str(work)], check=True)
    return entries


def docs_snippets(repo: Path, out: Path) -> list[Entry]:
    name, commit, licence = DOCS
    variables = yaml.safe_load(git(repo, "show", f"{commit}:variables.yml")) or {}
    entries = []
    for path in git(repo, "ls-tree", "-r", "--name-only", commit, "--", "docs").splitlines():
        if not path.endswith(".md") or "/RN/" in path:  # release notes quote fragments of older versions
            continue
        page = git(repo, "show", f"{commit}:{path}")
        for n, m in enumerate(CODE_BLOCK.finditer(page), 1):
            body = MKDOCS_VAR.sub(lambda v: str(variables.get(v.group(1), v.group(0))), textwrap.dedent(m["body"]))
            if not PSMDB_KIND.search(body):
                continue
            try:
                list(yaml.safe_load_all(body))
            except yaml.YAMLError:
                continue  # a fragment with "..." elisions: not a manifest anyone applies
            line = page.count("\n", 0, m.start()) + 1
            rel = f"docs/{Path(path).stem}/block-{n:02d}.yaml"
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            entries.append(Entry(rel, name, f"{path}:{line}", commit, licence))
    return entries


def readme(entries: list[Entry]) -> str:
    rows = "\n".join(f"| `{e.out}` | {e.repo} | `{e.source}` | `{e.commit[:12]}` | {e.licence} |" for e in entries)
    return f"""# Real-world corpus

Manifests written outside this project, linted by tests/unit/test_realworld.py: every finding must be listed in
expected.yaml with its reason, and documents the operator accepts must give no error. Collected by
`tools/collect_realworld.py` (read it for how each file was derived); {len(entries)} files.

Sources: the operator repository at `b15af500` (main of 2026-07-02, the newest commit of the 1.23.0 cycle available
here; its deploy/ and e2e-tests/ conf files carry crVersion 1.23.0), the psmdb-db Helm chart 1.22.2 (appVersion
1.22.0, the newest chart published) rendered with helm v4.3.2, and the documentation's 1.23.0 branch (Markdown
code blocks that are whole PSMDB objects). The operator's e2e conf files are templates: the e2e scripts fill blank
fields (`name:`, `backupName:`, `image:` ...) with yq before applying them, so their blanks are expected findings.

Licences: Apache-2.0 (operator, charts; the files keep their terms, see the repositories' LICENSE), CC BY 4.0
(documentation: © Percona, snippets taken unchanged apart from dedenting and variable substitution).

| File | Repository | Path | Commit | Licence |
|---|---|---|---|---|
{rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operator", type=Path, required=True)
    parser.add_argument("--charts", type=Path, required=True)
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--helm", required=True)
    parser.add_argument("--out", type=Path, default=Path("tests/data/realworld"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    entries = operator_files(args.operator, args.out)
    entries += chart_renders(args.charts, args.out, args.helm)
    entries += docs_snippets(args.docs, args.out)
    (args.out / "README.md").write_text(readme(entries))
    print(f"{len(entries)} files written to {args.out}")


if __name__ == "__main__":
    main()
