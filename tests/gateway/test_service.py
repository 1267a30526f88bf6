"""broker/gateway/service.py: every Device2 operation of connector-spec §11 and its errors."""

from __future__ import annotations

from typing import Any

import pytest

from broker.gateway.errors import ServiceError
from broker.gateway.service import Device2Service
from broker.storage import Store
from tests.gateway.conftest import FAST_SCRYPT, Clock, Recorder

PEM = ("-----BEGIN CERTIFICATE-----\n"
       "MIIBszCCAVmgAwIBAgIUQ2ZlZ2F0ZXRlc3RjZXJ0aWZpY2F0ZTAKBggqhkjOPQQDAjAP\n"
       "-----END CERTIFICATE-----\n")


def fails(fn: Any, **kw: Any) -> tuple[int, str]:
    with pytest.raises(ServiceError) as info:
        fn(**kw)
    return info.value.status, info.value.code


# -- connectors ------------------------------------------------------------------------------

def test_default_connector_made_once(store: Store, clock: Clock) -> None:
    svc = Device2Service(store, "example.com", clock)
    cid = svc.ensure_default_connector()
    assert svc.ensure_default_connector() == cid
    assert Device2Service(store, "example.com", clock).ensure_default_connector() == cid
    [c] = svc.list_connectors()
    assert c["id"] == cid and c["default"] is True and c["fqdn"] == f"{cid}.m2.example.com"
    assert len(cid) == 14


def test_several_connectors_are_separate(service: Device2Service) -> None:
    other = service.create_connector(name="second", connector_id="second1")["id"]
    assert fails(service.create_connector, connector_id="second1") == (409, "conflict")
    assert fails(service.create_connector, connector_id="Bad-Id") == (400, "bad_request")
    service.addIdentity(identity="d")
    service.addIdentity(identity="d", connector_id=other)
    service.removeIdentity(identity="d", connector_id=other)
    assert service.getIdentity(identity="d")["identity"] == "d"
    assert fails(service.getIdentity, identity="d", connector_id=other) == (404, "not_found")
    assert fails(service.getGatewaySettings, connector_id="nope") == (404, "not_found")
    service.remove_connector(other)
    assert [c["id"] for c in service.list_connectors()] != [other]


def test_removing_a_connector_disconnects_its_online_devices(service: Device2Service) -> None:
    other = service.create_connector(connector_id="second2")["id"]
    for identity in ("on", "off"):
        service.addIdentity(identity=identity, connector_id=other)
    service.addIdentity(identity="on")  # same identity, default connector: untouched
    closed: list[tuple[str, str, str]] = []
    service.online = lambda cid, identity: identity == "on"
    service.disconnect = lambda cid, identity, reason: closed.append((cid, identity, reason))
    service.remove_connector(other)
    assert closed == [(other, "on", "deleted")]


def test_call_dispatch(service: Device2Service) -> None:
    service.call(None, "addIdentity", {"identity": "d"})
    assert service.call(None, "getIdentity", {"identity": "d"})["identity"] == "d"
    with pytest.raises(ServiceError) as info:
        service.call(None, "dropTables", {})
    assert info.value.status == 404
    for args in ({"bogus": 1}, {}, [], {"identity": "d", "connector_id": "x"}):
        with pytest.raises(ServiceError) as info:
            service.call(None, "getIdentity", args)  # type: ignore[arg-type]
        assert info.value.code == "bad_request"
    assert set(service.operations) >= {
        "getGatewaySettings", "updateGatewaySettings", "getGatewayResource",
        "addGatewayResource", "updateGatewayResource", "removeGatewayResource", "addIdentity",
        "addIdentities", "makeIdentity", "removeIdentity", "getIdentity", "listIdentities",
        "countIdentities", "getIdentityState", "setIdentityState", "updateIdentity",
        "updateIdentities", "addIdentityTag", "removeIdentityTag", "getIdentityTag",
        "listTagNames", "listTagName", "getLogs"}


# -- settings and resources --------------------------------------------------------------------

def test_settings_roundtrip_and_invalid_update(service: Device2Service) -> None:
    s = service.getGatewaySettings()
    assert s["fqdn"].endswith(".m2.example.com")
    service.updateGatewaySettings(**s)  # a GET body PATCHed back is accepted
    service.updateGatewaySettings(protocol={"name": "mqtt", "devmode": True})
    assert service.getGatewaySettings()["protocol"] == {"name": "murano:v1/mqtt",
                                                        "devmode": True}
    assert fails(service.updateGatewaySettings, provisioning={"auth_type": "hash"}) == (
        400, "unsupported_auth_type")
    assert service.getGatewaySettings()["provisioning"]["auth_type"] == "token"


def test_resource_operations(service: Device2Service) -> None:
    service.addGatewayResource(alias="temp", format="number", unit="C")
    assert service.getGatewayResource(alias="temp")["unit"] == "C"
    assert fails(service.addGatewayResource, alias="temp") == (409, "conflict")
    assert fails(service.addGatewayResource, alias="a.b") == (400, "bad_request")
    assert fails(service.addGatewayResource, alias="x", initial=1) == (400, "bad_request")
    service.updateGatewayResource(alias="temp", allowed=["0-50"])
    assert service.getGatewaySettings()["resources"]["temp"]["allowed"] == ["0-50"]
    assert fails(service.updateGatewayResource, alias="temp", format="blob") == (
        400, "bad_request")
    assert fails(service.updateGatewayResource, alias="temp", colour=1) == (400, "bad_request")
    assert fails(service.updateGatewayResource, alias="nope", unit="x") == (404, "not_found")
    assert fails(service.getGatewayResource, alias="nope") == (404, "not_found")
    assert fails(service.removeGatewayResource, alias="nope") == (404, "not_found")


def test_removing_a_resource_drops_its_state(service: Device2Service) -> None:
    service.addGatewayResource(alias="temp", format="number")
    service.addIdentity(identity="d")
    service.write_values(identity="d", entries=[(None, {"temp": "3"})])
    service.removeGatewayResource(alias="temp")
    service.addGatewayResource(alias="temp", format="number")
    assert service.getIdentityState(identity="d") == {}  # not resurrected


# -- identities ------------------------------------------------------------------------------

def test_add_identity_variants(service: Device2Service) -> None:
    service.addGatewayResource(alias="cfg", settable=True, initial="v")
    rec = service.addIdentity(identity="w")
    assert rec["status"] == "whitelisted" and rec["state"]["cfg"]["set"] == "v"
    rec = service.addIdentity(identity="t", auth={"type": "cik", "key": "k" * 40})
    assert rec["status"] == "provisioned" and rec["auth"] == {"type": "token"}
    assert service.authenticate(token="k" * 40).identity == "t"
    rec = service.addIdentity(identity="p", auth={"type": "password", "key": "p" * 20})
    assert service.authenticate(identity="p", password="p" * 20).ok
    rec = service.addIdentity(identity="c", auth={"type": "certificate", "key": PEM})
    assert service.authenticate(identity="c", certificate=PEM).ok
    rec = service.addIdentity(identity="l", locked=True, tags=[{"name": "a", "value": "b"}])
    assert rec["status"] == "locked" and rec["tags"] == [{"name": "a", "value": "b"}]


@pytest.mark.parametrize("kw,expected", [
    ({"identity": "w"}, (409, "conflict")),
    ({"identity": "a/b"}, (400, "invalid_identity")),
    ({"identity": "x", "auth": {"type": "hash"}}, (400, "unsupported_auth_type")),
    ({"identity": "x", "auth": {"type": "password", "key": "short"}}, (400, "bad_request")),
    ({"identity": "x", "auth": {"type": "certificate", "key": "nope"}}, (400, "bad_request")),
    ({"identity": "x", "auth": {"key": "k" * 40}}, (409, "conflict")),  # token in use
    ({"identity": "x", "auth": {"expire": -1}}, (400, "bad_request")),
    ({"identity": "x", "auth": {"what": 1}}, (400, "bad_request")),
    ({"identity": "x", "auth": "k"}, (400, "bad_request")),
    ({"identity": "x", "locked": "yes"}, (400, "bad_request")),
    ({"identity": "x", "tags": [{"name": ""}]}, (400, "bad_request")),
])
def test_add_identity_errors_write_nothing(service: Device2Service, kw: dict,  # type: ignore
                                           expected: tuple[int, str]) -> None:
    service.addIdentity(identity="w", auth={"key": "k" * 40})
    assert fails(service.addIdentity, **kw) == expected
    assert service.countIdentities() == {"total": 1}
    assert service.listTagNames() == []


def test_add_identities_csv_with_bad_rows(service: Device2Service, clock: Clock) -> None:
    service.updateGatewaySettings(identity_format={"type": "mac", "casing": None})
    service.addIdentity(identity="00AA00000000")
    csv_text = (
        "ID, SSL Client Certificate, tag:site, tag:model\n"
        "001122334455,,Lyon|Paris,m1\n"
        "bad-id,,x,y\n"
        '00:11:22:33:44:66,"' + PEM.replace("\n", "\n") + '",Lyon,\n'
        "001122334455,,dup,\n"
        "00AA00000000,,exists,\n"
        "\n"
        "001122334477,,,,too,many\n"
        "001122334488\n"
    )
    out = service.addIdentities(identities=csv_text, expire=clock.now + 10**9)
    assert out["added"] == 3
    assert [(f["line"], f["identity"], f["error"]) for f in out["failed"]] == [
        (3, "bad-id", "invalid_identity"),
        (8, "001122334455", "conflict"),
        (9, "00AA00000000", "conflict"),
        (11, "001122334477", "bad_request"),
    ]
    rec = service.getIdentity(identity="001122334455")
    assert rec["tags"] == [{"name": "site", "value": "Lyon"}, {"name": "site", "value": "Paris"},
                           {"name": "model", "value": "m1"}]
    assert service.getIdentity(identity="00:11:22:33:44:66")["auth"] == {"type": "certificate"}
    assert service.getIdentity(identity="00:11:22:33:44:66")["status"] == "provisioned"
    assert service.countIdentities(tag_name="site", tag_value="Lyon") == {"total": 2}


@pytest.mark.parametrize("text", ["", "Name\nx", "ID,colour\nx,red", "ID,tag:\nx,y"])
def test_add_identities_bad_header(service: Device2Service, text: str) -> None:
    assert fails(service.addIdentities, identities=text) == (400, "bad_request")


def test_add_identities_list_and_bad_expire(service: Device2Service) -> None:
    out = service.addIdentities(identities=["a", {"identity": "b", "tags": [
        {"name": "k", "value": "v"}]}, 5, {"identity": "c", "x": 1}])
    assert out["added"] == 2 and [f["line"] for f in out["failed"]] == [3, 4]
    assert fails(service.addIdentities, identities=["z"], expire=0) == (400, "bad_request")
    assert fails(service.addIdentities, identities=5) == (400, "bad_request")


def test_make_identity(service: Device2Service) -> None:
    service.updateGatewaySettings(identity_format={"type": "uuid"})
    rec = service.makeIdentity()
    assert rec["status"] == "whitelisted" and len(rec["identity"]) == 36
    service.updateGatewaySettings(provisioning={"generate_identity": False})
    assert fails(service.makeIdentity) == (400, "bad_request")


def test_remove_identity(service: Device2Service, recorder: Recorder) -> None:
    token = service.provision(identity="d").token
    service.addIdentityTag(identity="d", tags=[{"name": "a", "value": "b"}])
    service.removeIdentity(identity="d")
    assert recorder.disconnected[-1] == (service.list_connectors()[0]["id"], "d", "deleted")
    assert recorder.types()[-1] == "deleted"
    assert fails(service.getIdentity, identity="d") == (404, "not_found")
    assert fails(service.removeIdentity, identity="d") == (404, "not_found")
    assert service.listTagNames() == []
    assert service.authenticate(token=token).reason == "bad_credentials"


# -- state ---------------------------------------------------------------------------------

def test_set_identity_state_pushes_and_emits(service: Device2Service,
                                             recorder: Recorder, clock: Clock) -> None:
    service.addGatewayResource(alias="data_out", settable=True)
    service.addGatewayResource(alias="mode", settable=True, sync=False)
    service.addGatewayResource(alias="temp", format="number")
    service.addIdentity(identity="d")
    assert service.setIdentityState(identity="d", data_out="go", mode="eco") == {}
    cid = service.list_connectors()[0]["id"]
    assert recorder.pushed == [(cid, "d", "data_out", "go", clock.now)]
    assert recorder.types()[-1] == "data_out"
    st = service.getIdentityState(identity="d")
    assert st["data_out"] == {"reported": None, "set": "go", "timestamp": clock.now}
    assert st["mode"]["reported"] == "eco"
    assert service.pending_values(identity="d") == {"data_out": ("go", clock.now)}
    assert fails(service.setIdentityState, identity="d", temp=3) == (400, "not_settable")
    assert fails(service.setIdentityState, identity="nobody", data_out="x") == (404,
                                                                                "not_found")
    assert fails(service.getIdentityState, identity="nobody") == (404, "not_found")
    recorder.deliver = False  # offline: no data_out event
    n = len(recorder.events)
    service.setIdentityState(identity="d", data_out="later")
    assert len(recorder.events) == n


def test_device_writes_batch_and_invalid_values(service: Device2Service, clock: Clock,
                                                recorder: Recorder) -> None:
    service.addGatewayResource(alias="temp", format="number")
    service.addGatewayResource(alias="data_out", settable=True)
    service.provision(identity="d")
    service.setIdentityState(identity="d", data_out="v1")
    out = service.write_values(identity="d", ip="10.0.0.9", protocol="mqtt", entries=[
        (1_600_000_000, {"temp": 1}), (1_600_000_001_000, {"temp": "2", "free": "x"}),
        (None, {"temp": "hot", "data_out": "v1"})])
    assert out["accepted"] == {"temp": 2, "data_out": "v1"}
    assert set(out["invalid"]) == {"temp"}
    st = service.getIdentityState(identity="d")
    assert st["temp"] == {"reported": 2, "set": 2, "timestamp": 1_600_000_001_000_000}
    assert service.pending_values(identity="d") == {}  # acknowledged
    event = recorder.events[-1][1]
    assert event["type"] == "data_in" and len(event["payload"]) == 3
    assert event["payload"][-1]["values"] == {"temp": "hot", "data_out": "v1"}
    assert service.getLogs(type="debug")[-1]["type"] == "invalid_value"
    assert service.read_values(identity="d", aliases=["temp", "data_out", "free"]) == {
        "temp": 2, "data_out": "v1"}
    assert service.getIdentity(identity="d")["lastip"] == "10.0.0.9"


def test_connect_returns_pending_and_marks_seen(service: Device2Service, clock: Clock,
                                                recorder: Recorder) -> None:
    service.addGatewayResource(alias="cfg", settable=True, initial="x")
    service.provision(identity="d")
    assert service.device_connected(identity="d", ip="1.1.1.1", protocol="mqtt") == {
        "cfg": ("x", clock.now)}
    rec = service.getIdentity(identity="d")
    assert (rec["lastseen"], rec["lastip"]) == (clock.now, "1.1.1.1")
    service.device_disconnected(identity="d", reason="idle_timeout")
    assert recorder.events[-1][1]["reason"] == "idle_timeout"


def test_events_types_switch(service: Device2Service, recorder: Recorder) -> None:
    service.updateGatewaySettings(events={"types": ["deleted"]})
    service.provision(identity="d")
    service.removeIdentity(identity="d")
    assert recorder.types() == ["deleted"]


# -- updateIdentity ----------------------------------------------------------------------------

def test_update_identity(service: Device2Service, recorder: Recorder) -> None:
    token = service.provision(identity="d").token
    rec = service.updateIdentity(identity="d", locked=True)
    assert rec["status"] == "locked" and recorder.disconnected[-1][1:] == ("d", "locked")
    service.updateIdentity(identity="d", locked=False)
    assert service.authenticate(token=token).ok
    service.updateIdentity(identity="d", auth={"key": "N" * 40})
    assert recorder.disconnected[-1][1:] == ("d", "credentials_changed")
    assert not service.authenticate(token=token).ok
    assert service.authenticate(token="N" * 40).ok
    service.updateIdentity(identity="d", tags=[{"name": "x", "value": "1"}])
    assert service.listTagNames() == ["x"]
    service.updateIdentity(identity="d", auth={"expire": 0})
    assert service.getIdentity(identity="d")["status"] == "reprovision"
    assert fails(service.updateIdentity, identity="nobody", locked=True) == (404, "not_found")
    assert fails(service.updateIdentity, identity="d", locked="x") == (400, "bad_request")
    assert fails(service.updateIdentity, identity="d", auth={"type": "signature"}) == (
        400, "unsupported_auth_type")


def test_update_identities(service: Device2Service) -> None:
    service.addIdentity(identity="a")
    service.addIdentity(identity="b")
    out = service.updateIdentities(identities=[
        {"identity": "a", "locked": True}, {"identity": "zz", "locked": True},
        {"identity": "b", "colour": 1}, "b"])
    assert out["updated"] == 1
    assert [(f["index"], f["error"]) for f in out["failed"]] == [
        (1, "not_found"), (2, "bad_request"), (3, "bad_request")]
    assert fails(service.updateIdentities, identities="a") == (400, "bad_request")


# -- tags and logs ---------------------------------------------------------------------------

def test_tag_operations(service: Device2Service) -> None:
    service.addIdentity(identity="d")
    assert service.addIdentityTag(identity="d", tags=[{"name": "site", "value": "A"},
                                                      {"name": "site", "value": "B"}])
    service.addIdentityTag(identity="d", tags=[{"name": "site", "value": "C"}], replace=True)
    assert service.getIdentityTag(identity="d") == [{"name": "site", "value": "C"}]
    service.addIdentityTag(identity="d", tags=[{"name": "k", "value": "v"}])
    assert service.getIdentityTag(identity="d", name="k") == [{"name": "k", "value": "v"}]
    assert service.listTagNames() == ["k", "site"]
    assert service.listTagName(name="site") == [{"value": "C", "count": 1}]
    service.removeIdentityTag(identity="d", tags=[{"name": "site"}])
    assert service.listTagNames() == ["k"]
    assert fails(service.addIdentityTag, identity="nobody", tags=[]) == (404, "not_found")
    assert fails(service.addIdentityTag, identity="d", tags="x") == (400, "bad_request")
    assert fails(service.listTagName, name="") == (400, "bad_request")


def test_get_logs(service: Device2Service) -> None:
    service.provision(identity="d", ip="1.1.1.1")
    service.provision(identity="d", ip="2.2.2.2")
    assert [e["type"] for e in service.getLogs()] == ["provision"]
    debug = service.getLogs(type="debug", ip="2.2.2.2")
    assert [e["type"] for e in debug] == ["not_authenticated"]
    assert service.getLogs(type="debug", identity="other") == []
    assert fails(service.getLogs, type="audit") == (400, "bad_request")
    assert fails(service.getLogs, since="x") == (400, "bad_request")


# -- application keys ------------------------------------------------------------------------

def test_application_keys(service: Device2Service, store: Store) -> None:
    cid = service.list_connectors()[0]["id"]
    made = service.create_app_key(name="exosense")
    assert set(made) == {"key", "secret"}
    listed = service.list_app_keys()
    assert [k["key"] for k in listed] == [made["key"]] and "secret" not in listed[0]
    with store.read() as txn:  # the secret itself is nowhere in the store
        assert all(made["secret"].encode() not in v for _, v in txn.scan("gw_apps"))
    assert service.verify_app_key(made["key"], made["secret"]) == cid
    assert service.verify_app_key(made["key"], "wrong") is None
    assert service.verify_app_key("nokey", made["secret"]) is None
    service.delete_app_key(key=made["key"])
    assert service.verify_app_key(made["key"], made["secret"]) is None
    assert fails(service.delete_app_key, key=made["key"]) == (404, "not_found")


def test_password_cost_default_is_production(store: Store) -> None:
    assert Device2Service(store).password_cost == 2**14
    assert FAST_SCRYPT < 2**14


def test_expire_step_sweeps_in_steps_and_wraps(service: Device2Service, clock: Any) -> None:
    """§3.1 expired, swept in steps: each step walks at most ``limit`` identities from where
    the last one stopped and starts over after the end; only whitelisted identities past
    their expiry go."""
    past = clock.now - 1
    for i in range(7):
        service.addIdentity(identity=f"w{i}", auth={"expire": past if i % 2 == 0 else None})
    gone_per_step = [service.expire_step(limit=3) for _ in range(3)]
    assert gone_per_step == [2, 1, 1]  # w0-w2: w0,w2 | w3-w5: w4 | w6, the end
    assert sorted(d["identity"] for d in service.listIdentities()["devices"]) == [
        "w1", "w3", "w5"]
    service.addIdentity(identity="w0", auth={"expire": past})
    assert service.expire_step(limit=3) == 1  # the walk started over from the beginning
