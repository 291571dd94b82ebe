"""Where the shard and writer actors run: by node label when the cluster has such nodes.

A region's shard actor asks for a node labelled ``{PLACEMENT_LABEL}={region lower-cased}``
(e.g. ``region=eu``) only when a live node carries that label, so it never waits for a node
that does not exist. The selector is a preference, not a requirement: the fallback (an empty
selector, any node) lets the actor restart elsewhere when its labelled node is lost, where a
hard selector would leave it pending until such a node came back. Writers consume every
shard's stream, so they have no region of their own: they are spread over the nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ray

from leaderboard.settings import Settings

ANY_NODE: dict[str, Any] = {"label_selector": {}}


def label_value(region: str) -> str:
    """The label value that marks a region's nodes (region names are upper case, labels not)."""
    return region.lower()


def choose_placement(
    label_key: str, region: str, node_labels: Iterable[Mapping[str, str]]
) -> dict[str, Any]:
    """Actor options for a region's shard, given the labels of the live nodes."""
    if not label_key:
        return {}
    value = label_value(region)
    if not any(labels.get(label_key) == value for labels in node_labels):
        return {}
    return {"label_selector": {label_key: value}, "fallback_strategy": [ANY_NODE]}


def live_node_labels() -> list[dict[str, str]]:
    """The labels of every live node of the connected Ray cluster."""
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return [dict(n.get("Labels") or {}) for n in nodes if n.get("Alive")]


def placement_options(settings: Settings, region: str) -> dict[str, Any]:
    """Options for ``.options(...)`` of the shard actor owning ``region`` (see the module doc)."""
    return choose_placement(settings.placement_label, region, live_node_labels())


def writer_placement_options(settings: Settings) -> dict[str, Any]:
    """Options for the writer actors: one per node before two on any (losing a node costs few)."""
    return {"scheduling_strategy": "SPREAD"}
