"""broker/gateway/tags.py: tag validation, merge/remove, and the index (connector-spec §9)."""

from __future__ import annotations

import pytest

from broker.gateway import tables, tags
from broker.gateway.errors import ServiceError
from broker.gateway.service import Device2Service
from broker.storage import Store
from tests.gateway.conftest import FAST_SCRYPT, Clock, CountingStore


def T(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


@pytest.mark.parametrize("bad", [[{"name": ""}], [{"name": "a\0", "value": "v"}],
                                 [{"name": "a", "value": None}], [{"name": "a", "value": "v",
                                                                   "x": 1}], "a", [5]])
def test_invalid_tags(bad: object) -> None:
    with pytest.raises(ServiceError) as info:
        tags.validate_tags(bad)
    assert info.value.code == "bad_request"


def test_numbers_become_text_and_duplicates_collapse() -> None:
    assert tags.validate_tags([T("a", "1"), {"name": "a", "value": 1}]) == [T("a", "1")]


def test_schema_closes_names() -> None:
    schema = {"properties": {"site": {}}, "additionalProperties": False}
    assert tags.validate_tags([T("site", "x")], schema=schema)
    with pytest.raises(ServiceError):
        tags.validate_tags([T("other", "x")], schema=schema)


def test_merge_and_remove() -> None:
    cur = [T("a", "1"), T("b", "2")]
    assert tags.merge(cur, [T("a", "3")], replace=False) == [T("a", "1"), T("b", "2"),
                                                              T("a", "3")]
    assert tags.merge(cur, [T("a", "3")], replace=True) == [T("b", "2"), T("a", "3")]
    assert tags.remove(cur + [T("a", "3")], [{"name": "a"}]) == [T("b", "2")]
    assert tags.remove(cur, [T("a", "1")]) == [T("b", "2")]


def test_index_rows_follow_the_record(store: Store) -> None:
    with store.write() as txn:
        tags.reindex(txn, "c", "d1", [], [T("site", "Lyon"), T("site", "Paris")])
        tags.reindex(txn, "c", "d2", [], [T("site", "Lyon")])
        tags.reindex(txn, "other", "d3", [], [T("site", "Lyon")])
    with store.read() as txn:
        assert tags.search(txn, "c", "site", "Lyon") == ["d1", "d2"]
        assert tags.search(txn, "c", "site") == ["d1", "d2"]
        assert tags.names(txn, "c") == ["site"]
        assert tags.values(txn, "c", "site") == [{"value": "Lyon", "count": 2},
                                                 {"value": "Paris", "count": 1}]
    with store.write() as txn:
        tags.reindex(txn, "c", "d1", [T("site", "Lyon"), T("site", "Paris")], [T("k", "v")])
    with store.read() as txn:
        assert tags.search(txn, "c", "site", "Paris") == []
        assert tags.names(txn, "c") == ["k", "site"]
        assert [k for k, _ in txn.scan(tables.TAGS, tables.prefix("c"))] == [
            tables.key("c", "k", "v", "d1"), tables.key("c", "site", "Lyon", "d2")]


def test_tag_search_reads_only_index_rows_and_matches(store: Store, clock: Clock) -> None:
    """A tag search never scans identities: it walks the index prefix and gets the matches."""
    counting = CountingStore(store)
    svc = Device2Service(counting, "d", clock, password_cost=FAST_SCRYPT)  # type: ignore[arg-type]
    svc.ensure_default_connector()
    rows = ["ID,tag:site"] + [f"dev{i},{'Lyon' if i % 100 == 0 else 'Paris'}" for i in range(500)]
    assert svc.addIdentities(identities="\n".join(rows))["added"] == 500
    counting.reset()
    page = svc.listIdentities(tag_name="site", tag_value="Lyon")
    assert page["total"] == 5
    assert counting.rows.get(tables.TAGS) == 5
    assert tables.IDENTITIES not in counting.rows  # no identity scan at all
    assert counting.gets.get(tables.IDENTITIES) == 5
    counting.reset()
    assert svc.countIdentities(tag_name="site", tag_value="Lyon", status="whitelisted") == {
        "total": 5}
    assert tables.IDENTITIES not in counting.rows
