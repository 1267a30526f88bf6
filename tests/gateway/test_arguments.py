"""broker/gateway/arguments.py: JSON arguments checked against an operation's type hints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from broker.gateway.arguments import check
from broker.gateway.errors import ServiceError


def operation(*, alias: str, limit: int | None = None, enabled: bool = False,
              auth: Mapping[str, Any] | None = None, tags: list[Any] | None = None,
              anything: Any = None, identities: str | list[Any] = "",
              connector_id: str | None = None, **values: Any) -> None:
    """A stand-in with every kind of hint the Device2 operations use."""


@pytest.mark.parametrize("args", [
    {"alias": "a"}, {"alias": "a", "limit": None}, {"alias": "a", "limit": 3},
    {"alias": "a", "enabled": True}, {"alias": "a", "auth": {}}, {"alias": "a", "tags": []},
    {"alias": "a", "anything": [1, {"x": None}]}, {"alias": "a", "identities": "ID\n"},
    {"alias": "a", "identities": ["d"]}, {"alias": "a", "temp": [1]},  # **values: anything
])
def test_accepted(args: dict[str, Any]) -> None:
    check("op", operation, args)


@pytest.mark.parametrize(("args", "message"), [
    ({"alias": []}, "op: alias must be a string"),
    ({"alias": None}, "op: alias must be a string"),
    ({"alias": "a", "limit": True}, "op: limit must be an integer or null"),
    ({"alias": "a", "limit": "5"}, "op: limit must be an integer or null"),
    ({"alias": "a", "limit": 5.0}, "op: limit must be an integer or null"),
    ({"alias": "a", "enabled": 1}, "op: enabled must be true or false"),
    ({"alias": "a", "auth": []}, "op: auth must be an object or null"),
    ({"alias": "a", "tags": {}}, "op: tags must be a list or null"),
    ({"alias": "a", "identities": 7}, "op: identities must be a string or a list"),
])
def test_refused_with_the_argument_named(args: dict[str, Any], message: str) -> None:
    with pytest.raises(ServiceError) as info:
        check("op", operation, args)
    assert (info.value.status, info.value.code, info.value.message) == (
        400, "bad_request", message)
