"""Attack sequences: the sequence is an incident of its own (the attack-sequence playbook), and each resource it
names, as a finding of the sequence's type about that resource handed over by the sequence's incident, reaches the
playbook and the incident key a GuardDuty finding about that resource reaches: the resource's kind decides, not the
sequence's type family. Any other finding of a sequence's type about a resource (Security Hub's copy) is triage, and
nothing from outside can pass for one the sequence's incident handed over."""

from __future__ import annotations

from typing import Any

import pytest

from irflow.devstack.demo import sample_access_key_finding, sample_bucket_finding, sample_finding, sample_role_finding
from irflow.devstack.demo_sequence import sample_attack_sequence
from irflow.intake.envelopes import unwrap
from irflow.intake.router import (
    EC2_PLAYBOOK,
    IAM_ROLE_PLAYBOOK,
    IAM_USER_PLAYBOOK,
    S3_PLAYBOOK,
    SEQUENCE_PLAYBOOK,
    TRIAGE_PLAYBOOK,
    is_attack_sequence,
    route,
)
from irflow.models.asff import parse_asff
from irflow.models.finding import Finding, ParsedFinding, parse_guardduty
from irflow.models.sequence_parsing import resource_finding
from tests.activities.test_source_findings import asff_record
from tests.irflow.intake.router_support import (
    ACCESS_KEY,
    ACCOUNT,
    BUCKET,
    INSTANCE_ID,
    REGION,
    ROLE_NAME,
    SESSION_KEY,
    USER_NAME,
)

SEQUENCE_TYPES = (
    "AttackSequence:IAM/CompromisedCredentials",
    "AttackSequence:S3/CompromisedData",
    "AttackSequence:EC2/CompromisedInstanceGroup",
    "AttackSequence:EKS/CompromisedCluster",
)


def _sequence(finding_type: str, *resources: dict[str, Any]) -> Finding:
    event = sample_attack_sequence(INSTANCE_ID, ACCESS_KEY, USER_NAME, ACCOUNT, REGION)
    event["detail"]["type"] = finding_type
    if resources:
        event["detail"]["service"]["detection"]["sequence"]["resources"] = list(resources)
    return parse_guardduty(event).finding


def _key(user_type: str, user_name: str, key: str, principal: str) -> dict[str, Any]:
    access_key = {"principalId": principal, "userName": user_name, "userType": user_type}
    return {"uid": key, "resourceType": "ACCESS_KEY", "data": {"accessKey": access_key}}


def _routes(sequence: Finding) -> list:
    return [route(resource_finding(sequence, r, "sequence-parent-1")) for r in sequence.sequence_resources]


@pytest.mark.parametrize("finding_type", SEQUENCE_TYPES)
def test_the_sequence_is_an_incident_of_the_attack_sequence_playbook(finding_type):
    sequence = _sequence(finding_type)
    destination = route(sequence)
    assert is_attack_sequence(sequence)
    assert destination.playbook == SEQUENCE_PLAYBOOK and "attack sequence" in destination.reason
    assert destination.incident_key == f"sequence-{ACCOUNT}-{REGION}-finding-{sequence.id}"


@pytest.mark.parametrize("finding_type", SEQUENCE_TYPES)
def test_each_resource_reaches_the_incident_a_finding_about_it_reaches(finding_type):
    role_principal = f"AROAQWERTYUIOPASDF5678:{INSTANCE_ID}"
    sequence = _sequence(
        finding_type,
        {"uid": INSTANCE_ID, "resourceType": "EC2_INSTANCE"},
        _key("IAMUser", USER_NAME, ACCESS_KEY, "AIDAQWERTYUIOPASDF1234"),
        _key("AssumedRole", ROLE_NAME, SESSION_KEY, role_principal),
        {"uid": f"arn:aws:s3:::{BUCKET}", "name": BUCKET, "resourceType": "S3_BUCKET"},
    )
    instance, user, role, bucket = _routes(sequence)
    alone = {
        EC2_PLAYBOOK: sample_finding(INSTANCE_ID, ACCOUNT, REGION),
        IAM_USER_PLAYBOOK: sample_access_key_finding(USER_NAME, ACCESS_KEY, ACCOUNT, REGION),
        IAM_ROLE_PLAYBOOK: sample_role_finding(ROLE_NAME, "AROAQWERTYUIOPASDF5678", INSTANCE_ID, ACCOUNT, REGION),
        S3_PLAYBOOK: sample_bucket_finding(BUCKET, ACCOUNT, REGION),
    }
    for destination, playbook in ((instance, EC2_PLAYBOOK), (user, IAM_USER_PLAYBOOK), (role, IAM_ROLE_PLAYBOOK)):
        assert destination.playbook == playbook, destination
        assert destination.incident_key == route(parse_guardduty(alone[playbook]).finding).incident_key
    assert bucket.playbook == S3_PLAYBOOK
    assert bucket.incident_key == route(parse_guardduty(alone[S3_PLAYBOOK]).finding).incident_key
    for identity in (USER_NAME, ACCESS_KEY, ROLE_NAME, SESSION_KEY):
        assert identity not in user.incident_key + role.incident_key


def test_resources_no_playbook_answers_go_to_triage_saying_why():
    sequence = _sequence(
        "AttackSequence:EKS/CompromisedCluster",
        {"uid": "prod", "name": "prod", "resourceType": "EKS_CLUSTER"},
        {"uid": "eni-0abc1234def567890", "resourceType": "EC2_NETWORK_INTERFACE"},
        _key("Root", "Root", "ASIAROOTROOTROOTROOT", ACCOUNT),
        {"uid": "i-not-an-instance", "resourceType": "EC2_INSTANCE"},
    )
    root, nameless, cluster, interface = _routes(sequence)  # kinds a playbook may answer come first
    assert {d.playbook for d in (cluster, interface, root, nameless)} == {TRIAGE_PLAYBOOK}
    assert cluster.reason == "no containment playbook for EKSCluster"
    assert interface.reason == "no containment playbook for EC2_NETWORK_INTERFACE"
    assert "root" in root.reason.lower()
    assert "names no instance" in nameless.reason


def _security_hubs_copy(**forged: Any) -> dict[str, Any]:
    """Security Hub's copy of a GuardDuty attack sequence: one resource, the instance."""
    instance = {"Type": "AwsEc2Instance", "Id": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{INSTANCE_ID}"}
    record = asff_record(
        f"arn:aws:guardduty:{REGION}:{ACCOUNT}:detector/d1/finding/{'5' * 32}",
        product_arn=f"arn:aws:securityhub:{REGION}::product/aws/guardduty",
        resource=instance,
        account=ACCOUNT,
        region=REGION,
    )
    record["Types"] = ["TTPs/AttackSequence:IAM-CompromisedCredentials"]
    record.update(forged)
    return record


def test_security_hubs_copy_of_a_sequence_goes_to_triage_not_containment():
    finding = parse_asff(_security_hubs_copy()).finding
    assert finding.type == "AttackSequence:IAM/CompromisedCredentials" and finding.resource.instance_id == INSTANCE_ID
    destination = route(finding)
    assert destination.playbook == TRIAGE_PLAYBOOK, destination
    assert "not handed over by the sequence's own incident" in destination.reason
    assert destination.resource_id == f"finding-{finding.id[-40:]}", "an incident of its own, not the instance's"
    assert destination.incident_key.startswith(f"triage-instance-{ACCOUNT}-{REGION}-finding-")


def test_a_sequence_finding_about_one_resource_is_contained_only_when_the_sequences_incident_hands_it_over():
    sequence = _sequence(
        "AttackSequence:EC2/CompromisedInstanceGroup", {"uid": INSTANCE_ID, "resourceType": "EC2_INSTANCE"}
    )
    [instance] = sequence.sequence_resources
    handed_over = resource_finding(sequence, instance, "sequence-parent-1")
    assert route(handed_over).playbook == EC2_PLAYBOOK
    alone = handed_over.model_copy(update={"sequence_parent": None})
    assert route(alone).playbook == TRIAGE_PLAYBOOK


def _forged_guardduty_event() -> dict[str, Any]:
    """A sequence's type about the instance, as a GuardDuty event, claiming to be handed over every way JSON can."""
    event = sample_finding(INSTANCE_ID, ACCOUNT, REGION)
    event["detail"]["type"] = "AttackSequence:EC2/CompromisedInstanceGroup"
    for where in (event, event["detail"], event["detail"]["service"]):
        where.update(sequenceParent="sequence-parent-1", sequence_parent="sequence-parent-1")
    return event


@pytest.mark.parametrize(
    "document",
    [
        _forged_guardduty_event(),
        _security_hubs_copy(sequenceParent="sequence-parent-1", sequence_parent="sequence-parent-1"),
        {
            "version": "0",
            "detail-type": "Security Hub Findings - Imported",
            "source": "aws.securityhub",
            "detail": {"findings": [_security_hubs_copy(SequenceParent="sequence-parent-1")]},
        },
    ],
)
def test_nothing_from_outside_passes_for_a_resource_the_sequence_handed_over(document):
    """What the listener (and irflow ingest) reads goes through `unwrap`: no record sets `sequence_parent`."""
    [parsed] = unwrap(document)
    assert isinstance(parsed, ParsedFinding), parsed
    assert parsed.finding.type.startswith("AttackSequence:") and parsed.finding.resource.instance_id == INSTANCE_ID
    assert parsed.finding.sequence_parent is None
    assert route(parsed.finding).playbook == TRIAGE_PLAYBOOK
