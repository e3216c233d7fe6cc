"""irflow's own settings (environment variables `IRFLOW_*`, or a dotenv file named by IRFLOW_SETTINGS_FILE).

Temporal's connection comes from the SDK's own environment configuration (`TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS_*`), and AWS's from boto3's (`AWS_ENDPOINT_URL`,
`AWS_DEFAULT_REGION`, the usual credential chain).
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from irflow.models.evidence import MemoryCapture
from irflow.models.finding import Severity
from irflow.models.incident import Approver, Eradication, ResponsePolicy

FORENSIC_EGRESS_ID = re.compile(r"(?:sg|pl)-[0-9a-f]{8,17}")

DEFAULT_MEMORY_CAPTURE_COMMANDS = [
    # The shell lines of the irflow-CaptureMemory SSM document (activities/memory_document.py). The bucket and
    # the prefix come in as the document's parameters, which SSM checks against their allowedPattern before the
    # agent runs anything; no value from a finding is ever pasted into this text.
    # AVML (Microsoft's userland memory acquirer) writes a compressed LiME image; the image is then copied
    # straight into its folder of the incident's evidence (`prefix`: incidents/<incident id>/memory/<role id>:
    # <instance id>/, the only place the quarantine profile may write) so it never rests on the suspect disk
    # longer than needed.
    "set -eu",
    # SSM sets SSM_bucket and SSM_prefix (interpolationType ENV_VAR); agents before 3.3.2746 do not.
    'if [ -z "${SSM_bucket+x}" ]; then SSM_bucket="{{ bucket }}"; fi',
    'if [ -z "${SSM_prefix+x}" ]; then SSM_prefix="{{ prefix }}"; fi',
    "command -v avml >/dev/null 2>&1 || { echo 'avml is not installed on this instance' >&2; exit 3; }",
    "avml --compress /tmp/irflow-memory.lime",
    # The instance's own digest, printed (the command's output) and carried in the object's metadata; the worker
    # then hashes the stored object itself and records its own digest, naming any difference.
    "sha256sum /tmp/irflow-memory.lime | tee /tmp/irflow-memory.sha256",
    'digest="$(cut -d " " -f 1 /tmp/irflow-memory.sha256)"',
    # The bucket's default encryption (SSE-KMS, the evidence key) and Object Lock retention apply to the image.
    'aws s3 cp /tmp/irflow-memory.lime "s3://${SSM_bucket}/${SSM_prefix}memory.lime" --metadata "sha256=${digest}"',
    "rm -f /tmp/irflow-memory.lime /tmp/irflow-memory.sha256",
]


class IrflowSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IRFLOW_", extra="ignore")

    task_queue: str = "irflow"

    # Evidence: an S3 bucket created with Object Lock; every object is KMS-encrypted and retained.
    evidence_bucket: str = ""
    evidence_region: str = Field(default="", description="region of the evidence bucket; empty: AWS_DEFAULT_REGION")
    evidence_kms_key_id: str = Field(default="", description="KMS key id/ARN; empty uses the AWS managed key")
    manifest_signing_key_id: str = Field(
        default="",
        description="asymmetric KMS key (SIGN_VERIFY) that signs each manifest, and that `irflow verify` trusts; "
        "empty: manifests are unsigned",
    )
    evidence_retention_days: int = Field(default=365, ge=1)
    evidence_lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"

    # Notifications: one topic for the team, a second for escalations.
    notify_topic_arn: str = ""
    escalation_topic_arn: str = ""

    # Containment.
    quarantine_group_name: str = "irflow-quarantine"
    untracking_group_name: str = "irflow-untrack"
    quarantine_instance_profile: str = Field(
        default="",
        description="instance profile to swap in (infra/member-role.json makes irflow-quarantine: SSM core and "
        "PutObject of the instance's own memory image only); empty removes the instance's profile",
    )
    # Forensic egress: the security groups of the VPC endpoints for SSM (ssm, ssmmessages, ec2messages) and S3,
    # and/or prefix lists (the S3 gateway endpoint's). The quarantine group then allows HTTPS to them and nothing
    # else, and an isolated instance can still be imaged through SSM (docs/playbooks.md, "Memory").
    forensic_egress: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="sg-… and/or pl-… ids the quarantine group allows HTTPS (443) to; empty: no egress at all",
    )

    # Memory acquisition through SSM Run Command.
    memory_capture_document: str = Field(
        default="irflow-CaptureMemory",
        description="SSM Command document taking the parameters `bucket` and `prefix` (infra/ssm-capture-memory.json)",
    )
    memory_capture_commands: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MEMORY_CAPTURE_COMMANDS),
        description="the shell lines of the capture document irflow writes (the dev stack, "
        "activities/memory_document.py); `{{ bucket }}` and `{{ prefix }}` are its parameters",
    )
    memory_capture_wait_seconds: int = Field(default=900, ge=0)
    memory_without_egress: Literal["skip", "before-isolation"] = Field(
        default="skip",
        description="without IRFLOW_FORENSIC_EGRESS an isolated instance cannot reach SSM: skip memory (isolate "
        "at once), or capture it before isolation, isolating at the deadline whatever happened",
    )
    memory_before_isolation_seconds: int = Field(
        default=120, ge=1, description="the deadline of a capture before isolation; isolation follows it regardless"
    )

    # Response policy, snapshotted into each incident when it starts.
    auto_contain_min_severity: Severity = Severity.MEDIUM
    manual_containment_tag: str = "irflow:containment"
    decision_timeout_seconds: int = Field(default=4 * 3600, ge=1)
    default_eradication: Eradication = Eradication.STOP
    capture_memory: bool = True
    # Who may decide (JSON), by AWS principal (ARN globs; a decision's proof says who signed it):
    # {"arn:aws:iam::1:user/alice": ["approver"], "arn:aws:sts::1:assumed-role/IR-Approver/*": {"roles":
    # ["approver"]}, "arn:aws:iam::1:user/dave": ["analyst"]}. By name only with IRFLOW_DECISIONS_REQUIRE_PROOF=
    # false (demo mode): {"alice": {"roles": ["approver"]}}. Nobody else can approve, reject, release or add a note.
    approvers: Annotated[dict[str, Approver], NoDecode] = Field(default_factory=dict)
    two_person_min_severity: Severity = Field(
        default=Severity.CRITICAL, description="from this severity, eradication needs two distinct approvers"
    )
    decision_reminder_seconds: int = Field(default=3600, ge=0, description="0: no reminders")
    decision_timeout_action: Literal["keep", "contain"] = "keep"
    verify_containment_seconds: int = Field(
        default=300,
        ge=0,
        description="a contained incident re-checks its containment this often (and whenever a finding joins "
        "it), re-applying what was undone; 0: only when a finding joins",
    )

    # Accounts: the worker runs in the security account (evidence always lands there); incidents about
    # another account are handled by assuming arn:<partition>:iam::<account>:role/<member_role_name>.
    security_account_id: str = Field(default="", description="empty: the account of the worker's credentials")
    member_role_name: str = "irflow-responder"
    member_external_id: str = ""
    member_session_seconds: int = Field(default=3600, ge=900, le=43200)
    aws_partition: str = "aws"

    # Snapshots: a digest of each through the EBS direct APIs, and a copy in a forensic account.
    snapshot_digest: bool = Field(
        default=True, description="SHA-256 over each snapshot's blocks (EBS direct APIs); false for very large fleets"
    )
    forensic_account_id: str = Field(default="", description="copy every snapshot into this account; empty: no copy")
    forensic_role_name: str = Field(
        default="", description="role irflow assumes in the forensic account; empty: IRFLOW_MEMBER_ROLE_NAME"
    )
    forensic_kms_key_id: str = Field(default="", description="the forensic account's KMS key the copies are under")
    forensic_keep_original: bool = Field(
        default=True, description="false: delete the original once its copy is completed and its digest matches"
    )

    # Trust (docs/threat-model.md): which findings irflow believes, what it never contains on its own, how
    # much it may contain unasked, and who may decide.
    trusted_products: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Security Hub ProductArn globs trusted beside the built-in list (GuardDuty, Inspector, Macie, "
        "IAM Access Analyzer, Security Hub's controls, irflow's own detection)",
    )
    trusted_topic_arns: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="SNS topics whose envelopes the listener accepts; none: no SNS envelope"
    )
    trusted_senders: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="SQS SenderIds (account or principal ids) that may put bare findings (not an EventBridge "
        "event, not an SNS envelope) on the queue; none: bare findings are refused",
    )
    accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="account ids irflow answers for; empty: the account of its own credentials (or the "
        "organization's accounts with IRFLOW_ACCOUNTS_FROM_ORGANIZATION)",
    )
    accounts_from_organization: bool = Field(
        default=False, description="answer for every account of the AWS Organization (organizations:ListAccounts)"
    )
    protected: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="ARN globs of principals and resources never contained automatically (two approvers decide)",
    )
    own_principals: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="ARN globs of irflow's own principals beside those it finds itself (the worker's identity and "
        "the member role): the listener's role, for one",
    )
    max_auto_containments_per_hour: int = Field(
        default=10, ge=0, description="automatic containments per account per hour; beyond: approval"
    )
    max_auto_containments_fleet_per_hour: int = Field(
        default=50, ge=0, description="automatic containments across all accounts per hour; beyond: approval"
    )
    decisions_require_proof: bool = Field(
        default=True,
        description="decisions carry a signed sts:GetCallerIdentity proof; false is for demos only (names are "
        "taken on trust)",
    )
    proof_sts_endpoint_url: str = Field(
        default="",
        description="where the worker verifies decision proofs; empty: boto3's STS endpoint for the region "
        "(AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL when set). Never taken from the proof",
    )
    proof_max_age_seconds: int = Field(default=300, ge=1, le=900, description="how long a decision proof is good")

    # Every client (worker, listener, CLI) seals its Temporal payloads with AES-256-GCM under data keys from this
    # KMS key (irflow/codec.py); empty: payloads are written as they are.
    payload_kms_key_id: str = Field(default="", description="KMS key id or ARN for payload encryption")
    codec_server_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:8233"],
        description="origins (the Temporal UI's) the codec server answers",
    )
    codec_server_token: str = Field(default="", description="bearer token the codec server requires; empty: none")

    activity_threads: int = Field(default=16, ge=1)
    drain_seconds: float = Field(
        default=60,
        ge=0,
        description="on SIGTERM the worker stops polling and gives running activities this long to finish",
    )
    history_events_per_run: int = Field(
        default=4000,
        ge=500,
        description="an incident continues as new once its run's history passes this many events",
    )

    # Preparation (`irflow preflight`, the ReadinessWorkflow on a Temporal Schedule): what is checked, and how often.
    readiness_interval_seconds: int = Field(
        default=3600, ge=60, description="how often the scheduled readiness check runs (`irflow schedule`)"
    )
    readiness_regions: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="regions checked per account (GuardDuty, trail, intake, egress); empty: the evidence region",
    )
    worker_role_arn: str = Field(
        default="",
        description="the worker's IAM role, whose permissions readiness checks; empty: the role of the worker's "
        "own credentials (STS), unknown when they are not a role",
    )
    intake_stack_name: str = Field(
        default="irflow-findings-intake", description="the CloudFormation stack of infra/findings-intake.yaml"
    )

    # Closing the loop with AWS when an incident ends, and the links notifications carry.
    update_source_findings: bool = Field(
        default=True,
        description="send GuardDuty feedback and Security Hub workflow status and notes back to the findings",
    )
    archive_guardduty_findings: Literal["never", "false-positive", "closed"] = Field(
        default="false-positive",
        description="archive an incident's GuardDuty findings when it ends as a false positive, whenever it ends "
        "(closed), or never",
    )
    temporal_ui_url: str = Field(
        default="http://localhost:8233", description="the Temporal UI's address, for the links notifications carry"
    )
    attack_sequence_fanout: bool = Field(
        default=True,
        description="an AttackSequence finding also opens (or joins) an incident per resource it names that a "
        "playbook answers",
    )

    # The finding listener (starter.py): queues to long-poll, and what it lets through.
    queue_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    dead_letter_queue_url: str = Field(default="", description="override; default: the queue's redrive target")
    listener_batches_in_flight: int = Field(default=4, ge=1, le=64, description="receive batches per queue")
    min_severity: Severity = Severity.LOW
    playbook_overrides: dict[str, str] = Field(
        default_factory=dict,
        description='finding-type glob → playbook, JSON, e.g. {"Recon:EC2/*": "triage-only"}; first match wins',
    )
    accept_archived: bool = False
    respond_to_posture_findings: bool = Field(
        default=False,
        description="answer Security Hub control/compliance findings too (e.g. a FAILED IMDSv2 check would "
        "otherwise isolate a healthy instance)",
    )
    accept_sample_findings: bool = False
    # Detection on CloudTrail events: folders of Sigma rules beside irflow's own Python and windowed rules.
    detection: bool = Field(
        default=True, description="evaluate CloudTrail events reaching the listener with the detection rules"
    )
    sigma_rules_dirs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    python_rules_dirs: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="folders of the team's own Python rule files (docs/rules.md)"
    )
    log_file_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1,
        description="largest CloudTrail log file in S3 the listener will read, as stored and once decompressed",
    )
    detection_min_severity: Severity = Field(
        default=Severity.MEDIUM,
        description="detection alerts below this severity are counted and logged but open no incident "
        "(Sigma's low-level rules are hunting leads: 'AWS STS AssumeRole Misuse' matches every role session)",
    )
    detection_group_seconds: float = Field(
        default=3600,
        ge=0,
        description="alerts of one rule about one subject within this much event time are one finding whose "
        "count rises (the 1st, 2nd, 10th, 100th… reach the incident); 0 sends every alert",
    )
    state_table: str = Field(
        default="",
        description="DynamoDB table holding detection windows and dead-letter deduplication, shared by every "
        "listener; empty: each listener keeps them in its own memory (run one listener only)",
    )
    detection_disabled_rules: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="rule ids (or globs such as 'irflow.cloudtrail.*') never evaluated"
    )
    suppress_accounts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    suppress_tags: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="resource tags that suppress a finding: 'key' or 'key=value'"
    )

    @field_validator("forensic_egress")
    @classmethod
    def _egress_ids(cls, value: list[str]) -> list[str]:
        wrong = [item for item in value if not FORENSIC_EGRESS_ID.fullmatch(item)]
        if wrong:
            raise ValueError(f"not a security group (sg-…) or prefix list (pl-…) id: {', '.join(wrong)}")
        return value

    @model_validator(mode="after")
    def _egress_needs_a_profile(self) -> IrflowSettings:
        if self.forensic_egress and not self.quarantine_instance_profile:
            raise ValueError(
                "IRFLOW_FORENSIC_EGRESS needs IRFLOW_QUARANTINE_INSTANCE_PROFILE: without a profile the isolated "
                "instance's SSM agent has no credentials (infra/member-role.json creates irflow-quarantine)"
            )
        return self

    def memory_capture_mode(self) -> MemoryCapture:
        """How memory is captured (docs/playbooks.md): through the endpoints after isolation, before isolation
        with a deadline, or not at all."""
        if not self.capture_memory:
            return MemoryCapture.OFF
        if self.forensic_egress:
            return MemoryCapture.THROUGH_ENDPOINTS
        return MemoryCapture(self.memory_without_egress)

    @field_validator("approvers", mode="before")
    @classmethod
    def _approvers(cls, value: object) -> object:
        """JSON; a plain list of ARN globs or names ("arn:…:user/alice,arn:…:user/bob" or a JSON list) makes
        each an approver; a list as an entry's value is its roles ({"arn:…:user/dave": ["analyst"]})."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith(("{", "[")) else [n.strip() for n in text.split(",") if n]
        if isinstance(value, list):
            return {name: {} for name in value}
        if isinstance(value, dict):
            return {key: {"roles": entry} if isinstance(entry, list) else entry for key, entry in value.items()}
        return value

    @field_validator(
        "queue_urls",
        "suppress_accounts",
        "suppress_tags",
        "sigma_rules_dirs",
        "python_rules_dirs",
        "detection_disabled_rules",
        "trusted_products",
        "trusted_topic_arns",
        "trusted_senders",
        "accounts",
        "protected",
        "own_principals",
        "codec_server_origins",
        "forensic_egress",
        "readiness_regions",
        mode="before",
    )
    @classmethod
    def _comma_or_json_list(cls, value: object) -> object:
        """Environment lists may be JSON (`["a","b"]`) or comma-separated (`a,b`)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    def response_policy(self) -> ResponsePolicy:
        return ResponsePolicy(
            auto_contain_min_severity=self.auto_contain_min_severity,
            manual_containment_tag=self.manual_containment_tag,
            decision_timeout=timedelta(seconds=self.decision_timeout_seconds),
            default_eradication=self.default_eradication,
            memory_capture=self.memory_capture_mode(),
            memory_deadline=timedelta(seconds=self.memory_before_isolation_seconds),
            approvers=self.approvers,
            two_person_min_severity=self.two_person_min_severity,
            decision_reminder=timedelta(seconds=self.decision_reminder_seconds)
            if self.decision_reminder_seconds
            else None,
            timeout_action=self.decision_timeout_action,
            require_proof=self.decisions_require_proof,
            proof_max_age=timedelta(seconds=self.proof_max_age_seconds),
            protected=self.protected,
            max_auto_containments_per_hour=self.max_auto_containments_per_hour,
            max_auto_containments_fleet_per_hour=self.max_auto_containments_fleet_per_hour,
            verify_containment=timedelta(seconds=self.verify_containment_seconds)
            if self.verify_containment_seconds
            else None,
            history_events_per_run=self.history_events_per_run,
        )


SETTINGS_FILE_VARIABLE = "IRFLOW_SETTINGS_FILE"


class SettingsFileError(RuntimeError):
    """IRFLOW_SETTINGS_FILE names a file that is not there: refuse, rather than run on defaults."""


def load_settings() -> IrflowSettings:
    """The environment's IRFLOW_* settings, over those in the dotenv file IRFLOW_SETTINGS_FILE names (a
    mounted config file or secret; `KEY=value` lines, quoted as in a shell). Environment variables win."""
    path = os.environ.get(SETTINGS_FILE_VARIABLE, "")
    if not path:
        return IrflowSettings()
    if not Path(path).is_file():
        raise SettingsFileError(f"{SETTINGS_FILE_VARIABLE}={path}: no such file")
    return IrflowSettings(_env_file=path)


def settings_error_line(error: Exception) -> str:
    """One line naming each bad setting, for processes that refuse to start on it."""
    if isinstance(error, ValidationError):
        problems = [f"IRFLOW_{str(e['loc'][0]).upper() if e['loc'] else '*'}: {e['msg']}" for e in error.errors()]
        return "invalid settings: " + "; ".join(problems)
    return str(error)


@lru_cache(maxsize=1)
def get_settings() -> IrflowSettings:
    return load_settings()
