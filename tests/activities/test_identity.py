"""verify_decision_proof against a moto server that checks SigV4 signatures (as STS does), and against a local
server that plays an STS answering errors: what is refused, what is retried, what is sent."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.auth
import pytest
from temporalio.exceptions import ApplicationError

from activities.identity import PROOF_REFUSED, VerifyProofInput, verify_decision_proof
from irflow.decision_proof import sign_decision
from irflow.models.proof import GET_CALLER_IDENTITY_BODY, PROOF_HEADER, DecisionProof
from irflow.models.settings import get_settings
from tests.support import free_port

INCIDENT = "ec2-123456789012-us-east-1-i-0123456789abcdef0-20261207T125819Z"


def _verify(proof: DecisionProof, **changes):
    arguments = {"proof": proof, "incident_id": INCIDENT, "verb": "approve", "comment": "confirmed"}
    return verify_decision_proof(VerifyProofInput(**{**arguments, **changes}))


def _sign(session, url: str, **changes) -> DecisionProof:
    arguments = {"incident_id": INCIDENT, "verb": "approve", "comment": "confirmed"}
    return sign_decision(session, url, **{**arguments, **changes})


def _refusal(proof: DecisionProof, **changes) -> ApplicationError:
    with pytest.raises(ApplicationError) as refused:
        _verify(proof, **changes)
    assert refused.value.type == PROOF_REFUSED and refused.value.non_retryable
    return refused.value


def test_sts_names_whoever_signed_the_proof(proof_endpoint):
    url, people = proof_endpoint
    proof = _sign(people["alice"].session(), url)
    caller = _verify(proof)
    assert caller.arn == people["alice"].arn == "arn:aws:iam::123456789012:user/alice"
    assert caller.account == "123456789012" and caller.access_key_id == people["alice"].access_key_id
    assert _verify(_sign(people["bob"].session(), url)).arn == people["bob"].arn


def test_a_wrong_secret_or_an_unknown_key_is_refused_by_sts(proof_endpoint):
    url, people = proof_endpoint
    wrong = boto3.session.Session(aws_access_key_id=people["alice"].access_key_id, aws_secret_access_key="guess")
    assert "SignatureDoesNotMatch" in str(_refusal(_sign(wrong, url)))
    unknown = boto3.session.Session(aws_access_key_id="AKIAUNKNOWNKEY000001", aws_secret_access_key="guess")
    assert "InvalidClientTokenId" in str(_refusal(_sign(unknown, url)))


def test_the_binding_is_signed_a_proof_rebound_to_another_incident_fails_at_sts(proof_endpoint):
    url, people = proof_endpoint
    proof = _sign(people["alice"].session(), url)
    other = INCIDENT.replace("0123456789abcdef0", "0fedcba9876543210")
    headers = {**proof.headers, PROOF_HEADER: proof.header(PROOF_HEADER).replace(INCIDENT, other)}
    assert "not this one" in str(_refusal(proof, incident_id=other)), "checked before STS is asked"
    assert "SignatureDoesNotMatch" in str(_refusal(DecisionProof(headers=headers), incident_id=other))


def test_an_old_proof_another_verb_or_another_host_is_refused_before_sts_is_asked(proof_endpoint, monkeypatch):
    url, people = proof_endpoint
    alice = people["alice"].session()
    then = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=301)
    with monkeypatch.context() as clock:  # botocore's SigV4 clock, only while this proof is signed
        clock.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: then)
        old = _sign(alice, url)
    assert "expired" in str(_refusal(old))
    assert "not reject" in str(_refusal(_sign(alice, url), verb="reject"))
    elsewhere = _sign(alice, f"http://127.0.0.1:{free_port()}")
    assert "not the STS endpoint" in str(_refusal(elsewhere))


class _Sts(BaseHTTPRequestHandler):
    """An STS that answers what the test says, and keeps what it was sent."""

    answer: tuple[int, bytes] = (500, b"")
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Sts.received.append((dict(self.headers.items()), body))
        status, text = _Sts.answer
        self.send_response(status)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *_) -> None:
        """Quiet: the tests read what it received (`received`), not its log."""


@pytest.fixture
def fake_sts(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("IRFLOW_PROOF_STS_ENDPOINT_URL", url)
    get_settings.cache_clear()
    _Sts.received.clear()
    yield url
    server.shutdown()
    server.server_close()


def _error(code: str) -> bytes:
    return f"<ErrorResponse><Error><Code>{code}</Code><Message>{code} said</Message></Error></ErrorResponse>".encode()


def test_only_the_signed_headers_and_the_get_caller_identity_body_are_sent(fake_sts):
    session = boto3.session.Session(aws_access_key_id="AKIAEXAMPLE000000001", aws_secret_access_key="s")
    proof = _sign(session, fake_sts)
    smuggled = DecisionProof(headers={**proof.headers, "X-Amz-Target": "AWSSecurityTokenServiceV20110615.AssumeRole"})
    _Sts.answer = (403, _error("ExpiredToken"))
    assert "ExpiredToken: ExpiredToken said" in str(_refusal(smuggled))
    [(received, body)] = _Sts.received
    headers = {name.lower(): value for name, value in received.items()}
    assert body == GET_CALLER_IDENTITY_BODY.encode()
    assert "x-amz-target" not in headers and headers["authorization"] == proof.header("Authorization")
    assert headers["x-irflow-decision"] == proof.header(PROOF_HEADER)


@pytest.mark.parametrize("answer", [(500, b"oops"), (503, _error("ServiceUnavailable")), (400, _error("Throttling"))])
def test_an_sts_outage_is_retried_not_a_refusal(fake_sts, answer):
    session = boto3.session.Session(aws_access_key_id="AKIAEXAMPLE000000001", aws_secret_access_key="s")
    _Sts.answer = answer
    with pytest.raises(ApplicationError) as failed:
        _verify(_sign(session, fake_sts))
    assert failed.value.type != PROOF_REFUSED and not failed.value.non_retryable


def test_an_unreachable_sts_is_retried(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("IRFLOW_PROOF_STS_ENDPOINT_URL", url)
    get_settings.cache_clear()
    session = boto3.session.Session(aws_access_key_id="AKIAEXAMPLE000000001", aws_secret_access_key="s")
    with pytest.raises(ApplicationError) as failed:
        _verify(_sign(session, url))
    assert failed.value.type == "StsUnreachable" and not failed.value.non_retryable
