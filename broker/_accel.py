"""Chooses the compiled (``_speedups``) or pure-Python implementation of each hot module.

``FLEETGATE_NO_EXTENSIONS=1`` forces pure Python. ``FLEETGATE_REQUIRE_EXTENSIONS=1`` turns a
missing or broken compiled module into an ImportError, so CI cannot pass on a silent fallback.
Everything else imports ``Framer``, ``TopicTree`` and the encoders from here.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from broker.mqtt import codec as _pure_codec
from broker.mqtt import framing as _pure_framing
from broker.routing import topic_tree as _pure_topic_tree

NO_EXTENSIONS = os.environ.get("FLEETGATE_NO_EXTENSIONS") == "1"
REQUIRE_EXTENSIONS = os.environ.get("FLEETGATE_REQUIRE_EXTENSIONS") == "1"

PURE: dict[str, ModuleType] = {
    "codec": _pure_codec,
    "framing": _pure_framing,
    "topic_tree": _pure_topic_tree,
}


COMPILED: dict[str, bool] = {}


def load(name: str, pure: ModuleType | None = None) -> ModuleType:
    """``_speedups.<name>`` if it loads (and is allowed), else the pure twin.

    Modules that themselves import this one (``broker.core.connection``) pass their pure twin
    in when they are loaded, instead of being listed in ``PURE`` here.
    """
    reference = PURE[name] if pure is None else pure
    module = reference
    if NO_EXTENSIONS:
        if REQUIRE_EXTENSIONS:
            raise ImportError("FLEETGATE_NO_EXTENSIONS and FLEETGATE_REQUIRE_EXTENSIONS both set")
    else:
        try:
            module = importlib.import_module(f"_speedups.{name}")
        except ImportError as error:
            if REQUIRE_EXTENSIONS:
                raise ImportError(
                    f"compiled module _speedups.{name} did not load: {error}"
                ) from error
    COMPILED[name] = module is not reference
    return module


codec = load("codec")
framing = load("framing")
topic_tree = load("topic_tree")

Framer = framing.Framer
TopicTree = topic_tree.TopicTree
encode_publish = codec.encode_publish
encode_connack = codec.encode_connack
encode_puback = codec.encode_puback
encode_pubrec = codec.encode_pubrec
encode_pubrel = codec.encode_pubrel
encode_pubcomp = codec.encode_pubcomp
encode_suback = codec.encode_suback
encode_unsuback = codec.encode_unsuback
