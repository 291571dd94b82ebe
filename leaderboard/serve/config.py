"""The checked-in Serve config (``serve_config.yaml``): the one place for deployment options.

``serve deploy serve_config.yaml`` applies it on a cluster; ``make run``, the end-to-end tests
and ``scripts/local-cluster`` read the same file through :func:`load`, so replica counts,
autoscaling and log settings are written down once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SERVE_CONFIG = Path(__file__).resolve().parents[2] / "serve_config.yaml"


@dataclass(frozen=True)
class ServeFile:
    """The leaderboard application of a Serve config file, as ``serve.run`` wants it."""

    name: str
    route_prefix: str
    import_path: str
    logging_config: dict[str, Any]
    env_vars: dict[str, str]
    deployments: dict[str, dict[str, Any]]


def read(path: Path = SERVE_CONFIG) -> dict[str, Any]:
    """The file as parsed YAML."""
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a mapping")
    return doc


def load(path: Path = SERVE_CONFIG) -> ServeFile:
    """The file's single application, with its deployments keyed by name (``name`` removed)."""
    doc = read(path)
    apps = doc.get("applications") or []
    if len(apps) != 1:
        raise ValueError(f"{path}: expected exactly one application, found {len(apps)}")
    app = apps[0]
    deployments = {d["name"]: {k: v for k, v in d.items() if k != "name"}
                   for d in app.get("deployments", [])}
    return ServeFile(
        name=app["name"],
        route_prefix=app.get("route_prefix", "/"),
        import_path=app["import_path"],
        logging_config=dict(app.get("logging_config") or doc.get("logging_config") or {}),
        env_vars=dict((app.get("runtime_env") or {}).get("env_vars") or {}),
        deployments=deployments,
    )


def deployment_options(path: Path = SERVE_CONFIG) -> dict[str, dict[str, Any]]:
    """Per deployment name, the keyword arguments for ``Deployment.options``."""
    return load(path).deployments


def with_overrides(
    options: dict[str, dict[str, Any]], **overrides: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """A deep copy of ``options`` with some keys replaced per deployment (nested dicts merged)."""
    out = copy.deepcopy(options)
    for name, changes in overrides.items():
        target = out.setdefault(name, {})
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            else:
                target[key] = value
    return out


def problems(doc: dict[str, Any]) -> list[str]:
    """Every key Serve would silently ignore, and every value its schemas refuse.

    ``ServeDeploySchema.model_validate`` drops unknown keys, so a misspelled
    ``target_ongoing_request`` would vanish: each mapping is checked against the fields of
    the schema that reads it, and autoscaling and logging settings are built for real.
    """
    from pydantic import ValidationError
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import (
        DeploymentSchema,
        HTTPOptionsSchema,
        LoggingConfig,
        RayActorOptionsSchema,
        ServeApplicationSchema,
        ServeDeploySchema,
    )

    found: list[str] = []

    def keys(where: str, value: Any, schema: Any) -> None:
        if not isinstance(value, dict):
            found.append(f"{where}: expected a mapping")
            return
        found.extend(f"{where}.{k}: unknown key" for k in value if k not in schema.model_fields)

    def build(where: str, value: dict[str, Any], model: Any) -> None:
        try:
            model(**value)
        except (ValidationError, ValueError, TypeError) as exc:
            found.append(f"{where}: {exc}")

    keys("", doc, ServeDeploySchema)
    keys("http_options", doc.get("http_options", {}), HTTPOptionsSchema)
    for i, app in enumerate(doc.get("applications") or []):
        at = f"applications[{i}]"
        keys(at, app, ServeApplicationSchema)
        for j, dep in enumerate(app.get("deployments") or []):
            dat = f"{at}.deployments[{j}]"
            keys(dat, dep, DeploymentSchema)
            for field, model in (("autoscaling_config", AutoscalingConfig),
                                 ("logging_config", LoggingConfig),
                                 ("ray_actor_options", RayActorOptionsSchema)):
                if field in dep:
                    keys(f"{dat}.{field}", dep[field], model)
                    build(f"{dat}.{field}", dep[field], model)
        if "logging_config" in app:
            keys(f"{at}.logging_config", app["logging_config"], LoggingConfig)
            build(f"{at}.logging_config", app["logging_config"], LoggingConfig)
    if "logging_config" in doc:
        keys("logging_config", doc["logging_config"], LoggingConfig)
        build("logging_config", doc["logging_config"], LoggingConfig)
    try:
        ServeDeploySchema.model_validate(doc)
    except ValidationError as exc:
        found.append(str(exc))
    return found
