"""Corrections to moto for closing the loop with AWS: GuardDuty's UpdateFindingsFeedback and ArchiveFindings, and
Security Hub's BatchUpdateFindings, which moto 5.2 answers 404 "Not yet implemented".

These patch the stand-in, never irflow. Each request is parsed and checked against botocore's model of its operation
(members, types, enums, and the limits the model and the API reference state: 50 finding ids, 100 finding
identifiers, 512 characters of a note), and answered as AWS does:
- GuardDuty: the detector must be the account's (else BadRequestException, as AWS answers); each finding's feedback
  and archiving are kept (moto keeps no GuardDuty findings to carry them): `guardduty_findings`;
- Security Hub: a finding imported with BatchImportFindings gets the Workflow, VerificationState and Note sent
  (GetFindings shows them); one that is not there is listed in UnprocessedFindings as FindingNotFound, with 200.
Every request is recorded as received, per account and region, with moto's state: `received`.
Applied by tests/workflows/test_incident_source_findings.py (and, with moto_fidelity, by the dev stack).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.validate import ParamValidator

_applied = False
# Documented limits botocore's model does not carry (its validator checks minimums only, by design).
_LIMITS = {"FindingIdentifiers": 100}
_NOTE_MAX = 512


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    _guardduty_feedback_and_archive()
    _security_hub_batch_update()


def _checked(response: Any, error: type[Exception] | Any) -> dict[str, Any]:
    """The request's parameters as botocore names them, checked against the operation's model; `error(text)` is
    raised for a request AWS would refuse."""
    from moto.core.utils import get_service_model

    response.parse_parameters(response.normalized_request)
    params = dict(response.params)
    operation = get_service_model(response.boto3_service_name).operation_model(response._get_action())
    report = ParamValidator().validate(params, operation.input_shape)
    if report.has_errors():
        raise error(report.generate_report())
    for name, shape in operation.input_shape.members.items():
        most = shape.metadata.get("max", _LIMITS.get(name)) if shape.type_name == "list" else None
        if most is not None and len(params.get(name) or []) > most:
            raise error(f"{name}: {len(params[name])} items, at most {most}")
    note = params.get("Note") or {}
    if any(len(note.get(key, "")) > _NOTE_MAX for key in ("Text", "UpdatedBy")):
        raise error(f"Note: Text and UpdatedBy are at most {_NOTE_MAX} characters")
    return params


def _record(backend: Any, operation: str, params: dict[str, Any]) -> None:
    if not hasattr(backend, "irflow_received"):
        backend.irflow_received = []
    backend.irflow_received.append({"operation": operation, "params": params})


def received(service: str, account_id: str, region: str) -> list[dict[str, Any]]:
    """The requests `service` ("guardduty" or "securityhub") received in `account_id`/`region`, in order, as
    {"operation", "params"}, the params as botocore names them."""
    from moto.guardduty.models import guardduty_backends
    from moto.securityhub.models import securityhub_backends

    backends = {"guardduty": guardduty_backends, "securityhub": securityhub_backends}[service]
    return list(getattr(backends[account_id][region], "irflow_received", []))


def guardduty_findings(account_id: str, region: str) -> dict[str, dict[str, Any]]:
    """What GuardDuty in `account_id`/`region` now says of each finding it was told about: its `feedback` (and
    `comments`) and whether it is `archived`, by finding id."""
    found: dict[str, dict[str, Any]] = {}
    for request in received("guardduty", account_id, region):
        params = request["params"]
        for finding_id in params["FindingIds"]:
            state = found.setdefault(finding_id, {"detector_id": params["DetectorId"], "archived": False})
            if request["operation"] == "UpdateFindingsFeedback":
                state.update(feedback=params["Feedback"], comments=params.get("Comments", ""))
            else:
                state["archived"] = True
    return found


def _guardduty_feedback_and_archive() -> None:
    import moto.guardduty.urls as urls
    from moto.guardduty.exceptions import GuardDutyException
    from moto.guardduty.responses import GuardDutyResponse

    def refused(text: str) -> GuardDutyException:
        return GuardDutyException("BadRequestException", text)

    def handler(operation: str):
        def answer(self: GuardDutyResponse) -> str:
            params = _checked(self, refused)
            self.guardduty_backend.get_detector(params["DetectorId"])  # the account's own, or BadRequestException
            _record(self.guardduty_backend, operation, params)
            return "{}"

        return answer

    GuardDutyResponse.update_findings_feedback = handler("UpdateFindingsFeedback")
    GuardDutyResponse.archive_findings = handler("ArchiveFindings")
    for action in ("feedback", "archive"):
        urls.url_paths[f"{{0}}/detector/(?P<detector_id>[^/]+)/findings/{action}$"] = GuardDutyResponse.dispatch


def _security_hub_batch_update() -> None:
    import moto.securityhub.urls as urls
    from moto.securityhub.exceptions import InvalidInputException
    from moto.securityhub.responses import SecurityHubResponse

    def refused(text: str) -> InvalidInputException:
        return InvalidInputException(op="BatchUpdateFindings", msg=text)

    def batch_update_findings(self: SecurityHubResponse) -> str:
        params = _checked(self, refused)
        backend = self.securityhub_backend
        _record(backend, "BatchUpdateFindings", params)
        changes = {key: value for key, value in params.items() if key != "FindingIdentifiers"}
        if "Note" in changes:
            changes["Note"] = {**changes["Note"], "UpdatedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        stored = {(f.data.get("Id"), f.data.get("ProductArn")): f for f in backend.findings}
        processed, unprocessed = [], []
        for identifier in params["FindingIdentifiers"]:
            finding = stored.get((identifier["Id"], identifier["ProductArn"]))
            if finding is None:
                refusal = {"ErrorCode": "FindingNotFound", "ErrorMessage": "Finding Not Found"}
                unprocessed.append({"FindingIdentifier": identifier, **refusal})
                continue
            finding.data.update(changes)
            processed.append(identifier)
        return json.dumps({"ProcessedFindings": processed, "UnprocessedFindings": unprocessed})

    SecurityHubResponse.batch_update_findings = batch_update_findings
    urls.url_paths["{0}/findings/batchupdate$"] = SecurityHubResponse.dispatch
