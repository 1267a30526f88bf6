"""broker.mqtt.topics: topic name and topic filter rules (section 4.7)."""

from __future__ import annotations

import pytest

from broker.mqtt.errors import ProtocolError
from broker.mqtt.topics import validate_topic_filter, validate_topic_name

VALID_NAMES = ["a", "a/b", "/", "/a", "a/", "//", "$SYS/uptime", "a b", "é/ü", "a$", "x" * 1000]
VALID_FILTERS = VALID_NAMES + ["#", "+", "+/+", "a/#", "a/+/b", "+/#", "/#", "/+", "$SYS/#", "+/"]


@pytest.mark.parametrize("topic", VALID_NAMES)
def test_valid_topic_names(topic: str) -> None:
    validate_topic_name(topic)


@pytest.mark.parametrize(
    ("topic", "rule"),
    [
        ("", "MQTT-4.7.3-1"),
        ("+", "MQTT-3.3.2-2"),
        ("#", "MQTT-3.3.2-2"),
        ("a/+/b", "MQTT-3.3.2-2"),
        ("a/#", "MQTT-3.3.2-2"),
        ("a+b", "MQTT-3.3.2-2"),
        ("a#", "MQTT-3.3.2-2"),
    ],
)
def test_invalid_topic_names(topic: str, rule: str) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_topic_name(topic)
    assert (info.value.rule, info.value.reason) == (rule, "invalid_topic")


@pytest.mark.parametrize("topic_filter", VALID_FILTERS)
def test_valid_topic_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    ("topic_filter", "rule"),
    [
        ("", "MQTT-4.7.3-1"),
        ("a/#/b", "MQTT-4.7.1-2"),
        ("#/a", "MQTT-4.7.1-2"),
        ("a/b#", "MQTT-4.7.1-2"),
        ("a#", "MQTT-4.7.1-2"),
        ("##", "MQTT-4.7.1-2"),
        ("a+", "MQTT-4.7.1-3"),
        ("a/+b/c", "MQTT-4.7.1-3"),
        ("++", "MQTT-4.7.1-3"),
        ("+a/#", "MQTT-4.7.1-3"),
    ],
)
def test_invalid_topic_filters(topic_filter: str, rule: str) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_topic_filter(topic_filter)
    assert (info.value.rule, info.value.reason) == (rule, "invalid_topic")
    assert repr(topic_filter) in info.value.message or not topic_filter
