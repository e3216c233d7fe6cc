"""What irflow reads from infra/findings-intake.yaml: the outputs naming its queues and rules are the template's,
each rule's EventPattern comes out as EventBridge holds it, with the deployed stack's parameter values, and an irflow
without the template says so rather than guessing."""

from __future__ import annotations

import pytest

from irflow import intake_template
from irflow.intake_template import (
    ALL_RULE_OUTPUTS,
    OPTIONAL_RULE_OUTPUTS,
    QUEUE_OUTPUTS,
    event_patterns,
    load_template,
    rule_name,
)
from tests.support import REPO


def test_the_outputs_irflow_reads_are_the_templates():
    template = load_template()
    outputs = template["Outputs"]
    assert set(QUEUE_OUTPUTS) <= set(outputs)
    rules = {name for name, r in template["Resources"].items() if r["Type"] == "AWS::Events::Rule"}
    assert set(ALL_RULE_OUTPUTS.values()) == rules, "every rule of the template is named"
    for output, logical_id in ALL_RULE_OUTPUTS.items():
        assert outputs[output]["Value"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    for output, logical_id in OPTIONAL_RULE_OUTPUTS.items():
        assert "Condition" in outputs[output] and "Condition" in template["Resources"][logical_id]


def test_event_patterns_take_the_stacks_parameter_values():
    defaults = event_patterns({})
    assert defaults["GuardDutyFindingsRule"] == {
        "source": ["aws.guardduty"],
        "detail-type": ["GuardDuty Finding"],
        "detail": {"severity": [{"numeric": [">=", 0]}]},
    }
    assert defaults["SecurityHubCustomActionRule"] == {
        "source": ["aws.securityhub"],
        "detail-type": ["Security Hub Findings - Custom Action"],
    }
    deployed = event_patterns({"GuardDutyMinimumSeverity": "7", "CloudTrailLogBucket": "org-trail-logs"})
    assert deployed["GuardDutyFindingsRule"]["detail"] == {"severity": [{"numeric": [">=", 7]}]}
    assert deployed["CloudTrailLogFilesRule"]["detail"]["bucket"] == {"name": ["org-trail-logs"]}


def test_a_rules_bus_and_name_from_its_arn():
    assert rule_name("arn:aws:events:us-east-1:123456789012:rule/irflow-guardduty-findings") == (
        "default",
        "irflow-guardduty-findings",
    )
    assert rule_name("arn:aws:events:us-east-1:123456789012:rule/security-bus/irflow-x") == ("security-bus", "irflow-x")


@pytest.fixture
def without_the_template(monkeypatch):
    """irflow installed without infra/ beside it, run from a folder without it either."""
    monkeypatch.setattr(intake_template, "TEMPLATE", REPO / "no-such-folder" / "findings-intake.yaml")
    monkeypatch.chdir(REPO / "docs")
    intake_template._shipped.cache_clear()  # noqa: SLF001
    yield
    intake_template._shipped.cache_clear()  # noqa: SLF001


def test_without_the_template_there_are_no_patterns_to_compare(without_the_template):
    assert event_patterns({}) is None
