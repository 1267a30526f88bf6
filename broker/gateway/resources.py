"""Resource definitions and value validation.

connector-spec §4.1: a definition is ``{format, unit, settable, sync, allowed, initial}``;
``format`` is string|number|boolean; ``sync`` defaults to true; ``allowed`` lists the accepted
values (for numbers also range strings such as ``"9-11"``); ``initial`` only when settable.
The alias matches ``^[^.$]+$`` (§1) and has at most 128 characters.
connector-spec §4.3: wire values are text — ``number`` follows the JSON number grammar,
``boolean`` is ``true``/``false`` (also ``1``/``0``), ``string`` is UTF-8; every value is at most
1 048 576 bytes. Valid: number ``"-1.5e3"``, boolean ``"1"``. Invalid: number ``"0x10"``,
``"NaN"``, ``".5"``; boolean ``"yes"``.
connector-spec §5.2: ``$resource.batch`` timestamps are seconds below 1e11, milliseconds below
1e14, else microseconds; floats allowed; missing → server time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from broker.gateway.errors import ServiceError

ALIAS_RE = re.compile(r"^[^.$]+$")
MAX_ALIAS_LENGTH = 128
MAX_VALUE_BYTES = 1_048_576
FORMATS = ("string", "number", "boolean")
FIELDS = ("format", "unit", "settable", "sync", "allowed", "initial")

Value = str | int | float | bool

_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_RANGE_RE = re.compile(rf"\s*({_NUM})\s*-\s*({_NUM})\s*")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def invalid_value(message: str) -> ServiceError:
    return ServiceError(400, "invalid_value", message)


def validate_alias(alias: object) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.match(alias) or "\n" in alias:
        raise ServiceError(400, "bad_request", f"invalid resource alias {alias!r}: "
                           "must match ^[^.$]+$ (no dot, no dollar)")
    if len(alias) > MAX_ALIAS_LENGTH:
        raise ServiceError(400, "bad_request",
                           f"resource alias longer than {MAX_ALIAS_LENGTH} characters")
    return alias


def _bool_field(defn: Mapping[str, Any], name: str, default: bool) -> bool:
    value = defn.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ServiceError(400, "bad_request", f"resource {name} must be a boolean")
    return value


def validate_definition(alias: str, defn: object) -> dict[str, Any]:
    """The normalised definition (all six fields present), or 400 ``bad_request``."""
    validate_alias(alias)
    if not isinstance(defn, Mapping):
        raise ServiceError(400, "bad_request", f"resource {alias!r} must be an object")
    unknown = set(defn) - set(FIELDS)
    if unknown:
        raise ServiceError(400, "bad_request",
                           f"resource {alias!r}: unknown fields {sorted(unknown)}")
    fmt = defn.get("format", "string")
    if fmt not in FORMATS:
        raise ServiceError(400, "bad_request",
                           f"resource {alias!r}: format must be one of {', '.join(FORMATS)}")
    unit = defn.get("unit", "")
    if unit is None:
        unit = ""
    if not isinstance(unit, str):
        raise ServiceError(400, "bad_request", f"resource {alias!r}: unit must be a string")
    out: dict[str, Any] = {
        "format": fmt,
        "unit": unit,
        "settable": _bool_field(defn, "settable", False),
        "sync": _bool_field(defn, "sync", True),
        "allowed": _validate_allowed(alias, fmt, defn.get("allowed")),
    }
    initial = defn.get("initial")
    if initial is not None:
        if not out["settable"]:
            raise ServiceError(400, "bad_request",
                               f"resource {alias!r}: initial is only valid when settable")
        initial = parse_value(out, initial)
    out["initial"] = initial
    return out


def _validate_allowed(alias: str, fmt: str, allowed: object) -> list[Any]:
    if allowed is None:
        return []
    if not isinstance(allowed, list):
        raise ServiceError(400, "bad_request", f"resource {alias!r}: allowed must be a list")
    for item in allowed:
        if fmt == "number":
            ok = (_is_number(item) or (isinstance(item, str)
                  and (_RANGE_RE.fullmatch(item) or _NUMBER_RE.fullmatch(item.strip()))))
        elif fmt == "boolean":
            ok = isinstance(item, bool)
        else:
            ok = isinstance(item, str)
        if not ok:
            raise ServiceError(400, "bad_request",
                               f"resource {alias!r}: allowed value {item!r} is not a {fmt}")
    return list(allowed)


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _parse_number(text: str) -> int | float:
    match = _NUMBER_RE.fullmatch(text)
    if not match:
        raise invalid_value(f"{text[:40]!r} is not a number")
    value: int | float = float(text) if match.group(1) or match.group(2) else int(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid_value(f"{text[:40]!r} is out of range")
    return value


def parse_value(defn: Mapping[str, Any], raw: object) -> Value:
    """The typed value of ``raw`` for a resource, or 400 ``invalid_value``.

    ``raw`` is wire text (``str``/``bytes``) or a JSON value (from ``$resource.batch``, the admin
    API). For ``string`` resources non-string JSON values become their JSON text (§5.2).
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        if len(raw) > MAX_VALUE_BYTES:
            raise invalid_value(f"value larger than {MAX_VALUE_BYTES} bytes")
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise invalid_value("value is not valid UTF-8") from exc
    if isinstance(raw, str):
        _check_size(raw)
    fmt = defn.get("format", "string")
    value: Value
    if fmt == "number":
        if _is_number(raw):
            value = raw  # type: ignore[assignment]
        elif isinstance(raw, str):
            value = _parse_number(raw)
        else:
            raise invalid_value(f"{raw!r} is not a number")
    elif fmt == "boolean":
        if isinstance(raw, bool):
            value = raw
        elif isinstance(raw, int) and raw in (0, 1):
            value = bool(raw)
        elif isinstance(raw, str) and raw in _BOOLEANS:
            value = _BOOLEANS[raw]
        else:
            raise invalid_value(f"{str(raw)[:40]!r} is not a boolean (true/false/1/0)")
    else:
        value = raw if isinstance(raw, str) else _check_size(
            json.dumps(raw, separators=(",", ":")))
    allowed = defn.get("allowed") or []
    if allowed and not _is_allowed(fmt, value, allowed):
        raise invalid_value(f"{str(value)[:40]!r} is not an allowed value")
    return value


def _check_size(text: str) -> str:
    # len(text) bounds the UTF-8 size from below and 4 * len(text) from above: encode only
    # when it is undecided.
    if len(text) > MAX_VALUE_BYTES or (
            len(text) * 4 > MAX_VALUE_BYTES
            and len(text.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES):
        raise invalid_value(f"value larger than {MAX_VALUE_BYTES} bytes")
    return text


def _is_allowed(fmt: str, value: Value, allowed: list[Any]) -> bool:
    if fmt != "number":
        return value in allowed and all(type(a) is type(value) for a in allowed if a == value)
    for item in allowed:
        if isinstance(item, str):
            match = _RANGE_RE.fullmatch(item)
            if match:
                low, high = float(match.group(1)), float(match.group(2))
                if low <= value <= high:
                    return True
                continue
            item = _parse_number(item.strip())
        if item == value:
            return True
    return False


def value_text(value: Value | None) -> str:
    """Wire text of a stored value (MQTT payloads, HTTP reads): JSON spelling for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value) if not isinstance(value, float) else json.dumps(value)


def batch_timestamp_us(timestamp: object, now_us: int) -> int:
    """µs epoch time of a ``$resource.batch`` entry timestamp (connector-spec §5.2)."""
    if timestamp is None:
        return now_us
    if not _is_number(timestamp):
        raise invalid_value(f"timestamp {timestamp!r} is not a number")
    ts = float(timestamp)  # type: ignore[arg-type]
    if ts < 0:
        raise invalid_value("timestamp is negative")
    if ts < 1e11:
        return int(round(ts * 1_000_000))
    if ts < 1e14:
        return int(round(ts * 1_000))
    return int(timestamp) if isinstance(timestamp, int) else int(round(ts))
