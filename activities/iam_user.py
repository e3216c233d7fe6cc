"""IAM user credentials: deactivate the key, revoke the user's live sessions, and (after approval)
delete the key and the console password. Each step looks before acting and has an exact undo."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime

from botocore.exceptions import ClientError
from temporalio.exceptions import ApplicationError

from activities.aws import NOT_FOUND, aws_activity, client, error_code, not_found, tag_pairs, typed_aws_errors
from activities.evidence import EVIDENCE_WRITE_ACTIONS, checked_identifier, store_evidence, to_json_bytes
from activities.iam import revocation_policy, revocation_policy_name
from irflow.models.evidence import EvidenceObject
from irflow.models.iam import AccessKeyState, IamUserContext, IamUserStepInput, IamUserTarget
from irflow.models.identifiers import ACCESS_KEY_ID, ACCOUNT_ID, IAM_USER_NAME, REGION
from irflow.models.incident import StepResult
from irflow.models.tagging import INCIDENT_TAG, INCIDENT_TAGS
from irflow.visibility import identity_hash


def _iam(target: IamUserTarget):
    """The client for the user's account; the names a finding gave are checked first (InvalidRequest, not
    retried): they reach IAM calls, policy documents and evidence keys."""
    checked_identifier(ACCOUNT_ID, target.account_id)
    checked_identifier(REGION, target.region)
    if target.user_name:
        checked_identifier(IAM_USER_NAME, target.user_name)
    if target.access_key_id:
        checked_identifier(ACCESS_KEY_ID, target.access_key_id)
    return client("iam", target.region, target.account_id)


def _user_name(target: IamUserTarget) -> str:
    if target.user_name:
        return checked_identifier(IAM_USER_NAME, target.user_name)
    if not target.access_key_id:
        raise ApplicationError(
            "the finding names neither a user nor an access key", type="InvalidRequest", non_retryable=True
        )
    with typed_aws_errors(f"find the owner of access key {target.access_key_id}"):
        owner = _iam(target).get_access_key_last_used(AccessKeyId=target.access_key_id).get("UserName")
    if not owner:
        raise not_found(f"access key {target.access_key_id} belongs to no IAM user in {target.account_id}")
    return owner


@aws_activity(
    "iam:GetUser",
    "iam:GetAccessKeyLastUsed",
    "iam:ListAccessKeys",
    "iam:GetLoginProfile",
    "iam:ListMFADevices",
    "iam:ListGroupsForUser",
    "iam:ListAttachedUserPolicies",
    "iam:ListUserPolicies",
    "iam:ListUserTags",
)
def describe_iam_user_context(target: IamUserTarget) -> IamUserContext:
    """Who the user is and what their credentials look like, before anything changes."""
    iam, name = _iam(target), checked_identifier(IAM_USER_NAME, _user_name(target))
    with typed_aws_errors(f"describe IAM user {name}"):
        user = iam.get_user(UserName=name)["User"]
        keys = []
        for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
            used = iam.get_access_key_last_used(AccessKeyId=key["AccessKeyId"]).get("AccessKeyLastUsed", {})
            keys.append(
                AccessKeyState(
                    access_key_id=key["AccessKeyId"],
                    status=key["Status"],
                    created=key.get("CreateDate"),
                    last_used=used.get("LastUsedDate"),
                    last_used_service=used.get("ServiceName"),
                    last_used_region=used.get("Region"),
                )
            )
        try:
            iam.get_login_profile(UserName=name)
            has_login_profile = True
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise
            has_login_profile = False
        context = IamUserContext(
            user_name=name,
            user_arn=user["Arn"],
            user_id=user["UserId"],
            created=user.get("CreateDate"),
            tags=tag_pairs(iam.list_user_tags(UserName=name).get("Tags")),
            access_keys=sorted(keys, key=lambda k: k.access_key_id),
            has_login_profile=has_login_profile,
            mfa_devices=sorted(d["SerialNumber"] for d in iam.list_mfa_devices(UserName=name)["MFADevices"]),
            groups=sorted(g["GroupName"] for g in iam.list_groups_for_user(UserName=name)["Groups"]),
            attached_policies=sorted(
                p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
            ),
            inline_policies=sorted(iam.list_user_policies(UserName=name)["PolicyNames"]),
            captured_at=datetime.now(UTC),
        )
        return _recorded(target.incident_id, context)


# What containment changes on the user (each key's status, irflow's two tags), recorded on the user by the step that
# deactivates the key, before it does: the first look runs as a local activity, in the workflow task that contains,
# and a worker dying after a change and before that task completed leaves a replay that looks again, at the
# contained user, and takes the record instead (issue 16). An IAM tag value allows no comma: "AKIA…=Active …".
PRIOR_TAG = "irflow:prior:"


def _record_key(incident_id: str) -> str:
    return f"{PRIOR_TAG}{incident_id}"[:128]


def _recorded(incident_id: str, context: IamUserContext) -> IamUserContext:
    """The context as the incident recorded it before containing (else as read), without irflow's bookkeeping. With
    no record yet, irflow's own tags carrying this very incident were written by it: they were not there before."""
    own = {k: v for k, v in context.tags.items() if not k.startswith(PRIOR_TAG)}
    record = context.tags.get(_record_key(incident_id))
    if record is None:
        if own.get(INCIDENT_TAG) == incident_id:
            own = {k: v for k, v in own.items() if k not in INCIDENT_TAGS}
        return context.model_copy(update={"tags": own})
    recorded = dict(entry.split("=", 1) for entry in record.split() if "=" in entry)
    keys = [k.model_copy(update={"status": recorded.get(k.access_key_id, k.status)}) for k in context.access_keys]
    tags = {k: v for k, v in own.items() if k not in INCIDENT_TAGS} | {
        t: recorded[t] for t in INCIDENT_TAGS if t in recorded
    }
    return context.model_copy(update={"tags": tags, "access_keys": keys, "prior_recorded": True})


def _record_prior_state(step: IamUserStepInput) -> None:
    """Before the first change to the user: the prior state, unless the look read it from a record already (the
    older, truer one). Written again by a retry, it says the same."""
    iam, prior = _iam(step.target), step.prior
    if prior.prior_recorded:
        return
    entries = [f"{k.access_key_id}={k.status}" for k in prior.access_keys]
    entries += [f"{tag}={prior.tags[tag]}" for tag in INCIDENT_TAGS if tag in prior.tags]
    with typed_aws_errors(f"record the prior state of {prior.user_name}"):
        iam.tag_user(
            UserName=prior.user_name,
            Tags=[{"Key": _record_key(step.target.incident_id), "Value": " ".join(entries)[:256]}],
        )


def _key_status(step: IamUserStepInput, wanted: str) -> StepResult:
    key_id = step.target.access_key_id
    if not key_id or step.prior.key(key_id) is None:
        return StepResult(changed=False, detail={"reason": "the finding names no access key of this user"})
    iam = _iam(step.target)
    with typed_aws_errors(f"set access key {key_id} {wanted}"):
        current = {
            k["AccessKeyId"]: k["Status"]
            for k in iam.list_access_keys(UserName=step.prior.user_name)["AccessKeyMetadata"]
        }
        if key_id not in current:
            raise not_found(f"access key {key_id} no longer exists")
        if current[key_id] == wanted:
            return StepResult(changed=False, detail={"access_key_id": key_id, "status": wanted})
        iam.update_access_key(UserName=step.prior.user_name, AccessKeyId=key_id, Status=wanted)
    return StepResult(changed=True, detail={"access_key_id": key_id, "status": wanted})


@aws_activity("iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:TagUser")
def deactivate_access_key(step: IamUserStepInput) -> StepResult:
    """The exposed key stops working at once; it is kept (not deleted) until an analyst approves. The key's status
    before is recorded on the user first (`_record_prior_state`)."""
    if step.target.access_key_id and step.prior.key(step.target.access_key_id) is not None:
        _record_prior_state(step)
    return _key_status(step, "Inactive")


@aws_activity("iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:UntagUser")
def restore_access_key_status(step: IamUserStepInput) -> StepResult:
    """The key's status back; then the record of it (`describe_iam_user_context`) goes."""
    prior = step.prior.key(step.target.access_key_id)
    result = _key_status(step, prior.status if prior else "Active")
    with typed_aws_errors(f"remove the prior-state record from {step.prior.user_name}"):
        _iam(step.target).untag_user(
            UserName=step.prior.user_name, TagKeys=[f"{PRIOR_TAG}{step.target.incident_id}"[:128]]
        )
    return result


@aws_activity("iam:GetUserPolicy", "iam:PutUserPolicy")
def revoke_user_sessions(step: IamUserStepInput) -> StepResult:
    """Deny everything to temporary credentials the user obtained before containment (console
    sessions, GetSessionToken, role chains): the deactivated key no longer mints new ones."""
    if step.issued_before is None:
        raise ApplicationError("revoke_user_sessions needs issued_before", type="InvalidRequest", non_retryable=True)
    iam, name = _iam(step.target), revocation_policy_name(step.target.incident_id)
    checked_identifier(IAM_USER_NAME, step.prior.user_name)
    document = revocation_policy(step.issued_before)
    with typed_aws_errors(f"revoke sessions of user {step.prior.user_name}"):
        try:
            existing = iam.get_user_policy(UserName=step.prior.user_name, PolicyName=name)["PolicyDocument"]
            if (json.loads(existing) if isinstance(existing, str) else existing) == document:
                return StepResult(changed=False, detail={"policy": name})
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise
        iam.put_user_policy(UserName=step.prior.user_name, PolicyName=name, PolicyDocument=json.dumps(document))
    condition = document["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
    return StepResult(changed=True, detail={"policy": name, "issued_before": condition})


@aws_activity("iam:DeleteUserPolicy")
def remove_user_session_revocation(step: IamUserStepInput) -> StepResult:
    name = revocation_policy_name(step.target.incident_id)
    try:
        with typed_aws_errors(f"remove session revocation from {step.prior.user_name}"):
            _iam(step.target).delete_user_policy(UserName=step.prior.user_name, PolicyName=name)
    except ApplicationError as error:
        if error.type != NOT_FOUND:
            raise
        return StepResult(changed=False, detail={"policy": name})
    return StepResult(changed=True, detail={"policy": name})


def _credential_report_row(iam, user_name: str) -> dict | None:
    for _ in range(10):
        if iam.generate_credential_report()["State"] == "COMPLETE":
            break
        time.sleep(1)
    content = iam.get_credential_report()["Content"]
    text = content.decode() if isinstance(content, bytes) else content
    return next((row for row in csv.DictReader(io.StringIO(text)) if row.get("user") == user_name), None)


@aws_activity(
    "iam:ListUserPolicies",
    "iam:GetUserPolicy",
    "iam:GenerateCredentialReport",
    "iam:GetCredentialReport",
    *EVIDENCE_WRITE_ACTIONS,
)
def collect_iam_user_evidence(step: IamUserStepInput) -> EvidenceObject:
    """User, groups, attached and inline policies (with their documents), every key with its last use,
    MFA devices and the user's credential-report row."""
    iam, name = _iam(step.target), step.prior.user_name
    with typed_aws_errors(f"collect evidence about user {name}"):
        inline = {
            policy: iam.get_user_policy(UserName=name, PolicyName=policy)["PolicyDocument"]
            for policy in iam.list_user_policies(UserName=name)["PolicyNames"]
        }
        try:
            report_row = _credential_report_row(iam, name)
        except ClientError as error:
            report_row = {"error": f"{error_code(error)}: {error}"}
    document = {
        "collected_at": datetime.now(UTC).isoformat(),
        "user": step.prior.model_dump(mode="json"),
        "inline_policy_documents": inline,
        "credential_report_row": report_row,
    }
    # S3 keys are not encrypted: the user goes in by the hash, like the incident's other cleartext names
    key = f"iam/users/{identity_hash(name)}.json"
    return store_evidence(step.target.incident_id, key, to_json_bytes(document), "iam-user")


@aws_activity("iam:DeleteAccessKey", "iam:DeleteLoginProfile")
def remove_user_credentials(step: IamUserStepInput) -> StepResult:
    """Eradication, after approval only: delete the exposed key and the console password."""
    iam, done = _iam(step.target), []
    with typed_aws_errors(f"remove credentials of {step.prior.user_name}"):
        if step.target.access_key_id:
            try:
                iam.delete_access_key(UserName=step.prior.user_name, AccessKeyId=step.target.access_key_id)
                done.append(f"deleted access key {step.target.access_key_id}")
            except ClientError as error:
                if error_code(error) != "NoSuchEntity":
                    raise
        try:
            iam.delete_login_profile(UserName=step.prior.user_name)
            done.append("deleted the console password")
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":
                raise
    return StepResult(changed=bool(done), detail={"done": done})
