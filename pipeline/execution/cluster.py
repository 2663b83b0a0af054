"""Which Ray the sweep runs on, and whether any of its nodes could ever run a trial.

A local Ray by default; RAY_ADDRESS or cluster.address joins an existing cluster. A per-trial
request that no node can satisfy would leave trials pending forever, so it is refused up front,
unless the cluster's autoscaler has a node type that fits. Ray does not tell a driver which node
types its autoscaler may add, so they are read from the autoscaler's own YAML: the copy `ray up`
leaves on the head (which Ray Tune itself checks for) or the file named in
cluster.autoscaler_config.
"""
from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ray
import yaml

from pipeline.config import ConfigError, Resources

BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")
THIS_MACHINE_ADDRESSES = ("local", "auto")  # a new local Ray; a cluster started here
TRACKING_SERVERS = ("http://", "https://")


def address(configured: str | None) -> str | None:
    """The Ray address to join (cluster.address, else RAY_ADDRESS); None: start a local Ray."""
    return configured or os.environ.get("RAY_ADDRESS") or None


def _host_addresses() -> set[str]:
    import psutil  # a Ray dependency

    found = {"localhost", socket.gethostname()}
    for addresses in psutil.net_if_addrs().values():
        found.update(a.address.split("%")[0] for a in addresses
                     if a.family in (socket.AF_INET, socket.AF_INET6))
    return found


def is_remote(ray_address: str | None) -> bool:
    """Whether the cluster's head is another machine (`host:port`, `ray://host:port`)."""
    if ray_address is None or ray_address in THIS_MACHINE_ADDRESSES:
        return False
    host = urlsplit("//" + ray_address.split("://", 1)[-1]).hostname or ""
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return True
    if all(ipaddress.ip_address(ip.split("%")[0]).is_loopback for ip in resolved):
        return False
    return not resolved & _host_addresses()


def check_tracking(ray_address: str | None, tracking_uri: str) -> None:
    """A remote cluster needs an MLflow server: neither its workers nor a driver submitted to
    its head can open a store that lives on this machine's disk."""
    if is_remote(ray_address) and not tracking_uri.startswith(TRACKING_SERVERS):
        raise ConfigError(
            f"tracking.uri: {tracking_uri} is a store on this machine, but the Ray cluster at "
            f"{ray_address} is remote; use an MLflow tracking server (http://...)")


def worker_env(tracking_uri: str, mlflow_experiment: str) -> dict[str, str]:
    """Environment of every worker: the driver's folder on PYTHONPATH (user trainables import
    from there) and the MLflow store and experiment, for trainables that log themselves. The
    experiment goes by name: Ray is joined before the driver looks up (or creates) its id."""
    pythonpath = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": pythonpath, "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_EXPERIMENT_NAME": mlflow_experiment}


def _fits(need: dict[str, float], node: dict[str, float]) -> bool:
    return all(node.get(name, 0) >= amount for name, amount in need.items() if amount)


def read_autoscaler_config(configured: Path | None) -> dict[str, Any]:
    """The autoscaler YAML named by cluster.autoscaler_config, else the copy `ray up` left
    here; {} when neither exists."""
    path = (configured or BOOTSTRAP_CONFIG).expanduser()
    if not path.is_file():
        if configured is not None:
            raise ConfigError(f"cluster.autoscaler_config: no such file {path}")
        return {}
    return yaml.safe_load(path.read_text()) or {}  # the bootstrap copy is JSON, also YAML


def autoscaler_node_types(config: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Node types the cluster's autoscaler may add -> their resources ({}: Ray detects them
    at launch). Empty when no autoscaler config is known."""
    if config.get("max_workers", 1) == 0:
        return {}
    return {name: node_type.get("resources") or {}
            for name, node_type in config.get("available_node_types", {}).items()
            if node_type.get("max_workers", 0) > 0}


def check_resources(resources: Resources, autoscaler: dict[str, Any],
                    ray_address: str | None) -> None:
    """Refuse a per-trial request that neither a live node nor an addable node type satisfies."""
    need = {"CPU": resources.cpu, "GPU": resources.gpu}
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    if any(_fits(need, node) for node in nodes):
        return
    node_types = autoscaler_node_types(autoscaler) if ray_address is not None else {}
    # a type whose resources Ray detects at launch cannot be ruled out
    if any(not resources or _fits(need, resources) for resources in node_types.values()):
        return
    biggest = {k: max((node.get(k, 0) for node in nodes), default=0) for k in need}
    addable = ", ".join(f"{name} (cpu={r.get('CPU', 0):g}, gpu={r.get('GPU', 0):g})"
                        for name, r in node_types.items()) or "none"
    raise ConfigError(f"resources: no node can run a trial needing cpu={need['CPU']:g}, "
                      f"gpu={need['GPU']:g} (largest node: cpu={biggest['CPU']:g}, "
                      f"gpu={biggest['GPU']:g}; node types the autoscaler can add: {addable})")
