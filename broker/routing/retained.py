"""Retained messages (MQTT 3.3.1.3), kept in a trie of topic levels so that a new subscription
finds its retained messages by walking its filter instead of scanning every topic.

- MQTT-3.3.1-5: a PUBLISH with RETAIN=1 replaces the topic's retained message.
- MQTT-3.3.1-10/11: a retained PUBLISH with an empty payload removes it and is not stored.
- MQTT-4.7.2-1: ``#`` and ``+`` as first filter level skip topics starting with ``$``.
"""

from __future__ import annotations

from collections.abc import Iterator

from broker.session.session import Message


class _Node:
    __slots__ = ("children", "message")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.message: Message | None = None


class RetainedMessages:
    def __init__(self) -> None:
        self._root = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def set(self, message: Message) -> None:
        """Keep ``message`` for its topic; an empty payload removes the topic's message."""
        levels = message.topic.split("/")
        if not message.payload:
            self._remove(levels)
            return
        node = self._root
        for level in levels:
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        if node.message is None:
            self._count += 1
        node.message = Message(message.topic, message.payload, message.qos, True)

    def _remove(self, levels: list[str]) -> None:
        path = []
        node = self._root
        for level in levels:
            child = node.children.get(level)
            if child is None:
                return
            path.append((node, level))
            node = child
        if node.message is None:
            return
        node.message = None
        self._count -= 1
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.message is not None or child.children:
                break
            del parent.children[level]

    def get(self, topic: str) -> Message | None:
        node: _Node | None = self._root
        for level in topic.split("/"):
            node = node.children.get(level) if node else None
        return node.message if node else None

    def match(self, topic_filter: str) -> list[Message]:
        """Every retained message whose topic the filter matches."""
        found: list[Message] = []
        levels = topic_filter.split("/")
        stack: list[tuple[_Node, int]] = [(self._root, 0)]
        while stack:
            node, depth = stack.pop()
            if depth == len(levels):
                if node.message is not None:
                    found.append(node.message)
                continue
            level = levels[depth]
            if level == "#":
                # '#' also matches the parent level itself (MQTT-4.7.1-2).
                if node.message is not None and depth > 0:
                    found.append(node.message)
                for name, child in node.children.items():
                    if depth == 0 and name.startswith("$"):
                        continue
                    found.extend(_all(child))
            elif level == "+":
                for name, child in node.children.items():
                    if depth == 0 and name.startswith("$"):
                        continue
                    stack.append((child, depth + 1))
            else:
                child = node.children.get(level)
                if child is not None:
                    stack.append((child, depth + 1))
        return found

    def __iter__(self) -> Iterator[Message]:
        return _all(self._root)


def _all(node: _Node) -> Iterator[Message]:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.message is not None:
            yield current.message
        stack.extend(current.children.values())
