"""AdmissionReview (admission.k8s.io/v1) in and out: pure parsing and response building."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import orjson

from ..policy.common import mapping

API_VERSION = "admission.k8s.io/v1"
MAX_WARNINGS = 20
MAX_WARNING_LENGTH = 256  # the API server truncates longer warnings anyway


class BadReview(ValueError):
    """The body is not an AdmissionReview this server can answer (HTTP 400 with this message)."""


@dataclass(frozen=True)
class Request:
    uid: str
    kind: str  # request.kind.kind, e.g. "PerconaServerMongoDBBackup" or "Pod"
    group: str
    operation: str
    namespace: str
    name: str
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    dry_run: bool

    @property
    def display_name(self) -> str:
        """request.name, or the object's name / generateName (a create may carry only generateName)."""
        meta = (self.obj or {}).get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        name = self.name or meta.get("name") or meta.get("generateName") or ""
        return name if isinstance(name, str) else ""


# orjson reads integers beyond 64 bits as floats (which would slip past the schema's int64 check); the standard
# library keeps them exact. A run of 19 digits is the shortest that can be such an integer. Found by mapping digits to
# "0" and everything else to " " (bytes.translate and `in` are ten times faster than a regular expression here).
_DIGITS_ONLY = bytes(b"0"[0] if chr(i).isdigit() and i < 128 else b" "[0] for i in range(256))
_LONG_DIGITS = b"0" * 19


def loads(body: bytes) -> Any:
    """JSON as the standard library reads it, with orjson's speed for everything orjson reads the same way: a body
    orjson refuses (NaN, lone surrogates, UTF-16, a BOM) or one that may hold a huge integer goes to `json`."""
    if _LONG_DIGITS not in body.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def dumps(value: Any) -> bytes:
    """Compact JSON; `json` only for what orjson refuses (lone surrogates a request may have carried in)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def may_hold_nulls(obj: Any) -> bool:
    """False only when `obj` has no None anywhere: orjson writes every None as `null` (a string may spell it too,
    then the answer is a harmless True). Far cheaper than walking the object in Python."""
    try:
        return b"null" in orjson.dumps(obj)
    except TypeError:  # what orjson cannot write (integers beyond 64 bits, lone surrogates)
        return True


def parse(body: bytes) -> Request:
    try:
        review = loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadReview(f"body is not JSON: {exc}") from None
    if not isinstance(review, dict):
        raise BadReview("body must be a JSON object (an AdmissionReview)")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != "AdmissionReview":
        raise BadReview(
            f"expected apiVersion {API_VERSION} and kind AdmissionReview, got "
            f"{str(review.get('apiVersion'))[:60]!r} / {str(review.get('kind'))[:60]!r}"
        )
    req = review.get("request")
    if not isinstance(req, dict):
        raise BadReview("AdmissionReview has no request object")
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid is missing")
    kind = mapping(req.get("kind"))
    obj, old = req.get("object"), req.get("oldObject")
    return Request(
        uid=uid,
        kind=str(kind.get("kind", "")),
        group=str(kind.get("group", "")),
        operation=str(req.get("operation", "")),
        namespace=str(req.get("namespace") or ""),
        name=str(req.get("name") or ""),
        obj=obj if isinstance(obj, dict) else None,
        old=old if isinstance(old, dict) else None,
        dry_run=req.get("dryRun") is True,
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def response(
    uid: str,
    *,
    allowed: bool,
    message: str = "",
    code: int = 200,
    reason: str = "",
    warnings: list[str] | None = None,
    patch: list[dict] | None = None,
) -> dict[str, Any]:
    resp: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        resp["status"] = {"code": code, "message": message, "reason": reason or "Invalid"}
    if warnings:
        shown = [_clip(w, MAX_WARNING_LENGTH) for w in warnings[:MAX_WARNINGS]]
        if len(warnings) > MAX_WARNINGS:
            shown.append(f"... and {len(warnings) - MAX_WARNINGS} more warnings")
        resp["warnings"] = shown
    if patch:
        resp["patchType"] = "JSONPatch"
        resp["patch"] = base64.b64encode(dumps(patch)).decode()
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": resp}
