"""The result of one lint run, shared by every output format."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..findings import Finding, Severity


@dataclass(frozen=True)
class LocatedFinding:
    finding: Finding
    file: str  # as given on the command line, or "<stdin>"
    line: int  # 1-based; 0 when the position is unknown
    column: int  # 1-based; 0 when unknown
    object_ref: str = ""  # "PerconaServerMongoDBBackup default/nightly", "" for file-level findings

    @property
    def code(self) -> str:
        return self.finding.code

    @property
    def severity(self) -> Severity:
        return self.finding.severity


@dataclass
class LintReport:
    findings: list[LocatedFinding] = field(default_factory=list)
    files: int = 0
    documents: int = 0
    checked: int = 0  # documents of the three PSMDB kinds
    skipped: int = 0  # documents of other kinds

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    def summary(self) -> dict[str, int]:
        return {
            "files": self.files,
            "documents": self.documents,
            "checked": self.checked,
            "skipped": self.skipped,
            "errors": self.count(Severity.ERROR),
            "warnings": self.count(Severity.WARNING),
            "infos": self.count(Severity.INFO),
        }
