"""`irflow codec-server`: Temporal's codec-server protocol over the payload codec, with CORS for the UI's
origin only and an optional bearer token."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request

import boto3
import pytest
from temporalio.api.common.v1 import Payload

from irflow.codec import ENCODING, KmsPayloadCodec
from irflow.codec_server import make_server

UI = "http://localhost:8233"
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"user": "alice", "ip": "203.0.113.9"}')


def _wire(payload: Payload) -> dict:
    """A payload in proto3 JSON, as the UI sends it: every bytes field base64."""
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


def _unwire(wired: dict) -> Payload:
    return Payload(
        metadata={k: base64.b64decode(v) for k, v in wired.get("metadata", {}).items()},
        data=base64.b64decode(wired.get("data", "")),
    )


@pytest.fixture
def served(aws):
    key_id = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    server = make_server(key_id, origins=[UI], token="s3cret")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, KmsPayloadCodec(key_id)
    server.shutdown()
    server.server_close()


def _call(url: str, body=None, method: str = "POST", headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
            return answer.status, dict(answer.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, dict(error.headers), json.loads(raw) if raw else None


AUTH = {"Authorization": "Bearer s3cret", "X-Namespace": "default", "Origin": UI}


def test_it_decodes_what_the_worker_sealed_and_encodes_what_it_decodes(served):
    server, worker_codec = served
    sealed = worker_codec.seal(PLAIN)
    status, headers, body = _call(f"{server.url}/decode", {"payloads": [_wire(sealed)]}, headers=AUTH)
    assert status == 200 and [_unwire(p) for p in body["payloads"]] == [PLAIN]
    assert headers["Access-Control-Allow-Origin"] == UI
    status, _, body = _call(f"{server.url}/default/encode", {"payloads": [_wire(PLAIN)]}, headers=AUTH)
    [encoded] = [_unwire(p) for p in body["payloads"]]
    assert status == 200 and encoded.metadata["encoding"] == ENCODING and b"alice" not in encoded.data
    assert worker_codec.open(encoded) == PLAIN, "the worker reads what the codec server encoded"


def test_without_the_token_nothing_is_decoded(served):
    server, worker_codec = served
    body = {"payloads": [_wire(worker_codec.seal(PLAIN))]}
    for headers in ({"Origin": UI}, {**AUTH, "Authorization": "Bearer guess"}):
        status, _, answer = _call(f"{server.url}/decode", body, headers=headers)
        assert status == 401 and "payloads" not in answer


def test_cors_answers_the_uis_origin_only(served):
    server, _ = served
    status, headers, _ = _call(f"{server.url}/decode", method="OPTIONS", headers={"Origin": UI})
    assert status == 204 and headers["Access-Control-Allow-Origin"] == UI
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    status, headers, _ = _call(f"{server.url}/decode", method="OPTIONS", headers={"Origin": "https://evil.example"})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers


def test_bad_requests_get_clear_answers(served):
    server, worker_codec = served
    assert _call(f"{server.url}/decode", method="GET", headers=AUTH)[0] == 405
    assert _call(f"{server.url}/elsewhere", {"payloads": []}, headers=AUTH)[0] == 404
    status, _, answer = _call(f"{server.url}/decode", {"payloads": "nope"}, headers=AUTH)
    assert status == 400 and "not a payloads document" in answer["message"]
    sealed = worker_codec.seal(PLAIN)
    altered = _wire(sealed)
    altered["data"] = base64.b64encode(sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])).decode()
    status, _, answer = _call(f"{server.url}/decode", {"payloads": [altered]}, headers=AUTH)
    assert status == 400 and "does not authenticate" in answer["message"]
