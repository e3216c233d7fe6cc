"""Decision proofs with botocore: the CLI signs one with the decider's own credentials; the worker's activity
(`activities.identity`) finds its STS endpoint and reads STS's answer. The checks both sides share are in
`irflow.models.proof`.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit
from xml.etree import ElementTree

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import NoCredentialsError

from irflow.models.proof import (
    FORM_CONTENT_TYPE,
    GET_CALLER_IDENTITY_BODY,
    NO_CHOICE,
    PROOF_HEADER,
    Binding,
    DecisionProof,
    comment_digest,
)
from irflow.models.settings import IrflowSettings

DEFAULT_STS_REGION = "us-east-1"


def sts_endpoint_url(settings: IrflowSettings, session: boto3.session.Session | None = None) -> str:
    """Where proofs are signed for and verified: IRFLOW_PROOF_STS_ENDPOINT_URL, else boto3's STS endpoint for
    the region (which honours AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL). Never anything a proof says."""
    if settings.proof_sts_endpoint_url:
        return settings.proof_sts_endpoint_url
    session = session or boto3.session.Session()
    return session.client("sts", region_name=session.region_name or DEFAULT_STS_REGION).meta.endpoint_url


def endpoint_host(url: str) -> str:
    """The Host a SigV4 signature covers for this URL: lower case, without userinfo, without a default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def sign_decision(
    session: boto3.session.Session,
    endpoint_url: str,
    *,
    incident_id: str,
    verb: str,
    comment: str,
    choice: str | None = None,
) -> DecisionProof:
    """A proof for one decision, signed now (botocore's SigV4, its clock) with the session's credentials for
    the STS endpoint `endpoint_url`, bound to the decision with a fresh nonce."""
    credentials = session.get_credentials()
    if credentials is None:
        raise NoCredentialsError()
    binding = Binding(
        incident=incident_id,
        verb=verb,
        comment_sha256=comment_digest(comment),
        choice=choice or NO_CHOICE,
        nonce=secrets.token_hex(16),
    )
    request = AWSRequest(
        method="POST",
        url=endpoint_url,
        data=GET_CALLER_IDENTITY_BODY,
        headers={
            "Host": endpoint_host(endpoint_url),
            "Content-Type": FORM_CONTENT_TYPE,
            PROOF_HEADER: binding.render(),
        },
    )
    region = session.region_name or DEFAULT_STS_REGION
    SigV4Auth(credentials.get_frozen_credentials(), "sts", region).add_auth(request)
    return DecisionProof(headers=dict(request.headers.items()))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _fields(xml: bytes) -> dict[str, str]:
    """Leaf elements of an STS answer by local name (namespaces dropped). STS's answers carry no DTD: one that
    does is not STS's, and is refused before it is parsed."""
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise ValueError("the answer carries a DTD")
    return {_local(e.tag): (e.text or "").strip() for e in ElementTree.fromstring(xml).iter() if len(e) == 0}


def caller_identity(xml: bytes) -> tuple[str, str, str]:
    """(ARN, account, user id) from a GetCallerIdentity answer; ValueError when it names no ARN."""
    fields = _fields(xml)
    if not fields.get("Arn", "").startswith("arn:"):
        raise ValueError("STS's answer names no ARN")
    return fields["Arn"], fields.get("Account", ""), fields.get("UserId", "")


def sts_error(xml: bytes) -> tuple[str, str]:
    """(code, message) of an STS error answer; empty strings when it is not one."""
    try:
        fields = _fields(xml)
    except (ValueError, ElementTree.ParseError):
        return "", ""
    return fields.get("Code", ""), fields.get("Message", "")
