"""Lint throughput against parse-only time (PyYAML's C loader) on a generated corpus, measured in the same run.

    python bench/lint.py [--docs N] [--quick]

Targets: lint <= 2x parse-only, >= 5,000 docs/s on one core. The last line is machine-readable:
RESULT docs_per_s=<n> ratio_to_parse=<x>
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webhook.lint.run import LintRun

CLUSTER = """\
apiVersion: psmdb.percona.com/v1
kind: PerconaServerMongoDB
metadata: {{name: cluster-{i}, namespace: ns-{ns}}}
spec:
  crVersion: 1.2{v}.0
  replsets: [{{name: rs0, size: 3}}]
  backup:
    enabled: true
    image: percona/percona-backup-mongodb:2.15.0
    storages:
      s3-main: {{type: s3, main: true, s3: {{bucket: b{i}, region: us-east-1, credentialsSecret: s3}}}}
      azure: {{type: azure, azure: {{container: c, credentialsSecret: az}}}}
      fs: {{type: filesystem, filesystem: {{path: /mnt/b}}}}
    volumeMounts: [{{name: nfs, mountPath: /mnt}}]
    pitr: {{enabled: true, compressionType: gzip}}
    tasks:
      - {{name: daily, enabled: true, schedule: "{sched}", storageName: {storage}, retention: {{type: count, count: 7}}}}
      - {{name: weekly, enabled: true, schedule: "0 1 * * SUN", storageName: azure, type: physical}}
"""
BACKUP = """\
apiVersion: psmdb.percona.com/v1
kind: PerconaServerMongoDBBackup
metadata: {{name: backup-{i}, namespace: ns-{ns}}}
spec: {{clusterName: cluster-{c}, storageName: {storage}, type: logical, compressionType: gzip}}
"""
RESTORE = """\
apiVersion: psmdb.percona.com/v1
kind: PerconaServerMongoDBRestore
metadata: {{name: restore-{i}, namespace: ns-{ns}}}
spec:
  clusterName: cluster-{c}
  backupName: backup-{b}
  pitr: {{type: date, date: "2026-11-0{d} 12:00:00"}}
"""
OTHER = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}}}\ndata: {{a: b}}\n"


def corpus(n_docs: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    docs = []
    for i in range(n_docs):
        ns, c = i % 50, rnd.randrange(max(1, i // 4 + 1))
        pick = rnd.random()
        if pick < 0.25:
            docs.append(
                CLUSTER.format(
                    i=i,
                    ns=ns,
                    v=rnd.choice("0123"),
                    storage=rnd.choice(["s3-main", "fs", "nope"]),
                    sched=rnd.choice(["0 0 * * *", "@daily", "0 0 * * 7", "CRON_TZ=UTC 0 3 * * *"]),
                )
            )
        elif pick < 0.6:
            docs.append(BACKUP.format(i=i, ns=ns, c=c, storage=rnd.choice(["s3-main", "azure", "gcs"])))
        elif pick < 0.85:
            docs.append(RESTORE.format(i=i, ns=ns, c=c, b=rnd.randrange(i + 1), d=rnd.randrange(1, 10)))
        else:
            docs.append(OTHER.format(i=i))
    return docs


def write(docs: list[str], root: Path, per_file: int = 100) -> list[Path]:
    files = []
    for start in range(0, len(docs), per_file):
        f = root / f"manifests-{start // per_file:04d}.yaml"
        f.write_text("---\n".join(docs[start : start + per_file]))
        files.append(f)
    return files


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="10,000 documents, 2 repeats (well under 30 s)")
    args = ap.parse_args()
    n, repeats = (10_000, 2) if args.quick else (max(args.docs, 10_000), 3)
    with tempfile.TemporaryDirectory() as tmp:
        files = write(corpus(n), Path(tmp))

        def parse_only() -> None:
            for f in files:
                for _ in yaml.load_all(f.read_text(), Loader=yaml.CSafeLoader):
                    pass

        report = LintRun().lint_paths([tmp])  # warm-up, and a sanity check that the rules really ran
        assert report.documents == n and report.findings, "the corpus must produce findings"
        t_parse = best_of(repeats, parse_only)
        t_lint = best_of(repeats, lambda: LintRun().lint_paths([tmp]))
    rate, ratio = n / t_lint, t_lint / t_parse
    print(f"documents: {n} ({report.checked} checked, {report.skipped} other kinds, {len(report.findings)} findings)")
    print(f"parse only (PyYAML CSafeLoader): {t_parse:.3f} s = {n / t_parse:,.0f} docs/s")
    print(f"lint:                            {t_lint:.3f} s = {rate:,.0f} docs/s")
    print(
        f"targets: ratio <= 2.0 ({'met' if ratio <= 2 else 'MISSED'}), >= 5,000 docs/s "
        f"({'met' if rate >= 5000 else 'MISSED'})"
    )
    print(f"RESULT docs_per_s={rate:.0f} ratio_to_parse={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
