"""Encrypted payloads: every payload a client writes to Temporal (workflow inputs, signals, updates, activity
inputs and results, queries' answers) is sealed with AES-256-GCM under a data key from KMS, so reading the
namespace's histories reads ciphertext.

Envelope encryption: KMS `GenerateDataKey` (AES_256) gives a plaintext key, used in memory, and the same key
encrypted under `IRFLOW_PAYLOAD_KMS_KEY_ID`, carried in each payload's metadata. Decoding asks KMS to
`Decrypt` that blob. Keys are cached for a bounded time and a bounded number of uses (encryption) or a
bounded time and count (decryption), so KMS is called rarely and a key lives briefly.

Payloads without irflow's encoding (written before the codec was on) pass through undecoded, so older
incidents still read. A payload sealed by irflow that does not authenticate (altered, or the wrong key) is
an error, never passed through.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from irflow.models.identifiers import region_of_arn

ENCODING = b"binary/irflow-aes256gcm-kms"
METADATA_ENCODING = "encoding"
METADATA_KEY_ID = "irflow-kms-key-id"
METADATA_DATA_KEY = "irflow-encrypted-data-key"
NONCE_BYTES = 12
# Encryption keys: a fresh data key after this long or this many payloads (GCM with random nonces stays far
# below its 2^32 limit). Decryption keys: remembered this long, this many at most.
MAX_KEY_SECONDS = 300.0
MAX_KEY_USES = 100_000
MAX_CACHED_DECRYPTION_KEYS = 256


class PayloadDecryptionError(ValueError):
    """A payload irflow sealed that does not open: altered, truncated, or sealed under another key."""


@dataclass
class _DataKey:
    plaintext: bytes
    encrypted: bytes
    made_at: float
    uses: int = 0


def _kms_client(key_id: str) -> Any:
    import boto3  # the codec is built by every client; boto3 only when a key is configured

    return boto3.session.Session().client("kms", region_name=region_of_arn(key_id))


class KmsPayloadCodec(PayloadCodec):
    def __init__(
        self,
        key_id: str,
        kms: Any = None,
        max_key_seconds: float = MAX_KEY_SECONDS,
        max_key_uses: int = MAX_KEY_USES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not key_id:
            raise ValueError("a KMS key id is needed to encrypt payloads (IRFLOW_PAYLOAD_KMS_KEY_ID)")
        self.key_id = key_id
        self._kms = kms
        self._max_seconds = max_key_seconds
        self._max_uses = max_key_uses
        self._clock = clock
        self._lock = threading.Lock()
        self._current: _DataKey | None = None
        self._opened: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    @property
    def kms(self) -> Any:
        if self._kms is None:
            self._kms = _kms_client(self.key_id)
        return self._kms

    # --- keys ---

    def _encryption_key(self) -> _DataKey:
        with self._lock:
            now, key = self._clock(), self._current
            if key is None or key.uses >= self._max_uses or now - key.made_at >= self._max_seconds:
                made = self.kms.generate_data_key(KeyId=self.key_id, KeySpec="AES_256")
                key = self._current = _DataKey(made["Plaintext"], made["CiphertextBlob"], now)
                self._remember(key.encrypted, key.plaintext, now)
            key.uses += 1
            return key

    def _decryption_key(self, encrypted: bytes, key_id: str) -> bytes:
        now = self._clock()
        with self._lock:
            found = self._opened.get(encrypted)
            if found and now - found[1] < self._max_seconds:
                self._opened.move_to_end(encrypted)
                return found[0]
        try:
            plaintext = self.kms.decrypt(CiphertextBlob=encrypted, KeyId=key_id)["Plaintext"]
        except Exception as error:  # noqa: BLE001 (KMS says no: the payload cannot be opened here)
            raise PayloadDecryptionError(f"KMS would not open the payload's data key: {error}") from error
        with self._lock:
            self._remember(encrypted, plaintext, now)
        return plaintext

    def _remember(self, encrypted: bytes, plaintext: bytes, now: float) -> None:
        self._opened[encrypted] = (plaintext, now)
        self._opened.move_to_end(encrypted)
        while len(self._opened) > MAX_CACHED_DECRYPTION_KEYS:
            self._opened.popitem(last=False)

    # --- sealing ---

    def seal(self, payload: Payload) -> Payload:
        key = self._encryption_key()
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key.plaintext).encrypt(nonce, payload.SerializeToString(), ENCODING)
        return Payload(
            metadata={
                METADATA_ENCODING: ENCODING,
                METADATA_KEY_ID: self.key_id.encode(),
                METADATA_DATA_KEY: key.encrypted,
            },
            data=nonce + sealed,
        )

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get(METADATA_ENCODING) != ENCODING:
            return payload  # written before the codec was on: as it is
        encrypted = payload.metadata.get(METADATA_DATA_KEY)
        if not encrypted or len(payload.data) <= NONCE_BYTES:
            raise PayloadDecryptionError("an irflow-sealed payload without its data key or its ciphertext")
        # The key the payload was sealed under (a previous key still opens what it sealed, after a change of
        # IRFLOW_PAYLOAD_KMS_KEY_ID, wherever the worker may still use it for Decrypt).
        sealed_under = payload.metadata.get(METADATA_KEY_ID, b"").decode() or self.key_id
        key = self._decryption_key(encrypted, sealed_under)
        try:
            plain = AESGCM(key).decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], ENCODING)
        except Exception as error:  # noqa: BLE001 (InvalidTag: altered, or another key)
            raise PayloadDecryptionError("an irflow-sealed payload does not authenticate") from error
        return Payload.FromString(plain)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await asyncio.to_thread(lambda: [self.seal(p) for p in payloads])

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return await asyncio.to_thread(lambda: [self.open(p) for p in payloads])


def with_payload_codec(converter: DataConverter, key_id: str, kms: Any = None) -> DataConverter:
    """`converter` sealing its payloads under `key_id`; unchanged when no key is configured."""
    if not key_id:
        return converter
    # Failure messages and stack traces go into encoded attributes too (an AWS error may name a user).
    return replace(
        converter,
        payload_codec=KmsPayloadCodec(key_id, kms),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
