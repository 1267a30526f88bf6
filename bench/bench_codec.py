"""Codec and framing micro-benchmarks: pure Python vs the Cython twin, side by side.

Run: .venv/bin/python -m pytest bench/bench_codec.py --benchmark-group-by=group
A variant that does not import makes its benchmarks error (nothing is skipped).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

CODEC = {"pure": "broker.mqtt.codec", "cython": "_speedups.codec"}
FRAMING = {"pure": "broker.mqtt.framing", "cython": "_speedups.framing"}
TOPIC = "dev/1234/data"
PAYLOAD = bytes(range(64))
BATCH = 1000  # packets per framing round: one big read from a busy client


def _load(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest.fixture(params=list(CODEC))
def codec(request: pytest.FixtureRequest) -> ModuleType:
    return _load(CODEC[request.param])


@pytest.fixture(params=list(FRAMING))
def framing(request: pytest.FixtureRequest) -> ModuleType:
    return _load(FRAMING[request.param])


def _publishes(count: int, qos: int) -> bytes:
    """Wire bytes built with the pure codec, so both framers parse identical input."""
    enc = _load(CODEC["pure"]).encode_publish
    return b"".join(
        enc(TOPIC, PAYLOAD, qos, False, False, (i % 65535) + 1 if qos else 0) for i in range(count)
    )


@pytest.mark.parametrize("qos", [0, 1])
def test_encode_publish(benchmark, codec: ModuleType, qos: int) -> None:
    benchmark.group = f"encode_publish qos{qos}"
    pid = 42 if qos else 0
    out = benchmark(codec.encode_publish, TOPIC, PAYLOAD, qos, False, False, pid)
    assert out.endswith(PAYLOAD)


def test_frame_batch(benchmark, framing: ModuleType) -> None:
    """Many PUBLISH packets arriving in one read."""
    benchmark.group = f"framing feed {BATCH} publishes"
    data = _publishes(BATCH, qos=1)
    framer = framing.Framer(1 << 20)
    assert len(benchmark(framer.feed, data)) == BATCH


def test_frame_single(benchmark, framing: ModuleType) -> None:
    """One PUBLISH per read: the fleet scenario's pattern."""
    benchmark.group = "framing feed 1 publish"
    data = _publishes(1, qos=0)
    framer = framing.Framer(1 << 20)
    assert len(benchmark(framer.feed, data)) == 1
