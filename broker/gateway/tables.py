"""Table names and key layouts of the gateway in the Store (product.md §5).

Keys are UTF-8 parts joined by NUL, so a prefix scan lists one connector (or one tag name, or
one tag value) in order. NUL cannot occur inside any part: connector ids are ``[a-z0-9]``,
identities refuse NUL (connector-spec §1), tag names/values, application keys and content ids
(no control characters) are checked.
Values are compact JSON (UTF-8), except the index tables whose values are the identity or empty.

    gw_connectors  <cid>                                   {id, default, created, hash_key,
                                                            settings}
    gw_identities  <cid>\\0<identity>                       identity record (credentials hashed)
    gw_state       <cid>\\0<identity>                       {alias: {reported, set, timestamp}}
    gw_tags        <cid>\\0<name>\\0<value>\\0<identity>      b"" (tag index, connector-spec §9)
    gw_tokens      <cid>\\0<token digest hex>               identity (token auth without username)
    gw_apps        <cid>\\0<key>                            {key, name, created, secret}
    gw_content     <cid>\\0<content id>                     {id, type, length, updated, meta,
                                                            sha256, file} (connector-spec §7)

State lives apart from the identity record so a device write (the hot path) rewrites only the
state value, and listing identities does not decode every device's state.
"""

from __future__ import annotations

import json
from typing import Any

CONNECTORS = "gw_connectors"
IDENTITIES = "gw_identities"
STATE = "gw_state"
TAGS = "gw_tags"
TOKENS = "gw_tokens"
APPS = "gw_apps"
CONTENT = "gw_content"

SEP = b"\0"


def key(*parts: str) -> bytes:
    return SEP.join(p.encode("utf-8") for p in parts)


def prefix(*parts: str) -> bytes:
    """Key prefix of everything under ``parts`` (ends with the separator)."""
    return key(*parts) + SEP


def last_part(raw: bytes) -> str:
    return raw.rsplit(SEP, 1)[-1].decode("utf-8")


# One encoder for every record: ``json.dumps`` with options builds a new encoder per call.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> bytes:
    return _encode(value).encode("utf-8")


def loads(raw: bytes) -> Any:
    return json.loads(raw)
