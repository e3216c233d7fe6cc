"""The demo's approvers as AWS principals: IAM users with access keys in the identity moto server
(`processes.start_identity_moto`), their keys as profiles in a credentials file, and the IRFLOW_APPROVERS
setting that maps their ARNs to roles. `make run` and the decision-proof tests start here."""

from __future__ import annotations

import configparser
import json
from dataclasses import dataclass
from pathlib import Path

import boto3

from irflow.devstack.processes import enforce_signatures


@dataclass(frozen=True)
class DemoApprover:
    name: str
    roles: tuple[str, ...]
    arn: str
    access_key_id: str
    secret_access_key: str

    def session(self, region: str = "us-east-1") -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key, region_name=region
        )


def seed_approvers(endpoint_url: str, people: dict[str, dict], region: str = "us-east-1") -> list[DemoApprover]:
    """An IAM user with an access key for each person (name → {"roles": [...]}) in the identity server, which
    then checks every signature (so only these keys are good there)."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="identity-admin",
        aws_secret_access_key="identity-admin",
    )
    made = []
    for name, person in people.items():
        arn = iam.create_user(UserName=name)["User"]["Arn"]
        key = iam.create_access_key(UserName=name)["AccessKey"]
        roles = tuple(person.get("roles", ["approver"]))
        made.append(DemoApprover(name, roles, arn, key["AccessKeyId"], key["SecretAccessKey"]))
    enforce_signatures(endpoint_url)
    return made


def approvers_setting(approvers: list[DemoApprover]) -> str:
    """IRFLOW_APPROVERS for them: each user's ARN → its roles."""
    return json.dumps({a.arn: {"roles": list(a.roles)} for a in approvers})


def write_credentials(path: Path, approvers: list[DemoApprover]) -> None:
    """Their keys as named profiles (`--profile alice`), for AWS_SHARED_CREDENTIALS_FILE; only the owner reads it."""
    config = configparser.ConfigParser()
    for a in approvers:
        config[a.name] = {
            "aws_access_key_id": a.access_key_id,
            "aws_secret_access_key": a.secret_access_key,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    with path.open("w") as out:
        config.write(out)
