"""Access control rules for plain MQTT use (``mqtt.acl_file``).

One rule a line, first match wins, and no match denies (a file that exists restricts)::

    # allow|deny  publish|subscribe|all  who  topic-filter
    allow all       *              dev/%c/#       # %c = client id, %u = username
    allow subscribe user:ops       #
    deny  publish   anonymous      $SYS/#

``who`` is ``*``, ``anonymous``, ``user:<name>`` or ``client:<id>``. A publish is allowed when its
topic name matches the rule's filter; a subscription when every topic its filter can match is
covered by the rule's filter (``dev/1/+`` is within ``dev/1/#``; ``dev/#`` is not within
``dev/1/#``). A rule with ``%c``/``%u`` does not apply to a client whose id/username contains
``+`` or ``#``: substituted, it would widen the filter (client id ``+`` in ``dev/%c/#``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.mqtt.errors import ProtocolError
from broker.mqtt.topics import validate_topic_filter

ACTIONS = {"publish", "subscribe", "all"}


@dataclass(frozen=True)
class Rule:
    allow: bool
    action: str
    who: str
    topic_filter: str

    def applies(self, action: str, username: str | None, client_id: str) -> bool:
        if self.action not in ("all", action):
            return False
        if self.who == "*":
            return True
        if self.who == "anonymous":
            return username is None
        kind, _, name = self.who.partition(":")
        return (kind == "user" and name == username) or (kind == "client" and name == client_id)


class AclError(ValueError):
    pass


def parse_acl(text: str, source: str = "acl") -> list[Rule]:
    rules = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if not line:
            continue
        parts = line.split()
        if len(parts) != 4 or parts[0] not in ("allow", "deny") or parts[1] not in ACTIONS:
            raise AclError(f"{source}:{number}: expected 'allow|deny publish|subscribe|all who "
                           f"topic-filter', got {raw.strip()!r}")
        who = parts[2]
        if who not in ("*", "anonymous") and not who.startswith(("user:", "client:")):
            raise AclError(f"{source}:{number}: unknown subject {who!r}")
        try:
            validate_topic_filter(parts[3].replace("%c", "c").replace("%u", "u"))
        except ProtocolError as error:
            raise AclError(f"{source}:{number}: {error}") from None
        rules.append(Rule(parts[0] == "allow", parts[1], who, parts[3]))
    return rules


def _strip_comment(raw: str) -> str:
    # '#' starts a comment only at the start of a line or after whitespace that ends the rule;
    # a topic filter ending in '#' is part of the rule.
    text = raw.strip()
    if text.startswith("#"):
        return ""
    words = text.split()
    kept = []
    for i, word in enumerate(words):
        if word.startswith("#") and i >= 4:
            break
        kept.append(word)
    return " ".join(kept)


def load_acl(path: str | Path) -> list[Rule]:
    return parse_acl(Path(path).read_text(encoding="utf-8"), str(path))


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT wildcard match of one filter against one topic name (MQTT-4.7.1, 4.7.2-1): a topic
    name is the narrowest filter, so this is ``filter_covers`` of it."""
    return filter_covers(topic_filter, topic)


def filter_covers(outer: str, inner: str) -> bool:
    """True when every topic ``inner`` can match is matched by ``outer``."""
    o_levels = outer.split("/")
    i_levels = inner.split("/")
    if inner.startswith("$") and o_levels[0] in ("+", "#"):
        return False
    for i, level in enumerate(o_levels):
        if level == "#":
            return True
        if i >= len(i_levels):
            return False
        sub = i_levels[i]
        if sub == "#":
            return False
        if level != "+" and (sub == "+" or sub != level):
            return False
    return len(i_levels) == len(o_levels)


def _safe_name(name: str) -> bool:
    # A client id or username holding '+' or '#' would turn a %c/%u level into a wildcard and
    # reach other clients' topics (client id "+" in "dev/%c/#"), so such rules do not apply.
    return "+" not in name and "#" not in name


class Acl:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    def _decide(self, action: str, username: str | None, client_id: str, check: str) -> bool:
        """First matching rule's verdict for a topic name or filter ``check``; no match denies."""
        for rule in self.rules:
            if not rule.applies(action, username, client_id):
                continue
            topic_filter = rule.topic_filter
            if "%c" in topic_filter:
                if not _safe_name(client_id):
                    continue
                topic_filter = topic_filter.replace("%c", client_id)
            if "%u" in topic_filter:
                if username is None or not _safe_name(username):
                    continue
                topic_filter = topic_filter.replace("%u", username)
            if filter_covers(topic_filter, check):  # a topic name is the narrowest filter
                return rule.allow
        return False

    def may_publish(self, username: str | None, client_id: str, topic: str) -> bool:
        return self._decide("publish", username, client_id, topic)

    def may_subscribe(self, username: str | None, client_id: str, topic_filter: str) -> bool:
        return self._decide("subscribe", username, client_id, topic_filter)
