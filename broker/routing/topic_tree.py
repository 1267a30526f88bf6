"""Subscription trie keyed by topic level, pure-Python reference (twin: _speedups/topic_tree.pyx).

Matching never scans all subscriptions: it walks the levels of the topic name, following the
literal child, the ``+`` child and collecting the ``#`` child at every node (MQTT-4.7.1-2: ``a/#``
also matches ``a``). MQTT-4.7.2-1: a filter starting with a wildcard does not match a topic name
starting with ``$`` (``#`` does not match ``$SYS/uptime``; ``$SYS/#`` does).

``match`` returns ``{key: qos}``, one entry per subscriber with the highest QoS of its
overlapping subscriptions, so every subscriber gets one copy (MQTT-3.3.5-1).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator


class _Node:
    __slots__ = ("children", "subscribers")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.subscribers: dict[Hashable, int] = {}


class TopicTree:
    __slots__ = ("_root", "_count")

    def __init__(self) -> None:
        self._root = _Node()
        self._count = 0

    def __len__(self) -> int:
        """Number of (filter, key) subscriptions held."""
        return self._count

    def subscribe(self, topic_filter: str, key: Hashable, qos: int) -> bool:
        """Add or replace ``key``'s subscription to ``topic_filter``; True if it is new."""
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        new = key not in node.subscribers
        node.subscribers[key] = qos
        if new:
            self._count += 1
        return new

    def unsubscribe(self, topic_filter: str, key: Hashable) -> bool:
        """Remove ``key``'s subscription to ``topic_filter``; True if there was one."""
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if node.subscribers.pop(key, None) is None:
            return False
        self._count -= 1
        # Prune the now-empty branch so the trie does not grow with churn.
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.subscribers or child.children:
                break
            del parent.children[level]
        return True

    def match(self, topic: str) -> dict[Hashable, int]:
        result: dict[Hashable, int] = {}
        levels = topic.split("/")
        last = len(levels)
        # (node, depth) pairs still to expand; depth = number of levels consumed.
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        dollar = topic.startswith("$")
        while stack:
            node, depth = stack.pop()
            children = node.children
            wild = not (dollar and depth == 0)
            if wild:
                multi = children.get("#")
                if multi is not None:
                    _merge(result, multi.subscribers)
            if depth == last:
                _merge(result, node.subscribers)
                continue
            literal = children.get(levels[depth])
            if literal is not None:
                stack.append((literal, depth + 1))
            if wild:
                single = children.get("+")
                if single is not None:
                    stack.append((single, depth + 1))
        return result

    def filters_of(self, key: Hashable) -> Iterator[tuple[str, int]]:
        """All (filter, qos) of one key; a full walk, for tests and introspection only."""
        stack: list[tuple[_Node, str]] = [(self._root, "")]
        while stack:
            node, prefix = stack.pop()
            if key in node.subscribers:
                yield prefix[1:], node.subscribers[key]
            for level, child in node.children.items():
                stack.append((child, f"{prefix}/{level}"))


def _merge(result: dict[Hashable, int], subscribers: dict[Hashable, int]) -> None:
    for key, qos in subscribers.items():
        if result.get(key, -1) < qos:
            result[key] = qos
