"""Sigma rules for CloudTrail, parsed with pySigma and evaluated natively on the event.

pySigma parses each YAML file (detection items with their modifiers already applied, the condition into a
tree); `sigma_conditions` compiles that tree once, at load time, into plain Python closures (the values in it
through `sigma_values`). Nothing about the rule is parsed per event. This module makes each rule a
`SigmaDetectionRule`: its logsource checked, its level a severity, its ATT&CK tactic a finding type, its
condition's required eventSource/eventName/userIdentity.type values its index hints.

Rules this evaluator cannot honour (aggregations, correlations, keyword searches, placeholders, fields that
are not CloudTrail's, another logsource) are returned as `Unsupported` with the reason, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sigma.collection import SigmaCollection
from sigma.conditions import ConditionOR
from sigma.rule import SigmaRule

from irflow.detection.rules import Event, Rule, Unsupported
from irflow.detection.sigma_conditions import Predicate, compile_condition, required_values
from irflow.detection.sigma_values import UnsupportedRule
from irflow.models.finding import Severity

LEVELS = {
    "informational": Severity.INFORMATIONAL,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}

# ATT&CK tactic tag → GuardDuty threat purpose, in priority order (the first tactic the rule carries wins).
TACTICS = (
    ("initial-access", "InitialAccess"),
    ("persistence", "Persistence"),
    ("privilege-escalation", "PrivilegeEscalation"),
    ("defense-evasion", "DefenseEvasion"),
    ("defense-impairment", "DefenseEvasion"),
    ("stealth", "DefenseEvasion"),
    ("credential-access", "CredentialAccess"),
    ("discovery", "Discovery"),
    ("exfiltration", "Exfiltration"),
    ("impact", "Impact"),
    ("execution", "Execution"),
)


@dataclass
class SigmaDetectionRule(Rule):
    """A Sigma rule compiled to a predicate. `author` is kept for the DRL-1.1 attribution."""

    author: str = ""
    level: str = ""
    path: str = ""
    predicate: Predicate | None = None

    def matches(self, event: Event) -> bool:
        assert self.predicate is not None
        return self.predicate(event)

    def indexed_test(self) -> Predicate | None:
        return self.predicate  # the compiled condition checks every field itself


def _finding_type(tags: list[str], rule_id: str) -> str:
    tactics = {t.lower().removeprefix("attack.").replace("_", "-") for t in tags if t.lower().startswith("attack.")}
    purpose = next((p for tactic, p in TACTICS if tactic in tactics), "UnauthorizedAccess")
    return f"{purpose}:IAMUser/SigmaRule.{''.join(rule_id.split('-')[:2])}"


def compile_rule(rule: SigmaRule, path: str = "") -> SigmaDetectionRule:
    """A parsed pySigma rule → a rule the engine can run. Raises UnsupportedRule with the reason."""
    logsource = rule.logsource
    if (logsource.product or "").lower() != "aws" or (logsource.service or "").lower() != "cloudtrail":
        raise UnsupportedRule(
            f"logsource product={logsource.product} service={logsource.service} category={logsource.category}"
            " is not aws/cloudtrail"
        )
    conditions = rule.detection.condition
    for text in conditions:
        if "|" in text:
            raise UnsupportedRule(f"aggregation in condition {text!r} (needs windowed state)")
        if re.search(r"\bnear\b", text):
            raise UnsupportedRule(f"'near' in condition {text!r}")
    trees = []
    for parsed in rule.detection.parsed_condition:
        try:
            trees.append(parsed.parse())
        except Exception as exc:  # pySigma raises several error types for conditions it cannot parse
            raise UnsupportedRule(f"condition {parsed.condition!r} does not parse: {exc}") from exc
    preds = [compile_condition(tree) for tree in trees]
    # Several conditions in one rule: any of them.
    predicate = preds[0] if len(preds) == 1 else lambda event: any(p(event) for p in preds)
    tree = trees[0] if len(trees) == 1 else ConditionOR(trees)
    rule_id = str(rule.id) if rule.id else Path(path).stem
    tags = [str(t) for t in rule.tags]
    level = rule.level.name.lower() if rule.level else "medium"
    author = rule.author or ""
    description = (rule.description or "").strip()
    description += f"\n\nSigma rule {rule_id} by {author or 'unknown'} (Detection Rule License 1.1)."
    return SigmaDetectionRule(
        rule_id=rule_id,
        title=rule.title,
        severity=LEVELS.get(level, Severity.MEDIUM),
        finding_type=_finding_type(tags, rule_id),
        event_sources=required_values(tree, "eventSource") or frozenset(),
        event_names=required_values(tree, "eventName") or frozenset(),
        identity_types=required_values(tree, "userIdentity.type") or frozenset(),
        description=description.strip(),
        kind="sigma",
        references=tuple(rule.references or ()),
        tags=tuple(tags),
        author=author,
        level=level,
        path=path,
        predicate=predicate,
    )


def load_sigma_file(path: Path) -> tuple[list[SigmaDetectionRule], list[Unsupported]]:
    loaded: list[SigmaDetectionRule] = []
    unsupported: list[Unsupported] = []
    source = str(path)
    try:
        collection = SigmaCollection.from_yaml(path.read_text(encoding="utf-8"), collect_errors=True)
    except Exception as exc:  # unreadable YAML, or pySigma rejecting the document outright
        return [], [Unsupported(source, f"pySigma cannot parse the file: {exc}")]
    reported = {str(error) for error in collection.errors}
    for error in collection.errors:
        unsupported.append(Unsupported(source, f"pySigma: {error}"))
    for item in collection.rules:
        if not isinstance(item, SigmaRule):
            unsupported.append(Unsupported(source, f"{type(item).__name__} (correlation/filter) is not a rule"))
            continue
        if item.errors:
            fresh = [str(error) for error in item.errors if str(error) not in reported]
            if fresh or not reported:
                unsupported.append(Unsupported(source, f"pySigma: {fresh[0] if fresh else item.errors[0]}"))
            continue
        try:
            loaded.append(compile_rule(item, source))
        except UnsupportedRule as exc:
            unsupported.append(Unsupported(source, str(exc)))
        except Exception as exc:  # never crash the loader on one rule
            unsupported.append(Unsupported(source, f"{type(exc).__name__}: {exc}"))
    return loaded, unsupported


def iter_rule_files(directory: Path) -> Iterator[Path]:
    yield from sorted(p for p in Path(directory).rglob("*.yml") if p.is_file())


def load_sigma_rules(directory: Path | str) -> tuple[list[Rule], list[Unsupported]]:
    """Every `*.yml` under `directory` (recursively): the rules that load, and the others with the reason."""
    rules: list[Rule] = []
    unsupported: list[Unsupported] = []
    for path in iter_rule_files(Path(directory)):
        loaded, rejected = load_sigma_file(path)
        rules.extend(loaded)
        unsupported.extend(rejected)
    return rules, unsupported
