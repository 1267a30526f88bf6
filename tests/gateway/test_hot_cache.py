"""The Device2 service's hot cache of device records and state (service.py ``_hot``): device
writes between the service's other operations must never see a stale record or state, and the
coalesced ``lastseen`` must reach the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from broker.gateway import identities
from broker.gateway import state as state_mod
from broker.gateway.errors import ServiceError
from broker.gateway.service import LASTSEEN_PERSIST_US, Device2Service
from broker.storage import Store
from broker.storage.commit import DrainedStore, GroupCommitter
from broker.storage.memory_store import MemoryStore
from tests.gateway.conftest import FAST_SCRYPT, Clock, Recorder

N_S = LASTSEEN_PERSIST_US / 1_000_000
PAST_PERSIST = N_S * 1.5 + 1  # beyond the longest (jittered) persist interval


def write(service: Device2Service, **values: Any) -> dict[str, Any]:
    return service.write_values(identity="d", entries=[(None, values)], ip="10.0.0.1",
                                protocol="mqtt")


def stored(store: Store, service: Device2Service) -> tuple[dict[str, Any], dict[str, Any]]:
    """The identity record and state of ``d`` as the store holds them."""
    cid = service.ensure_default_connector()
    with store.read() as txn:
        return (identities.require(txn, cid, "d"), state_mod.load(txn, cid, "d"))


@pytest.fixture
def dev(service: Device2Service) -> Device2Service:
    service.addGatewayResource(alias="temp", format="number")
    service.addGatewayResource(alias="hum", format="number")
    service.addGatewayResource(alias="cfg", settable=True)
    service.provision(identity="d")
    return service


def test_admin_set_between_device_writes_is_kept(dev: Device2Service) -> None:
    write(dev, temp="1")
    dev.setIdentityState(identity="d", cfg="go")
    write(dev, temp="2")
    state = dev.getIdentityState(identity="d")
    assert state["cfg"]["set"] == "go" and state["temp"]["reported"] == 2
    assert dev.pending_values(identity="d") == {"cfg": ("go", state["cfg"]["timestamp"])}


def test_removed_identity_refuses_the_next_write(dev: Device2Service, store: Store) -> None:
    write(dev, temp="1")
    dev.removeIdentity(identity="d")
    with pytest.raises(ServiceError) as info:
        write(dev, temp="2")
    assert info.value.code == "not_found"
    cid = dev.ensure_default_connector()
    with store.read() as txn:
        assert identities.load(txn, cid, "d") is None
        assert state_mod.load(txn, cid, "d") == {}


def test_removed_and_added_again_starts_empty(dev: Device2Service) -> None:
    write(dev, temp="1")
    dev.removeIdentity(identity="d")
    dev.addIdentity(identity="d")
    write(dev, hum="3")
    assert set(dev.getIdentityState(identity="d")) == {"hum"}


def test_lock_and_tags_survive_later_writes(dev: Device2Service, store: Store, clock: Clock,
                                            recorder: Recorder) -> None:
    write(dev, temp="1")
    dev.updateIdentity(identity="d", locked=True, tags=[{"name": "site", "value": "a"}])
    clock.advance(PAST_PERSIST)  # the next write rewrites the record (lastseen)
    write(dev, temp="2")
    record, _ = stored(store, dev)
    assert record["locked"] is True and record["tags"] == [{"name": "site", "value": "a"}]
    assert record["lastseen"] == clock.now
    assert recorder.events[-1][1]["tags"] == [{"name": "site", "value": "a"}]
    dev.addIdentityTag(identity="d", tags=[{"name": "floor", "value": "2"}])
    write(dev, temp="3")
    assert {t["name"] for t in recorder.events[-1][1]["tags"]} == {"site", "floor"}
    dev.removeIdentityTag(identity="d", tags=[{"name": "site"}])
    clock.advance(PAST_PERSIST)
    write(dev, temp="4")
    record, _ = stored(store, dev)
    assert record["tags"] == [{"name": "floor", "value": "2"}]


def test_new_credentials_survive_later_writes(dev: Device2Service, store: Store,
                                              clock: Clock) -> None:
    write(dev, temp="1")
    dev.updateIdentity(identity="d", auth={"expire": 0})  # revoked: reprovision
    clock.advance(PAST_PERSIST)
    write(dev, temp="2")
    record, _ = stored(store, dev)
    assert record["reprovision"] is True and record["auth"]["secret"] is None


def test_provisioning_again_survives_later_writes(dev: Device2Service, store: Store,
                                                  clock: Clock) -> None:
    write(dev, temp="1")
    before, _ = stored(store, dev)
    dev.updateIdentity(identity="d", auth={"expire": 0})
    assert dev.provision(identity="d").accepted
    after, _ = stored(store, dev)
    assert after["auth"]["secret"] not in (None, before["auth"]["secret"])
    clock.advance(PAST_PERSIST)
    write(dev, temp="2")
    record, _ = stored(store, dev)
    assert record["auth"]["secret"] == after["auth"]["secret"] and not record["reprovision"]


def test_removed_resource_is_not_written_back(dev: Device2Service, store: Store) -> None:
    write(dev, temp="1", hum="50")
    dev.removeGatewayResource(alias="hum")
    write(dev, temp="2")
    _, state = stored(store, dev)
    assert set(state) == {"temp"}
    dev.addGatewayResource(alias="hum", format="number")
    assert "hum" not in dev.getIdentityState(identity="d")


def test_settings_change_keeps_the_cached_lastseen(dev: Device2Service, store: Store,
                                                   clock: Clock) -> None:
    write(dev, temp="1")
    clock.advance(1)
    write(dev, temp="2")
    dev.updateGatewaySettings(name="renamed")
    record, _ = stored(store, dev)
    assert record["lastseen"] == clock.now


def test_lastseen_is_coalesced(dev: Device2Service, store: Store, clock: Clock) -> None:
    write(dev, temp="1")
    first = clock.now
    assert stored(store, dev)[0]["lastseen"] == first
    clock.advance(1)
    write(dev, temp="2")
    assert stored(store, dev)[0]["lastseen"] == first  # not rewritten for lastseen alone
    assert dev.getIdentity(identity="d")["lastseen"] == clock.now  # the cached value shown
    listed = dev.listIdentities()["devices"][0]
    assert listed["lastseen"] == clock.now
    clock.advance(PAST_PERSIST)
    write(dev, temp="3")
    assert stored(store, dev)[0]["lastseen"] == clock.now


def test_lastip_change_is_written_at_once(dev: Device2Service, store: Store,
                                          clock: Clock) -> None:
    write(dev, temp="1")
    clock.advance(1)
    dev.write_values(identity="d", entries=[(None, {"temp": "2"})], ip="10.0.0.2")
    record, _ = stored(store, dev)
    assert (record["lastip"], record["lastseen"]) == ("10.0.0.2", clock.now)


def test_disconnect_and_admin_writes_store_the_cached_lastseen(dev: Device2Service,
                                                               store: Store,
                                                               clock: Clock) -> None:
    dev.device_connected(identity="d", ip="10.0.0.1")
    write(dev, temp="1")
    clock.advance(2)
    write(dev, temp="2")
    dev.device_disconnected(identity="d")
    assert stored(store, dev)[0]["lastseen"] == clock.now
    write(dev, temp="3")
    clock.advance(2)
    write(dev, temp="4")
    dev.updateIdentity(identity="d", tags=[{"name": "k", "value": "v"}])
    assert stored(store, dev)[0]["lastseen"] == clock.now


def test_data_in_event_only_when_somebody_listens(dev: Device2Service,
                                                  recorder: Recorder) -> None:
    asked: list[tuple[str, str, str]] = []
    listening = False

    def wants(cid: str, identity: str, event_type: str) -> bool:
        asked.append((cid, identity, event_type))
        return listening

    dev.wants_event = wants
    n = len(recorder.events)
    write(dev, temp="1")
    assert len(recorder.events) == n and asked[-1][1:] == ("d", "data_in")
    assert dev.getLogs(type="event")[-1]["detail"] == ["temp"]  # the log still has it
    listening = True
    write(dev, temp="2", hum="3")
    event = recorder.events[-1][1]
    assert event["type"] == "data_in" and event["payload"][0]["values"] == {"temp": 2,
                                                                           "hum": 3}
    assert dev.getLogs(type="event")[-1]["detail"] == ["hum", "temp"]


# -- through a group committer --------------------------------------------------------------

class FlakyStore:
    """A MemoryStore whose next write transaction fails at commit when ``fail`` is set."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.fail = False

    def read(self) -> Any:
        return self.inner.read()

    @contextmanager
    def write(self) -> Iterator[Any]:
        with self.inner.write() as txn:
            yield txn
            if self.fail:
                self.fail = False
                raise OSError("disk full")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.inner.close()


class Grouped:
    """A service over a store drained by an inline group committer; ``turn()`` ends the
    loop turn."""

    def __init__(self, clock: Clock) -> None:
        self.store = FlakyStore()
        self.turns: list[Callable[[], None]] = []
        self.errors: list[BaseException] = []
        self.committer = GroupCommitter(self.store, self.turns.append,  # type: ignore[arg-type]
                                        on_error=lambda e, d: self.errors.append(e))
        self.service = Device2Service(DrainedStore(self.store, self.committer),  # type: ignore[arg-type]
                                      "example.com", clock, password_cost=FAST_SCRYPT)
        self.service.attach_committer(self.committer)
        self.service.ensure_default_connector()
        self.done: list[Any] = []

    def submit(self, **values: Any) -> None:
        self.service.submit_values(self.committer.submit, self.done.append, identity="d",
                                   entries=[(None, values)], ip="10.0.0.1")

    def turn(self) -> None:
        turns, self.turns[:] = list(self.turns), []
        for end in turns:
            end()


def test_failed_group_commit_drops_the_cache(clock: Clock) -> None:
    g = Grouped(clock)
    svc = g.service
    svc.addGatewayResource(alias="temp", format="number")
    svc.addGatewayResource(alias="hum", format="number")
    svc.provision(identity="d")
    g.submit(temp="1")
    g.turn()
    assert g.done == [None]
    g.store.fail = True
    g.submit(hum="50")
    g.turn()
    assert len(g.errors) == 1 and g.done == [None]  # not acknowledged
    g.submit(temp="2")
    g.turn()
    assert g.done == [None, None]
    assert svc.getIdentityState(identity="d").keys() == {"temp"}  # hum was never committed


def test_grouped_writes_and_admin_operations_interleave(clock: Clock) -> None:
    g = Grouped(clock)
    svc = g.service
    svc.addGatewayResource(alias="temp", format="number")
    svc.addGatewayResource(alias="cfg", settable=True)
    svc.provision(identity="d")
    connected: list[Any] = []
    svc.submit_connected(g.committer.submit, connected.append, identity="d", ip="10.0.0.1",
                         devmode=True)
    g.submit(temp="1")
    # The admin operation drains the committer first: the writes above are in the store.
    svc.setIdentityState(identity="d", cfg="go")
    assert connected == [{}] and g.done == [None]
    g.submit(temp="2")
    g.turn()
    state = svc.getIdentityState(identity="d")
    assert state["cfg"]["set"] == "go" and state["temp"]["reported"] == 2
    record = svc.getIdentity(identity="d")
    assert record["devmode"] is True and record["lastip"] == "10.0.0.1"
    g.submit(temp="3")
    svc.removeIdentity(identity="d")
    g.submit(temp="4")
    g.turn()
    assert isinstance(g.done[-1], ServiceError) and g.done[-1].code == "not_found"
    svc.submit_connected(g.committer.submit, connected.append, identity="d")
    g.turn()
    assert isinstance(connected[-1], ServiceError)
