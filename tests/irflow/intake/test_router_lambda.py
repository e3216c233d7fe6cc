"""Lambda findings go to the Lambda playbook when they name a function, to triage when they do not."""

from __future__ import annotations

from irflow.devstack.demo_lambda import sample_lambda_finding
from irflow.intake.router import LAMBDA_PLAYBOOK, TRIAGE_PLAYBOOK, route
from irflow.models.finding import parse_guardduty

ARN = "arn:aws:lambda:us-east-1:123456789012:function:resize-images"
ROLE = "arn:aws:iam::123456789012:role/service-role/resize-images-role"


def test_a_lambda_finding_is_about_the_function_it_names():
    finding = parse_guardduty(sample_lambda_finding("resize-images", ARN, ROLE)).finding
    assert (finding.resource.resource_type, finding.resource.resource_id) == ("Lambda", "resize-images")
    destination = route(finding)
    assert destination.playbook == LAMBDA_PLAYBOOK
    assert destination.incident_key == "lambda-123456789012-us-east-1-resize-images"


def test_every_lambda_type_of_the_catalogue_routes_to_the_function():
    for finding_type in (
        "Backdoor:Lambda/C&CActivity.B",
        "CryptoCurrency:Lambda/BitcoinTool.B",
        "Trojan:Lambda/BlackholeTraffic",
        "Trojan:Lambda/DropPoint",
        "UnauthorizedAccess:Lambda/MaliciousIPCaller.Custom",
        "UnauthorizedAccess:Lambda/TorClient",
        "UnauthorizedAccess:Lambda/TorRelay",
    ):
        event = sample_lambda_finding("resize-images", ARN, ROLE, finding_type=finding_type)
        assert route(parse_guardduty(event).finding).playbook == LAMBDA_PLAYBOOK, finding_type


def test_a_lambda_finding_without_a_function_name_goes_to_triage():
    event = sample_lambda_finding("resize-images", ARN, ROLE)
    del event["detail"]["resource"]["lambdaDetails"]["functionName"]
    destination = route(parse_guardduty(event).finding)
    assert destination.playbook == TRIAGE_PLAYBOOK
    assert "no Lambda function to contain" in destination.reason


def test_an_override_to_the_lambda_playbook_needs_a_function():
    event = sample_lambda_finding("resize-images", ARN, ROLE)
    event["detail"]["type"] = "Recon:EC2/Portscan"
    event["detail"]["resource"] = {"resourceType": "Instance", "instanceDetails": {"instanceId": "i-0123456789abcdef0"}}
    destination = route(parse_guardduty(event).finding, {"Recon:*": LAMBDA_PLAYBOOK})
    assert destination.playbook == TRIAGE_PLAYBOOK and "no Lambda function" in destination.reason


def test_security_hub_and_guardduty_findings_about_one_function_join_one_incident():
    from irflow.models.asff import parse_asff

    asff = {
        "SchemaVersion": "2018-10-08",
        "Id": "arn:aws:securityhub:us-east-1:123456789012:finding/lambda-1",
        "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/guardduty",
        "AwsAccountId": "123456789012",
        "Types": ["TTPs/Command and Control/Backdoor:Lambda-C&CActivity.B"],
        "CreatedAt": "2025-03-14T09:00:00Z",
        "UpdatedAt": "2025-03-14T09:05:00Z",
        "Severity": {"Label": "HIGH", "Normalized": 70},
        "Title": "Lambda function talks to a C&C server",
        "Region": "us-east-1",
        "Resources": [{"Type": "AwsLambdaFunction", "Id": f"{ARN}:live", "Region": "us-east-1"}],
    }
    from_hub = route(parse_asff(asff).finding)
    from_guardduty = route(parse_guardduty(sample_lambda_finding("resize-images", ARN, ROLE)).finding)
    assert from_hub.playbook == LAMBDA_PLAYBOOK
    assert from_hub.incident_key == from_guardduty.incident_key
    assert from_hub.resource_id == "resize-images"
