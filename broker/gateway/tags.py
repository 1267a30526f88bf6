"""Identity tags and their index (connector-spec §9).

Tags are static ``{name, value}`` pairs; a name may carry several values; devices never see
them. The identity record holds its tag list and the ``gw_tags`` table holds one empty row per
(name, value, identity), so a search by name or by name+value is a prefix scan of the index and
never reads identities that do not carry the tag. Record and index change in the same write
transaction. Valid tag: ``{"name": "site", "value": "Lyon"}``; invalid: a name with NUL, an
empty name, a non-string value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from broker.gateway import tables
from broker.gateway.errors import ServiceError
from broker.storage import ReadTxn, WriteTxn

# In UTF-8 bytes. The index key is connector id (≤ 32) + name + value + identity (≤ 256) with
# three separators, and an LMDB key holds at most 511 bytes: name and value share the rest.
MAX_NAME = 64
MAX_VALUE = 150

Tag = dict[str, str]


def _bad(message: str) -> ServiceError:
    return ServiceError(400, "bad_request", message)


def _size(text: str) -> int:
    """UTF-8 size; a lone surrogate (JSON allows "\\ud800") cannot be a key: refused."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise _bad("tag names and values must be valid Unicode text") from None


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not name or _size(name) > MAX_NAME or "\0" in name:
        raise _bad(f"tag name must be a non-empty string of at most {MAX_NAME} bytes (UTF-8) "
                   "without NUL")
    return name


def validate_tag(tag: object, *, value_required: bool = True) -> Tag:
    if not isinstance(tag, Mapping):
        raise _bad("a tag is an object {name, value}")
    unknown = set(tag) - {"name", "value"}
    if unknown:
        raise _bad(f"tag: unknown fields {sorted(unknown)}")
    name = validate_name(tag.get("name"))
    value = tag.get("value")
    if value is None and not value_required:
        return {"name": name}
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # a CSV or a form gives text anyway; numbers are accepted as text
    if not isinstance(value, str) or _size(value) > MAX_VALUE or "\0" in value:
        raise _bad(f"tag value must be a string of at most {MAX_VALUE} bytes (UTF-8) "
                   "without NUL")
    return {"name": name, "value": value}


def validate_tags(tags: object, *, value_required: bool = True,
                  schema: Mapping[str, Any] | None = None) -> list[Tag]:
    if not isinstance(tags, list):
        raise _bad("tags must be a list of {name, value}")
    out: list[Tag] = []
    for tag in tags:
        t = validate_tag(tag, value_required=value_required)
        check_schema(t["name"], schema)
        if t not in out:
            out.append(t)
    return out


def check_schema(name: str, schema: Mapping[str, Any] | None) -> None:
    """With a ``tags_schema`` that closes its properties, only declared names are accepted
    (connector-spec §9: we validate tag names only)."""
    if not schema:
        return
    props = schema.get("properties")
    if isinstance(props, Mapping) and schema.get("additionalProperties") is False \
            and name not in props:
        raise _bad(f"tag name {name!r} is not declared in tags_schema")


def merge(current: list[Tag], add: Iterable[Tag], *, replace: bool) -> list[Tag]:
    """``current`` plus ``add``; with ``replace`` the values of every name in ``add`` replace
    that name's existing values (addIdentityTag ``replace:true``)."""
    add = list(add)
    names = {t["name"] for t in add} if replace else set()
    out = [t for t in current if t["name"] not in names]
    for tag in add:
        if tag not in out:
            out.append(tag)
    return out


def remove(current: list[Tag], drop: Iterable[Tag]) -> list[Tag]:
    """``current`` without ``drop``; a dropped tag without value removes all values of that
    name."""
    out = list(current)
    for tag in drop:
        if "value" in tag:
            out = [t for t in out if t != tag]
        else:
            out = [t for t in out if t["name"] != tag["name"]]
    return out


def reindex(txn: WriteTxn, cid: str, identity: str, old: list[Tag], new: list[Tag]) -> None:
    """Bring the index rows of ``identity`` from ``old`` to ``new``."""
    old_keys = {tables.key(cid, t["name"], t["value"], identity) for t in old}
    new_keys = {tables.key(cid, t["name"], t["value"], identity) for t in new}
    for k in old_keys - new_keys:
        txn.delete(tables.TAGS, k)
    for k in new_keys - old_keys:
        txn.put(tables.TAGS, k, b"")


def search(txn: ReadTxn, cid: str, name: str, value: str | None = None) -> list[str]:
    """Identities carrying tag ``name`` (with ``value`` if given), in identity order."""
    if value is None:
        found = {tables.last_part(k) for k, _ in txn.scan(tables.TAGS, tables.prefix(cid, name))}
        return sorted(found, key=lambda i: i.encode("utf-8"))
    return [tables.last_part(k) for k, _ in txn.scan(tables.TAGS,
                                                     tables.prefix(cid, name, value))]


def names(txn: ReadTxn, cid: str) -> list[str]:
    """listTagNames: distinct tag names in use."""
    found: list[str] = []
    for k, _ in txn.scan(tables.TAGS, tables.prefix(cid)):
        name = k.split(tables.SEP, 2)[1].decode("utf-8")
        if not found or found[-1] != name:
            found.append(name)
    return found


def values(txn: ReadTxn, cid: str, name: str) -> list[dict[str, Any]]:
    """listTagName: the values of ``name`` with how many identities carry each."""
    counts: dict[str, int] = {}
    for k, _ in txn.scan(tables.TAGS, tables.prefix(cid, name)):
        value = k.split(tables.SEP, 3)[2].decode("utf-8")
        counts[value] = counts.get(value, 0) + 1
    return [{"value": v, "count": n} for v, n in counts.items()]
