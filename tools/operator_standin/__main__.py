"""`python -m tools.operator_standin --kubeconfig K [--namespace NS ...]`: see the package docstring."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.operator_standin.faults import FAULTS  # noqa: E402
from tools.operator_standin.operator import main  # noqa: E402
from tools.operator_standin.runtime import Settings  # noqa: E402
from webhook import logs  # noqa: E402
from webhook.controller.manager import Options  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.operator_standin", description=__doc__)
    p.add_argument("--kubeconfig", required=True, metavar="FILE")
    p.add_argument("--context")
    p.add_argument("-n", "--namespace", action="append", default=[], help="repeatable; default: every namespace")
    p.add_argument("--poll-interval", type=float, default=5.0, metavar="SECONDS", help="running operations (5)")
    p.add_argument("--lock-duration", type=int, default=300, metavar="SECONDS", help="cluster lock Lease (300)")
    p.add_argument("--pbm-timeout", type=float, default=60.0, metavar="SECONDS", help="one pbm command (60)")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=sorted(FAULTS),
        help="reproduce a known operator fault (repeatable): "
        + "; ".join(f"{name}: {what}" for name, what in sorted(FAULTS.items())),
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="json", choices=["json", "text"])
    return p.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logs.setup(args.log_level, args.log_format)
    opts = Options(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespaces=args.namespace,
        leader_elect=False,
        workers=args.workers,
    )
    settings = Settings(
        poll_interval=args.poll_interval, lock_duration=args.lock_duration, faults=frozenset(args.fault)
    )
    return asyncio.run(main(opts, settings, args.pbm_timeout))


if __name__ == "__main__":
    sys.exit(run())
