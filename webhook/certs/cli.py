"""`psmdb-backup certs`: issue, rotate, store and patch from the command line."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..kube import CredentialsError, new_api_client
from ..times import format_rfc3339
from .files import CertState, load_or_create, write_dir
from .pki import (
    DEFAULT_CA_COMMON_NAME,
    DEFAULT_CA_DAYS,
    DEFAULT_DAYS,
    DEFAULT_ROTATE_BEFORE,
    DNS_LABEL,
    MAX_CN,
    TLS_CERT,
    CertsError,
    cert_sans,
    cert_serial,
    load_cert,
    normalize_sans,
    not_after,
    pair_matches,
    service_sans,
)
from .store import patch_ca_bundle, read_secret, store_secret

log = logging.getLogger(__name__)

EXIT_USAGE = 2
_DURATION = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ``1d12h``, ``90m``, ``2w``, ``3600s``; ``0`` means none. Raises ``ValueError``."""
    s = text.strip().lower()
    if s == "0":
        return dt.timedelta(0)
    if not s or _DURATION.sub("", s) != "":
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 30d, 12h, 1d12h, 90m, 2w")
    total = dt.timedelta(0)
    for n, unit in _DURATION.findall(s):
        total += dt.timedelta(**{_UNITS[unit]: int(n)})
    return total


def parse_webhook_targets(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """``mutating=NAME,validating=NAME`` (repeatable, either part optional) -> (mutating names, validating names)."""
    mutating: list[str] = []
    validating: list[str] = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            kind, sep, name = part.partition("=")
            kind, name = kind.strip().lower(), name.strip()
            if not sep or kind not in ("mutating", "validating") or not name:
                raise ValueError(
                    f"invalid --patch-webhooks entry {part!r}: use mutating=NAME and/or "
                    "validating=NAME, comma-separated"
                )
            if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", name):
                raise ValueError(
                    f"invalid webhook configuration name {name!r}: a DNS subdomain (lowercase letters, "
                    "digits, '-' and '.') is expected"
                )
            target = mutating if kind == "mutating" else validating
            if name not in target:
                target.append(name)
    return mutating, validating


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _duration_arg(text: str) -> dt.timedelta:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_certs_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``certs`` on the ``add_subparsers()`` object of the main parser."""
    p = subparsers.add_parser(
        "certs",
        help="create or rotate the webhook CA and serving certificate",
        description="Create a CA and a serving certificate for the admission webhooks in --dir (ca.crt, ca.key, "
        "tls.crt, tls.key), or keep the existing ones while they are valid, cover every requested name and do not "
        "expire within --rotate-before. Optionally store them in a kubernetes.io/tls Secret and patch the CA into "
        "the webhook configurations' caBundle. Rerunning is safe. Exit 0: done; 1: a Kubernetes call failed; "
        "2: bad arguments, unusable directory or no credentials.",
    )
    p.add_argument("--dir", required=True, metavar="DIR", help="directory for ca.crt, ca.key, tls.crt and tls.key")
    p.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="NAME",
        help="DNS name or IP address for the serving certificate (repeatable), e.g. 127.0.0.1",
    )
    p.add_argument("--service", metavar="NAME", help="add the Service's DNS names (needs --namespace)")
    p.add_argument("--namespace", metavar="NS", help="namespace of --service (and of --secret without NS/)")
    p.add_argument(
        "--cluster-domain",
        default="cluster.local",
        metavar="DOMAIN",
        help="cluster DNS domain for the Service names (default: cluster.local)",
    )
    p.add_argument(
        "--days",
        type=_positive_int,
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"validity of the serving certificate in days (default: {DEFAULT_DAYS})",
    )
    p.add_argument(
        "--ca-days",
        type=_positive_int,
        default=DEFAULT_CA_DAYS,
        metavar="N",
        help=f"validity of a new CA in days (default: {DEFAULT_CA_DAYS})",
    )
    p.add_argument(
        "--rotate-before",
        type=_duration_arg,
        default=DEFAULT_ROTATE_BEFORE,
        metavar="DURATION",
        help="re-issue when the certificate expires within this time, e.g. 30d, 12h (default: 30d)",
    )
    p.add_argument("--ca-common-name", default=DEFAULT_CA_COMMON_NAME, metavar="CN", help="common name of a new CA")
    p.add_argument(
        "--secret",
        metavar="[NS/]NAME",
        help="also store tls.crt, tls.key and ca.crt in this "
        "kubernetes.io/tls Secret (and seed an empty --dir from it)",
    )
    p.add_argument(
        "--patch-webhooks",
        action="append",
        default=[],
        metavar="mutating=NAME,validating=NAME",
        help="set caBundle on every webhook of these configurations (repeatable)",
    )
    p.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig for --secret/--patch-webhooks (default: "
        "$KUBECONFIG, ~/.kube/config, then the in-cluster service account)",
    )
    p.add_argument("--context", metavar="NAME", help="kubeconfig context")
    p.set_defaults(func=cmd_certs)
    return p


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    sys.stderr.write(f"psmdb-backup certs: {message}\n")
    return code


def cmd_certs(args: argparse.Namespace) -> int:
    sans: list[str] = list(args.san)
    if args.service or (args.namespace and not args.secret):
        if not (args.service and args.namespace):
            return _fail(
                "--service and --namespace go together: give both, e.g. --service psmdb-backup-webhook "
                "--namespace psmdb-backup"
            )
    try:
        if args.service:
            sans += service_sans(args.service, args.namespace, args.cluster_domain)
        if not sans:
            return _fail("no names for the certificate: give --san NAME (repeatable) and/or --service with --namespace")
        sans = normalize_sans(sans)
        mutating, validating = parse_webhook_targets(args.patch_webhooks)
    except ValueError as e:
        return _fail(str(e))
    if args.rotate_before >= dt.timedelta(days=args.days):
        return _fail(
            f"--rotate-before ({args.rotate_before}) must be shorter than --days ({args.days}), or every "
            "run would issue a new certificate"
        )
    if not args.ca_common_name or len(args.ca_common_name) > MAX_CN:
        return _fail(f"--ca-common-name must be 1 to {MAX_CN} characters")
    secret: tuple[str, str] | None = None
    if args.secret:
        ns, sep, name = args.secret.rpartition("/")
        ns = ns if sep else (args.namespace or "")
        if not ns or not DNS_LABEL.match(ns) or not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", name):
            return _fail(f"invalid --secret {args.secret!r}: use NAMESPACE/NAME (or NAME with --namespace)")
        secret = (ns, name)
    directory = Path(args.dir)
    if directory.exists() and not directory.is_dir():
        return _fail(f"--dir {args.dir!r} exists and is not a directory")

    def issue() -> CertState:
        return load_or_create(
            directory,
            sans,
            days=args.days,
            ca_days=args.ca_days,
            rotate_before=args.rotate_before,
            ca_common_name=args.ca_common_name,
        )

    before: list[str] = []  # what happened before issuing (seeding from the Secret)
    lines: list[str] = []  # and after (Secret, caBundle)
    cluster = secret is not None or bool(mutating) or bool(validating)
    try:
        if not cluster:
            state = issue()
        else:
            state = asyncio.run(_with_cluster(args, directory, secret, mutating, validating, issue, before, lines))
    except CredentialsError as e:
        return _fail(str(e))
    except CertsError as e:
        return _fail(str(e), 1)
    except OSError as e:
        if cluster and getattr(e, "filename", None) is None:  # aiohttp connection errors and timeouts are OSErrors
            return _fail(f"cannot reach the Kubernetes API server: {e or 'timed out'}", 1)
        return _fail(f"cannot use --dir {args.dir!r}: {e.strerror or e}" + (f" ({e.filename})" if e.filename else ""))
    except ValueError as e:
        return _fail(str(e))
    except Exception as e:  # aiohttp errors, timeouts, anything unexpected from the client: a sentence, no traceback
        log.debug("certs failed", exc_info=True)
        return _fail(f"Kubernetes request failed: {type(e).__name__}: {e or 'timed out'}", 1)
    ca = load_cert(state.ca_pem)
    out = [
        f"CA: {'created' if state.ca_created else 'kept'} ({ca.subject.rfc4514_string()}, serial "
        f"{ca.serial_number:#x}, expires {format_rfc3339(ca.not_valid_after_utc)})",
        f"serving certificate: {'issued' if state.cert_issued else 'kept'} ({state.reason}); serial "
        f"{cert_serial(state.cert_pem):#x}, expires {format_rfc3339(not_after(state.cert_pem))}, SANs "
        f"{', '.join(cert_sans(state.cert_pem))}",
        f"files: {', '.join(state.written) + ' written' if state.written else 'unchanged'} in {directory}",
    ]
    sys.stdout.write("\n".join(before + out + lines) + "\n")
    return 0


async def _with_cluster(
    args: argparse.Namespace,
    directory: Path,
    secret: tuple[str, str] | None,
    mutating: list[str],
    validating: list[str],
    issue: Any,
    before: list[str],
    lines: list[str],
) -> CertState:
    api = await new_api_client(args.kubeconfig, args.context)
    try:
        if secret is not None and not (directory / TLS_CERT).exists():
            stored = await read_secret(api, *secret)
            if stored is not None and stored.complete:
                assert stored.ca_pem and stored.cert_pem and stored.key_pem
                if pair_matches(stored.cert_pem, stored.key_pem):
                    write_dir(directory, stored.ca_pem, stored.cert_pem, stored.key_pem)
                    before.append(f"seeded {directory} from Secret {secret[0]}/{secret[1]}")
                else:
                    log.warning("Secret %s/%s holds a mismatched pair; ignoring it", *secret)
        state = issue()
        if secret is not None:
            outcome = await store_secret(api, secret[0], secret[1], state.ca_pem, state.cert_pem, state.key_pem)
            lines.append(f"Secret {secret[0]}/{secret[1]}: {outcome}")
        if mutating or validating:
            for r in await patch_ca_bundle(api, state.ca_pem, mutating, validating):
                what = f"caBundle set on {r.changed} of {r.webhooks} webhooks" if r.changed else "caBundle unchanged"
                lines.append(f"{r.kind} {r.name}: {what}")
        return state
    finally:
        await api.close()
