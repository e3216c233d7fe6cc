"""What infra/findings-intake.yaml declares, read from the template itself: its parameters, the stack outputs that
name its queues and rules, and each rule's EventPattern as EventBridge holds it once deployed. The readiness checks
(activities/readiness_intake.py) compare a deployed stack with it; the stand-in account deploys it
(irflow/devstack/intake_stack.py).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_NAME = "infra/findings-intake.yaml"
TEMPLATE = Path(__file__).resolve().parents[1] / TEMPLATE_NAME

QUEUE_OUTPUTS = ("FindingsQueueUrl", "FindingsQueueArn", "DeadLetterQueueUrl", "DeadLetterQueueArn")
# The rules that bring findings, by the output naming each and the rule's logical id (the CloudTrail API calls rule
# has a readiness check of its own; the log files rule exists only with CloudTrailLogBucket).
RULE_OUTPUTS = {
    "GuardDutyFindingsRuleArn": "GuardDutyFindingsRule",
    "SecurityHubImportedFindingsRuleArn": "SecurityHubImportedFindingsRule",
    "SecurityHubCustomActionRuleArn": "SecurityHubCustomActionRule",
}
OPTIONAL_RULE_OUTPUTS = {"CloudTrailLogFilesRuleArn": "CloudTrailLogFilesRule"}
CLOUDTRAIL_RULE_OUTPUT = ("CloudTrailApiCallsRuleArn", "CloudTrailApiCallsRule")
ALL_RULE_OUTPUTS = {**RULE_OUTPUTS, CLOUDTRAIL_RULE_OUTPUT[0]: CLOUDTRAIL_RULE_OUTPUT[1], **OPTIONAL_RULE_OUTPUTS}


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags, read into their long form (``!Ref X`` -> ``{"Ref": "X"}``)."""


def _construct_intrinsic(loader: _TemplateLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"  # their long forms have no Fn::
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template, read afresh (the caller may change what it gets)."""
    return yaml.load(path.read_text(), Loader=_TemplateLoader)


def parameter_values(template: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """Every parameter's value as CloudFormation hands it to the template: the default unless given, a string."""
    values = {name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec}
    values.update({name: str(value) for name, value in (overrides or {}).items()})
    return values


def resolve_event_pattern(pattern: Any, parameters: dict[str, str]) -> dict[str, Any]:
    """A rule's EventPattern as a mapping, whether the template gives a mapping or a ``Fn::Sub`` JSON string."""
    if isinstance(pattern, dict) and set(pattern) == {"Fn::Sub"}:
        pattern = pattern["Fn::Sub"]
        if not isinstance(pattern, str):
            raise ValueError("only the one-argument form of Fn::Sub is resolved in an EventPattern")

        def substitute(match: re.Match[str]) -> str:
            if match.group(1) not in parameters:
                raise ValueError(f"EventPattern refers to {match.group(1)!r}, which is not a parameter")
            return parameters[match.group(1)]

        pattern = re.sub(r"\$\{([^}!]+)\}", substitute, pattern)
    if isinstance(pattern, str):
        pattern = json.loads(pattern)
    if not isinstance(pattern, dict):
        raise ValueError(f"an EventPattern must be a JSON object, not {type(pattern).__name__}")
    return pattern


def rule_name(arn: str) -> tuple[str, str]:
    """(bus, name) of a rule's ARN: `rule/<name>` on the default bus, `rule/<bus>/<name>` on another."""
    path = arn.split(":rule/", 1)[1]
    bus, _, name = path.rpartition("/")
    return bus or "default", name


@lru_cache(maxsize=1)
def _shipped() -> str | None:
    """The template's text beside irflow's code, else in the working directory's infra/ (an installed irflow run
    from its checkout or image); None when neither has it."""
    for path in (TEMPLATE, Path.cwd() / TEMPLATE_NAME):
        if path.is_file():
            return path.read_text()
    return None


def event_patterns(stack_parameters: dict[str, str]) -> dict[str, dict[str, Any]] | None:
    """Each rule's EventPattern (by logical id) with the deployed stack's parameter values; None when the template
    is not where irflow runs."""
    text = _shipped()
    if text is None:
        return None
    template = yaml.load(text, Loader=_TemplateLoader)
    parameters = parameter_values(template, stack_parameters)
    return {
        logical_id: resolve_event_pattern(resource["Properties"]["EventPattern"], parameters)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Events::Rule"
    }
