"""Services the cluster tests start for themselves, and stop by process group.

Each service runs in a new session, so it and everything it spawns (Ray's raylets, GCS,
workers, the fake nodes of an autoscaler) share one process group that teardown signals by its
id. `ray stop` is not used: it kills every Ray process on the machine, the test session's own
local Ray included.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
AWS_TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str,
               poll_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")
        time.sleep(poll_s)


@contextmanager
def process_group(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Run `command` as the leader of a new process group; TERM then KILL the group on exit."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:  # the leader is gone; its children may linger
            time.sleep(1.0)


def answers(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError as error:  # an HTTP error still means the server answers
            return hasattr(error, "code")
    return ready


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto_server on a free loopback port: S3, EC2, IAM and STS, as AWS would answer them."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, **AWS_TEST_CREDENTIALS}
    with process_group([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                       env, log):
        endpoint = f"http://127.0.0.1:{port}"
        wait_until(answers(endpoint), 30, "moto_server")
        yield endpoint


@pytest.fixture
def ray_tmpdir() -> Iterator[Path]:
    """A private Ray temp dir under /tmp: pytest's own paths are too long for Ray's sockets
    (AF_UNIX allows 107 bytes), and /tmp/ray is shared with anything else running Ray."""
    folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def aws_env(endpoint: str) -> dict[str, str]:
    """Environment that points boto3, pyarrow and MLflow at the moto server."""
    return {**AWS_TEST_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
