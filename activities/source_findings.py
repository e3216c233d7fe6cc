"""Closing the loop with AWS: an incident's source findings are told what came of them.

- GuardDuty (its own findings, and the Security Hub copies whose Id is a GuardDuty finding ARN): feedback through
  UpdateFindingsFeedback (NOT_USEFUL for a false positive, USEFUL when confirmed), then ArchiveFindings as
  IRFLOW_ARCHIVE_GUARDDUTY_FINDINGS says. GuardDuty lets only an administrator account archive: a member account
  cannot archive even its own findings (API reference, ArchiveFindings), while the administrator archives its own
  and all its members' (user guide, "Managing accounts"). So another account's findings are archived through the
  security account's detector in their region (ListDetectors), the security account being the members' GuardDuty
  administrator. Feedback has no such limit (members manage their own findings): the finding's account gives it.
- Security Hub: BatchUpdateFindings sets the workflow status (NOTIFIED once contained, SUPPRESSED or RESOLVED at
  the end), the verification state at the end, and a note naming the incident.

Each call is made in the finding's own account and region (archiving: see above), in batches within the APIs'
limits. Best-effort: an AWS error (AccessDenied, a finding that is gone, an API the stand-in lacks) is written down
with its reason and never fails the incident. Setting a status, a feedback or an archive again changes nothing:
idempotent.
"""

from __future__ import annotations

from typing import Any

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import aws_activity, client, error_code, error_message, own_account_id
from irflow.models.finding import FindingSource
from irflow.models.incident import StepResult
from irflow.models.settings import get_settings
from irflow.models.source_findings import (
    GUARDDUTY_BATCH,
    GUARDDUTY_FEEDBACK,
    NOTE_MAX,
    SECURITY_HUB_BATCH,
    SECURITY_HUB_STATUS,
    SECURITY_HUB_VERIFICATION,
    UPDATED_BY,
    SourceFinding,
    SourceFindingsUpdate,
    Verdict,
)


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error_code(error)}: {error_message(error) or error}"
    if isinstance(error, ApplicationError):  # the doorway could not reach the account (AssumeRole refused)
        return f"{error.type}: {error.message}"
    return f"{type(error).__name__}: {error}"


class _Calls:
    """The calls made, and what became of each, as the incident's action record keeps them."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []

    def call(
        self, api: str, account: str, region: str, ids: list[str], finding_account: str = "", **params: Any
    ) -> dict[str, Any] | None:
        """`api` ("guardduty:ArchiveFindings") in `account` and `region` about the findings `ids` (of
        `finding_account`, when that is another account); its response, or None when it failed (reason recorded)."""
        service, action = api.split(":")
        where = {"api": api, "account": account, "region": region, "finding_ids": ids}
        if finding_account and finding_account != account:
            where["finding_account"] = finding_account
        try:
            response = getattr(client(service, region, account), xform_name(action))(**params)
        except (ClientError, BotoCoreError, ApplicationError) as error:
            self.failed.append({**where, "reason": _reason(error)})
            return None
        self.sent.append(where)
        return response


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _note(request: SourceFindingsUpdate) -> str:
    words = f": {request.words}" if request.words else ""
    return f"irflow incident {request.incident_id} ({request.verdict}){words}"[:NOTE_MAX]


class _Archivist:
    """Where GuardDuty lets irflow archive an account's findings: that account's own detector when it is the security
    account; otherwise the security account's detector in the region, as the administrator of its members."""

    def __init__(self, calls: _Calls, skipped: list[dict[str, str]]) -> None:
        self.calls, self.skipped = calls, skipped
        self.security = own_account_id()
        self._detectors: dict[str, tuple[str | None, str]] = {}  # region: (detector, why not)

    def _security_detector(self, region: str) -> tuple[str | None, str]:
        """The security account's detector in `region` (GuardDuty has one per account and region), or None and, when
        ListDetectors failed, its reason."""
        if region not in self._detectors:
            try:
                pages = client("guardduty", region, self.security).get_paginator("list_detectors").paginate()
                self._detectors[region] = (next((d for p in pages for d in p.get("DetectorIds", [])), None), "")
            except (ClientError, BotoCoreError, ApplicationError) as error:
                self._detectors[region] = (None, f"the security account's detector is unknown: {_reason(error)}")
        return self._detectors[region]

    def archive(self, account: str, region: str, detector: str, ids: list[str]) -> None:
        api = "guardduty:ArchiveFindings"
        if account != self.security:
            admin_detector, failure = self._security_detector(region)
            if failure:
                where = {"api": api, "account": self.security, "region": region, "finding_ids": ids}
                self.calls.failed.append({**where, "finding_account": account, "reason": failure})
                return
            if admin_detector is None:
                reason = (
                    "archive skipped: member accounts cannot archive their findings, only their GuardDuty "
                    f"administrator, and the security account {self.security} has no detector in {region}"
                )
                self.skipped.extend({"finding_id": i, "reason": reason} for i in ids)
                return
            detector = admin_detector
        for batch in _batches(ids, GUARDDUTY_BATCH):
            self.calls.call(api, self.security, region, batch, account, DetectorId=detector, FindingIds=batch)


def _tell_guardduty(
    request: SourceFindingsUpdate,
    findings: list[SourceFinding],
    archive: str,
    calls: _Calls,
    skipped: list[dict[str, str]],
) -> None:
    feedback = GUARDDUTY_FEEDBACK[request.verdict]
    archiving = archive == "closed" or (archive == "false-positive" and request.verdict == Verdict.FALSE_POSITIVE)
    archivist = _Archivist(calls, skipped) if archiving else None
    by_detector: dict[tuple[str, str, str], list[str]] = {}
    for f in findings:
        ids = by_detector.setdefault((f.account_id, f.region, f.detector_id or ""), [])
        if f.guardduty_id and f.guardduty_id not in ids:
            ids.append(f.guardduty_id)
    for (account, region, detector), ids in by_detector.items():
        for batch in _batches(ids, GUARDDUTY_BATCH):
            calls.call(
                "guardduty:UpdateFindingsFeedback",
                account,
                region,
                batch,
                DetectorId=detector,
                FindingIds=batch,
                Feedback=feedback,
                Comments=_note(request),
            )
        if archivist is not None:
            archivist.archive(account, region, detector, ids)


def _tell_security_hub(request: SourceFindingsUpdate, findings: list[SourceFinding], calls: _Calls) -> None:
    update: dict[str, Any] = {
        "Workflow": {"Status": SECURITY_HUB_STATUS[request.verdict]},
        "Note": {"Text": _note(request), "UpdatedBy": UPDATED_BY},
    }
    if request.verdict in SECURITY_HUB_VERIFICATION:
        update["VerificationState"] = SECURITY_HUB_VERIFICATION[request.verdict]
    by_place: dict[tuple[str, str], list[dict[str, str]]] = {}
    for f in findings:
        identifiers = by_place.setdefault((f.account_id, f.region), [])
        identifier = {"Id": f.id, "ProductArn": f.product_arn or ""}
        if identifier not in identifiers:
            identifiers.append(identifier)
    for (account, region), identifiers in by_place.items():
        for batch in _batches(identifiers, SECURITY_HUB_BATCH):
            api, ids = "securityhub:BatchUpdateFindings", [i["Id"] for i in batch]
            response = calls.call(api, account, region, ids, FindingIdentifiers=batch, **update)
            unprocessed = (response or {}).get("UnprocessedFindings") or []
            for refused in unprocessed:  # Security Hub answers 200 and lists the findings it did not update
                refused_id = refused.get("FindingIdentifier", {}).get("Id", "")
                reason = f"{refused.get('ErrorCode', '')}: {refused.get('ErrorMessage', '')}"
                calls.failed.append(
                    {"api": api, "account": account, "region": region, "finding_ids": [refused_id], "reason": reason}
                )
                calls.sent[-1]["finding_ids"] = [i for i in calls.sent[-1]["finding_ids"] if i != refused_id]
            if unprocessed and not calls.sent[-1]["finding_ids"]:
                calls.sent.pop()  # it updated nothing: each finding is in `failed`, with Security Hub's reason


def _skipped(request: SourceFindingsUpdate) -> tuple[list[SourceFinding], list[SourceFinding], list[dict[str, str]]]:
    """(GuardDuty's findings, Security Hub's, those neither can be told about and why)."""
    to_guardduty, to_security_hub, skipped = [], [], []
    for f in request.findings:
        if f.source == FindingSource.SECURITY_HUB:
            if f.product_arn:
                to_security_hub.append(f)
            else:
                skipped.append({"finding_id": f.id, "reason": "its ProductArn is unknown: Security Hub cannot name it"})
        if (f.source == FindingSource.GUARDDUTY or f.guardduty_id) and request.verdict in GUARDDUTY_FEEDBACK:
            if f.detector_id and f.guardduty_id:
                to_guardduty.append(f)
            else:
                skipped.append({"finding_id": f.id, "reason": "no GuardDuty detector id: the finding has no ARN"})
    return to_guardduty, to_security_hub, skipped


@aws_activity(
    "guardduty:UpdateFindingsFeedback",
    "guardduty:ArchiveFindings",
    "guardduty:ListDetectors",
    "securityhub:BatchUpdateFindings",
)
def update_source_findings(request: SourceFindingsUpdate) -> StepResult:
    """Tell the incident's GuardDuty and Security Hub findings its verdict. Never raises for what AWS answers:
    `detail` lists the calls `sent` (the findings each updated), those `failed` with the reason, and the findings
    `skipped`; `changed` is whether any finding was updated."""
    settings = get_settings()
    detail: dict[str, Any] = {"verdict": str(request.verdict)}
    if not settings.update_source_findings:
        detail["reason"] = "IRFLOW_UPDATE_SOURCE_FINDINGS is off: nothing was sent to AWS"
        return StepResult(changed=False, detail=detail)
    to_guardduty, to_security_hub, skipped = _skipped(request)
    calls = _Calls()
    if to_guardduty:
        _tell_guardduty(request, to_guardduty, settings.archive_guardduty_findings, calls, skipped)
    if to_security_hub:
        _tell_security_hub(request, to_security_hub, calls)
    detail.update(sent=calls.sent, failed=calls.failed)
    if skipped:
        detail["skipped"] = skipped
    return StepResult(changed=any(c["finding_ids"] for c in calls.sent), detail=detail)
