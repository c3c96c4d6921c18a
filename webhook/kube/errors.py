"""The one error type of the Kubernetes access layer: a request the API server refused or did not answer in time."""

from __future__ import annotations

import json
from typing import Any

# What each refusal usually means for the person reading the message.
_HINTS = {
    401: "the API server did not accept the credentials (an expired token, or the wrong kubeconfig user or context)",
    403: "the identity lacks the RBAC permission for this request (manifests/base/rbac.yaml lists what each "
    "component needs)",
    404: "not found (for a list: the kind's CRD is not installed)",
    409: "conflict: the object changed since it was read, or already exists",
}


class CredentialsError(Exception):
    """No usable Kubernetes credentials: a setup problem, reported before any request."""


class KubeError(Exception):
    """A request the API server refused: `status` is the HTTP status (0 when no answer came), `reason` its reason
    phrase, `message` the Status object's message; `str()` is a sentence for a user, prefixed with what was being
    done when `doing` is given."""

    def __init__(self, status: int, reason: str, message: str, *, doing: str = "") -> None:
        self.status, self.reason = status, reason
        self.message = message or f"HTTP {status} {reason}".rstrip()
        self.doing = doing
        super().__init__(self._text())

    def _text(self) -> str:
        if self.status == 0:
            text = f"no answer from the API server: {self.message}"
        else:
            hint = _HINTS.get(self.status)
            text = f"HTTP {self.status} {self.reason}".rstrip() + f": {self.message}"
            if hint and hint not in self.message:
                text += f" ({hint})"
        return f"{self.doing}: {text}" if self.doing else text

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    def about(self, doing: str) -> KubeError:
        """The same error, saying what was being done ("cannot list ... in namespace db")."""
        return KubeError(self.status, self.reason, self.message, doing=doing)

    @classmethod
    def from_api_exception(cls, exc: Any, doing: str = "") -> KubeError:
        """From a kubernetes_asyncio ApiException (or anything with status, reason and a JSON Status body)."""
        body = getattr(exc, "body", None)
        message = ""
        if body:
            try:
                decoded = json.loads(body)
                message = str(decoded.get("message") or "") if isinstance(decoded, dict) else ""
            except (ValueError, TypeError):
                message = str(body)[:500]
        return cls(int(getattr(exc, "status", 0) or 0), str(getattr(exc, "reason", "") or ""), message, doing=doing)


class KubeTimeout(KubeError, TimeoutError):
    """No answer within the request's timeout. Also a TimeoutError, so `except TimeoutError` still sees it."""

    def __init__(self, timeout: float, *, doing: str = "") -> None:
        super().__init__(0, "Timeout", f"timed out after {timeout:g}s", doing=doing)
        self.timeout = timeout

    def about(self, doing: str) -> KubeTimeout:
        return KubeTimeout(self.timeout, doing=doing)
