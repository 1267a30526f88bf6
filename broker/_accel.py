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


def _load(name: str) -> ModuleType:
    if NO_EXTENSIONS:
        if REQUIRE_EXTENSIONS:
            raise ImportError("FLEETGATE_NO_EXTENSIONS and FLEETGATE_REQUIRE_EXTENSIONS both set")
        return PURE[name]
    try:
        return importlib.import_module(f"_speedups.{name}")
    except ImportError as error:
        if REQUIRE_EXTENSIONS:
            raise ImportError(f"compiled module _speedups.{name} did not load: {error}") from error
        return PURE[name]


codec = _load("codec")
framing = _load("framing")
topic_tree = _load("topic_tree")

COMPILED: dict[str, bool] = {
    "codec": codec is not _pure_codec,
    "framing": framing is not _pure_framing,
    "topic_tree": topic_tree is not _pure_topic_tree,
}

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
