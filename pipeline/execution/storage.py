"""Where results live: a local folder or s3://bucket/prefix, checked before any trial runs.

Ray Tune reads and writes results and checkpoints through pyarrow; MLflow uploads artifacts
with boto3. Both are pointed at the same custom endpoint when one is set (AWS_ENDPOINT_URL, or
MLflow's MLFLOW_S3_ENDPOINT_URL), so the code that runs against AWS runs unchanged against
moto in the tests, or MinIO. On a cluster, trials on every node write their checkpoints here,
which is what lets a trial resume on another node.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from pipeline.config import ConfigError

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

S3 = "s3://"


def is_s3(path: str) -> bool:
    return path.startswith(S3)


def absolute(path: str) -> str:
    """A storage path as Ray Tune and a later `--resume` from another folder need it."""
    return path if "://" in path else str(Path(path).resolve())


def s3_endpoint() -> str | None:
    """A custom S3 endpoint (e.g. http://127.0.0.1:9000), or None for AWS itself."""
    return os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")


def split(uri: str) -> tuple[str, str]:
    """s3://bucket/a/b -> ("bucket", "a/b")."""
    bucket, _, prefix = uri[len(S3):].partition("/")
    return bucket, prefix.strip("/")


def check(path: str, timeout_s: float = 5.0) -> None:
    """Fail before the sweep when an s3:// storage path's bucket is missing or unreachable."""
    if not is_s3(path):
        return
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket, _ = split(path)
    where = s3_endpoint() or "AWS"
    client = boto3.client("s3", endpoint_url=s3_endpoint(), config=Config(
        connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2}))
    try:
        client.head_bucket(Bucket=bucket)
    except NoCredentialsError:
        raise ConfigError(f"storage.path: no AWS credentials to reach {path} (set AWS_PROFILE "
                          "or AWS_ACCESS_KEY_ID, or run where an instance profile applies)") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        reason = {"404": "does not exist", "NoSuchBucket": "does not exist",
                  "403": "is not accessible with these credentials"}.get(code, f"failed ({code})")
        raise ConfigError(f"storage.path: bucket {bucket!r} of {path} {reason} "
                          f"(S3 endpoint: {where})") from None
    except BotoCoreError as error:
        raise ConfigError(f"storage.path: cannot reach S3 for {path} at {where} ({error})") from None


def tune_location(path: str) -> tuple[str, FileSystem | None]:
    """(storage path, pyarrow filesystem) for Ray Tune's storage_path/storage_filesystem.

    With a custom endpoint the filesystem carries it explicitly (it travels to the trials with
    the run's storage context; credentials do not, each node takes its own). Without one, Ray
    resolves s3:// itself, including the bucket's region.
    """
    if not is_s3(path):
        return path, None
    endpoint = s3_endpoint()
    if endpoint is None:
        return path, None
    from pyarrow import fs

    parsed = urlparse(endpoint)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    filesystem = fs.S3FileSystem(endpoint_override=parsed.netloc or endpoint,
                                 scheme=parsed.scheme or "https", region=region)
    return path[len(S3):], filesystem


def claim(storage_path: str, name: str) -> str:
    """`name`, or `name-2`, `name-3`...: the first sweep folder under a local storage path that
    this process could create, so sweeps started in the same second never share one. S3 has no
    exclusive create: there a name already in use gets a random suffix."""
    if is_s3(storage_path):
        fs, root = filesystem(storage_path)
        from pyarrow.fs import FileType

        taken = fs.get_file_info(f"{root}/{name}").type != FileType.NotFound
        return f"{name}-{os.urandom(2).hex()}" if taken else name
    Path(storage_path).mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        candidate = name if attempt == 1 else f"{name}-{attempt}"
        try:
            (Path(storage_path) / candidate).mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"no free sweep folder for {name} under {storage_path}")


def filesystem(path: str) -> tuple[FileSystem, str]:
    """(pyarrow filesystem, path on it) of a storage path, as Ray Tune resolves it."""
    fs_path, custom = tune_location(path)
    if custom is not None:
        return custom, fs_path
    from pyarrow import fs

    return fs.FileSystem.from_uri(path) if is_s3(path) else (fs.LocalFileSystem(), path)


def mlflow_artifact_location(storage_path: str, experiment: str) -> str | None:
    """Where a new MLflow experiment of a local store keeps artifacts: next to the sweep's
    results when those are on S3 (every node and every later reader can reach them)."""
    if not is_s3(storage_path):
        return None
    return f"{storage_path.rstrip('/')}/mlartifacts/{experiment}"
