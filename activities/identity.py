"""Who decided: a decision's proof (a signed sts:GetCallerIdentity request, `irflow.models.proof`) sent to STS,
and only to STS, which answers whose credentials signed it.

The request is sent to the STS endpoint of the worker's own configuration (IRFLOW_PROOF_STS_ENDPOINT_URL,
else boto3's for the region), never to a URL or host a proof names, and always with exactly the
GetCallerIdentity body. The worker needs no IAM action for this (the request is signed by the decider), so
the activity is no `aws_activity` with IAM actions to declare: `activities.all_activities` lists it itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import ParseError

from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError
from botocore.httpsession import URLLib3Session
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from irflow.decision_proof import caller_identity, endpoint_host, sts_endpoint_url, sts_error
from irflow.models.proof import (
    FORM_CONTENT_TYPE,
    GET_CALLER_IDENTITY_BODY,
    DecisionProof,
    ProofRefused,
    VerifiedCaller,
    check_proof,
)
from irflow.models.settings import get_settings

# The failure type of a proof that is not good for the decision: never retried, the reason is its message.
PROOF_REFUSED = "DecisionProofRefused"
_TIMEOUT_SECONDS = 10
# STS answers these when the signature, the key or the session is bad: a refusal, not an outage.
_RETRIED_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable"}


class VerifyProofInput(BaseModel):
    """What the workflow asks: is this proof good for this decision? (Max age: the worker's policy.)"""

    proof: DecisionProof
    incident_id: str
    verb: str
    comment: str
    choice: str | None = None
    max_age_seconds: int = 300


def refused(reason: str) -> ApplicationError:
    return ApplicationError(reason, type=PROOF_REFUSED, non_retryable=True)


def _send(proof: DecisionProof, signed_headers: frozenset[str], url: str, host: str) -> tuple[int, bytes]:
    headers = {name: proof.header(name) or "" for name in sorted(signed_headers) if name != "host"}
    headers["Host"] = host  # checked equal to the signed one; the transport connects to `url` regardless
    headers["Authorization"] = proof.header("Authorization") or ""
    headers.setdefault("content-type", FORM_CONTENT_TYPE)
    request = AWSRequest(method="POST", url=url, data=GET_CALLER_IDENTITY_BODY.encode(), headers=headers)
    try:
        response = URLLib3Session(timeout=_TIMEOUT_SECONDS).send(request.prepare())
    except BotoCoreError as error:  # connection refused, timeout, TLS: Temporal retries the activity
        raise ApplicationError(f"STS at {url} unreachable: {error}", type="StsUnreachable") from error
    return response.status_code, response.content


@activity.defn
def verify_decision_proof(request: VerifyProofInput) -> VerifiedCaller:
    """The principal that signed the proof, as STS says; a non-retryable DecisionProofRefused when the proof is
    not for this decision, too old, signed for another host, or STS refuses its signature, key or session."""
    url = sts_endpoint_url(get_settings())
    host = endpoint_host(url)
    try:
        signed = check_proof(
            request.proof,
            incident_id=request.incident_id,
            verb=request.verb,
            comment=request.comment,
            choice=request.choice,
            now=datetime.now(UTC),
            max_age=timedelta(seconds=request.max_age_seconds),
            host=host,
        )
    except ProofRefused as error:
        raise refused(str(error)) from None
    status, body = _send(request.proof, signed.signed_headers, url, host)
    if status != 200:
        code, message = sts_error(body)
        text = f"STS refused the proof: {code or status}: {message or 'no message'}"
        if status >= 500 or status == 429 or code in _RETRIED_CODES:
            raise ApplicationError(text, type="StsUnavailable")
        raise refused(text)
    try:
        arn, account, user_id = caller_identity(body)
    except (ValueError, ParseError) as error:
        raise ApplicationError(f"STS's answer could not be read: {error}", type="StsUnavailable") from error
    return VerifiedCaller(arn=arn, account=account, user_id=user_id, access_key_id=signed.access_key_id)
