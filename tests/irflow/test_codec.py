"""Encrypted payloads: what a client writes to Temporal is AES-256-GCM under KMS data keys; what was
written before the codec still reads; what was altered or sealed under another key does not."""

from __future__ import annotations

import json

import boto3
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from irflow.codec import ENCODING, METADATA_ENCODING, KmsPayloadCodec, PayloadDecryptionError, with_payload_codec
from irflow.models.incident import IncidentState, Status
from tests.support import another_connection, open_incident, running_worker, wait_for
from workflows.activity_options import PRIOR_STATE_SETTLED
from workflows.carry_over import CONTINUE_AS_NEW
from workflows.incident import BEFORE_REPORT, CLOSE_THE_LOOP, JOINED_FINDING, NOTIFY_CONTAINED, UNDO_FAILURES

# Patch markers carry their id in clear: every one irflow's workflows can record, nothing else.
PATCH_IDS = {
    BEFORE_REPORT,
    CLOSE_THE_LOOP,
    JOINED_FINDING,
    NOTIFY_CONTAINED,
    PRIOR_STATE_SETTLED,
    UNDO_FAILURES,
    CONTINUE_AS_NEW,
}

SECRET = b'{"domain": "c2.example-botnet.net", "user": "alice", "ip": "203.0.113.9"}'


class CountingKms:
    """The KMS client, counting calls: keys are cached, KMS is not asked for every payload."""

    def __init__(self, kms) -> None:
        self.kms, self.generated, self.decrypted = kms, 0, 0

    def generate_data_key(self, **kwargs):
        self.generated += 1
        return self.kms.generate_data_key(**kwargs)

    def decrypt(self, **kwargs):
        self.decrypted += 1
        return self.kms.decrypt(**kwargs)


@pytest.fixture
def key_id(aws) -> str:
    return boto3.client("kms", region_name="us-east-1").create_key(Description="irflow payloads")["KeyMetadata"][
        "KeyId"
    ]


def _payload(data: bytes = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


def test_a_sealed_payload_holds_no_plaintext_and_opens_to_the_same_payload(key_id):
    codec = KmsPayloadCodec(key_id)
    sealed = codec.seal(_payload())
    assert sealed.metadata[METADATA_ENCODING] == ENCODING
    for fragment in (b"c2.example-botnet.net", b"alice", b"203.0.113.9", b"json/plain"):
        assert fragment not in sealed.SerializeToString()
    assert codec.open(sealed) == _payload()
    assert KmsPayloadCodec(key_id).open(sealed) == _payload(), "another process with the key opens it too"


def test_payloads_written_before_the_codec_still_read(key_id):
    old = _payload()
    assert KmsPayloadCodec(key_id).open(old) == old


def test_an_altered_payload_does_not_open_and_a_new_key_still_reads_old_payloads(key_id):
    codec = KmsPayloadCodec(key_id)
    sealed = codec.seal(_payload())
    altered = Payload()
    altered.CopyFrom(sealed)
    altered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PayloadDecryptionError, match="does not authenticate"):
        KmsPayloadCodec(key_id).open(altered)
    other = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    assert KmsPayloadCodec(other).open(sealed) == _payload(), "after a key change, old payloads still read"
    forged = Payload()
    forged.CopyFrom(sealed)
    forged.metadata["irflow-kms-key-id"] = other.encode()  # the data key was not sealed under this key
    with pytest.raises(PayloadDecryptionError, match="KMS would not open"):
        KmsPayloadCodec(key_id).open(forged)


def test_data_keys_are_reused_within_their_bounds_and_replaced_after(key_id):
    now = [0.0]
    kms = CountingKms(boto3.client("kms", region_name="us-east-1"))
    codec = KmsPayloadCodec(key_id, kms, max_key_seconds=60, max_key_uses=3, clock=lambda: now[0])
    first = [codec.seal(_payload()) for _ in range(3)]
    assert kms.generated == 1 and len({p.metadata["irflow-encrypted-data-key"] for p in first}) == 1
    assert len({p.data[:12] for p in first}) == 3, "a fresh nonce every time"
    codec.seal(_payload())
    assert kms.generated == 2, "after three uses, a new data key"
    now[0] = 61.0
    codec.seal(_payload())
    assert kms.generated == 3, "after its time, a new data key"
    reader = KmsPayloadCodec(key_id, kms, clock=lambda: now[0])
    assert all(reader.open(p) == _payload() for p in first) and kms.decrypted == 1, "one Decrypt per data key"


def test_no_key_no_codec():
    assert with_payload_codec(pydantic_data_converter, "") is pydantic_data_converter


async def test_an_incident_through_sealing_clients_leaves_only_ciphertext_in_its_history(dev_env, workload, key_id):
    plain = dev_env.client
    sealing = await another_connection(plain, key_id)
    # Memory capture waits for an image moto never writes: nothing of it is about sealing.
    async with running_worker(sealing, capture_memory=False) as settings:
        _, handle = await open_incident(sealing, settings, workload)
        state = await wait_for(handle, lambda s: s.status == Status.AWAITING_DECISION)
        assert state.finding.resource.instance_id == workload.instance_id, "the sealing client reads it"
        await handle.signal("reject", {"by": "alice", "reason": "codec test"})
        final = await handle.result()
        assert final.status == Status.ROLLED_BACK
        history = await plain.get_workflow_handle(handle.id).fetch_history()
        # The plain client cannot read the state; the sealing one can (while the worker answers queries: without one
        # a query only times out, which would prove nothing).
        with pytest.raises(Exception) as refused:  # noqa: B017 (the pydantic converter fails on ciphertext)
            await plain.get_workflow_handle(handle.id).query("current_state", result_type=IncidentState)
        assert not isinstance(refused.value, RPCError), refused.value
        assert (await handle.query("current_state", result_type=IncidentState)).status == Status.ROLLED_BACK
    # Patch markers (workflow.patched) are written by the SDK's core, past the codec: they hold the patch's id and
    # nothing of the incident, and that is all they may hold.
    patches = [e for e in history.events if e.marker_recorded_event_attributes.marker_name == "core_patch"]
    assert {json.loads(p.data)["id"] for e in patches for p in _payloads_of(e)} <= PATCH_IDS
    payloads = [p for event in history.events if event not in patches for p in _payloads_of(event)]
    assert payloads, "the history has payloads to look at"
    unsealed = [p for p in payloads if p.metadata.get(METADATA_ENCODING) != ENCODING]
    assert not unsealed, [(dict(p.metadata), p.data[:80]) for p in unsealed][:5]
    raw, sealed = history.to_json().encode(), b"".join(p.data for p in payloads)
    for fragment in (b"c2.example-botnet.net", b"10.0.1.25", b"codec test", b"alice"):
        assert fragment not in raw and fragment not in sealed
    assert workload.instance_id.encode() not in sealed, "(the instance id is in the workflow id, by design)"


def _payloads_of(event) -> list[Payload]:
    """Every payload an event carries (inputs, results, signal and update arguments, markers, memo, headers)."""
    found: list[Payload] = []

    def walk(message) -> None:
        for field, value in message.ListFields():
            if field.message_type is None or field.name == "search_attributes":
                continue  # search attributes stay readable by design: they carry ids, never the finding
            if field.message_type.GetOptions().map_entry:
                # A local activity's marker keeps the SDK's own bookkeeping (type, attempt, times) in clear
                # under "data"; its result is sealed like any payload.
                marker = message.DESCRIPTOR.name == "MarkerRecordedEventAttributes"
                values = [v for k, v in value.items() if not (marker and k == "data")]
            elif hasattr(value, "ListFields"):
                values = [value]
            else:
                values = list(value)  # a repeated field
            for item in values:
                if isinstance(item, Payload):
                    found.append(item)
                elif hasattr(item, "ListFields"):
                    walk(item)

    walk(event)
    return found
