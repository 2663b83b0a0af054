"""cluster/*.yaml against Ray's own validators, and the AWS bootstrap (IAM, key pair, subnets,
security group) against moto_server, as `ray up` would run it; the Makefile's cluster targets."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from ..conftest import ROOT
from ..services import aws_env, moto_endpoint  # noqa: F401  (a fixture)

AWS_YAML = ROOT / "cluster" / "aws.yaml"
BUCKET = "pipeline-results"


def aws_config() -> dict:
    return yaml.safe_load(AWS_YAML.read_text())


@pytest.mark.parametrize("name", ["aws", "local"])
def test_cluster_files_pass_rays_schema(name: str) -> None:
    validate_config(prepare_config(yaml.safe_load((ROOT / "cluster" / f"{name}.yaml").read_text())))


def test_a_misspelt_key_gets_rays_schema_error() -> None:
    config = aws_config()
    config["available_node_types"]["gpu1_spot"]["min_worker"] = 0
    with pytest.raises(jsonschema.ValidationError, match=r"'min_worker' was unexpected"):
        validate_config(prepare_config(config))


def test_gpu_workers_scale_from_zero_under_a_cap_on_spot_with_on_demand_twins() -> None:
    config = aws_config()
    workers = {name: t for name, t in config["available_node_types"].items()
               if name != config["head_node_type"]}
    assert config["max_workers"] > 0 and 0 < config["idle_timeout_minutes"] <= 30
    assert all(t["min_workers"] == 0 and t["resources"]["GPU"] >= 1 for t in workers.values())
    spot = {n for n, t in workers.items() if "InstanceMarketOptions" in t["node_config"]}
    for name in spot:  # each spot type has an on-demand twin with the same instance and resources
        twin = workers[name.replace("_spot", "_on_demand")]
        assert "InstanceMarketOptions" not in twin["node_config"]
        assert (twin["node_config"]["InstanceType"], twin["resources"]) == (
            workers[name]["node_config"]["InstanceType"], workers[name]["resources"])
    assert "GPU" not in config["available_node_types"][config["head_node_type"]]["resources"]


def test_every_node_type_has_a_price() -> None:
    config = aws_config()
    prices = config["metadata"]["prices_usd_per_hour"]
    assert set(prices) == set(config["available_node_types"])
    for price in prices.values():
        assert 0 < price["spot"] <= price["on_demand"]


def test_nodes_install_the_project_like_make_install() -> None:
    config = aws_config()
    assert config["file_mounts"] == {"~/pipeline": "."}
    assert config["setup_commands"][-1] == "cd ~/pipeline && make install"
    head_start = " ".join(config["head_start_ray_commands"])
    assert "mlflow server --host 127.0.0.1" in head_start
    assert "--artifacts-destination s3://" in head_start and "sqlite:///" in head_start


@pytest.mark.slow
def test_bootstrap_against_moto_scopes_iam_to_the_bucket_and_opens_only_ssh(
        moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture) -> None:
    from ray.autoscaler.sdk import bootstrap_config

    env = {**aws_env(moto_endpoint), "HOME": str(tmp_path)}  # Ray writes its SSH key there
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    made = subprocess.run([sys.executable, str(ROOT / "cluster" / "iam.py"), "--bucket", BUCKET],
                          env={**os.environ, **env}, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr

    config = bootstrap_config(aws_config(), no_config_cache=True)

    node_types = config["available_node_types"]
    profiles = {name: t["node_config"]["IamInstanceProfile"]["Name"]
                for name, t in node_types.items()}
    assert profiles.pop("head") == "pipeline-ray-head"
    assert set(profiles.values()) == {"pipeline-ray-worker"}
    iam = boto3.client("iam")
    worker_policy = iam.get_role_policy(RoleName="pipeline-ray-worker",
                                        PolicyName="pipeline-results-bucket")["PolicyDocument"]
    if isinstance(worker_policy, str):
        worker_policy = json.loads(worker_policy)
    resources = {statement["Resource"] for statement in worker_policy["Statement"]}
    assert resources == {f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"}

    ec2 = boto3.client("ec2")
    (group_ids,) = {tuple(t["node_config"]["SecurityGroupIds"]) for t in node_types.values()}
    (group,) = ec2.describe_security_groups(GroupIds=list(group_ids))["SecurityGroups"]
    open_to_outside = [rule for rule in group["IpPermissions"]
                       if rule["IpRanges"] or rule["Ipv6Ranges"]]
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in open_to_outside] == [
        ("tcp", 22, 22)]
    inside = [rule for rule in group["IpPermissions"] if rule not in open_to_outside]
    assert all({p["GroupId"] for p in r["UserIdGroupPairs"]} == {group["GroupId"]} for r in inside)

    zones = set(aws_config()["provider"]["availability_zone"].split(","))
    subnet_ids = {s for t in node_types.values() for s in t["node_config"]["SubnetIds"]}
    subnets = ec2.describe_subnets(SubnetIds=list(subnet_ids))["Subnets"]
    assert {s["AvailabilityZone"] for s in subnets} <= zones and subnets
    assert Path(config["auth"]["ssh_private_key"]).is_file()

    catalog = {t["InstanceType"]: t for t in ec2.describe_instance_types(InstanceTypes=sorted({
        t["node_config"]["InstanceType"] for t in node_types.values()}))["InstanceTypes"]}
    for name, node_type in node_types.items():  # declared resources = the instance's
        if name != "head":
            info = catalog[node_type["node_config"]["InstanceType"]]
            assert node_type["resources"]["CPU"] == info["VCpuInfo"]["DefaultVCpus"]
            assert node_type["resources"]["GPU"] == info["GpuInfo"]["Gpus"][0]["Count"]

    broken = copy.deepcopy(aws_config())
    broken["available_node_types"]["gpu1_spot"]["node_config"]["SubnetIds"] = ["subnet-0000"]
    capsys.readouterr()
    with pytest.raises(AssertionError):
        bootstrap_config(broken, no_config_cache=True)
    captured = capsys.readouterr()
    assert "Not all subnet IDs found: ('subnet-0000',)" in captured.out + captured.err


def make(*args: str) -> subprocess.CompletedProcess:
    """The Makefile without its install step (-o install), so nothing is (re)installed."""
    return subprocess.run(["make", "-o", "install", *args], cwd=ROOT, capture_output=True,
                          text=True, check=False)


def test_make_help_lists_the_cluster_targets() -> None:
    listed = make("help").stdout
    for target in ("tune", "tune-logs", "ui", "cluster-up", "cluster-down", "cluster-status",
                   "cluster-iam"):
        assert f"make {target} " in listed


def test_cluster_targets_name_the_cluster_or_refuse() -> None:
    refused = make("cluster-status")
    assert refused.returncode == 2
    assert "error: set CLUSTER=aws or CLUSTER=local" in refused.stderr
    planned = make("-n", "tune", "CLUSTER=aws", "EXP=experiments/digits.yaml").stdout
    assert "ray rsync-up cluster/aws.yaml" in planned
    assert "ray job submit --submission-id $job --working-dir . -- env MLFLOW_TRACKING_URI=" \
           "http://127.0.0.1:5000 python -m pipeline tune experiments/digits.yaml" in planned
    assert "ray attach cluster/aws.yaml -p 5000" in make("-n", "ui", "CLUSTER=aws").stdout
