"""Device state: ``{alias: {reported, set, timestamp}}`` per identity (connector-spec §4.2).

- A device write assigns ``reported`` and ``set`` and the timestamp (µs). Within a
  ``$resource.batch`` the newest entry wins; an entry older than the stored timestamp only goes
  to the event stream (§5.2).
- ``setIdentityState`` assigns ``set`` only, and only for settable resources; with
  ``sync: false`` ``reported`` follows and nothing is pushed.
- A settable, sync'd resource is *pending* while ``set != reported``; pending values are pushed
  to the device, which acknowledges by writing the value back.
- Undefined aliases are never stored (§4.4); values of removed resources are dropped.
- A new identity starts with the ``initial`` values of settable resources as ``set``.
Functions here are pure over dicts, plus ``load``/``save`` for the ``gw_state`` table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.gateway import tables
from broker.gateway.errors import ServiceError
from broker.gateway.resources import Value, parse_value
from broker.storage import ReadTxn, WriteTxn

State = dict[str, dict[str, Any]]
Resources = Mapping[str, Mapping[str, Any]]


def load(txn: ReadTxn, cid: str, identity: str) -> State:
    raw = txn.get(tables.STATE, tables.key(cid, identity))
    return {} if raw is None else tables.loads(raw)


def save(txn: WriteTxn, cid: str, identity: str, state: State) -> None:
    txn.put(tables.STATE, tables.key(cid, identity), tables.dumps(state))


def initial_state(resources: Resources, now_us: int) -> State:
    state: State = {}
    for alias, defn in resources.items():
        if defn.get("settable") and defn.get("initial") is not None:
            initial = defn["initial"]
            reported = None if defn.get("sync", True) else initial
            state[alias] = {"reported": reported, "set": initial, "timestamp": now_us}
    return state


def visible(state: State, resources: Resources) -> State:
    """State restricted to currently defined resources (getIdentityState)."""
    return {alias: dict(entry) for alias, entry in state.items() if alias in resources}


def device_write(state: State, resources: Resources, values: Mapping[str, object],
                 ts_us: int) -> tuple[dict[str, Value], dict[str, ServiceError]]:
    """Apply a device write of ``values`` at ``ts_us`` to ``state`` in place.

    Returns (accepted typed values of defined resources, errors by alias). Undefined aliases
    are in neither: they only go to the event stream."""
    accepted: dict[str, Value] = {}
    errors: dict[str, ServiceError] = {}
    for alias, raw in values.items():
        defn = resources.get(alias)
        if defn is None:
            continue
        try:
            value = parse_value(defn, raw)
        except ServiceError as exc:
            errors[alias] = exc
            continue
        accepted[alias] = value
        entry = state.get(alias)
        if entry is not None and entry.get("timestamp", 0) > ts_us:
            continue  # an older historical point: event stream only
        state[alias] = {"reported": value, "set": value, "timestamp": ts_us}
    return accepted, errors


def cloud_set(state: State, resources: Resources, values: Mapping[str, object],
              ts_us: int) -> dict[str, Value]:
    """setIdentityState on ``state`` in place; every alias is checked before anything changes
    (400 ``not_settable`` / ``invalid_value``). Returns the values to push to the device."""
    typed: dict[str, Value] = {}
    for alias, raw in values.items():
        defn = resources.get(alias)
        if defn is None:
            raise ServiceError(400, "not_settable", f"resource {alias!r} is not defined")
        if not defn.get("settable"):
            raise ServiceError(400, "not_settable", f"resource {alias!r} is not settable")
        typed[alias] = parse_value(defn, raw)
    push: dict[str, Value] = {}
    for alias, value in typed.items():
        entry = state.get(alias) or {"reported": None}
        if resources[alias].get("sync", True):
            state[alias] = {"reported": entry.get("reported"), "set": value, "timestamp": ts_us}
            push[alias] = value
        else:
            state[alias] = {"reported": value, "set": value, "timestamp": ts_us}
    return push


def pending(state: State, resources: Resources) -> dict[str, tuple[Value, int]]:
    """Settable, sync'd values not yet acknowledged: {alias: (set value, timestamp µs)}."""
    out: dict[str, tuple[Value, int]] = {}
    for alias, entry in state.items():
        defn = resources.get(alias)
        if (defn is not None and defn.get("settable") and defn.get("sync", True)
                and entry.get("set") is not None and entry.get("set") != entry.get("reported")):
            out[alias] = (entry["set"], entry["timestamp"])
    return out


def read(state: State, resources: Resources, aliases: list[str]) -> dict[str, Value]:
    """Device read: ``set`` for settable resources, else ``reported``; aliases without value
    (or undefined) are omitted (connector-spec §4.2, §6.2)."""
    out: dict[str, Value] = {}
    for alias in aliases:
        defn = resources.get(alias)
        entry = state.get(alias)
        if defn is None or entry is None:
            continue
        value = entry.get("set") if defn.get("settable") else entry.get("reported")
        if value is not None:
            out[alias] = value
    return out
