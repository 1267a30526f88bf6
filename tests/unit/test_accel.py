"""broker._accel: the chooser between the compiled twins and the pure-Python references.

Each environment case runs in a fresh interpreter with a clean environment, since the chooser
reads its variables once at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import broker._accel as accel
import broker.core.broker  # noqa: F401  (registers the connection twin with the chooser)

ALL_TWINS = {"codec", "framing", "topic_tree", "connection"}
ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, broker._accel as a, broker.mqtt.framing as f, broker.core.broker;"
    "print(json.dumps({'compiled': a.COMPILED, 'pure_framer': a.Framer is f.Framer}))"
)


def run_chooser(**variables: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"), **variables}
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )


def test_this_process_loaded_the_compiled_modules_when_required() -> None:
    if os.environ.get("FLEETGATE_REQUIRE_EXTENSIONS") != "1":
        pytest.skip("FLEETGATE_REQUIRE_EXTENSIONS is not set in this run")
    assert set(accel.COMPILED) >= ALL_TWINS
    assert all(accel.COMPILED.values()), accel.COMPILED
    assert accel.Framer.__module__ == "_speedups.framing"
    assert accel.TopicTree.__module__ == "_speedups.topic_tree"


def test_require_extensions_loads_every_compiled_module() -> None:
    result = run_chooser(FLEETGATE_REQUIRE_EXTENSIONS="1")
    if result.returncode and os.environ.get("FLEETGATE_REQUIRE_EXTENSIONS") != "1":
        pytest.skip(f"compiled modules are not built: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["compiled"]) >= ALL_TWINS
    assert all(report["compiled"].values()), report
    assert report["pure_framer"] is False


def test_no_extensions_gives_the_pure_modules() -> None:
    result = run_chooser(FLEETGATE_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["compiled"]) >= ALL_TWINS
    assert not any(report["compiled"].values()), report
    assert report["pure_framer"] is True


def test_both_variables_set_is_an_import_error() -> None:
    result = run_chooser(FLEETGATE_NO_EXTENSIONS="1", FLEETGATE_REQUIRE_EXTENSIONS="1")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "both set" in result.stderr


def test_the_chooser_exports_every_hot_name() -> None:
    for name in ("Framer", "TopicTree", "encode_publish", "encode_connack", "encode_puback",
                 "encode_pubrec", "encode_pubrel", "encode_pubcomp", "encode_suback",
                 "encode_unsuback"):
        assert callable(getattr(accel, name)), name
