"""A decision's proof of who decided: an `sts:GetCallerIdentity` request signed (SigV4) by the decider's own
AWS credentials, with one more signed header binding it to this decision. The worker sends it to STS, and
only to STS: STS checks the signature and answers whose credentials signed it (the mechanism of Vault's
AWS IAM auth method and aws-iam-authenticator). Nobody can change the binding without breaking the
signature, and nobody can make a proof without the secret key.

This module is pure (no botocore, no clock, no network): the workflow runs its cheap checks in an update's
validator, the worker's activity runs them again before asking STS. Signing is `irflow.decision_proof`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

PROOF_HEADER = "X-Irflow-Decision"
PROOF_VERSION = "v1"
# The one request a proof may be: the worker always sends exactly this body, never one from the proof.
GET_CALLER_IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
REQUIRED_SIGNED_HEADERS = frozenset({"host", "x-amz-date", PROOF_HEADER.lower()})
ALLOWED_SIGNED_HEADERS = REQUIRED_SIGNED_HEADERS | {"content-type", "x-amz-security-token", "x-amz-content-sha256"}
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_CLOCK_AHEAD = timedelta(seconds=60)
NO_CHOICE = "none"

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]{16,128})/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<sig>[0-9a-f]{64})$"
)
_TOKEN = re.compile(r"^[A-Za-z0-9._:/@+=-]{1,512}$")
_HEX = re.compile(r"^[0-9a-f]+$")


class ProofRefused(ValueError):
    """The proof is not good for this decision: the reason is the message."""


class DecisionProof(BaseModel):
    """The signed request's headers, as the CLI signed them (Authorization, Host, X-Amz-Date, X-Irflow-Decision,
    Content-Type, X-Amz-Security-Token for session credentials). Never the secret key."""

    headers: dict[str, str] = Field(max_length=16)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)

    @property
    def proof_id(self) -> str:
        """What makes a proof good for one decision only: the SHA-256 of its signature."""
        match = _AUTHORIZATION.match(self.header("Authorization") or "")
        signature = match.group("sig") if match else (self.header("Authorization") or "")
        return hashlib.sha256(signature.encode()).hexdigest()


class Binding(BaseModel):
    """The signed `X-Irflow-Decision` header: which incident, which verb, which words, which choice."""

    incident: str
    verb: str
    comment_sha256: str
    choice: str = NO_CHOICE
    nonce: str

    def render(self) -> str:
        return (
            f"{PROOF_VERSION} incident={self.incident} verb={self.verb} comment-sha256={self.comment_sha256} "
            f"choice={self.choice} nonce={self.nonce}"
        )

    @classmethod
    def parse(cls, text: str) -> Binding:
        version, *pairs = text.split(" ")
        if version != PROOF_VERSION:
            raise ProofRefused(f"{PROOF_HEADER} is not {PROOF_VERSION}")
        fields: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or key in fields or not _TOKEN.match(value):
                raise ProofRefused(f"{PROOF_HEADER} is malformed")
            fields[key] = value
        if set(fields) != {"incident", "verb", "comment-sha256", "choice", "nonce"}:
            raise ProofRefused(f"{PROOF_HEADER} must name incident, verb, comment-sha256, choice and nonce")
        if not (_HEX.match(fields["nonce"]) and len(fields["nonce"]) >= 16):
            raise ProofRefused(f"{PROOF_HEADER}: the nonce must be 16 or more hex digits")
        return cls(
            incident=fields["incident"],
            verb=fields["verb"],
            comment_sha256=fields["comment-sha256"],
            choice=fields["choice"],
            nonce=fields["nonce"],
        )


def comment_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class SignedRequest:
    """What a proof claims, parsed (not yet verified: only STS can say whose key signed it)."""

    access_key_id: str
    signed_headers: frozenset[str]
    signed_at: datetime
    host: str
    binding: Binding


def parse_proof(proof: DecisionProof) -> SignedRequest:
    """The proof's parts, or ProofRefused: a SigV4 signature for STS that signs the host, the date and the
    binding header, and nothing a GetCallerIdentity request does not carry."""
    match = _AUTHORIZATION.match(proof.header("Authorization") or "")
    if not match:
        raise ProofRefused("the proof has no AWS4-HMAC-SHA256 Authorization header")
    if match.group("service") != "sts":
        raise ProofRefused(f"the proof is signed for {match.group('service')}, not sts")
    signed = frozenset(match.group("signed").split(";"))
    missing = REQUIRED_SIGNED_HEADERS - signed
    if missing:
        raise ProofRefused(f"the proof's SignedHeaders lack {', '.join(sorted(missing))}")
    unexpected = signed - ALLOWED_SIGNED_HEADERS
    if unexpected:
        raise ProofRefused(f"the proof signs headers a GetCallerIdentity request has no use for: {sorted(unexpected)}")
    absent = [name for name in sorted(signed) if proof.header(name) is None]
    if absent:
        raise ProofRefused(f"the proof's signed headers are missing: {', '.join(absent)}")
    content_type = proof.header("Content-Type")
    if content_type is not None and content_type.split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise ProofRefused("the proof's Content-Type is not a form")
    try:
        signed_at = datetime.strptime(proof.header("X-Amz-Date") or "", AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ProofRefused("the proof's X-Amz-Date is not a SigV4 date") from None
    if signed_at.strftime("%Y%m%d") != match.group("date"):
        raise ProofRefused("the proof's credential scope and X-Amz-Date name different days")
    return SignedRequest(
        access_key_id=match.group("key"),
        signed_headers=signed,
        signed_at=signed_at,
        host=(proof.header("Host") or "").lower(),
        binding=Binding.parse(proof.header(PROOF_HEADER) or ""),
    )


def check_proof(
    proof: DecisionProof,
    *,
    incident_id: str,
    verb: str,
    comment: str,
    choice: str | None,
    now: datetime,
    max_age: timedelta,
    host: str | None = None,
) -> SignedRequest:
    """The proof, parsed, if it is for this decision (incident, verb, the SHA-256 of its comment, its choice),
    fresh (signed at most `max_age` ago, at most a minute ahead) and, given `host`, signed for that STS
    endpoint; ProofRefused otherwise."""
    signed = parse_proof(proof)
    binding = signed.binding
    if binding.incident != incident_id:
        raise ProofRefused(f"the proof is for incident {binding.incident}, not this one")
    if binding.verb != verb:
        raise ProofRefused(f"the proof is for {binding.verb}, not {verb}")
    if binding.comment_sha256 != comment_digest(comment):
        raise ProofRefused("the proof was signed for other words than this decision's comment")
    if binding.choice != (choice or NO_CHOICE):
        raise ProofRefused(f"the proof chose {binding.choice}, not {choice or NO_CHOICE}")
    if now - signed.signed_at > max_age:
        raise ProofRefused(f"the proof expired: signed {int((now - signed.signed_at).total_seconds())}s ago")
    if signed.signed_at - now > MAX_CLOCK_AHEAD:
        raise ProofRefused("the proof is dated in the future: check the signing machine's clock")
    if host is not None and signed.host != host.lower():
        raise ProofRefused(f"the proof is signed for host {signed.host or '?'}, not the STS endpoint {host}")
    return signed


class VerifiedCaller(BaseModel):
    """Who STS said signed a proof."""

    arn: str
    account: str = ""
    user_id: str = ""
    access_key_id: str = ""

    def names(self) -> list[str]:
        """Every name a finding might call this principal by: the ARN; the user, role and session names;
        the unique id (AIDA…, or AROA…:session); the access key."""
        names = [self.arn]
        resource = self.arn.split(":", 5)[-1] if self.arn.count(":") >= 5 else ""
        kind, _, path = resource.partition("/")
        parts = path.split("/")
        if kind == "user" and parts[-1]:
            names.append(parts[-1])
        elif kind == "assumed-role" and len(parts) >= 2:
            names += [parts[0], parts[-1]]
        elif parts[-1]:
            names.append(parts[-1])
        if self.user_id:
            names += [self.user_id, *self.user_id.split(":")]
        if self.access_key_id:
            names.append(self.access_key_id)
        return list(dict.fromkeys(n for n in names if n))
