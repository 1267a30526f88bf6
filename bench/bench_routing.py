"""Topic-tree micro-benchmarks: pure Python vs the Cython twin, side by side.

Run: .venv/bin/python -m pytest bench/bench_routing.py --benchmark-group-by=group
A variant that does not import makes its benchmarks error (nothing is skipped).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

TREES = {"pure": "broker.routing.topic_tree", "cython": "_speedups.topic_tree"}
DEVICES = 10_000
WILDCARDS = ["dev/+/data", "dev/#", "+/+/data", "#", "dev/+/+"]


@pytest.fixture(params=list(TREES))
def tree_mod(request: pytest.FixtureRequest) -> ModuleType:
    return importlib.import_module(TREES[request.param])


def _fleet_tree(mod: ModuleType) -> object:
    """One exact subscription per device plus a few wildcard monitors (fleet shape)."""
    tree = mod.TopicTree()
    for n in range(DEVICES):
        tree.subscribe(f"dev/{n}/cmd", f"device-{n}", 1)
    for i, flt in enumerate(WILDCARDS):
        tree.subscribe(flt, f"monitor-{i}", 0)
    return tree


def test_match_wildcards(benchmark, tree_mod: ModuleType) -> None:
    """Telemetry publish: all five wildcard monitors match, no device filter does."""
    benchmark.group = f"match dev/N/data ({DEVICES} subs)"
    tree = _fleet_tree(tree_mod)
    assert len(benchmark(tree.match, "dev/5000/data")) == 5


def test_match_exact(benchmark, tree_mod: ModuleType) -> None:
    """Command to one device: its exact filter plus '#', 'dev/#' and 'dev/+/+'."""
    benchmark.group = f"match dev/N/cmd ({DEVICES} subs)"
    tree = _fleet_tree(tree_mod)
    assert len(benchmark(tree.match, "dev/5000/cmd")) == 4


def test_subscribe_unsubscribe(benchmark, tree_mod: ModuleType) -> None:
    """Session churn: a device reconnecting re-adds and drops its filter."""
    benchmark.group = "subscribe+unsubscribe"
    tree = _fleet_tree(tree_mod)

    def churn() -> None:
        tree.subscribe("dev/77777/cmd", "device-x", 1)
        tree.unsubscribe("dev/77777/cmd", "device-x")

    benchmark(churn)
