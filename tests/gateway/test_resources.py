"""broker/gateway/resources.py: definitions (§4.1), values (§4.3), batch timestamps (§5.2)."""

from __future__ import annotations

import pytest

from broker.gateway.errors import ServiceError
from broker.gateway.resources import (
    MAX_VALUE_BYTES,
    batch_timestamp_us,
    parse_value,
    validate_alias,
    validate_definition,
    value_text,
)


def code_of(fn, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ServiceError) as info:
        fn(*args)
    return info.value.code


def test_definition_defaults() -> None:
    assert validate_definition("temp", {}) == {"format": "string", "unit": "", "settable": False,
                                               "sync": True, "allowed": [], "initial": None}


@pytest.mark.parametrize("alias", ["temp", "data_in", "a b", "ü", "x" * 128])
def test_valid_aliases(alias: str) -> None:
    assert validate_alias(alias) == alias


@pytest.mark.parametrize("alias", ["", "a.b", "$x", "x" * 129, 5])
def test_invalid_aliases(alias: object) -> None:
    assert code_of(validate_alias, alias) == "bad_request"


@pytest.mark.parametrize("defn", [
    {"format": "blob"}, {"unit": 5}, {"settable": "yes"}, {"sync": 1},
    {"allowed": "a"}, {"format": "number", "allowed": ["x"]},
    {"format": "boolean", "allowed": [1]}, {"initial": "x"},
    {"settable": True, "format": "number", "initial": "abc"}, {"colour": "red"}, [],
])
def test_invalid_definitions(defn: object) -> None:
    assert code_of(validate_definition, "r", defn) in ("bad_request", "invalid_value")


def test_initial_only_when_settable_and_typed() -> None:
    d = validate_definition("r", {"format": "number", "settable": True, "initial": "5"})
    assert d["initial"] == 5


@pytest.mark.parametrize("raw,value", [
    ("0", 0), ("-12", -12), ("1.5", 1.5), ("-1.5e3", -1500.0), ("2E2", 200.0), (b"7", 7),
    (3, 3), (2.5, 2.5),
])
def test_numbers(raw: object, value: object) -> None:
    out = parse_value({"format": "number"}, raw)
    assert out == value and type(out) is type(value)


@pytest.mark.parametrize("raw", ["0x10", "NaN", "Infinity", ".5", "01", "1.", "+1", " 1", "",
                                 True, None, "1e999"])
def test_bad_numbers(raw: object) -> None:
    assert code_of(parse_value, {"format": "number"}, raw) == "invalid_value"


@pytest.mark.parametrize("raw,value", [("true", True), ("false", False), ("1", True),
                                       ("0", False), (True, True), (0, False)])
def test_booleans(raw: object, value: bool) -> None:
    assert parse_value({"format": "boolean"}, raw) is value


@pytest.mark.parametrize("raw", ["yes", "True", "2", 2, None])
def test_bad_booleans(raw: object) -> None:
    assert code_of(parse_value, {"format": "boolean"}, raw) == "invalid_value"


def test_strings() -> None:
    d = {"format": "string"}
    assert parse_value(d, "héllo") == "héllo"
    assert parse_value(d, "héllo".encode()) == "héllo"
    assert parse_value(d, {"a": [1, 2]}) == '{"a":[1,2]}'  # §5.2: JSON text
    assert code_of(parse_value, d, b"\xff\xfe") == "invalid_value"


def test_size_limit() -> None:
    d = {"format": "string"}
    assert len(parse_value(d, "x" * MAX_VALUE_BYTES)) == MAX_VALUE_BYTES  # type: ignore[arg-type]
    assert code_of(parse_value, d, "x" * (MAX_VALUE_BYTES + 1)) == "invalid_value"
    assert code_of(parse_value, d, "é" * (MAX_VALUE_BYTES // 2 + 1)) == "invalid_value"
    assert code_of(parse_value, d, b"x" * (MAX_VALUE_BYTES + 1)) == "invalid_value"


def test_allowed_values_and_ranges() -> None:
    n = validate_definition("n", {"format": "number", "allowed": ["9-11", 20, "-5--1", "30"]})
    for ok in ("9", "10.5", "11", "20", "-3", "30"):
        parse_value(n, ok)
    for bad in ("8.99", "12", "21", "0"):
        assert code_of(parse_value, n, bad) == "invalid_value"
    s = validate_definition("s", {"allowed": ["on", "off"]})
    assert parse_value(s, "on") == "on"
    assert code_of(parse_value, s, "dim") == "invalid_value"
    b = validate_definition("b", {"format": "boolean", "allowed": [True]})
    assert code_of(parse_value, b, "false") == "invalid_value"


def test_value_text() -> None:
    assert [value_text(v) for v in (True, False, 3, 1.5, "x", None)] == [
        "true", "false", "3", "1.5", "x", ""]


@pytest.mark.parametrize("ts,us", [
    (1_527_272_454, 1_527_272_454_000_000),  # seconds
    (1_527_272_454.25, 1_527_272_454_250_000),
    (1_527_272_454_123, 1_527_272_454_123_000),  # milliseconds
    (1_527_272_454_123_456, 1_527_272_454_123_456),  # microseconds
    (99_999_999_999, 99_999_999_999_000_000),  # just below 1e11: seconds
    (100_000_000_000, 100_000_000_000_000),  # 1e11: milliseconds
    (100_000_000_000_000, 100_000_000_000_000),  # 1e14: microseconds
    (None, 42),
])
def test_batch_timestamp_units(ts: object, us: int) -> None:
    assert batch_timestamp_us(ts, 42) == us


@pytest.mark.parametrize("ts", ["123", True, -1, float("nan")])
def test_batch_timestamp_invalid(ts: object) -> None:
    assert code_of(batch_timestamp_us, ts, 0) == "invalid_value"
