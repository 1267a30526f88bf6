"""Identity records: lifecycle, public shape, listing (connector-spec §3.1, §11 listIdentities).

Stored record (``gw_identities``, key ``<cid>\\0<identity>``)::

    {identity, created, auth: {type, secret, expire}, locked, reprovision, devmode,
     lastip, lastseen, tags: [{name, value}]}

``auth.secret`` is the token digest, the scrypt string or the certificate fingerprint, and is
never returned. Derived status (§3.1): ``locked`` if locked, else ``reprovision`` if flagged,
else ``provisioned`` if credentials exist, else ``whitelisted``.
Public record (getIdentity / listIdentities element)::

    {identity, auth:{type}, state, locked, reprovision, devmode, lastip, lastseen, status,
     online, tags}
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from broker.gateway import state as state_mod
from broker.gateway import tables, tags
from broker.gateway.errors import ServiceError
from broker.storage import ReadTxn, WriteTxn

Record = dict[str, Any]
STATUSES = ("whitelisted", "provisioned", "locked", "devmode", "reprovision")
# listIdentities ``sort``: a field, ``-field`` for descending (or ``order=desc``).
# ``online`` sorts offline first (true after false), ``status`` by its name; missing
# lastseen/lastip (never connected) first; ties by identity.
SORT_FIELDS = ("identity", "status", "lastseen", "lastip", "created", "online")
ORDERS = ("asc", "desc")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def new_record(identity: str, auth_type: str, now_us: int, *, expire: int | None = None,
               locked: bool = False) -> Record:
    return {"identity": identity, "created": now_us,
            "auth": {"type": auth_type, "secret": None, "expire": expire},
            "locked": locked, "reprovision": False, "devmode": False,
            "lastip": None, "lastseen": None, "tags": []}


def status(record: Mapping[str, Any]) -> str:
    if record["locked"]:
        return "locked"
    if record["reprovision"]:
        return "reprovision"
    if record["auth"]["secret"] is not None:
        return "provisioned"
    return "whitelisted"


def has_credentials(record: Mapping[str, Any]) -> bool:
    return record["auth"]["secret"] is not None


def load(txn: ReadTxn, cid: str, identity: str) -> Record | None:
    raw = txn.get(tables.IDENTITIES, tables.key(cid, identity))
    return None if raw is None else tables.loads(raw)


def require(txn: ReadTxn, cid: str, identity: object) -> Record:
    if not isinstance(identity, str):
        raise ServiceError(400, "bad_request", "identity must be a string")
    record = load(txn, cid, identity)
    if record is None:
        raise ServiceError(404, "not_found", f"identity {identity!r} does not exist")
    return record


def save(txn: WriteTxn, cid: str, record: Record) -> None:
    txn.put(tables.IDENTITIES, tables.key(cid, record["identity"]), tables.dumps(record))


def set_token_secret(txn: WriteTxn, cid: str, record: Record, digest: str | None) -> None:
    """Replace a token credential, keeping the token index (digest → identity) in step."""
    old = record["auth"]["secret"]
    if old is not None and record["auth"]["type"] == "token":
        txn.delete(tables.TOKENS, tables.key(cid, old))
    record["auth"]["secret"] = digest
    if digest is not None and record["auth"]["type"] == "token":
        txn.put(tables.TOKENS, tables.key(cid, digest), record["identity"].encode("utf-8"))


def clear_secret(txn: WriteTxn, cid: str, record: Record) -> None:
    set_token_secret(txn, cid, record, None)


def identity_for_token(txn: ReadTxn, cid: str, digest: str) -> str | None:
    raw = txn.get(tables.TOKENS, tables.key(cid, digest))
    return None if raw is None else raw.decode("utf-8")


def delete(txn: WriteTxn, cid: str, record: Record) -> None:
    """Remove the record and everything hanging off it (state, tag index, token index)."""
    identity = record["identity"]
    clear_secret(txn, cid, record)
    tags.reindex(txn, cid, identity, record["tags"], [])
    txn.delete(tables.STATE, tables.key(cid, identity))
    txn.delete(tables.IDENTITIES, tables.key(cid, identity))


def public(record: Mapping[str, Any], state: state_mod.State | None, online: bool) -> Record:
    return {"identity": record["identity"], "auth": {"type": record["auth"]["type"]},
            "state": state if state is not None else {}, "locked": record["locked"],
            "reprovision": record["reprovision"], "devmode": record["devmode"],
            "lastip": record["lastip"], "lastseen": record["lastseen"],
            "status": status(record), "online": online,
            "tags": [dict(t) for t in record["tags"]]}


# -- listing -------------------------------------------------------------------------------

class Query:
    """The filters of listIdentities/countIdentities, validated once."""

    def __init__(self, *, status: str | None = None, identity: str | None = None,
                 ipaddress: str | None = None, tag_name: str | None = None,
                 tag_value: str | None = None, online: bool | str | None = None,
                 before: int | None = None) -> None:
        if status is not None and status not in STATUSES:
            raise ServiceError(400, "bad_request",
                               f"status must be one of {', '.join(STATUSES)}")
        if tag_value is not None and tag_name is None:
            raise ServiceError(400, "bad_request", "tag_value needs tag_name")
        if tag_name is not None:
            tags.validate_name(tag_name)
        for name, glob in (("identity", identity), ("ipaddress", ipaddress)):
            if glob is not None and not isinstance(glob, str):
                raise ServiceError(400, "bad_request", f"{name} filter must be a glob string")
        if isinstance(online, str):  # query strings give text
            if online not in ("true", "false", "1", "0"):
                raise ServiceError(400, "bad_request", "online must be true or false")
            online = online in ("true", "1")
        if before is not None and (not isinstance(before, int) or isinstance(before, bool)):
            raise ServiceError(400, "bad_request", "before must be a µs timestamp")
        self.status = status
        self.identity_re = re.compile(fnmatch.translate(identity)) if identity else None
        self.identity_glob = identity
        self.ip_re = re.compile(fnmatch.translate(ipaddress)) if ipaddress else None
        self.tag_name = tag_name
        self.tag_value = tag_value
        self.online = online
        self.before = before

    def literal_prefix(self) -> str:
        """The part of the identity glob before its first wildcard: a narrower key scan."""
        glob = self.identity_glob or ""
        cut = min((i for i, ch in enumerate(glob) if ch in "*?["), default=len(glob))
        return glob[:cut]

    def matches(self, record: Mapping[str, Any], is_online: bool | None) -> bool:
        if self.status is not None:
            if self.status == "devmode":
                if not record["devmode"]:
                    return False
            elif status(record) != self.status:
                return False
        if self.identity_re is not None and not self.identity_re.match(record["identity"]):
            return False
        if self.ip_re is not None and not self.ip_re.match(record["lastip"] or ""):
            return False
        if self.before is not None and not record["created"] < self.before:
            return False
        return self.online is None or is_online == self.online

    @property
    def trivial(self) -> bool:
        return (self.status is None and self.identity_re is None and self.ip_re is None
                and self.tag_name is None and self.online is None and self.before is None)


def candidates(txn: ReadTxn, cid: str, query: Query) -> Iterator[Record]:
    """Records that may match: by the tag index when a tag filter is given (never scanning
    identities without the tag), else by a key scan narrowed to the glob's literal prefix."""
    if query.tag_name is not None:
        for identity in tags.search(txn, cid, query.tag_name, query.tag_value):
            record = load(txn, cid, identity)
            if record is not None:
                yield record
        return
    for _, raw in txn.scan(tables.IDENTITIES, tables.key(cid, query.literal_prefix())):
        yield tables.loads(raw)


def _sort_key(field: str, is_online: Callable[[str], bool] | None
              ) -> Callable[[Mapping[str, Any]], Any]:
    if field == "online":
        return lambda r: (is_online is not None and bool(is_online(r["identity"])),
                          r["identity"].encode("utf-8"))
    if field == "status":
        return lambda r: (status(r), r["identity"])
    if field == "identity":
        return lambda r: r["identity"].encode("utf-8")
    # Missing values (never seen) sort first; identity breaks ties for a stable order.
    return lambda r: (r[field] is not None, r[field] or 0 if field != "lastip"
                      else r[field] or "", r["identity"])


def select(txn: ReadTxn, cid: str, query: Query, *, limit: int | None, offset: int,
           sort: str | None, is_online: Callable[[str], bool] | None,
           order: str | None = None) -> tuple[list[Record], int]:
    """(page of stored records, total matching). The common case (no filter, identity order)
    decodes only the page; other cases decode the candidates once. ``order`` (asc|desc) is
    the direction of ``sort``; a ``-`` prefix on ``sort`` says desc too."""
    limit = DEFAULT_LIMIT if limit is None else limit
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_LIMIT:
        raise ServiceError(400, "bad_request", f"limit must be 0..{MAX_LIMIT}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ServiceError(400, "bad_request", "offset must be a non-negative integer")
    if sort is not None and not isinstance(sort, str):
        raise ServiceError(400, "bad_request", "sort must be a field name")
    if order is not None and order not in ORDERS:
        raise ServiceError(400, "bad_request", f"order must be one of {', '.join(ORDERS)}")
    descending = bool(sort) and sort.startswith("-")  # type: ignore[union-attr]
    if descending and order is not None:
        raise ServiceError(400, "bad_request", "give the direction as order or as a - prefix "
                           "of sort, not both")
    descending = descending or order == "desc"
    field = (sort or "identity").removeprefix("-")
    if field not in SORT_FIELDS:
        raise ServiceError(400, "bad_request", f"sort must be one of {', '.join(SORT_FIELDS)}")
    if query.trivial and field == "identity" and not descending:
        page: list[Record] = []
        total = 0
        for _, raw in txn.scan(tables.IDENTITIES, tables.prefix(cid)):
            if offset <= total < offset + limit:
                page.append(tables.loads(raw))
            total += 1
        return page, total

    def online_of(record: Mapping[str, Any]) -> bool | None:
        if query.online is None:
            return None
        # Without a presence callable nothing is online (a process with no connections).
        return is_online is not None and is_online(record["identity"])

    matched = [r for r in candidates(txn, cid, query) if query.matches(r, online_of(r))]
    if field != "identity" or descending or query.tag_name is not None:
        matched.sort(key=_sort_key(field, is_online), reverse=descending)
    return matched[offset:offset + limit], len(matched)
