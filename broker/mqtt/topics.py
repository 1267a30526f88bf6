"""Topic name and topic filter rules (MQTT 3.1.1 section 4.7).

- MQTT-4.7.3-1: topic names and filters are at least one character long.
- MQTT-3.3.2-2: a topic name in PUBLISH contains no wildcard (``a/+/b`` is invalid there).
- MQTT-4.7.1-2: ``#`` stands alone in the last level (``a/#`` valid, ``a/b#`` and ``a/#/b`` not).
- MQTT-4.7.1-3: ``+`` fills a whole level (``a/+/b`` valid, ``a+/b`` not).
- MQTT-1.5.3-2: no U+0000 (checked by the codec for every string).
"""

from broker.mqtt.errors import ProtocolError


def validate_topic_name(topic: str) -> None:
    if not topic:
        raise ProtocolError("empty topic name", "MQTT-4.7.3-1", "invalid_topic")
    if "+" in topic or "#" in topic:
        raise ProtocolError(f"wildcard in topic name {topic!r}", "MQTT-3.3.2-2", "invalid_topic")


def validate_topic_filter(topic_filter: str) -> None:
    if not topic_filter:
        raise ProtocolError("empty topic filter", "MQTT-4.7.3-1", "invalid_topic")
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != last):
            raise ProtocolError(
                f"'#' not alone in the last level of {topic_filter!r}", "MQTT-4.7.1-2",
                "invalid_topic",
            )
        if "+" in level and level != "+":
            raise ProtocolError(
                f"'+' not alone in a level of {topic_filter!r}", "MQTT-4.7.1-3", "invalid_topic"
            )
