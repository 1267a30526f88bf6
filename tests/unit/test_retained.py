"""broker/routing/retained.py: storing, replacing, removing and matching retained messages."""

from __future__ import annotations

import pytest

from broker.routing.retained import RetainedMessages
from broker.security.acl import topic_matches
from broker.session.session import Message


def retained(*topics: str) -> RetainedMessages:
    store = RetainedMessages()
    for topic in topics:
        store.set(Message(topic, topic.encode(), 1, False))
    return store


def topics_of(messages: list[Message]) -> set[str]:
    return {m.topic for m in messages}


def test_set_and_get() -> None:
    """A message is kept for its topic with RETAIN=1 and counted once."""
    store = RetainedMessages()
    store.set(Message("a/b", b"x", 1, False))
    assert store.get("a/b") == Message("a/b", b"x", 1, True)
    assert store.get("a") is None
    assert store.get("a/b/c") is None
    assert len(store) == 1


def test_replace() -> None:
    """A new retained message replaces the topic's old one (MQTT-3.3.1-5) without recounting."""
    store = RetainedMessages()
    store.set(Message("a/b", b"old", 0, True))
    store.set(Message("a/b", b"new", 2, True))
    assert store.get("a/b") == Message("a/b", b"new", 2, True)
    assert len(store) == 1


def test_empty_payload_removes() -> None:
    """An empty payload removes the topic's message and is not stored (MQTT-3.3.1-10/11)."""
    store = retained("a/b", "a")
    store.set(Message("a/b", b"", 0, True))
    assert store.get("a/b") is None
    assert len(store) == 1
    assert topics_of(store.match("#")) == {"a"}
    store.set(Message("nothing/here", b"", 0, True))  # removing an absent topic is a no-op
    store.set(Message("a/b/c", b"", 0, True))
    assert len(store) == 1


def test_empty_payload_on_interior_node_keeps_children() -> None:
    """Removing a topic that has retained descendants keeps the descendants."""
    store = retained("a", "a/b/c")
    store.set(Message("a", b"", 0, True))
    assert store.get("a") is None
    assert store.get("a/b/c") is not None
    assert len(store) == 1


def test_removal_prunes_empty_branches() -> None:
    """Removing the last message of a branch drops its now-empty nodes."""
    store = retained("a/b/c/d", "a/x")
    store.set(Message("a/b/c/d", b"", 0, True))
    root = store._root
    assert set(root.children["a"].children) == {"x"}
    store.set(Message("a/x", b"", 0, True))
    assert root.children == {}
    assert len(store) == 0


def test_removal_stops_pruning_at_a_message() -> None:
    """Pruning stops at an ancestor that holds a message itself."""
    store = retained("a/b", "a/b/c/d")
    store.set(Message("a/b/c/d", b"", 0, True))
    assert store._root.children["a"].children["b"].children == {}
    assert store.get("a/b") is not None


TOPICS = ["a", "a/b", "a/c", "a/b/c", "a/b/c/d", "b/b", "/a", "a/", "$SYS/x", "$SYS/x/y",
          "$other"]


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("a/b", {"a/b"}),
        ("a/+", {"a/b", "a/c", "a/"}),
        ("+/b", {"a/b", "b/b"}),
        ("a/+/c", {"a/b/c"}),
        ("+", {"a"}),
        ("+/+", {"a/b", "a/c", "b/b", "/a", "a/"}),
        ("a/#", {"a", "a/b", "a/c", "a/b/c", "a/b/c/d", "a/"}),  # '#' matches the parent level
        ("a/b/#", {"a/b", "a/b/c", "a/b/c/d"}),
        ("#", {"a", "a/b", "a/c", "a/b/c", "a/b/c/d", "b/b", "/a", "a/"}),
        ("+/#", {"a", "a/b", "a/c", "a/b/c", "a/b/c/d", "b/b", "/a", "a/"}),
        ("$SYS/#", {"$SYS/x", "$SYS/x/y"}),
        ("$SYS/+", {"$SYS/x"}),
        ("$other", {"$other"}),
        ("x/#", set()),
        ("a/b/c/d/e", set()),
    ],
)
def test_match(topic_filter: str, expected: set[str]) -> None:
    """match() finds exactly the topics the filter matches, '$' topics only when named."""
    assert topics_of(retained(*TOPICS).match(topic_filter)) == expected


@pytest.mark.parametrize(
    "topic_filter",
    ["#", "+", "+/+", "a/#", "a/+/#", "+/b/#", "$SYS/#", "/+", "+/", "a/+/c/+", "$SYS/+/y"],
)
def test_match_agrees_with_naive_matcher(topic_filter: str) -> None:
    """The trie walk returns what matching every topic one by one returns, each once."""
    store = retained(*TOPICS)
    found = [m.topic for m in store.match(topic_filter)]
    assert len(found) == len(set(found))
    assert set(found) == {t for t in TOPICS if topic_matches(topic_filter, t)}


def test_len_and_iteration() -> None:
    """len counts retained topics and iteration yields each message once."""
    store = retained(*TOPICS)
    assert len(store) == len(TOPICS)
    messages = list(store)
    assert sorted(m.topic for m in messages) == sorted(TOPICS)
    assert all(m.retain for m in messages)
    assert list(RetainedMessages()) == []
