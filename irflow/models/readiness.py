"""Readiness (preparation, the first phase of incident response): the checks `irflow preflight` and the scheduled
ReadinessWorkflow run, each answering pass / fail / unknown with its evidence and the fix in words."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, field_validator


class CheckStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "unknown"  # the check could not tell (no permission to look, a service not answering)


class ReadinessScope(BaseModel):
    """Where one round of checks looks: an account and a region (the worker's own, or a member account's
    through the member role)."""

    account_id: str = Field(description="empty: the account of the worker's own credentials")
    region: str


class CheckResult(BaseModel):
    check: str = Field(description="the check's stable id, e.g. guardduty.enabled")
    title: str = Field(description="what is checked, in words")
    account_id: str = ""
    region: str = ""
    status: CheckStatus
    required: bool = Field(default=True, description="a failure means irflow cannot respond as configured")
    evidence: str = Field(default="", description="what the check found")
    fix: str = Field(default="", description="what a person does to make it pass (empty when it passes)")
    problems: list[str] = Field(
        default_factory=list,
        description="what is wrong, as stable items (a missing action, a rule's name): a check that goes on failing "
        "for another reason is a change too",
    )

    @field_validator("title", "evidence", "fix")
    @classmethod
    def _one_line(cls, value: str) -> str:
        """Text from the account (names, policy text, error messages) never forges a line of its own."""
        return " ".join(value.split())

    @property
    def key(self) -> str:
        """One check in one place: what a change of state is tracked by."""
        return f"{self.check}@{self.account_id or '-'}/{self.region or '-'}"


class ReadinessReport(BaseModel):
    checked_at: datetime
    results: list[CheckResult] = Field(default_factory=list)

    @property
    def ready(self) -> bool:
        """No required check failed."""
        return not any(r.required and r.status == CheckStatus.FAIL for r in self.results)
