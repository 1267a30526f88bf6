"""broker/security/acl.py: the ACL file format, wildcard matching, filter coverage, decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.security.acl import (
    Acl,
    AclError,
    Rule,
    filter_covers,
    load_acl,
    parse_acl,
    topic_matches,
)

# -- parse_acl ----------------------------------------------------------------------------------


def test_parse_valid_lines() -> None:
    """Each 'allow|deny action who filter' line becomes one Rule, in file order."""
    rules = parse_acl(
        "allow all * dev/%c/#\n"
        "allow subscribe user:ops #\n"
        "deny publish anonymous $SYS/#\n"
        "allow publish client:probe-1 a/+/b\n"
    )
    assert rules == [
        Rule(True, "all", "*", "dev/%c/#"),
        Rule(True, "subscribe", "user:ops", "#"),
        Rule(False, "publish", "anonymous", "$SYS/#"),
        Rule(True, "publish", "client:probe-1", "a/+/b"),
    ]


def test_parse_comments_and_blank_lines() -> None:
    """Blank lines, '#' lines and trailing '# …' after the fourth word are comments."""
    rules = parse_acl(
        "# a comment\n"
        "\n"
        "   \n"
        "  # indented comment\n"
        "allow all * dev/%c/#       # %c = client id\n"
    )
    assert rules == [Rule(True, "all", "*", "dev/%c/#")]


def test_parse_filter_ending_in_hash_is_not_a_comment() -> None:
    """A topic filter that is or ends in '#' is the rule's filter, not a comment."""
    assert parse_acl("allow subscribe * #") == [Rule(True, "subscribe", "*", "#")]
    assert parse_acl("allow subscribe * a/#") == [Rule(True, "subscribe", "*", "a/#")]
    assert parse_acl("allow subscribe * # # all of it") == [Rule(True, "subscribe", "*", "#")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("allow publish *", "expected"),
        ("allow publish * a b", "expected"),
        ("permit publish * a", "expected"),
        ("allow read * a", "expected"),
        ("allow publish someone a", "unknown subject"),
        ("allow publish group:x a", "unknown subject"),
        ("allow publish * a/#/b", "MQTT-4.7.1-2"),
        ("allow publish * a+/b", "MQTT-4.7.1-3"),
    ],
)
def test_parse_bad_lines_name_file_and_line(line: str, message: str) -> None:
    """A bad line raises AclError naming 'source:line' and what is wrong."""
    with pytest.raises(AclError) as info:
        parse_acl(f"# header\nallow all * ok/#\n{line}\n", "rules.acl")
    assert str(info.value).startswith("rules.acl:3: ")
    assert message in str(info.value)


def test_parse_placeholders_are_valid_in_filters() -> None:
    """%c and %u are accepted inside filter levels (validated as if substituted)."""
    assert parse_acl("allow all * users/%u/%c/+")[0].topic_filter == "users/%u/%c/+"


def test_load_acl_reports_path(tmp_path: Path) -> None:
    """load_acl reads the file and its errors carry the file path."""
    path = tmp_path / "x.acl"
    path.write_text("allow all * a/#\nnonsense\n", encoding="utf-8")
    with pytest.raises(AclError, match=f"^{path}:2: "):
        load_acl(path)
    path.write_text("allow all * a/#\n", encoding="utf-8")
    assert load_acl(path) == [Rule(True, "all", "*", "a/#")]


# -- topic_matches ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a/", True),
        ("+/+", "/x", True),
        ("a/#", "a", True),  # '#' matches the parent level too (MQTT-4.7.1-2)
        ("a/#", "a/b/c", True),
        ("a/#", "ab", False),
        ("#", "a/b", True),
        ("#", "/", True),
        ("+", "a", True),
        ("+", "a/b", False),
        # MQTT-4.7.2-1: wildcards in the first level do not match '$' topics.
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("$SYS/+", "$SYS/x", True),
        ("a/#", "a/$x", True),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    """MQTT wildcard matching (4.7.1) including the '$' rule (MQTT-4.7.2-1)."""
    assert topic_matches(topic_filter, topic) is expected


# -- filter_covers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("a/#", "a/+", True),
        ("a/+", "a/#", False),
        ("a/#", "a", True),  # 'a/#' matches 'a' itself
        ("a/#", "a/#", True),
        ("a/#", "a/b/#", True),
        ("a/b/#", "a/#", False),
        ("a/+", "a/+", True),
        ("a/+", "a/b", True),
        ("a/b", "a/+", False),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/+/d", False),
        ("#", "a/b", True),
        ("#", "#", True),
        ("+", "#", False),
        ("+/#", "a/#", True),
        ("a/+", "a/b/c", False),
        ("a/b/c", "a/b", False),
        ("dev/1/#", "dev/1/+", True),
        ("dev/1/#", "dev/#", False),
        # MQTT-4.7.2-1: a '$' filter is never within a first-level wildcard.
        ("#", "$SYS/#", False),
        ("+/#", "$SYS/x", False),
        ("$SYS/#", "$SYS/broker/+", True),
    ],
)
def test_filter_covers(outer: str, inner: str, expected: bool) -> None:
    """filter_covers: every topic 'inner' can match is matched by 'outer' (subset semantics)."""
    assert filter_covers(outer, inner) is expected


@pytest.mark.parametrize(
    ("outer", "inner"),
    [("a/#", "a/+"), ("#", "a/b"), ("a/+/c", "a/b/c"), ("+/#", "a/#"), ("a/#", "a")],
)
@pytest.mark.parametrize("topic", ["a", "a/b", "a/b/c", "x/y", "a/x/c"])
def test_covered_filter_matches_imply_outer_matches(outer: str, inner: str, topic: str) -> None:
    """When outer covers inner, any concrete topic inner matches, outer matches too."""
    if topic_matches(inner, topic):
        assert topic_matches(outer, topic)


# -- Acl decisions ------------------------------------------------------------------------------


def acl(text: str) -> Acl:
    return Acl(parse_acl(text))


def test_default_deny() -> None:
    """No matching rule denies; an empty rule list denies everything."""
    assert not acl("").may_publish("u", "c", "a")
    assert not acl("").may_subscribe(None, "c", "a")
    rules = acl("allow publish * a/#")
    assert rules.may_publish(None, "c", "a/b")
    assert not rules.may_publish(None, "c", "b")
    assert not rules.may_subscribe(None, "c", "a/b")  # action does not match


def test_first_match_wins() -> None:
    """Rules are tried in order and the first one that applies and matches decides."""
    rules = acl("deny publish * a/secret\nallow publish * a/#\n")
    assert not rules.may_publish(None, "c", "a/secret")
    assert rules.may_publish(None, "c", "a/open")
    reversed_rules = acl("allow publish * a/#\ndeny publish * a/secret\n")
    assert reversed_rules.may_publish(None, "c", "a/secret")


def test_all_applies_to_both_actions() -> None:
    """Action 'all' covers publish and subscribe."""
    rules = acl("allow all * a/#")
    assert rules.may_publish(None, "c", "a/b")
    assert rules.may_subscribe(None, "c", "a/+")


def test_subjects() -> None:
    """'*' is everyone, 'anonymous' no username, 'user:<n>' a username, 'client:<id>' a client."""
    rules = acl(
        "allow publish anonymous anon/#\n"
        "allow publish user:ops ops/#\n"
        "allow publish client:probe probe/#\n"
        "allow publish * all/#\n"
    )
    assert rules.may_publish(None, "x", "anon/1")
    assert not rules.may_publish("ops", "x", "anon/1")
    assert rules.may_publish("ops", "x", "ops/1")
    assert not rules.may_publish("other", "x", "ops/1")
    assert not rules.may_publish(None, "x", "ops/1")
    assert rules.may_publish("someone", "probe", "probe/1")
    assert not rules.may_publish("probe", "x", "probe/1")  # 'client:' is not a username
    assert rules.may_publish("someone", "x", "all/1")
    assert rules.may_publish(None, "x", "all/1")


def test_client_id_substitution() -> None:
    """%c is replaced by the client id."""
    rules = acl("allow all * dev/%c/#")
    assert rules.may_publish(None, "d1", "dev/d1/temp")
    assert not rules.may_publish(None, "d1", "dev/d2/temp")
    assert rules.may_subscribe(None, "d1", "dev/d1/+")
    assert not rules.may_subscribe(None, "d1", "dev/+/temp")


def test_username_substitution_skips_anonymous() -> None:
    """%u is replaced by the username; a rule with %u does not apply to anonymous clients."""
    rules = acl("allow publish * users/%u/#\nallow publish anonymous users/%u/x\n")
    assert rules.may_publish("alice", "c", "users/alice/a")
    assert not rules.may_publish("alice", "c", "users/bob/a")
    assert not rules.may_publish(None, "c", "users/%u/x")
    assert not rules.may_publish(None, "c", "users/u/x")


def test_subscribe_needs_coverage_not_overlap() -> None:
    """A subscription is allowed only when its filter lies within the rule's filter."""
    rules = acl("allow subscribe * dev/1/#")
    assert rules.may_subscribe(None, "c", "dev/1/+")
    assert rules.may_subscribe(None, "c", "dev/1")
    assert not rules.may_subscribe(None, "c", "dev/#")
    assert not rules.may_subscribe(None, "c", "dev/+/x")


def test_dollar_topics_need_explicit_rules() -> None:
    """'#' rules neither let anyone publish to nor subscribe to '$' topics (MQTT-4.7.2-1)."""
    rules = acl("allow all * #")
    assert not rules.may_publish(None, "c", "$SYS/x")
    assert not rules.may_subscribe(None, "c", "$SYS/#")
    assert acl("allow subscribe * $SYS/#").may_subscribe(None, "c", "$SYS/broker/+")


@pytest.mark.parametrize("client_id", ["+", "#", "a/+", "x/#"])
def test_wildcards_in_client_id_do_not_widen_a_placeholder_rule(client_id: str) -> None:
    """A client id with '+'/'#' substituted for %c must not reach other clients' topics."""
    rules = acl("allow all * dev/%c/#")
    assert not rules.may_publish(None, client_id, "dev/other/temp")
    assert not rules.may_subscribe(None, client_id, "dev/other/#")
    assert not rules.may_subscribe(None, client_id, "dev/#")


@pytest.mark.parametrize("username", ["+", "#", "a/+"])
def test_wildcards_in_username_do_not_widen_a_placeholder_rule(username: str) -> None:
    """A username with '+'/'#' substituted for %u must not reach other users' topics."""
    rules = acl("allow all * users/%u/#")
    assert not rules.may_publish(username, "c", "users/bob/x")
    assert not rules.may_subscribe(username, "c", "users/bob/#")
