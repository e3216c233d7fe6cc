"""irflow's own rules (`builtin_rules`: the rule files in irflow/detection/builtin/ and the windowed rules):
their own test events, and the figures they reach on the labelled corpora (Panther's CloudTrail rule tests,
Stratus Red Team detonations, the Invictus attack stream)."""

from __future__ import annotations

import json
from collections import defaultdict
from functools import cache
from typing import Any

from irflow.detection.catalogue import BUILTIN_RULES, builtin_rules, load_catalogue
from irflow.detection.engine import Engine
from irflow.detection.rule_files import PythonRule, load_rule_files
from irflow.detection.rule_tests import run_rule_tests
from irflow.detection.rules import Rule
from tests.support import CORPORA

CLOUDTRAIL = CORPORA / "cloudtrail"

# Panther rule id -> the irflow rule(s) covering its scenario (any of them firing is irflow's verdict).
PANTHER_TO_IRFLOW: dict[str, tuple[str, ...]] = {
    "AWS.Bedrock.DeleteModelInvocationLoggingConfiguration": ("irflow.bedrock.logging-deleted",),
    "AWS.Bedrock.GuardrailUpdateDelete": ("irflow.bedrock.guardrail-changed",),
    "AWS.CloudTrail.AMIModifiedForPublicAccess": ("irflow.ec2.ami-shared",),
    "AWS.CloudTrail.Account.Discovery": ("irflow.account.contact-discovery",),
    "AWS.CloudTrail.AttemptToLeaveOrg": ("irflow.organizations.leave",),
    "AWS.CloudTrail.CodebuildProjectMadePublic": ("irflow.codebuild.project-public",),
    "AWS.CloudTrail.DNSLogsDeleted": ("irflow.route53resolver.query-logs-deleted",),
    "AWS.CloudTrail.EnableRegion": ("irflow.account.region-enabled",),
    "AWS.CloudTrail.EventSelectorsDisabled": ("irflow.cloudtrail.event-selectors-reduced",),
    "AWS.CloudTrail.IAMCompromisedKeyQuarantine": ("irflow.iam.deny-all-quarantine",),
    "AWS.CloudTrail.IAMEntityCreatedWithoutCloudFormation": ("irflow.iam.user-created",),
    "AWS.CloudTrail.LoginProfileCreatedOrModified": ("irflow.iam.login-profile-changed",),
    "AWS.CloudTrail.NetworkACLPermissiveEntry": ("irflow.ec2.network-acl-open",),
    "AWS.CloudTrail.ResourceMadePublic": ("irflow.s3.bucket-policy-public",),
    "AWS.CloudTrail.RootAccessKeyCreated": ("irflow.iam.root-access-key-created",),
    "AWS.CloudTrail.RootPasswordChanged": ("irflow.signin.root-password-changed",),
    "AWS.CloudTrail.SecurityConfigurationChange": ("irflow.cloudtrail.trail-stopped",),
    "AWS.CloudTrail.SnapshotMadePublic": ("irflow.ec2.snapshot-shared",),
    "AWS.CloudTrail.Stopped": ("irflow.cloudtrail.trail-stopped",),
    "AWS.ConfigService.DisabledDeleted": ("irflow.config.recorder-stopped",),
    "AWS.Console.LoginWithoutSAML": ("irflow.signin.console-login-iam-user",),
    "AWS.Console.RootLoginFailed": ("irflow.signin.root-login-failed",),
    "AWS.EC2.DownloadInstanceUserData": ("irflow.ec2.download-user-data",),
    "AWS.EC2.EBS.Encryption.Disabled": ("irflow.ec2.ebs-default-encryption-disabled",),
    "AWS.EC2.ManualSecurityGroupChange": ("irflow.ec2.security-group-open-to-world",),
    "AWS.EC2.ManyPasswordReadAttempts": ("irflow.ec2.get-password-data",),
    "AWS.EC2.MultiInstanceConnect": ("irflow.ec2-instance-connect.ssh-key-pushed",),
    "AWS.EC2.Startup.Script.Change": ("irflow.ec2.user-data-modified",),
    "AWS.EC2.Traffic.Mirroring": ("irflow.ec2.traffic-mirroring",),
    "AWS.IAM.AttachAdminRolePolicy": ("irflow.iam.admin-policy-attached",),
    "AWS.IAM.AttachAdminUserPolicy": ("irflow.iam.admin-policy-attached",),
    "AWS.IAM.Backdoor.User.Keys": ("irflow.iam.access-key-for-other-user",),
    "AWS.IAM.BackdoorRole": ("irflow.iam.role-trust-opened",),
    "AWS.IAM.CreateUser": ("irflow.iam.user-created",),
    "AWS.KMS.CustomerManagedKeyLoss": ("irflow.kms.key-disabled-or-deleted",),
    "AWS.Lambda.UpdateFunctionCode": ("irflow.lambda.code-or-layers-changed",),
    "AWS.Lambda.UpdateFunctionConfiguration": ("irflow.lambda.code-or-layers-changed",),
    "AWS.Macie.Evasion": ("irflow.macie.disabled",),
    "AWS.Potential.Backdoor.Lambda": ("irflow.lambda.permission-added",),
    "AWS.RDS.ActivityStreamStopped": ("irflow.rds.activity-stream-stopped",),
    "AWS.RDS.AutomatedBackupDeleted": ("irflow.rds.automated-backup-deleted",),
    "AWS.RDS.DeletionProtectionDisabled": ("irflow.rds.deletion-protection-disabled",),
    "AWS.RDS.IAMRoleAdded": ("irflow.rds.iam-role-added",),
    "AWS.RDS.InstanceMadePublic": ("irflow.rds.made-public",),
    "AWS.RDS.MasterPasswordUpdated": ("irflow.rds.master-password-changed",),
    "AWS.RDS.PublicRestore": ("irflow.rds.made-public",),
    "AWS.RDS.SecurityGroupIngressAuthorized": ("irflow.rds.security-group-ingress",),
    "AWS.RDS.SnapshotCopiedCrossRegion": ("irflow.rds.snapshot-copied-cross-region",),
    "AWS.RDS.SnapshotExport": ("irflow.rds.snapshot-exported",),
    "AWS.RDS.SnapshotShared": ("irflow.rds.snapshot-shared",),
    "AWS.Root.Activity": ("irflow.signin.root-activity",),
    "AWS.S3.CopyObject.CrossAccount.Encryption.KMS": ("irflow.s3.copy-to-other-account",),
    "AWS.S3.CopyObjectWithClientSideEncryption": ("irflow.s3.sse-c-copy",),
    "AWS.S3.DeleteBucketEncryption": ("irflow.s3.bucket-encryption-deleted",),
    "AWS.S3.DeleteBucketReplication": ("irflow.s3.bucket-replication-deleted",),
    "AWS.S3.DeletePublicAccessBlock": ("irflow.s3.public-access-block-removed",),
    "AWS.S3.DisableBucketLogging": ("irflow.s3.bucket-logging-disabled",),
    "AWS.S3.DisableMfaDelete": ("irflow.s3.versioning-or-mfa-delete-disabled",),
    "AWS.S3.RansomwareNoteUpload": ("irflow.s3.ransom-note",),
    "AWS.S3.SecurityControlDisabling": (
        "irflow.s3.versioning-or-mfa-delete-disabled",
        "irflow.s3.bucket-logging-disabled",
    ),
    "AWS.S3.SuspendVersioning": ("irflow.s3.versioning-or-mfa-delete-disabled",),
    "AWS.SecretsManager.BatchRetrieveSecrets": ("irflow.secretsmanager.batch-get",),
    "AWS.SecretsManager.RetrieveSecretsMultiRegion": ("irflow.secretsmanager.batch-get",),
    "AWS.SecurityHub.Finding.Evasion": ("irflow.securityhub.disabled",),
    "AWS.Suspicious.SAML.Activity": ("irflow.iam.saml-provider-changed",),
    "AWS.Unsuccessful.MFA.attempt": ("irflow.signin.mfa-failure",),
    "AWS.User.Login.Profile.Modified": ("irflow.iam.login-profile-changed",),
    "AWS.VPCFlow.LogsDeleted": ("irflow.ec2.flow-logs-deleted",),
    "AWS.WAF.Disassociation": ("irflow.waf.disassociated",),
}

# What these rules reached when written; a drop is a regression.
MIN_PANTHER_COVERED = 65
MIN_STRATUS_ALERTED = 35
MAX_INVICTUS_FALSE_RATE = 0.01
MIN_INVICTUS_ATTACK_RECALL = 0.30


@cache
def _labelled() -> list[dict[str, Any]]:
    with open(CLOUDTRAIL / "labelled_tests.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


@cache
def _invictus() -> list[dict[str, Any]]:
    with open(CLOUDTRAIL / "invictus_stream.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def _by_id() -> dict[str, Rule]:
    return {r.rule_id: r for r in builtin_rules()}


def test_every_rule_passes_its_own_tests() -> None:
    assert run_rule_tests(builtin_rules()) == []


def test_rules_are_well_formed() -> None:
    rules = builtin_rules()
    ids = [r.rule_id for r in rules]
    assert len(ids) == len(set(ids))
    for r in rules:
        assert r.rule_id.startswith("irflow.")
        purpose, _, rest = r.finding_type.partition(":")
        assert purpose and "/" in rest, r.finding_type
        if isinstance(r, PythonRule):
            assert any(t.expected for t in r.tests) and any(not t.expected for t in r.tests), r.rule_id
            assert r.event_names or r.rule_id == "irflow.signin.root-activity", r.rule_id


def test_irflow_ships_74_python_rules_one_file_per_tactic_all_loading_cleanly() -> None:
    rules, unloadable = load_rule_files([BUILTIN_RULES])
    assert unloadable == []
    assert len(rules) == 74
    assert sorted(p.stem for p in BUILTIN_RULES.glob("*.py")) == [
        "credential_access",
        "defense_evasion",
        "discovery",
        "execution",
        "exfiltration",
        "impact",
        "initial_access",
        "lateral_movement",
        "persistence",
        "privilege_escalation",
    ]
    assert all((BUILTIN_RULES / f"{p.stem}.events.json").is_file() for p in BUILTIN_RULES.glob("*.py"))
    assert sum(len(r.tests) for r in rules) == 228


def test_a_team_file_reusing_an_irflow_rule_id_is_reported_and_irflows_rule_kept(tmp_path) -> None:
    (tmp_path / "clash.py").write_text(
        "from irflow.detection.authoring import Severity, rule\n\n\n"
        '@rule(id="irflow.cloudtrail.trail-stopped", title="t", severity=Severity.LOW, finding_type="A:B/C",'
        ' names={"StopLogging"})\n'
        "def mine(event):\n"
        "    return True\n"
    )
    catalogue = load_catalogue(python_dirs=[tmp_path])
    [clash] = catalogue.unsupported
    assert clash.source.endswith("clash.py") and "irflow.cloudtrail.trail-stopped" in clash.reason
    [kept] = [r for r in catalogue.rules if r.rule_id == "irflow.cloudtrail.trail-stopped"]
    assert kept.title == "CloudTrail logging stopped or trail deleted"


def test_panther_agreement() -> None:
    rules = _by_id()
    assert set().union(*PANTHER_TO_IRFLOW.values()) <= set(rules)
    tests: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in _labelled():
        if record["source"] == "panther-labs/panther-analysis" and not record.get("mocks"):
            tests[record["rule"]].append(record)
    covered = []
    for panther, mapped in sorted(PANTHER_TO_IRFLOW.items()):
        cases = tests[panther]
        assert cases, panther
        agree = sum(any(rules[i].matches(c["event"]) for i in mapped) == c["expected"] for c in cases)
        rate = agree / len(cases)
        print(f"{panther:55} {agree}/{len(cases)} {rate:.0%}")
        if rate >= 0.95:
            covered.append(panther)
    print(f"Panther rules covered with >=95% agreement: {len(covered)} of {len(tests)} with mock-free tests")
    assert len(covered) >= MIN_PANTHER_COVERED


def test_stratus_techniques_alert() -> None:
    by_technique: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in _labelled():
        if record["source"] == "DataDog/stratus-red-team":
            by_technique[record["rule"]].append(record["event"])
    alerted = []
    for technique, events in sorted(by_technique.items()):
        engine = Engine(builtin_rules())
        events.sort(key=lambda e: e.get("eventTime") or "")
        rule_ids = sorted({a.rule_id for e in events for a in engine.evaluate(e)})
        print(f"{technique:65} {', '.join(rule_ids) or 'MISSED'}")
        if rule_ids:
            alerted.append(technique)
    print(f"Stratus techniques alerted: {len(alerted)}/{len(by_technique)}")
    assert len(by_technique) == 35
    assert len(alerted) >= MIN_STRATUS_ALERTED


def test_invictus_stream() -> None:
    engine = Engine(builtin_rules())
    false_alerts: dict[str, int] = defaultdict(int)
    other = attacks = caught = 0
    in_alerts: set[int] = set()  # events an alert carries (a burst alert carries the whole burst)
    for record in _invictus():  # in stream order: windowed rules see the sequence
        alerts = engine.evaluate(record["event"])
        in_alerts.update(id(e) for a in alerts for e in a.events)
        if record["expected"]:
            attacks += 1
            caught += bool(alerts)
        else:
            other += 1
            if alerts:
                false_alerts[alerts[0].rule_id] += 1
    false_rate = sum(false_alerts.values()) / other
    recall = caught / attacks
    flagged = sum(false_alerts.values())
    print(f"Invictus: alerts on {flagged}/{other} other records ({false_rate:.2%}): {dict(false_alerts)}")
    carried = sum(id(r["event"]) in in_alerts for r in _invictus() if r["expected"])
    print(f"Invictus: alerts on {caught}/{attacks} attack records ({recall:.0%}); {carried} carried by alerts")
    assert false_rate <= MAX_INVICTUS_FALSE_RATE
    assert recall >= MIN_INVICTUS_ATTACK_RECALL
