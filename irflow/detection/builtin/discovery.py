"""Discovery (ATT&CK TA0007): instance user data and account contacts read outside the console.

irflow's own rules, written like a team's (docs/rules.md); their test events are in discovery.events.json.
"""

from __future__ import annotations

from irflow.detection.authoring import (
    ACCOUNT_SERVICE,
    EC2_SERVICE,
    Event,
    Severity,
    made_by_aws_service,
    made_by_infrastructure_as_code,
    request_parameter,
    rule,
)


@rule(
    id="irflow.ec2.download-user-data",
    title="EC2 instance user data read",
    severity=Severity.LOW,
    finding_type="Discovery:IAMUser/EC2UserDataRead",
    sources={EC2_SERVICE},
    names={"DescribeInstanceAttribute"},
)
def download_user_data(event: Event) -> bool:
    return (
        request_parameter(event, "attribute") == "userData"
        and not made_by_aws_service(event)
        and not made_by_infrastructure_as_code(event)
    )


@rule(
    id="irflow.account.contact-discovery",
    title="Account details and contacts read outside the console",
    severity=Severity.INFORMATIONAL,
    finding_type="Discovery:IAMUser/AccountDiscovery",
    sources={ACCOUNT_SERVICE, "organizations.amazonaws.com"},
    names={"GetAlternateContact", "GetContactInformation", "DescribeAccount"},
)
def contact_discovery(event: Event) -> bool:
    return "console.amazonaws.com" not in (event.get("userAgent") or "") and not made_by_aws_service(event)
