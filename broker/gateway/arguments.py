"""Type checks for Device2 operation arguments given as a JSON object (connector-spec §11).

An operation's Python signature is its contract: ``getGatewayResource(alias: str)`` called with
``{"alias": []}`` must answer 400 ``bad_request`` ("alias must be a string"), not fail inside
with a TypeError (a 500). ``check`` compares each argument with the parameter's type hint;
the hints used by the operations are ``str``, ``int`` (not a JSON ``true``), ``bool``, lists,
mappings, ``Any`` and unions of those with ``None``. Deeper shapes (a tag object, a CSV text)
stay the operations' own checks.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from broker.gateway.errors import ServiceError

_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number",
          list: "a list", dict: "an object", type(None): "null"}


def _accepted(hint: Any) -> tuple[type, ...] | None:
    """The JSON-level types a hint admits; None for "anything"."""
    if hint is Any or hint is object:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        found: list[type] = []
        for arg in typing.get_args(hint):
            accepted = _accepted(arg)
            if accepted is None:
                return None
            found.extend(accepted)
        return tuple(found)
    if origin is not None:
        hint = origin
    if hint is Mapping or (isinstance(hint, type) and issubclass(hint, Mapping)):
        return (dict,)
    if hint is list:
        return (list,)
    if hint is float:
        return (int, float)
    if isinstance(hint, type):
        return (hint,)
    return None


@cache
def _parameters(method: Callable[..., Any]) -> dict[str, tuple[type, ...] | None]:
    hints = typing.get_type_hints(method)
    return {name: _accepted(hints.get(name, Any))
            for name, p in inspect.signature(method).parameters.items()
            if p.kind is p.KEYWORD_ONLY}


def _matches(value: object, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in accepted  # JSON true is not an integer here
    return isinstance(value, accepted)


def check(operation: str, method: Callable[..., Any], args: Mapping[str, Any]) -> None:
    """400 ``bad_request`` naming the first argument whose JSON type the method refuses."""
    parameters = _parameters(getattr(method, "__func__", method))
    for name, value in args.items():
        accepted = parameters.get(name)
        if accepted is None or _matches(value, accepted):
            continue
        wanted = " or ".join(dict.fromkeys(_NAMES.get(t, t.__name__) for t in accepted))
        raise ServiceError(400, "bad_request", f"{operation}: {name} must be {wanted}")
