"""A small, realistic workload for the embedded AWS account (moto): what `make run` and the tests
respond to. One web instance in an Auto Scaling group behind a target group, with an instance
profile, two network interfaces and two volumes; an Object Lock evidence bucket, a KMS key, and SNS
topics whose messages land in an SQS queue so they can be read back."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from irflow.iam_policy import EC2_TRUST_POLICY, quarantine_role_policy

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FINDING = REPO / "examples" / "findings" / "ec2-command-and-control.json"
IMAGE_ID = "ami-12c6146b"  # an image moto knows


# The demo's analysts (IRFLOW_APPROVERS): each may decide; dave is also an analyst (notes).
DEMO_APPROVERS = {
    "alice": {"roles": ["approver"]},
    "bob": {"roles": ["approver"]},
    "carol": {"roles": ["approver"]},
    "eve": {"roles": ["approver"]},
    "dave": {"roles": ["analyst", "approver"]},
}


@dataclass(frozen=True)
class DemoWorkload:
    account_id: str
    region: str
    vpc_id: str
    subnet_ids: list[str]
    web_group_id: str
    admin_group_id: str
    instance_id: str
    other_instance_id: str
    auto_scaling_group: str
    target_group_arn: str
    role_name: str
    instance_profile: str
    evidence_bucket: str
    kms_key_id: str
    notify_topic_arn: str
    escalation_topic_arn: str
    notifications_queue_url: str
    iam_user: str
    access_key_id: str
    other_access_key_id: str
    public_bucket: str
    signing_key_id: str = ""  # the asymmetric KMS key that signs manifests (ECC_NIST_P256)
    # Forensic egress: the VPC endpoints' security group, the S3 gateway endpoint's prefix list, the quarantine
    # profile (SSM core and the instance's own memory folder only).
    endpoint_group_id: str = ""
    s3_prefix_list_id: str = ""
    quarantine_profile: str = ""

    def worker_environment(self) -> dict[str, str]:
        """The IRFLOW_* settings a worker needs to respond in this account."""
        return {
            "IRFLOW_EVIDENCE_BUCKET": self.evidence_bucket,
            "IRFLOW_EVIDENCE_KMS_KEY_ID": self.kms_key_id,
            "IRFLOW_MANIFEST_SIGNING_KEY_ID": self.signing_key_id,
            "IRFLOW_EVIDENCE_REGION": self.region,
            "IRFLOW_NOTIFY_TOPIC_ARN": self.notify_topic_arn,
            "IRFLOW_ESCALATION_TOPIC_ARN": self.escalation_topic_arn,
            # moto's SSM reports success at once; waiting only matters against real instances.
            "IRFLOW_MEMORY_CAPTURE_WAIT_SECONDS": "30",
            "IRFLOW_APPROVERS": json.dumps(DEMO_APPROVERS),
            # Names on trust (`--as alice`): demo mode. `make run` gives its approvers keys and proofs instead.
            "IRFLOW_DECISIONS_REQUIRE_PROOF": "false",
            # Memory through the VPC endpoints after isolation (docs/playbooks.md, "Memory").
            "IRFLOW_FORENSIC_EGRESS": f"{self.endpoint_group_id},{self.s3_prefix_list_id}",
            "IRFLOW_QUARANTINE_INSTANCE_PROFILE": self.quarantine_profile,
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def seed_workload(region: str = "us-east-1", name: str = "demo") -> DemoWorkload:
    ec2 = boto3.client("ec2", region_name=region)
    account_id = boto3.client("sts", region_name=region).get_caller_identity()["Account"]

    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{region}{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in ((1, "a"), (2, "b"))
    ]
    web = ec2.create_security_group(GroupName=f"{name}-web", Description="web tier", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    admin = ec2.create_security_group(GroupName=f"{name}-admin", Description="admin access", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=admin,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}],
    )

    role = instance_profile(region, f"{name}-web-app")

    elbv2 = boto3.client("elbv2", region_name=region)
    target_group = elbv2.create_target_group(
        Name=f"{name}-web", Protocol="HTTP", Port=80, VpcId=vpc_id, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]

    ec2.create_launch_template(
        LaunchTemplateName=f"{name}-web",
        LaunchTemplateData={"ImageId": IMAGE_ID, "InstanceType": "t3.micro", "SecurityGroupIds": [web]},
    )
    autoscaling = boto3.client("autoscaling", region_name=region)
    group = f"{name}-web"
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group,
        LaunchTemplate={"LaunchTemplateName": f"{name}-web"},
        MinSize=2,
        MaxSize=4,
        DesiredCapacity=2,
        VPCZoneIdentifier=",".join(subnets),
        TargetGroupARNs=[target_group],
    )
    members = sorted(
        i["InstanceId"]
        for i in autoscaling.describe_auto_scaling_instances()["AutoScalingInstances"]
        if i["AutoScalingGroupName"] == group
    )
    instance_id, other_instance_id = members[0], members[1]
    for member in members:
        ec2.associate_iam_instance_profile(IamInstanceProfile={"Name": role}, InstanceId=member)

    # A second interface (admin network) and a data volume: containment must handle more than one.
    subnet_of_instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "SubnetId"
    ]
    zone = ec2.describe_subnets(SubnetIds=[subnet_of_instance])["Subnets"][0]["AvailabilityZone"]
    eni = ec2.create_network_interface(SubnetId=subnet_of_instance, Groups=[admin, web])["NetworkInterface"][
        "NetworkInterfaceId"
    ]
    ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance_id, DeviceIndex=1)
    volume = ec2.create_volume(AvailabilityZone=zone, Size=20, VolumeType="gp3")["VolumeId"]
    ec2.attach_volume(VolumeId=volume, InstanceId=instance_id, Device="/dev/sdf")
    ec2.create_tags(
        Resources=[instance_id], Tags=[{"Key": "Name", "Value": f"{name}-web-1"}, {"Key": "app", "Value": "shop"}]
    )

    # A CI user whose key leaks: two keys (only one exposed), a console password, a tag.
    iam_user = f"{name}-ci-deployer"
    iam = boto3.client("iam", region_name=region)
    iam.create_user(UserName=iam_user, Tags=[{"Key": "team", "Value": "platform"}])
    iam.create_login_profile(UserName=iam_user, Password="Demo-password-1!")
    leaked = iam.create_access_key(UserName=iam_user)["AccessKey"]["AccessKeyId"]
    spare = iam.create_access_key(UserName=iam_user)["AccessKey"]["AccessKeyId"]

    # A bucket someone made public: one statement for everyone, one for the account's own role.
    public_bucket = f"{name}-public-assets-{account_id}"
    s3_client = boto3.client("s3", region_name=region)
    s3_client.create_bucket(Bucket=public_bucket)
    s3_client.put_bucket_tagging(Bucket=public_bucket, Tagging={"TagSet": [{"Key": "app", "Value": "shop"}]})
    s3_client.put_bucket_policy(
        Bucket=public_bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "PublicRead",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{public_bucket}/*",
                    },
                    {
                        "Sid": "AppRole",
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{account_id}:role/{role}"},
                        "Action": "s3:PutObject",
                        "Resource": f"arn:aws:s3:::{public_bucket}/*",
                    },
                ],
            }
        ),
    )

    kms_key = boto3.client("kms", region_name=region).create_key(Description="irflow evidence")["KeyMetadata"]["KeyId"]
    signing_key = boto3.client("kms", region_name=region).create_key(
        Description="irflow manifest signing", KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256"
    )["KeyMetadata"]["KeyId"]
    s3 = boto3.client("s3", region_name=region)
    bucket = f"{name}-irflow-evidence-{account_id}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key}}]
        },
    )

    sns = boto3.client("sns", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    notify = sns.create_topic(Name=f"{name}-irflow-incidents")["TopicArn"]
    escalation = sns.create_topic(Name=f"{name}-irflow-escalations")["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-irflow-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for topic in (notify, escalation):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    endpoints, prefix_list, quarantine = seed_forensic_egress(region, vpc_id, subnets, bucket, kms_key, name)
    return DemoWorkload(
        endpoint_group_id=endpoints,
        s3_prefix_list_id=prefix_list,
        quarantine_profile=quarantine,
        account_id=account_id,
        region=region,
        vpc_id=vpc_id,
        subnet_ids=subnets,
        web_group_id=web,
        admin_group_id=admin,
        instance_id=instance_id,
        other_instance_id=other_instance_id,
        auto_scaling_group=group,
        target_group_arn=target_group,
        role_name=role,
        instance_profile=role,
        evidence_bucket=bucket,
        kms_key_id=kms_key,
        notify_topic_arn=notify,
        escalation_topic_arn=escalation,
        notifications_queue_url=queue_url,
        iam_user=iam_user,
        access_key_id=leaked,
        other_access_key_id=spare,
        public_bucket=public_bucket,
        signing_key_id=signing_key,
    )


def seed_forensic_egress(
    region: str, vpc_id: str, subnets: list[str], bucket: str, kms_key: str, name: str
) -> tuple[str, str, str]:
    """What a VPC needs for memory capture after isolation, as infra/member-role.json and a network team would make
    it: interface endpoints for SSM (ssm, ssmmessages, ec2messages) in one security group open to the VPC on 443,
    an S3 gateway endpoint, and the quarantine profile. (endpoints' group id, S3 prefix list id, profile name)."""
    ec2 = boto3.client("ec2", region_name=region)
    group = ec2.create_security_group(
        GroupName="vpc-endpoints", Description="interface endpoints: HTTPS from the VPC", VpcId=vpc_id
    )["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]}],
    )
    for service in ("ssm", "ssmmessages", "ec2messages"):
        ec2.create_vpc_endpoint(
            VpcId=vpc_id,
            ServiceName=f"com.amazonaws.{region}.{service}",
            VpcEndpointType="Interface",
            SubnetIds=subnets,
            SecurityGroupIds=[group],
            PrivateDnsEnabled=True,
        )
    s3_service = f"com.amazonaws.{region}.s3"
    ec2.create_vpc_endpoint(VpcId=vpc_id, ServiceName=s3_service, VpcEndpointType="Gateway")
    [prefix_list] = [
        p["PrefixListId"] for p in ec2.describe_prefix_lists()["PrefixLists"] if p["PrefixListName"] == s3_service
    ]
    # One per workload (several share an account in the end-to-end tests), as infra/member-role.json makes it.
    policy = quarantine_role_policy(bucket=bucket, kms_key_id=kms_key)
    return group, prefix_list, instance_profile(region, f"{name}-irflow-quarantine", policy)


def instance_profile(region: str, name: str, policy: dict | None = None) -> str:
    """An EC2 instance role and its profile, both called `name`, with `policy` inline when given."""
    iam = boto3.client("iam", region_name=region)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST_POLICY))
    if policy:
        iam.put_role_policy(RoleName=name, PolicyName="irflow-quarantine", PolicyDocument=json.dumps(policy))
    iam.create_instance_profile(InstanceProfileName=name)
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return name


def sample_finding(
    instance_id: str,
    account_id: str = "123456789012",
    region: str = "us-east-1",
    severity: float = 8.0,
    finding_type: str | None = None,
    finding_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The sample GuardDuty EventBridge event, re-pointed at a real instance and re-timed to now."""
    event = copy.deepcopy(json.loads(SAMPLE_FINDING.read_text()))
    detail = event["detail"]
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    first_seen = now - timedelta(minutes=6)

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    event.update(account=account_id, region=region, time=stamp(now))
    detail.update(
        accountId=account_id, region=region, severity=severity, createdAt=stamp(first_seen), updatedAt=stamp(now)
    )
    if finding_type:
        detail["type"] = finding_type
    if finding_id:
        detail["id"] = finding_id
    detail["arn"] = (
        f"arn:aws:guardduty:{region}:{account_id}:detector/{detail['service']['detectorId']}/finding/{detail['id']}"
    )
    detail["service"].update(eventFirstSeen=stamp(first_seen), eventLastSeen=stamp(now - timedelta(minutes=1)))
    details = detail["resource"]["instanceDetails"]
    details["instanceId"] = instance_id
    detail["title"] = detail["title"].replace("i-0123456789abcdef0", instance_id)
    detail["description"] = detail["description"].replace("i-0123456789abcdef0", instance_id)
    return event


def sample_port_probe_finding(
    instance_id: str, account_id: str = "123456789012", region: str = "us-east-1"
) -> dict[str, Any]:
    """A LOW GuardDuty event: someone probes an open port on the instance. Below the auto-containment
    threshold, so irflow asks before containing anything: the demo's finding to reject as a false positive."""
    event = sample_finding(
        instance_id,
        account_id,
        region,
        severity=2.0,
        finding_type="Recon:EC2/PortProbeUnprotectedPort",
        finding_id="e6f708192a3b4c5d6e7f8091a2b3c4d5",
    )
    detail = event["detail"]
    detail["service"]["action"] = {
        "actionType": "PORT_PROBE",
        "portProbeAction": {
            "blocked": False,
            "portProbeDetails": [
                {
                    "localPortDetails": {"port": 22, "portName": "SSH"},
                    "remoteIpDetails": {"ipAddressV4": "198.51.100.7"},
                }
            ],
        },
    }
    detail["title"] = f"Unprotected port on EC2 instance {instance_id} is being probed."
    detail["description"] = (
        f"EC2 instance {instance_id} has an unprotected port which is being probed by a remote host."
    )
    return event


def sample_access_key_finding(
    user_name: str,
    access_key_id: str,
    account_id: str = "123456789012",
    region: str = "us-east-1",
    severity: float = 8.0,
    finding_id: str | None = None,
    user_type: str = "IAMUser",
) -> dict[str, Any]:
    """A GuardDuty event about an IAM user's access key used from a known-bad address."""
    event = sample_finding(
        "i-0123456789abcdef0",
        account_id,
        region,
        severity=severity,
        finding_type="UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom",
        finding_id=finding_id or "b7e1c2d3a4f5061728394a5b6c7d8e9f",
    )
    detail = event["detail"]
    detail["resource"] = {
        "resourceType": "AccessKey",
        "accessKeyDetails": {
            "accessKeyId": access_key_id,
            "principalId": "AIDAEXAMPLEPRINCIPAL1",
            "userName": user_name,
            "userType": user_type,
        },
    }
    detail["service"]["action"] = {
        "actionType": "AWS_API_CALL",
        "awsApiCallAction": {
            "api": "ListBuckets",
            "serviceName": "s3.amazonaws.com",
            "callerType": "Remote IP",
            "remoteIpDetails": {"ipAddressV4": "198.51.100.23"},
        },
    }
    detail["title"] = f"API ListBuckets was invoked from a known malicious IP address by {user_name}."
    detail["description"] = detail["title"]
    return event


def sample_bucket_finding(
    bucket: str, account_id: str = "123456789012", region: str = "us-east-1", severity: float = 8.0
) -> dict[str, Any]:
    """A GuardDuty event: a bucket's policy now grants anonymous access (found through the caller's key)."""
    event = sample_access_key_finding("ops-admin", "AKIAEXAMPLEOPSADMIN1", account_id, region, severity=severity)
    detail = event["detail"]
    detail["type"] = "Policy:S3/BucketAnonymousAccessGranted"
    detail["id"] = "c3d4e5f60718293a4b5c6d7e8f901a2b"
    detail["arn"] = (
        f"arn:aws:guardduty:{region}:{account_id}:detector/{detail['service']['detectorId']}/finding/{detail['id']}"
    )
    detail["resource"]["s3BucketDetails"] = [
        {"name": bucket, "arn": f"arn:aws:s3:::{bucket}", "type": "Destination", "tags": []}
    ]
    detail["title"] = f"Amazon S3 bucket {bucket} is anonymously accessible."
    detail["description"] = detail["title"]
    return event


def sample_role_finding(
    role_name: str,
    role_id: str,
    instance_id: str | None,
    account_id: str = "123456789012",
    region: str = "us-east-1",
    severity: float = 8.0,
    session_name: str | None = None,
    finding_type: str = "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
) -> dict[str, Any]:
    """A GuardDuty event: an instance role's temporary credentials used from outside AWS
    (`InstanceCredentialExfiltration.OutsideAWS`). EC2 role sessions are named after the instance."""
    session = session_name or instance_id or "exfiltrated-session"
    event = sample_access_key_finding(role_name, "ASIAEXAMPLESTOLEN001", account_id, region, severity=severity)
    detail = event["detail"]
    detail["type"] = finding_type
    detail["id"] = "d4e5f60718293a4b5c6d7e8f901a2b3c"
    detail["arn"] = (
        f"arn:aws:guardduty:{region}:{account_id}:detector/{detail['service']['detectorId']}/finding/{detail['id']}"
    )
    detail["resource"]["accessKeyDetails"].update(principalId=f"{role_id}:{session}", userType="AssumedRole")
    if instance_id:
        detail["resource"]["instanceDetails"] = {"instanceId": instance_id, "instanceState": "running"}
    detail["title"] = f"Credentials for instance role {role_name} used from a remote AWS account."
    detail["description"] = detail["title"]
    return event


def sample_cloudtrail_event(
    workload: DemoWorkload, event_name: str, source: str = "cloudtrail.amazonaws.com", read_only: bool = False
) -> dict[str, Any]:
    """An EventBridge "AWS API Call via CloudTrail" event: the demo's IAM user calling with its leaked key."""
    return {
        "version": "0",
        "detail-type": "AWS API Call via CloudTrail",
        "source": f"aws.{source.split('.')[0]}",
        "account": workload.account_id,
        "region": workload.region,
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLEDEMOUSER1",
                "arn": f"arn:aws:iam::{workload.account_id}:user/{workload.iam_user}",
                "accountId": workload.account_id,
                "accessKeyId": workload.access_key_id,
                "userName": workload.iam_user,
            },
            "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": source,
            "eventName": event_name,
            "awsRegion": workload.region,
            "sourceIPAddress": "203.0.113.9",
            "userAgent": "aws-cli/2.15.0",
            "requestParameters": {"name": "management-events"},
            "responseElements": None,
            "eventID": f"ev-{event_name}-{workload.access_key_id}",
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "recipientAccountId": workload.account_id,
        },
    }
