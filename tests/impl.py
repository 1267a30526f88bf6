"""Both implementations of the hot modules, for tests that must pass against each.

Multidict's ``c_extension`` pattern: one fixture parametrized over ``pure`` and ``compiled``.
The compiled twins FAIL the test when ``FLEETGATE_REQUIRE_EXTENSIONS=1`` (CI, ``make test``) and
they did not load, so a broken build cannot pass; without that variable they skip with a reason.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from types import ModuleType

import pytest

from broker.mqtt import codec as pure_codec
from broker.mqtt import framing as pure_framing
from broker.routing import topic_tree as pure_topic_tree

IMPLEMENTATIONS = ["pure", "compiled"]


@dataclass(frozen=True)
class Impl:
    name: str
    codec: ModuleType
    framing: ModuleType
    topic_tree: ModuleType


PURE = Impl("pure", pure_codec, pure_framing, pure_topic_tree)


def load_compiled() -> Impl:
    """The ``_speedups`` twins, or fail/skip the calling test when they are not importable."""
    try:
        modules = [
            importlib.import_module(f"_speedups.{name}")
            for name in ("codec", "framing", "topic_tree")
        ]
    except ImportError as error:
        if os.environ.get("FLEETGATE_REQUIRE_EXTENSIONS") == "1":
            pytest.fail(f"FLEETGATE_REQUIRE_EXTENSIONS=1 but _speedups did not load: {error}")
        pytest.skip(f"compiled _speedups modules are not built ({error}); run `make build`")
    return Impl("compiled", *modules)


# Session scope: the modules are stateless, and hypothesis rejects function-scoped fixtures.
@pytest.fixture(scope="session", params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Impl:
    return PURE if request.param == "pure" else load_compiled()


@pytest.fixture(scope="session")
def pure() -> Impl:
    return PURE


@pytest.fixture(scope="session")
def compiled() -> Impl:
    return load_compiled()
