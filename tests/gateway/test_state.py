"""broker/gateway/state.py: the reported/set model of connector-spec §4.2."""

from __future__ import annotations

import pytest

from broker.gateway import state as st
from broker.gateway.errors import ServiceError
from broker.gateway.resources import validate_definition

RES = {
    "temp": validate_definition("temp", {"format": "number"}),
    "data_out": validate_definition("data_out", {"settable": True, "initial": "hello"}),
    "mode": validate_definition("mode", {"settable": True, "sync": False, "initial": "auto"}),
    "led": validate_definition("led", {"format": "boolean", "settable": True}),
}


def test_initial_state() -> None:
    assert st.initial_state(RES, 5) == {
        "data_out": {"reported": None, "set": "hello", "timestamp": 5},
        "mode": {"reported": "auto", "set": "auto", "timestamp": 5},
    }


def test_device_write_sets_both_and_ignores_undefined() -> None:
    state: st.State = {}
    ok, bad = st.device_write(state, RES, {"temp": "21.5", "other": "x", "led": "maybe"}, 10)
    assert ok == {"temp": 21.5}
    assert set(bad) == {"led"} and bad["led"].code == "invalid_value"
    assert state == {"temp": {"reported": 21.5, "set": 21.5, "timestamp": 10}}


def test_older_batch_entry_does_not_overwrite() -> None:
    state: st.State = {}
    st.device_write(state, RES, {"temp": "2"}, 20)
    ok, _ = st.device_write(state, RES, {"temp": "1"}, 10)
    assert ok == {"temp": 1}  # accepted for the event stream
    assert state["temp"]["reported"] == 2


def test_cloud_set_pending_and_ack() -> None:
    state = st.initial_state(RES, 1)
    push = st.cloud_set(state, RES, {"data_out": "go", "mode": "eco"}, 2)
    assert push == {"data_out": "go"}  # sync:false is not pushed
    assert state["data_out"] == {"reported": None, "set": "go", "timestamp": 2}
    assert state["mode"] == {"reported": "eco", "set": "eco", "timestamp": 2}
    assert st.pending(state, RES) == {"data_out": ("go", 2)}
    st.device_write(state, RES, {"data_out": "go"}, 3)  # the acknowledgement
    assert st.pending(state, RES) == {}


def test_cloud_set_refusals_change_nothing() -> None:
    state = st.initial_state(RES, 1)
    before = {k: dict(v) for k, v in state.items()}
    for values, code in (({"temp": 3}, "not_settable"), ({"nope": 1}, "not_settable"),
                         ({"data_out": "ok", "led": "maybe"}, "invalid_value")):
        with pytest.raises(ServiceError) as info:
            st.cloud_set(state, RES, values, 9)
        assert (info.value.status, info.value.code) == (400, code)
    assert state == before


def test_read_returns_set_for_settable_else_reported() -> None:
    state = st.initial_state(RES, 1)
    st.device_write(state, RES, {"temp": "3"}, 2)
    st.cloud_set(state, RES, {"data_out": "new"}, 3)
    assert st.read(state, RES, ["temp", "data_out", "led", "unknown"]) == {
        "temp": 3, "data_out": "new"}


def test_visible_drops_removed_resources() -> None:
    state = {"gone": {"reported": 1, "set": 1, "timestamp": 1}, "temp": {
        "reported": 2, "set": 2, "timestamp": 1}}
    assert list(st.visible(state, RES)) == ["temp"]
