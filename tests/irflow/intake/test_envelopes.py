"""Everything that carries findings to irflow, unwrapped down to the findings: EventBridge events of
GuardDuty and Security Hub, SNS notifications around them, raw findings of either service, GetFindings
output, lists. Each finding comes out parsed or rejected with a code and a reason a human can act on."""

from __future__ import annotations

import copy
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from irflow.devstack.demo import sample_finding
from irflow.intake.envelopes import LogFileReference, unwrap, unwrap_text_arrivals
from irflow.intake.router import EC2_PLAYBOOK, TRIAGE_PLAYBOOK, route
from irflow.models.finding import (
    FindingRejected,
    FindingSource,
    ParsedFinding,
    canonical_json,
    pack_raw,
    parse_guardduty,
    unpack_raw,
)
from tests.support import CORPORA

INSTANCE_ID = "i-0a1b2c3d4e5f60718"
OTHER_INSTANCE_ID = "i-0a1b2c3d4e5f60719"
ACCOUNT, REGION = "111122223333", "eu-west-1"

GUARDDUTY_CORPUS = [json.loads(line) for line in (CORPORA / "guardduty" / "findings.jsonl").open() if line.strip()]
ASFF_CORPUS = [json.loads(line) for line in (CORPORA / "securityhub" / "asff_findings.jsonl").open() if line.strip()]
# Real Security Hub findings: an AFSBP control about an EC2 instance, a GuardDuty finding as Security Hub
# imports it, and a custom-action event as EventBridge delivers it.
ASFF_EC2 = next(
    line["finding"]
    for line in ASFF_CORPUS
    if [r["Type"] for r in line["finding"]["Resources"]] == ["AwsEc2Instance"]
    and line["finding"]["Resources"][0]["Id"].startswith("arn:aws:ec2:")
)
ASFF_GUARDDUTY = next(line["finding"] for line in ASFF_CORPUS if line["product_arn"].endswith("/guardduty"))
CUSTOM_ACTION_EVENT = next(line["eventbridge_event"] for line in ASFF_CORPUS if line["eventbridge_event"])


def _event(instance_id: str = INSTANCE_ID, **kwargs) -> dict[str, Any]:
    return sample_finding(instance_id, ACCOUNT, REGION, **kwargs)


def _security_hub_event(findings: list[dict[str, Any]], detail_type: str = "Security Hub Findings - Imported") -> dict:
    """The EventBridge event Security Hub sends when it imports (or an analyst sends on) findings."""
    return {
        "version": "0",
        "id": "8e5622f9-d81c-4d81-612a-1d4b3d3f0c9a",
        "detail-type": detail_type,
        "source": "aws.securityhub",
        "account": ACCOUNT,
        "time": "2026-03-01T09:05:07Z",
        "region": "us-east-1",
        "resources": [f["Id"] for f in findings],
        "detail": {"findings": findings},
    }


def _sns(message: Any, topic: str = "guardduty-findings") -> dict[str, Any]:
    """An SNS notification as an SQS subscription without raw delivery receives it."""
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic}",
        "Subject": None,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2026-03-01T09:05:08.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOx=",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }


def _pascal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: _pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    return value


def _get_findings_record(detail: dict[str, Any]) -> dict[str, Any]:
    """One finding as boto3 GuardDuty GetFindings returns it: PascalCase, AdditionalInfo as JSON text."""
    detail = copy.deepcopy(detail)
    info = detail["service"].pop("additionalInfo")
    record = _pascal(detail)
    record["Service"]["AdditionalInfo"] = {"Value": json.dumps(info), "Type": "default"}
    return record


def _body(text: str) -> list[ParsedFinding | FindingRejected]:
    """A queue message body unwrapped as the listener does, the results without their arrivals."""
    return [result for result, _ in unwrap_text_arrivals(text)]


def _outcomes(results: list[ParsedFinding | FindingRejected]) -> list[str]:
    """What each result says: the finding's id, or the rejection code."""
    return [r.finding.id if isinstance(r, ParsedFinding) else r.code for r in results]


def _only(results: list[ParsedFinding | FindingRejected]) -> ParsedFinding | FindingRejected:
    assert len(results) == 1, _outcomes(results)
    return results[0]


def _rejected(results: list[ParsedFinding | FindingRejected]) -> FindingRejected:
    result = _only(results)
    assert isinstance(result, FindingRejected), f"expected a rejection, got finding {result.finding.id}"
    return result


# --- every kind of envelope ---


def test_eventbridge_guardduty_event():
    event = _event()
    parsed = _only(unwrap(event))
    assert isinstance(parsed, ParsedFinding)
    assert parsed.original_shape == "eventbridge_envelope"
    assert parsed.finding.source == FindingSource.GUARDDUTY
    assert parsed.finding.resource.instance_id == INSTANCE_ID
    assert parsed.raw == event


def test_security_hub_imported_event_with_several_findings_gives_each_in_order():
    results = unwrap(_security_hub_event([ASFF_EC2, ASFF_GUARDDUTY]))
    assert _outcomes(results) == [ASFF_EC2["Id"], ASFF_GUARDDUTY["Id"]]
    assert all(r.finding.source == FindingSource.SECURITY_HUB for r in results)
    assert [r.raw for r in results] == [ASFF_EC2, ASFF_GUARDDUTY]


def test_security_hub_custom_action_event_from_the_corpus():
    results = unwrap(CUSTOM_ACTION_EVENT)
    assert CUSTOM_ACTION_EVENT["detail-type"] == "Security Hub Findings - Custom Action"
    assert _outcomes(results) == [f["Id"] for f in CUSTOM_ACTION_EVENT["detail"]["findings"]]
    assert all(r.original_shape == "asff" for r in results)


def test_sns_notification_around_a_guardduty_event():
    parsed = _only(unwrap(_sns(_event())))
    assert isinstance(parsed, ParsedFinding)
    assert parsed.finding.resource.instance_id == INSTANCE_ID
    assert parsed.original_shape == "eventbridge_envelope"


def test_sns_notification_around_a_security_hub_event_with_two_findings_gives_two_results():
    results = unwrap(_sns(_security_hub_event([ASFF_EC2, ASFF_GUARDDUTY]), topic="securityhub-findings"))
    assert len(results) == 2
    assert _outcomes(results) == [ASFF_EC2["Id"], ASFF_GUARDDUTY["Id"]]
    assert results[0].finding.resource.instance_id == ASFF_EC2["Resources"][0]["Id"].rsplit("/", 1)[-1]


def test_sns_notification_text_as_a_queue_message_body():
    body = json.dumps(_sns(_event()))
    assert _outcomes(_body(body)) == [_event()["detail"]["id"]]


def test_raw_guardduty_finding_bare_camel_case():
    detail = _event()["detail"]
    parsed = _only(unwrap(detail))
    assert parsed.original_shape == "finding_camelcase"
    assert parsed.finding.resource.instance_id == INSTANCE_ID


def test_raw_guardduty_finding_get_findings_pascal_case():
    detail = _event()["detail"]
    parsed = _only(unwrap(_get_findings_record(detail)))
    assert parsed.original_shape == "getfindings_pascalcase"
    assert parsed.finding.model_dump(exclude={"raw_sha256"}) == parse_guardduty(detail).finding.model_dump(
        exclude={"raw_sha256"}
    )


def test_raw_asff_finding():
    parsed = _only(unwrap(ASFF_GUARDDUTY))
    assert parsed.original_shape == "asff"
    assert parsed.finding.source == FindingSource.SECURITY_HUB
    assert parsed.finding.type == "UnauthorizedAccess:IAMUser/ConsoleLogin"


def test_guardduty_get_findings_output():
    details = [_event(finding_id="aaaa")["detail"], _event(OTHER_INSTANCE_ID, finding_id="bbbb")["detail"]]
    output = {
        "Findings": [_get_findings_record(d) for d in details],
        "ResponseMetadata": {"RequestId": "0c5e7d9a", "HTTPStatusCode": 200},
    }
    results = unwrap(output)
    assert _outcomes(results) == ["aaaa", "bbbb"]
    assert [r.finding.resource.instance_id for r in results] == [INSTANCE_ID, OTHER_INSTANCE_ID]


def test_security_hub_get_findings_output():
    results = unwrap({"Findings": [ASFF_EC2, ASFF_GUARDDUTY], "NextToken": "eyJ0b2tlbiI6IDJ9"})
    assert _outcomes(results) == [ASFF_EC2["Id"], ASFF_GUARDDUTY["Id"]]
    assert {r.original_shape for r in results} == {"asff"}


def test_a_list_of_mixed_envelopes_keeps_order_and_reports_the_bad_one_in_place():
    event = _event(finding_id="aaaa")
    document = [event, {"unrelated": True}, _sns(_security_hub_event([ASFF_EC2])), ASFF_GUARDDUTY]
    assert _outcomes(unwrap(document)) == ["aaaa", "not_a_finding", ASFF_EC2["Id"], ASFF_GUARDDUTY["Id"]]


def test_nested_lists_are_flattened_in_order():
    first, second, third = (_event(finding_id=n) for n in ("aaaa", "bbbb", "cccc"))
    assert _outcomes(unwrap([[first], [[second], third]])) == ["aaaa", "bbbb", "cccc"]


def test_nesting_is_followed_up_to_the_depth_limit_and_no_further():
    event = _event(finding_id="aaaa")
    within = event
    for _ in range(4):
        within = [within]
    assert _outcomes(unwrap(within)) == ["aaaa"]
    rejected = _rejected(unwrap([within]))
    assert rejected.code == "invalid_event"
    assert "nested too deeply" in rejected.reason


def test_sns_notifications_nested_in_each_other_hit_the_same_depth_limit():
    document: Any = _event()
    for _ in range(6):
        document = _sns(document)
    rejected = _rejected(unwrap(document))
    assert rejected.code == "invalid_event"
    assert "nested too deeply" in rejected.reason


def test_security_hub_event_with_empty_findings_is_rejected():
    rejected = _rejected(unwrap(_security_hub_event([])))
    assert rejected.code == "invalid_event"
    assert "Security Hub Findings - Imported" in rejected.reason
    assert "detail.findings" in rejected.reason


def test_security_hub_event_without_detail_is_rejected():
    event = _security_hub_event([ASFF_EC2])
    del event["detail"]
    rejected = _rejected(unwrap(event))
    assert rejected.code == "invalid_event"
    assert "detail.findings" in rejected.reason


def test_an_event_of_another_detail_type_is_unsupported_and_says_what_is_expected():
    event = _security_hub_event([ASFF_EC2], detail_type="Security Hub Insight Results")
    rejected = _rejected(unwrap(event))
    assert rejected.code == "unsupported_event"
    assert "Security Hub Insight Results" in rejected.reason
    assert "GuardDuty Finding" in rejected.reason
    assert "Security Hub Findings - Imported" in rejected.reason


def test_sns_message_that_is_not_json_is_rejected():
    rejected = _rejected(unwrap(_sns("GuardDuty finding 1234 for i-0a1b2c3d4e5f60718, see console")))
    assert rejected.code == "not_json"
    assert "SNS" in rejected.reason and "Message" in rejected.reason


def test_an_empty_list_is_rejected():
    rejected = _rejected(unwrap([]))
    assert rejected.code == "empty"


# --- the bad inputs an operator meets, each with a specific code and a reason to act on ---


def _guardduty_without_resource() -> dict[str, Any]:
    event = _event(finding_id="noresource01")
    del event["detail"]["resource"]
    return event


def _guardduty_region_mismatch() -> dict[str, Any]:
    event = _event(finding_id="elsewhere01")
    event["detail"]["arn"] = event["detail"]["arn"].replace(f":{REGION}:", ":ap-southeast-2:")
    return event


def _asff_region_mismatch() -> dict[str, Any]:
    finding = copy.deepcopy(ASFF_EC2)
    finding["Resources"][0]["Id"] = finding["Resources"][0]["Id"].replace(":us-east-1:", ":eu-central-1:")
    return _security_hub_event([finding])


BAD_INPUTS = {
    # name: (queue message body, code, fragments the reason must carry)
    "not-json": ('{"detail-type": "GuardDuty Finding", "detail": {', "not_json", ["not JSON", "line 1"]),
    "plain-text": ("GuardDuty says i-0a1b2c3d4e5f60718 is mining", "not_json", ["not JSON"]),
    "json-not-an-event": (json.dumps({"hello": "world", "colour": "blue"}), "not_a_finding", ["colour", "hello"]),
    "json-number": ("42", "not_an_object", ["int"]),
    "event-of-another-detail-type": (
        json.dumps({**_event(), "detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2"}),
        "unsupported_event",
        ["AWS API Call via CloudTrail", "GuardDuty Finding"],
    ),
    "finding-with-no-resource": (json.dumps(_guardduty_without_resource()), "no_resource", ["noresource01"]),
    "guardduty-region-disagrees-with-arn": (
        json.dumps(_guardduty_region_mismatch()),
        "region_mismatch",
        ["elsewhere01", REGION, "ap-southeast-2"],
    ),
    "asff-resource-in-another-region": (
        json.dumps(_asff_region_mismatch()),
        "region_mismatch",
        [ASFF_EC2["Id"], "us-east-1", "eu-central-1"],
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_rejected_with_a_specific_code_and_an_actionable_reason(name):
    body, code, fragments = BAD_INPUTS[name]
    rejected = _rejected(_body(body))
    assert rejected.code == code, rejected.reason
    for fragment in fragments:
        assert fragment in rejected.reason, rejected.reason
    assert str(rejected) == rejected.reason


def test_asff_finding_with_no_resource_is_rejected_naming_the_finding():
    finding = copy.deepcopy(ASFF_EC2)
    finding["Resources"] = []
    rejected = _rejected(unwrap(_security_hub_event([finding])))
    assert rejected.code in ("no_resource", "invalid_finding")
    assert finding["Id"] in rejected.reason


def test_unknown_resource_type_parses_and_the_router_sends_it_to_triage_naming_the_resource_type():
    """A finding about a resource irflow has no playbook for is a finding all the same: it parses, and
    the router (not the parser) sends it to the triage-only playbook, saying why, naming the resource type."""
    event = _event(finding_type="Discovery:Ec2LaunchTemplate/UnusualAccess", finding_id="launchtemplate01")
    event["detail"]["resource"] = {
        "resourceType": "Ec2LaunchTemplate",
        "ec2LaunchTemplateDetails": {"launchTemplateId": "lt-0abcd1234efgh5678"},
    }
    parsed = _only(_body(json.dumps(event)))
    assert isinstance(parsed, ParsedFinding), parsed
    assert parsed.finding.resource.resource_type == "Ec2LaunchTemplate"
    destination = route(parsed.finding)
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "no containment playbook for Ec2LaunchTemplate" in destination.reason, destination.reason
    # No resource id the parser knows: an incident of its own, named after the finding.
    assert "launchtemplate01" in destination.incident_key
    assert destination.incident_key.startswith(f"triage-ec2launchtemplate-{ACCOUNT}-{REGION}-")


def test_asff_resource_type_without_a_playbook_goes_to_triage_too():
    finding = next(
        line["finding"]
        for line in ASFF_CORPUS
        if [r["Type"] for r in line["finding"]["Resources"]] == ["AwsEc2SecurityGroup"]
    )
    parsed = _only(unwrap(_security_hub_event([finding])))
    assert isinstance(parsed, ParsedFinding)
    destination = route(parsed.finding)
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "AwsEc2SecurityGroup" in destination.reason
    # One triage incident per security group.
    assert destination.resource_id == finding["Resources"][0]["Id"]
    assert destination.incident_key == route(parsed.finding).incident_key


def test_the_ec2_instance_asff_finding_routes_to_the_ec2_playbook():
    parsed = _only(unwrap(_security_hub_event([ASFF_EC2])))
    assert route(parsed.finding).playbook == EC2_PLAYBOOK


# --- a 300 KB finding ---

_API_CALLS = [
    ("s3.amazonaws.com", "GetObject"),
    ("s3.amazonaws.com", "ListBuckets"),
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("iam.amazonaws.com", "ListRoles"),
    ("sts.amazonaws.com", "GetCallerIdentity"),
    ("secretsmanager.amazonaws.com", "GetSecretValue"),
    ("ssm.amazonaws.com", "GetParameters"),
]
_USER_AGENTS = [
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79 exe/x86_64.amzn.2023",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1.79 md/arch#x86_64 lang/python#3.11.8",
    "python-requests/2.31.0",
]


def _large_finding(target_bytes: int = 300_000) -> dict[str, Any]:
    """The sample finding with a long, varied history of the API calls the instance's role made."""
    rng = random.Random(300)
    event = _event(finding_id="large0001")
    calls: list[dict[str, Any]] = []
    event["detail"]["service"]["additionalInfo"]["recentApiCalls"] = calls
    moment = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    while len(json.dumps(event)) < target_bytes:
        service, api = rng.choice(_API_CALLS)
        moment += timedelta(seconds=rng.randint(1, 40))
        calls.append(
            {
                "api": api,
                "serviceName": service,
                "count": rng.randint(1, 60),
                "lastSeen": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "callerType": "Remote IP",
                "remoteIpDetails": {"ipAddressV4": f"198.51.100.{rng.randint(1, 254)}"},
                "userAgent": rng.choice(_USER_AGENTS),
                "requestId": str(uuid.UUID(int=rng.getrandbits(128))),
                "errorCode": rng.choice([None, None, "AccessDenied"]),
            }
        )
    return event


def test_a_300_kb_finding_parses_and_packs_far_smaller_and_round_trips():
    event = _large_finding()
    body = json.dumps(event)
    assert len(body) >= 300_000
    parsed = _only(_body(body))
    assert isinstance(parsed, ParsedFinding), parsed
    assert parsed.finding.resource.instance_id == INSTANCE_ID
    assert len(parsed.finding.model_dump_json()) < 5_000  # the finding that travels stays small
    packed = pack_raw(parsed.raw)
    assert len(packed) < 300_000 // 4, len(packed)
    assert unpack_raw(packed) == event
    assert canonical_json(unpack_raw(packed)) == canonical_json(event)
    assert pack_raw(unpack_raw(packed)) == packed  # deterministic: same record, same bytes


# --- CloudTrail log files in S3 (read by the listener when detection is on) ---------------------------


def _no_alerts(record):
    return []


def test_eventbridge_s3_object_created_event_names_a_log_file():
    event = {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {
            "bucket": {"name": "org-trail"},
            "object": {"key": "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/11/28/f.json.gz", "size": 2048},
        },
    }
    assert unwrap(event, detect=_no_alerts) == [
        LogFileReference("org-trail", "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/11/28/f.json.gz", 2048)
    ]
    [rejected] = unwrap(event)  # detection off: nothing reads it, and the reason says so
    assert isinstance(rejected, FindingRejected) and "detection on" in str(rejected)


def test_s3_notification_keys_are_url_decoded_and_only_new_objects_count():
    notification = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:CompleteMultipartUpload",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "AWSLogs/a%3Ab+c.json.gz", "size": 10}},
            },
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectRemoved:Delete",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "AWSLogs/old.json.gz"}},
            },
        ]
    }
    assert unwrap(notification, detect=_no_alerts) == [LogFileReference("b", "AWSLogs/a:b c.json.gz", 10)]


def test_digest_files_and_s3_test_events_are_nothing_to_do():
    digest = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "AWSLogs/1/CloudTrail-Digest/us-east-1/d.json.gz"}},
            }
        ]
    }
    assert unwrap(digest, detect=_no_alerts) == []
    assert unwrap({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}, detect=_no_alerts) == []


def test_a_notification_without_bucket_or_key_is_rejected_with_the_reason():
    [rejected] = unwrap(
        {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {}}}]},
        detect=_no_alerts,
    )
    assert isinstance(rejected, FindingRejected) and "bucket name and object key" in str(rejected)
