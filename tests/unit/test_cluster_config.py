"""cluster.yaml, cluster.local.yaml and serve_config.yaml, checked offline and strictly."""

from __future__ import annotations

import copy
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.config import AutoscalingConfig

from leaderboard.serve.config import SERVE_CONFIG, load, problems, read, with_overrides
from leaderboard.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = ["cluster.yaml", "cluster.local.yaml"]


def cluster(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(doc, dict)
    return doc


def validated(doc: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` does before it touches a machine."""
    cfg = prepare_config(copy.deepcopy(doc))
    validate_config(cfg)
    return cfg


@pytest.mark.parametrize("name", CLUSTERS)
def test_cluster_config_valid(name: str) -> None:
    validated(cluster(name))


@pytest.mark.parametrize("name", CLUSTERS)
def test_cluster_misspelled_key_refused(name: str) -> None:
    doc = cluster(name)
    doc["head_start_ray_command"] = doc.pop("head_start_ray_commands")
    with pytest.raises(Exception, match="head_start_ray_command"):
        validated(doc)


@pytest.mark.parametrize("name", CLUSTERS)
def test_every_command_is_a_string(name: str) -> None:
    """An unquoted `: ` turns a command into a mapping (YAML), which a shell cannot run."""
    doc = cluster(name)
    for key, value in doc.items():
        if key.endswith("_commands"):
            assert all(isinstance(c, str) for c in value), key


@pytest.mark.parametrize("name", CLUSTERS)
def test_start_commands_export_serve_env_and_avoid_redis_port(name: str) -> None:
    doc = cluster(name)
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in doc[key] if "ray start" in c)
        assert start.index("leaderboard.serve.ray_env") < start.index("ray start"), key
        assert start.index("leaderboard.env") < start.index("ray start"), key
        assert "6390" in start and "6379" not in start, key
    assert any("serve deploy serve_config.yaml" in c for c in doc["head_start_ray_commands"])


def start_commands(name: str) -> list[str]:
    doc = cluster(name)
    return [next(c for c in doc[key] if "ray start" in c)
            for key in ("head_start_ray_commands", "worker_start_ray_commands")]


@pytest.mark.parametrize("name", CLUSTERS)
def test_ray_token_auth_on_every_node_with_one_token(name: str) -> None:
    for start in start_commands(name):
        ray_start = start.index("ray start")
        assert -1 < start.find("export RAY_AUTH_MODE=token") < ray_start, start
        assert -1 < start.find('test -n "$RAY_AUTH_TOKEN"') < ray_start, start  # no token: no start
        assert start.index("leaderboard.env") < start.index('test -n "$RAY_AUTH_TOKEN"'), start
    deploy = next(c for c in cluster(name)["head_start_ray_commands"] if "serve deploy" in c)
    assert -1 < deploy.find("export RAY_AUTH_MODE=token") < deploy.index("serve deploy"), deploy
    assert "\nRAY_AUTH_TOKEN=" in (ROOT / "cluster.env.example").read_text()


@pytest.mark.parametrize("name", CLUSTERS)
def test_private_endpoints_stay_off_the_world(name: str) -> None:
    head, worker = start_commands(name)
    assert "--dashboard-host=127.0.0.1" in head
    for start in (head, worker):
        assert "0.0.0.0" not in start, start
        assert start.index("export METRICS_HOST=") < start.index("leaderboard.serve.ray_env"), start


@pytest.mark.parametrize("name", CLUSTERS)
def test_every_fixed_port_is_in_the_port_table(name: str) -> None:
    """docs/deploy.md section 5 lists each port the start commands and the Serve config pin."""
    table = (ROOT / "docs" / "deploy.md").read_text()
    table = table[table.index("## 5. Ports"):table.index("## 6.")]
    pinned = {int(p) for start in start_commands(name) for p in re.findall(r"-port=(\d+)", start)}
    pinned |= {read()["http_options"]["port"], 8404, 9101}  # HAProxy's stats and metrics (ray_env)
    listed = {int(p) for p in re.findall(r"^\| (\d+) \|", table, flags=re.MULTILINE)}
    assert pinned <= listed, pinned - listed


def test_aws_nodes_share_one_security_group_of_our_own() -> None:
    """Ray's own group would open SSH to the world: every node type names the documented one."""
    types = validated(cluster("cluster.yaml"))["available_node_types"]
    groups = {tuple(t["node_config"].get("SecurityGroupIds", ())) for t in types.values()}
    assert len(groups) == 1, groups
    (group,) = groups
    assert len(group) == 1 and group[0].startswith("sg-"), group


def test_aws_worker_types_carry_region_labels() -> None:
    types = validated(cluster("cluster.yaml"))["available_node_types"]
    assert types["eu-workers"]["labels"] == {"region": "eu"}
    assert types["asia-workers"]["labels"] == {"region": "asia"}


def test_local_variant_names_its_machines() -> None:
    provider = cluster("cluster.local.yaml")["provider"]
    assert provider["type"] == "local" and provider["head_ip"] and provider["worker_ips"]


# -- serve_config.yaml ---------------------------------------------------------------------


def test_serve_config_has_no_unknown_keys_or_bad_values() -> None:
    assert problems(read()) == []


def test_serve_config_autoscaling_built_for_real() -> None:
    ranker = load().deployments["Ranker"]
    auto = AutoscalingConfig(**ranker["autoscaling_config"])
    assert 1 <= auto.min_replicas < auto.max_replicas
    # the gateway keeps at most BATCH_MAX_INFLIGHT groups per replica on their way: a target
    # above that could never be reached, and the deployment would never grow
    assert auto.target_ongoing_requests <= Settings.model_fields["batch_max_inflight"].default
    assert ranker["max_ongoing_requests"] > auto.target_ongoing_requests


@pytest.mark.parametrize(
    ("path", "bad_key"),
    [
        ((), "proxy_locaton"),
        (("http_options",), "prot"),
        (("applications", 0), "route_prefx"),
        (("applications", 0, "logging_config"), "enable_acces_log"),
        (("applications", 0, "deployments", 0), "max_ongoing_request"),
        (("applications", 0, "deployments", 0, "autoscaling_config"), "target_ongoing_request"),
        (("applications", 0, "deployments", 0, "ray_actor_options"), "num_cpu"),
    ],
)
def test_misspelled_serve_key_found(path: tuple[str | int, ...], bad_key: str) -> None:
    doc = read()
    target: Any = doc
    for step in path:
        target = target[step]
    target[bad_key] = 1
    assert any(bad_key in p for p in problems(doc))


def test_bad_autoscaling_value_found() -> None:
    doc = read()
    auto = doc["applications"][0]["deployments"][0]["autoscaling_config"]
    auto["min_replicas"], auto["max_replicas"] = 3, 2
    assert any("autoscaling_config" in p for p in problems(doc))


def test_import_path_resolves_to_the_builder() -> None:
    module, _, attr = load().import_path.partition(":")
    builder = getattr(importlib.import_module(module), attr)
    assert callable(builder)
    with pytest.raises(ValueError, match="no application args"):
        builder({"unexpected": "1"})


def test_runtime_env_sets_only_settings_variables() -> None:
    known = {f.alias for f in Settings.model_fields.values() if f.alias}
    env = load().env_vars
    assert env, "the checked-in config sets at least RAY_NAMESPACE"
    assert set(env) <= known, set(env) - known


def test_deployments_are_the_graphs() -> None:
    assert set(load().deployments) == {"Ranker", "Gateway"}
    assert load(SERVE_CONFIG).logging_config == {"enable_access_log": False, "log_level": "WARNING"}


def test_overrides_merge_nested_options() -> None:
    base = load().deployments
    out = with_overrides(base, Ranker={"autoscaling_config": {"upscale_delay_s": 0}})
    assert out["Ranker"]["autoscaling_config"]["upscale_delay_s"] == 0
    assert out["Ranker"]["autoscaling_config"]["max_replicas"] == \
        base["Ranker"]["autoscaling_config"]["max_replicas"]
    assert base["Ranker"]["autoscaling_config"]["upscale_delay_s"] != 0  # the input is untouched
