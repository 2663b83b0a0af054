"""Create (or update) the instance profiles cluster/aws.yaml names, scoped to one bucket.

    python cluster/iam.py --bucket my-results-bucket        (make cluster-iam BUCKET=...)
    python cluster/iam.py --bucket my-results-bucket --print   (the policies, to paste)

pipeline-ray-worker can read and write only the results bucket. pipeline-ray-head can do that,
launch, tag and terminate EC2 instances for the autoscaler, resolve the AMI's SSM parameter, and
pass the worker role to the instances it launches. Run it again after changing the bucket; it
only creates what is missing and rewrites the two inline policies. boto3 honours
AWS_ENDPOINT_URL, which is how the tests run it against moto.
"""
from __future__ import annotations

import argparse
import json

HEAD, WORKER = "pipeline-ray-head", "pipeline-ray-worker"
POLICY_NAME = "pipeline-results-bucket"
EC2_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
     "Action": "sts:AssumeRole"}]}
AUTOSCALER_EC2_ACTIONS = [
    "ec2:RunInstances", "ec2:TerminateInstances", "ec2:StartInstances", "ec2:StopInstances",
    "ec2:CreateTags", "ec2:DeleteTags", "ec2:DescribeInstances", "ec2:DescribeInstanceTypes",
    "ec2:DescribeImages", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
    "ec2:DescribeKeyPairs",
]


def bucket_statements(bucket: str) -> list[dict]:
    return [
        {"Sid": "ListResultsBucket", "Effect": "Allow",
         "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": f"arn:aws:s3:::{bucket}"},
        {"Sid": "ReadWriteResults", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                    "s3:AbortMultipartUpload"],
         "Resource": f"arn:aws:s3:::{bucket}/*"},
    ]


def policies(bucket: str, account: str) -> dict[str, dict]:
    """Role name -> its inline policy document."""
    head_extra = [
        {"Sid": "Autoscale", "Effect": "Allow", "Action": AUTOSCALER_EC2_ACTIONS,
         "Resource": "*"},
        {"Sid": "ResolveAmi", "Effect": "Allow", "Action": "ssm:GetParameters",
         "Resource": "arn:aws:ssm:*::parameter/aws/service/*"},
        {"Sid": "PassWorkerRole", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": f"arn:aws:iam::{account}:role/{WORKER}"},
    ]
    return {
        WORKER: {"Version": "2012-10-17", "Statement": bucket_statements(bucket)},
        HEAD: {"Version": "2012-10-17", "Statement": bucket_statements(bucket) + head_extra},
    }


def ensure_profile(iam, name: str, policy: dict) -> str:
    """Role + inline policy + instance profile of the same name; returns the profile ARN."""
    try:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))
    try:
        iam.create_instance_profile(InstanceProfileName=name)
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    if not any(role["RoleName"] == name for role in profile["Roles"]):
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return profile["Arn"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", required=True, help="the results bucket (no s3://)")
    parser.add_argument("--print", action="store_true", help="print the policies, change nothing")
    args = parser.parse_args(argv)
    import boto3

    account = "ACCOUNT_ID" if args.print else \
        boto3.client("sts").get_caller_identity()["Account"]
    documents = policies(args.bucket, account)
    if args.print:
        print(json.dumps(documents, indent=2))
        return
    iam = boto3.client("iam")
    for name, policy in documents.items():
        print(f"{name}: {ensure_profile(iam, name, policy)}")


if __name__ == "__main__":
    main()
