"""Hypothesis: both tries agree with a naive matcher and with each other under churn."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.impl import Impl

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A tiny alphabet so filters and topics collide often; '$' levels exercise MQTT-4.7.2-1.
LEVELS = ["a", "b", "", "$s", "$"]
topics = st.lists(st.sampled_from(LEVELS), min_size=1, max_size=4).map("/".join).filter(bool)
topic_filters = st.builds(
    lambda levels, multi: "/".join(levels + ["#"] if multi else levels),
    st.lists(st.sampled_from([*LEVELS, "+"]), min_size=0, max_size=4),
    st.booleans(),
).filter(bool)
keys = st.integers(0, 4)
subscriptions = st.lists(st.tuples(topic_filters, keys, st.integers(0, 2)), max_size=25)


def naive_match(topic_filter: str, topic: str) -> bool:
    """MQTT section 4.7 by the letter, one filter at a time."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False  # MQTT-4.7.2-1
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for i, wanted in enumerate(filter_levels):
        if wanted == "#":
            return True  # also when topic_levels ran out: 'a/#' matches 'a'
        if i >= len(topic_levels) or wanted not in ("+", topic_levels[i]):
            return False
    return len(filter_levels) == len(topic_levels)


def naive_routes(model: dict[tuple[str, int], int], topic: str) -> dict[int, int]:
    routes: dict[int, int] = {}
    for (topic_filter, key), qos in model.items():
        if naive_match(topic_filter, topic):
            routes[key] = max(qos, routes.get(key, -1))
    return routes


def build(impl: Impl, subs: list[tuple[str, int, int]]) -> Any:
    tree = impl.topic_tree.TopicTree()
    for topic_filter, key, qos in subs:
        tree.subscribe(topic_filter, key, qos)
    return tree


@SETTINGS
@given(subs=subscriptions, probes=st.lists(topics, min_size=1, max_size=10))
def test_trie_matches_the_naive_matcher(
    pure: Impl, compiled: Impl, subs: list[tuple[str, int, int]], probes: list[str]
) -> None:
    model = {(f, k): q for f, k, q in subs}  # a later subscribe replaces the QoS
    trees = [build(pure, subs), build(compiled, subs)]
    for topic in probes:
        expected = naive_routes(model, topic)
        for tree in trees:
            assert tree.match(topic) == expected, (topic, type(tree).__module__)
    for tree in trees:
        assert len(tree) == len(model)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("sub"), topic_filters, keys, st.integers(0, 2)),
        st.tuples(st.just("unsub"), topic_filters, keys, st.just(0)),
    ),
    max_size=40,
)


@SETTINGS
@given(ops=operations, probes=st.lists(topics, max_size=6))
def test_subscribe_unsubscribe_sequences(
    pure: Impl, compiled: Impl, ops: list[tuple[str, str, int, int]], probes: list[str]
) -> None:
    trees = [pure.topic_tree.TopicTree(), compiled.topic_tree.TopicTree()]
    model: dict[tuple[str, int], int] = {}
    for op, topic_filter, key, qos in ops:
        if op == "sub":
            expected = (topic_filter, key) not in model
            model[(topic_filter, key)] = qos
            assert [t.subscribe(topic_filter, key, qos) for t in trees] == [expected] * 2
        else:
            expected = model.pop((topic_filter, key), None) is not None
            assert [t.unsubscribe(topic_filter, key) for t in trees] == [expected] * 2
    for tree in trees:
        assert len(tree) == len(model)
        for key in range(5):
            assert sorted(tree.filters_of(key)) == sorted(
                (f, q) for (f, k), q in model.items() if k == key
            )
        for topic in probes:
            assert tree.match(topic) == naive_routes(model, topic)
    # Removing every subscription leaves an empty trie: unsubscribe prunes as it goes.
    for topic_filter, key in list(model):
        for tree in trees:
            assert tree.unsubscribe(topic_filter, key)
    for tree in trees:
        assert len(tree) == 0
        assert tree._root.children == {}
