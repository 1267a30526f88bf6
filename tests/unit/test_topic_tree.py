"""broker.routing.topic_tree and its Cython twin: wildcard matching, QoS merging, pruning."""

from __future__ import annotations

from typing import Any

import pytest

from tests.impl import Impl


def tree_with(impl: Impl, *subscriptions: tuple[str, Any, int]) -> Any:
    tree = impl.topic_tree.TopicTree()
    for topic_filter, key, qos in subscriptions:
        tree.subscribe(topic_filter, key, qos)
    return tree


def matches(impl: Impl, topic_filter: str, topic: str) -> bool:
    return tree_with(impl, (topic_filter, "k", 0)).match(topic) == {"k": 0}


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/b", "a/b/c", False),
        ("a/b", "a", False),
        ("a/b", "A/b", False),
        # '#' matches the parent level too, and any depth below (MQTT-4.7.1-2).
        ("a/#", "a", True),
        ("a/#", "a/b", True),
        ("a/#", "a/b/c/d", True),
        ("a/#", "a/", True),
        ("a/#", "b", False),
        ("a/#", "ab", False),
        ("a/b/#", "a", False),
        ("#", "a", True),
        ("#", "/", True),
        ("#", "a/b/c", True),
        ("/#", "/a", True),
        ("/#", "a", False),
        # '+' fills exactly one level, wherever it is (MQTT-4.7.1-3).
        ("+/b/c", "a/b/c", True),
        ("a/+/c", "a/b/c", True),
        ("a/b/+", "a/b/c", True),
        ("+/+/+", "a/b/c", True),
        ("+", "a", True),
        ("+", "a/b", False),
        ("+/+", "a/b/c", False),
        ("a/+", "a", False),
        ("a/+", "a/", True),
        ("+/a", "/a", True),
        ("+", "/", False),
        ("+/+", "/", True),
        ("+/#", "a", True),
        ("a/+/#", "a/b", True),
        ("a/+/#", "a", False),
        # Wildcards at the first level do not match '$' topics (MQTT-4.7.2-1).
        ("#", "$SYS/uptime", False),
        ("+/uptime", "$SYS/uptime", False),
        ("+", "$SYS", False),
        ("+/#", "$SYS/a", False),
        ("$SYS/#", "$SYS/uptime", True),
        ("$SYS/#", "$SYS", True),
        ("$SYS/+", "$SYS/uptime", True),
        ("$SYS/uptime", "$SYS/uptime", True),
        ("a/+", "a/$b", True),
        ("a/#", "a/$b/c", True),
        ("+/$b", "a/$b", True),
    ],
)
def test_wildcards(impl: Impl, topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(impl, topic_filter, topic) is expected


def test_plus_at_every_position(impl: Impl) -> None:
    levels = ["l0", "l1", "l2", "l3", "l4"]
    topic = "/".join(levels)
    for i in range(len(levels)):
        with_plus = levels[:i] + ["+"] + levels[i + 1 :]
        assert matches(impl, "/".join(with_plus), topic), i
        assert not matches(impl, "/".join(with_plus), "/".join(levels[:i] + levels[i + 1 :]))
        assert matches(impl, "/".join(levels[:i] + ["#"]), topic), i


def test_overlapping_subscriptions_give_one_entry_with_the_highest_qos(impl: Impl) -> None:
    tree = tree_with(
        impl,
        ("a/b", "dev", 1),
        ("a/+", "dev", 2),
        ("#", "dev", 0),
        ("a/#", "app", 0),
        ("+/b", "app", 1),
        ("a/c", "other", 2),
    )
    assert tree.match("a/b") == {"dev": 2, "app": 1}
    assert tree.match("a/c") == {"dev": 2, "app": 0, "other": 2}
    assert tree.match("a") == {"dev": 0, "app": 0}
    assert tree.match("x") == {"dev": 0}
    assert tree.match("$x") == {}


def test_subscribe_replaces_the_qos(impl: Impl) -> None:
    tree = impl.topic_tree.TopicTree()
    assert tree.subscribe("a/b", "k", 2) is True
    assert tree.subscribe("a/b", "k", 0) is False
    assert len(tree) == 1
    assert tree.match("a/b") == {"k": 0}


def test_match_returns_a_fresh_dict(impl: Impl) -> None:
    tree = tree_with(impl, ("a", "k", 1))
    first = tree.match("a")
    first["intruder"] = 2
    first["k"] = 0
    assert tree.match("a") == {"k": 1}


def test_any_hashable_key(impl: Impl) -> None:
    tree = tree_with(impl, ("a", ("client", 1), 1), ("a", 7, 0), ("+", frozenset({1}), 2))
    assert tree.match("a") == {("client", 1): 1, 7: 0, frozenset({1}): 2}


def test_len_counts_filter_key_pairs(impl: Impl) -> None:
    tree = impl.topic_tree.TopicTree()
    assert len(tree) == 0
    tree.subscribe("a", 1, 0)
    tree.subscribe("a", 2, 0)
    tree.subscribe("a/#", 1, 0)
    tree.subscribe("a", 1, 1)
    assert len(tree) == 3
    tree.unsubscribe("a", 1)
    assert len(tree) == 2
    tree.unsubscribe("a", 1)
    assert len(tree) == 2


def test_unsubscribe(impl: Impl) -> None:
    tree = tree_with(impl, ("a/b", "k", 1), ("a/b", "j", 1))
    assert tree.unsubscribe("a/b", "k") is True
    assert tree.unsubscribe("a/b", "k") is False
    assert tree.unsubscribe("a/c", "j") is False
    assert tree.unsubscribe("a", "j") is False
    assert tree.unsubscribe("a/b/c", "j") is False
    assert tree.match("a/b") == {"j": 1}


def test_unsubscribe_prunes_empty_branches(impl: Impl) -> None:
    tree = tree_with(impl, ("a/b/c/d", "k", 0), ("a/x", "k", 0), ("a/b", "j", 0))
    root = tree._root
    tree.unsubscribe("a/b/c/d", "k")
    # 'c' and 'd' are gone; 'b' stays for j, 'a' for both.
    assert set(root.children) == {"a"}
    assert set(root.children["a"].children) == {"b", "x"}
    assert root.children["a"].children["b"].children == {}
    tree.unsubscribe("a/b", "j")
    assert set(root.children["a"].children) == {"x"}
    tree.unsubscribe("a/x", "k")
    assert root.children == {}
    assert len(tree) == 0


def test_unsubscribe_keeps_nodes_with_children(impl: Impl) -> None:
    tree = tree_with(impl, ("a", "k", 0), ("a/b", "k", 0))
    tree.unsubscribe("a", "k")
    assert tree.match("a/b") == {"k": 0}
    assert tree.match("a") == {}
    assert set(tree._root.children) == {"a"}


def test_filters_of(impl: Impl) -> None:
    tree = tree_with(
        impl, ("a/b", "k", 1), ("#", "k", 0), ("/x/+", "k", 2), ("a/b", "j", 2), ("a", "j", 0)
    )
    assert sorted(tree.filters_of("k")) == [("#", 0), ("/x/+", 2), ("a/b", 1)]
    assert sorted(tree.filters_of("j")) == [("a", 0), ("a/b", 2)]
    assert list(tree.filters_of("nobody")) == []


def test_deep_filter_does_not_recurse(impl: Impl) -> None:
    # A topic name can have 32k levels; the walk must not depend on the C stack.
    deep = "/".join(["a"] * 20_000)
    tree = tree_with(impl, (deep, "k", 1), ("+/" * 19_999 + "#", "j", 2), ("#", "all", 0))
    assert tree.match(deep) == {"k": 1, "j": 2, "all": 0}
    assert tree.unsubscribe(deep, "k") is True
    assert tree.match(deep) == {"j": 2, "all": 0}


def test_fan_out(impl: Impl) -> None:
    tree = impl.topic_tree.TopicTree()
    for i in range(1000):
        tree.subscribe(f"dev/{i}/data", i, 0)
        tree.subscribe("dev/+/data", f"app{i % 10}", i % 3)
    assert len(tree) == 1010
    assert tree.match("dev/5/data") == {5: 0, **{f"app{n}": n % 3 for n in range(10)}}
    assert tree.match("dev/5000/data") == {f"app{n}": n % 3 for n in range(10)}
