"""moto's EBS direct APIs read every snapshot, as AWS's do; a shared snapshot can be copied by the account it is
shared with. Applied by devstack.moto_fidelity (the tests' `aws` fixture, the dev stack's moto server).

In AWS, `ebs:ListSnapshotBlocks` and `ebs:GetSnapshotBlock` read any completed snapshot. moto serves only the
snapshots made through its EBS API (StartSnapshot, PutSnapshotBlock): a snapshot of a volume has no blocks there.
Here every snapshot moto's EC2 makes from a volume gets blocks: synthetic, deterministic content derived from the
volume id (`synthetic_blocks`), a few written blocks with unwritten gaps between them, each with its SHA-256
checksum as AWS returns it. A copy (CopySnapshot) gets the very same blocks, as a copy in AWS holds the same data.

moto's CopySnapshot also looks for the source only in the copying account; in AWS an account may copy a snapshot
another account shared with it (ModifySnapshotAttribute createVolumePermission). That is corrected here too.
"""

from __future__ import annotations

import base64
import hashlib

# moto's EBS block size (EBSSnapshot.block_size); AWS's is 524288 bytes.
BLOCK_SIZE = 512
_applied = False


def synthetic_blocks(volume_id: str, size_gib: int) -> dict[int, bytes]:
    """The blocks moto serves for a snapshot of `volume_id`: block index → data, indices sparse, always block 0."""
    seed = hashlib.sha256(f"irflow-moto-volume:{volume_id}".encode()).digest()
    total = max(1, size_gib) * 1024**3 // BLOCK_SIZE
    indices = {0} | {
        int.from_bytes(hashlib.sha256(seed + bytes([n])).digest()[:8], "big") % total for n in range(2 + seed[0] % 4)
    }
    return {
        index: b"".join(
            hashlib.sha256(seed + index.to_bytes(8, "big") + part.to_bytes(4, "big")).digest()
            for part in range(BLOCK_SIZE // 32)
        )
        for index in sorted(indices)
    }


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    _snapshots_have_blocks()
    _shared_snapshots_can_be_copied()


def _ebs_backend(account_id: str, region: str):
    from moto.ebs.models import ebs_backends

    return ebs_backends[account_id][region]


def _give_blocks(ec2_backend, snapshot, blocks: dict[int, bytes]) -> None:
    from moto.ebs.models import Block, EBSSnapshot

    served = EBSSnapshot(account_id=ec2_backend.account_id, snapshot=snapshot)
    served.status = "completed"
    for index, data in blocks.items():
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        served.blocks[index] = Block(data, checksum, "SHA256", len(data))
    _ebs_backend(ec2_backend.account_id, ec2_backend.region_name).snapshots[snapshot.id] = served


def _snapshots_have_blocks() -> None:
    from moto.ec2.models.elastic_block_store import EBSBackend

    original_create, original_delete = EBSBackend.create_snapshot, EBSBackend.delete_snapshot

    def create_snapshot(self, volume_id, description, owner_id=None, from_ami=None):
        snapshot = original_create(self, volume_id, description, owner_id=owner_id, from_ami=from_ami)
        # (StartSnapshot makes its EC2 snapshot through here and then replaces these blocks with its own. The
        # ~1400 snapshots behind moto's stock AMIs, made in every new account, get none: nothing reads them.)
        if not from_ami:
            _give_blocks(self, snapshot, synthetic_blocks(volume_id, snapshot.volume.size))
        return snapshot

    def delete_snapshot(self, snapshot_id):
        deleted = original_delete(self, snapshot_id)
        _ebs_backend(self.account_id, self.region_name).snapshots.pop(snapshot_id, None)
        return deleted

    EBSBackend.create_snapshot = create_snapshot
    EBSBackend.delete_snapshot = delete_snapshot


def _shared_snapshots_can_be_copied() -> None:
    from moto.ec2.exceptions import InvalidSnapshotIdError
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
    from moto.ec2.utils import random_snapshot_id

    def source_of(account_id: str, region: str, snapshot_id: str):
        own = ec2_backends[account_id][region].snapshots.get(snapshot_id)
        if own is not None:
            return own
        for owner in list(ec2_backends.keys()):
            found = ec2_backends[owner][region].snapshots.get(snapshot_id)
            if found is not None and (
                account_id in found.create_volume_permission_userids or "all" in found.create_volume_permission_groups
            ):
                return found
        raise InvalidSnapshotIdError()

    def copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id):
        region = source_region or self.region_name
        source = source_of(self.account_id, region, source_snapshot_id)
        snapshot = Snapshot(
            self,
            random_snapshot_id(),
            volume=source.volume,
            description=description,
            encrypted=source.encrypted,
            kms_key_id=kms_key_id or source.kms_key_id,
        )
        self.snapshots[snapshot.id] = snapshot
        served = _ebs_backend(source.owner_id, region).snapshots.get(source.id)
        if served is not None:
            _give_blocks(self, snapshot, {i: b.block_data for i, b in served.blocks.items()})
        return snapshot

    EBSBackend.copy_snapshot = copy_snapshot
