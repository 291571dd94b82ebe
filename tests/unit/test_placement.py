"""Placement by node label: labelled nodes preferred when they exist, any node otherwise."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from leaderboard.actors.placement import ANY_NODE, choose_placement
from leaderboard.settings import Settings

NODES = [{"ray.io/node-id": "h"}, {"region": "eu", "ray.io/node-id": "a"},
         {"region": "asia", "ray.io/node-id": "b"}]


def test_a_labelled_region_prefers_its_nodes_and_falls_back_to_any() -> None:
    opts = choose_placement("region", "EU", NODES)
    assert opts == {"label_selector": {"region": "eu"}, "fallback_strategy": [ANY_NODE]}
    assert ANY_NODE == {"label_selector": {}}


def test_a_region_without_labelled_nodes_goes_anywhere() -> None:
    assert choose_placement("region", "NA", NODES) == {}
    assert choose_placement("region", "GLOBAL", NODES) == {}
    assert choose_placement("region", "EU", []) == {}


def test_the_label_key_is_the_configured_one() -> None:
    assert choose_placement("zone", "EU", NODES) == {}
    nodes = [{"zone": "eu"}]
    assert choose_placement("zone", "EU", nodes)["label_selector"] == {"zone": "eu"}


def test_an_empty_label_key_switches_placement_off() -> None:
    assert choose_placement("", "EU", NODES) == {}


def test_the_selector_ray_would_accept() -> None:
    from ray._private.label_utils import validate_fallback_strategy, validate_label_selector

    opts = choose_placement("region", "ASIA", NODES)
    assert validate_label_selector(opts["label_selector"]) is None
    assert validate_fallback_strategy(opts["fallback_strategy"]) is None


def test_placement_label_setting(make_settings: Callable[..., Settings]) -> None:
    assert make_settings().placement_label == "region"
    assert make_settings(PLACEMENT_LABEL="example.com/region").placement_label == (
        "example.com/region")
    assert make_settings(PLACEMENT_LABEL="").placement_label == ""
    for bad in ("-region", "a b", "region/", "x" * 64, "bad_prefix!/region"):
        with pytest.raises(ValidationError, match="PLACEMENT_LABEL"):
            make_settings(PLACEMENT_LABEL=bad)
