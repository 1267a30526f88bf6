"""The MQTT device API of the IoT Connector (connector-spec §3.4, §5) and application clients
(product.md §4), end to end: a real broker with the gateway hooks on a real store, raw-byte and
paho-mqtt devices. Service calls run on the broker's loop thread (``gw.call``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from broker.gateway.service import Device2Service
from broker.mqtt import codec
from broker.mqtt.packets import Connack, Connect, Pingreq, Pingresp, Puback, Publish, Subscribe
from tests.conftest import RunningBroker, make_config, start_gateway
from tests.rawclient import RawClient, connected, provision_mqtt


@dataclass
class Gateway:
    running: RunningBroker
    service: Device2Service
    cid: str

    @property
    def host(self) -> str:
        return self.running.host

    @property
    def port(self) -> int:
        return self.running.port

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.running.call(fn)

    def close_reasons(self, reason: str) -> int:
        return self.running.close_reason_count(reason)

    def debug_reasons(self) -> list[str]:
        return self.call(lambda: [e["type"] for e in self.service.getLogs(type="debug")])


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    stops: list[Callable[[], None]] = []

    def factory(**mqtt: Any) -> Gateway:
        mqtt.setdefault("allow_anonymous", False)
        config = make_config(tmp_path / f"gw{len(stops)}", **mqtt)

        running, gateway, stop = start_gateway(config)  # LMDB, sync=always
        stops.append(stop)
        return Gateway(running, gateway.service, gateway.connector)

    yield factory
    for stop in reversed(stops):
        stop()


@pytest.fixture
def gw(gateway_factory: Callable[..., Gateway]) -> Gateway:
    gateway = gateway_factory()
    gateway.call(lambda: gateway.service.addGatewayResource(alias="temp", format="number"))
    gateway.call(lambda: gateway.service.addGatewayResource(
        alias="config_io", format="string", settable=True))
    return gateway


def provision(gw: Gateway, identity: str) -> str:
    return provision_mqtt(gw.host, gw.port, identity)


def device(gw: Gateway, token: str) -> RawClient:
    """§5.1 token mode: username empty, password = token."""
    c = RawClient(gw.host, gw.port)
    c.connect(username="", password=token.encode())
    return c


def test_provision_then_connect_with_the_token(gw: Gateway) -> None:
    """§3.4, §5.1: the token from $provision authenticates; CONNACK 0."""
    token = provision(gw, "dev1")
    with device(gw, token) as d:
        d.send(Pingreq())  # a round trip: the connect's record write is committed by now
        assert d.recv() == Pingresp()
        record = gw.call(lambda: gw.service.getIdentity(identity="dev1"))
    assert record["status"] == "provisioned"
    assert record["devmode"] is True  # §2.2: connected through the plain (devmode) listener
    devmode = gw.call(lambda: gw.service.listIdentities(status="devmode"))
    assert [d["identity"] for d in devmode["devices"]] == ["dev1"]


def test_wrong_token_is_refused_with_connack_4(gw: Gateway) -> None:
    """§5.1: bad credentials → CONNACK 4 (clients stop retrying on 4)."""
    provision(gw, "dev1")
    with RawClient(gw.host, gw.port) as c:
        c.connect(username="", password=b"x" * 40, expect_rc=4)
        c.expect_closed()
    gw.running.offline("")
    # Logged once: by the authentication, not again when the core closes the connection.
    assert gw.debug_reasons().count("bad_credentials") == 1


def test_resource_write_stored_and_mirrored_to_applications(gw: Gateway) -> None:
    """§5.2 $resource/<alias>: reported value stored, PUBACK after, $data mirror to apps."""
    token = provision(gw, "dev1")
    app = gw.call(lambda: gw.service.create_app_key(name="exosense"))
    with connected(gw.host, gw.port, "app", username=app["key"],
                   password=app["secret"].encode()) as a, device(gw, token) as d:
        assert a.subscribe(f"$data/{gw.cid}/+/temp", 1) == [1]
        d.publish("$resource/temp", b"21.5", qos=1, packet_id=7)
        d.expect(Puback(7))
        got = a.recv()
        assert isinstance(got, Publish)
        assert (got.topic, got.payload) == (f"$data/{gw.cid}/dev1/temp", b"21.5")
    state = gw.call(lambda: gw.service.getIdentityState(identity="dev1"))
    assert state["temp"]["reported"] == 21.5


def test_batch_write_keeps_each_timestamp(gw: Gateway) -> None:
    """§5.2 $resource.batch: entries at their own timestamps (seconds → µs); newest wins."""
    token = provision(gw, "dev1")
    batch = [{"timestamp": 1_700_000_000, "values": {"temp": 1}},
             {"timestamp": 1_700_000_060, "values": {"temp": 2}}]
    with device(gw, token) as d:
        d.publish("$resource.batch", json.dumps(batch).encode(), qos=1, packet_id=3)
        d.expect(Puback(3))
    state = gw.call(lambda: gw.service.getIdentityState(identity="dev1"))
    assert state["temp"]["reported"] == 2
    assert state["temp"]["timestamp"] == 1_700_000_060_000_000


def test_set_value_pushed_without_subscribe_and_again_on_reconnect(gw: Gateway) -> None:
    """§5.3/§5.4: $resource/<alias>/<ts_us> arrives with no SUBSCRIBE; pending values are sent
    on every connect until the device writes the value back."""
    token = provision(gw, "dev1")
    with device(gw, token) as d:
        gw.call(lambda: gw.service.setIdentityState(identity="dev1", config_io="on"))
        got = d.recv()
        assert isinstance(got, Publish) and got.qos == 1
        alias, ts = got.topic.split("/")[1:]
        assert alias == "config_io" and int(ts) > 1_600_000_000_000_000
        assert got.payload == b"on"
        d.send(Puback(got.packet_id))
    with device(gw, token) as d:  # not acknowledged by a write: sent again
        again = d.recv()
        assert isinstance(again, Publish) and again.payload == b"on"
        d.send(Puback(again.packet_id))
        d.publish("$resource/config_io", b"on", qos=1, packet_id=2)  # the acknowledgement
        d.expect(Puback(2))
    with device(gw, token) as d:
        d.expect_silence(0.3)


def test_application_sets_a_value_and_sees_events(gw: Gateway) -> None:
    """product.md §4: $set/<cid>/<identity>/<alias> = setIdentityState; $events carry JSON."""
    token = provision(gw, "dev1")
    app = gw.call(lambda: gw.service.create_app_key())
    with connected(gw.host, gw.port, "app", username=app["key"],
                   password=app["secret"].encode()) as a:
        assert a.subscribe(f"$events/{gw.cid}/+/+", 0) == [0]
        with device(gw, token) as d:
            event = json.loads(a.recv().payload)  # type: ignore[attr-defined]
            assert (event["type"], event["identity"]) == ("connect", "dev1")
            a.publish(f"$set/{gw.cid}/dev1/config_io", b"42", qos=1, packet_id=5)
            pushed = d.recv()
            assert isinstance(pushed, Publish) and pushed.payload == b"42"
            # §10 data_out (the value went to the device), and the PUBACK of the $set.
            got = [a.recv(), a.recv()]
            assert Puback(5) in got
            events = [json.loads(p.payload) for p in got if isinstance(p, Publish)]
            assert [(e["type"], e["payload"][0]["values"]) for e in events] == [
                ("data_out", {"config_io": "42"})]
        # Another connector's topics are not the application's to read. (The device's
        # disconnect event may come first.)
        a.send(Subscribe(2, [("$events/someoneelse/#", 0)]))
        got = a.recv()
        if isinstance(got, Publish):
            assert json.loads(got.payload)["type"] == "disconnect"
            got = a.recv()
        assert got.return_codes == [0x80]  # type: ignore[attr-defined]


def test_anonymous_session_may_only_provision(gw: Gateway) -> None:
    """§3.4 step 1: any other PUBLISH before authenticating → not_authenticated, closed."""
    with RawClient(gw.host, gw.port) as c:
        c.connect()
        c.publish("dev/1/data", b"x", qos=0)
        c.expect_closed()
    assert gw.close_reasons("not_authenticated") == 1


def test_presenter_identity_off_refuses_unknown_devices(gw: Gateway) -> None:
    """§2.5/§3.2 step 4: no reply, connection closed, presenter_identity_disabled logged."""
    gw.call(lambda: gw.service.updateGatewaySettings(
        provisioning={"presenter_identity": False}))
    with RawClient(gw.host, gw.port) as c:
        c.connect()
        c.publish("$provision/stranger", b"", qos=1, packet_id=1)
        c.expect_closed()
    assert "presenter_identity_disabled" in gw.debug_reasons()


def test_invalid_identity_format_refused(gw: Gateway) -> None:
    """§2.3/§3.2 step 2: an identity that does not match the format → invalid_identity."""
    gw.call(lambda: gw.service.updateGatewaySettings(identity_format={"type": "base10"}))
    with RawClient(gw.host, gw.port) as c:
        c.connect()
        c.publish("$provision/abc", b"", qos=1, packet_id=1)
        c.expect_closed()
    assert "invalid_identity" in gw.debug_reasons()


def test_locked_device_is_ignored(gw: Gateway) -> None:
    """§3.1/§5.1: a locked device's CONNECT is closed without CONNACK; locking disconnects."""
    token = provision(gw, "dev1")
    d = device(gw, token)
    gw.call(lambda: gw.service.updateIdentity(identity="dev1", locked=True))
    d.expect_closed()
    d.close()
    with RawClient(gw.host, gw.port) as c:
        c.send(Connect("", True, 60, username="", password=token.encode()))
        c.expect_closed()


def test_qos2_from_a_device_closes_it(gw: Gateway) -> None:
    """§5.2: QoS 2 is not supported → unsupported_qos."""
    token = provision(gw, "dev1")
    with device(gw, token) as d:
        d.publish("$resource/temp", b"1", qos=2, packet_id=1)
        d.expect_closed()
    assert gw.close_reasons("unsupported_qos") == 1


def test_second_connection_of_a_device_takes_over(gw: Gateway) -> None:
    """§5.1 Duplicate: the older connection is closed with duplicate_connection."""
    token = provision(gw, "dev1")
    first = device(gw, token)
    second = device(gw, token)
    first.expect_closed()
    first.close()
    second.publish("$resource/temp", b"3", qos=1, packet_id=1)
    second.expect(Puback(1))
    second.close()
    assert gw.close_reasons("duplicate_connection") == 1


def test_invalid_value_is_acknowledged_not_stored(gw: Gateway) -> None:
    """§4.3: a value that is not a number for a number resource: not stored, invalid_value."""
    token = provision(gw, "dev1")
    with device(gw, token) as d:
        d.publish("$resource/temp", b"warm", qos=1, packet_id=1)
        d.expect(Puback(1))
    state = gw.call(lambda: gw.service.getIdentityState(identity="dev1"))
    assert state.get("temp", {}).get("reported") is None
    assert "invalid_value" in gw.debug_reasons()


def test_unknown_dollar_topic_dropped_with_invalid_topic(gw: Gateway) -> None:
    """§5.2: other $ topics are rejected (QoS 1 still acknowledged)."""
    token = provision(gw, "dev1")
    with device(gw, token) as d:
        d.publish("$weird/thing", b"1", qos=1, packet_id=1)
        d.expect(Puback(1))
    assert "invalid_topic" in gw.debug_reasons()


def test_device_subscribe_rules(gw: Gateway) -> None:
    """§5.3: $resource/# and $provision/# granted at most QoS 1; others 0x80."""
    token = provision(gw, "dev1")
    with device(gw, token) as d:
        d.send(Subscribe(1, [("$resource/#", 2), ("$provision/#", 0), ("other/#", 1)]))
        got = d.recv()
        assert got.return_codes == [1, 0, 0x80]  # type: ignore[attr-defined]


def test_paho_device_provisions_writes_and_receives_a_set(gw: Gateway) -> None:
    """An independent client as the device: provisioning reply, token login, write, push."""
    got: list[tuple[str, bytes]] = []
    dev = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="")
    dev.on_message = lambda c, u, m: got.append((m.topic, m.payload))
    dev.connect(gw.host, gw.port)
    dev.loop_start()
    try:
        dev.publish("$provision/pahodev", b"", qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got and got[0][0] == "$provision/pahodev"
        token = got[0][1].decode()
    finally:
        dev.loop_stop()
        dev.disconnect()
    got.clear()
    dev = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="")
    dev.username_pw_set("", token)
    dev.on_message = lambda c, u, m: got.append((m.topic, m.payload))
    dev.connect(gw.host, gw.port)
    dev.loop_start()
    try:
        dev.publish("$resource/temp", b"7", qos=1).wait_for_publish(5)
        gw.call(lambda: gw.service.setIdentityState(identity="pahodev", config_io="go"))
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got and got[0][0].startswith("$resource/config_io/") and got[0][1] == b"go"
    finally:
        dev.loop_stop()
        dev.disconnect()
    state = gw.call(lambda: gw.service.getIdentityState(identity="pahodev"))
    assert state["temp"]["reported"] == 7


def test_plain_clients_cannot_read_or_forge_device_data(
    gateway_factory: Callable[..., Gateway],
) -> None:
    """Even with allow_anonymous, $data/$events/$set belong to the connector's applications: an
    anonymous subscription is refused (0x80), an anonymous $events PUBLISH is dropped."""
    gw = gateway_factory(allow_anonymous=True)
    with connected(gw.host, gw.port, "nosy") as c:
        assert c.subscribe(f"$events/{gw.cid}/#", 0) == [0x80]
        assert c.subscribe(f"$data/{gw.cid}/+/+", 0, packet_id=2) == [0x80]
        assert c.subscribe("plain/#", 0, packet_id=3) == [0]
        c.publish(f"$events/{gw.cid}/dev1/connect", b"{}", qos=1, packet_id=4)
        c.expect(Puback(4))  # acknowledged (3.1.1 has no negative ack), not delivered
        c.publish("plain/x", b"ok", qos=0)
        got = c.recv()
        assert isinstance(got, Publish) and got.topic == "plain/x"


def test_first_provisioning_from_an_address_not_whitelisted(gw: Gateway) -> None:
    """§2.6/§3.2 step 5: with IP whitelisting on, first provisioning only from listed
    addresses (the test client is 127.0.0.1): refused with ip_not_allowed, nothing stored."""
    gw.call(lambda: gw.service.updateGatewaySettings(
        provisioning={"ip_whitelisting": {"enabled": True, "allowed": ["10.0.0.0/8"]}}))
    with RawClient(gw.host, gw.port) as c:
        c.connect()
        c.publish("$provision/dev9", b"", qos=1, packet_id=1)
        c.expect_closed()
    assert "ip_not_allowed" in gw.debug_reasons()
    assert gw.call(lambda: gw.service.countIdentities())["total"] == 0


def test_reprovision_needs_the_old_token(gw: Gateway) -> None:
    """§3.2 step 6: an anonymous $provision for a provisioned device is refused
    (not_authenticated); over a connection authenticated with the old token it rotates it."""
    token = provision(gw, "dev1")
    with RawClient(gw.host, gw.port) as c:
        c.connect()
        c.publish("$provision/dev1", b"", qos=1, packet_id=1)
        c.expect_closed()
    assert "not_authenticated" in gw.debug_reasons()
    with device(gw, token) as d:
        d.publish("$provision/dev1", b"", qos=1, packet_id=2)
        d.expect(Puback(2))
        reply = d.recv()
        assert isinstance(reply, Publish) and reply.topic == "$provision/dev1"
        new_token = reply.payload.decode()
    assert len(new_token) == 40 and new_token != token
    with device(gw, new_token):
        pass
    with RawClient(gw.host, gw.port) as c:
        c.connect(username="", password=token.encode(), expect_rc=4)


def test_oversize_value_is_refused_and_not_stored(gw: Gateway) -> None:
    """§4.1/§5.5: a value over 1 MiB is not stored (invalid_value), the write is still
    acknowledged and the connection stays up."""
    token = provision(gw, "dev1")
    gw.call(lambda: gw.service.addGatewayResource(alias="blob", format="string"))
    with device(gw, token) as d:
        d.publish("$resource/blob", b"x" * (1_048_576 + 1), qos=1, packet_id=1)
        d.expect(Puback(1))
        d.publish("$resource/blob", b"small", qos=1, packet_id=2)
        d.expect(Puback(2))
    state = gw.call(lambda: gw.service.getIdentityState(identity="dev1"))
    assert state["blob"]["reported"] == "small"
    assert "invalid_value" in gw.debug_reasons()


def test_device_will_is_delivered_and_becomes_a_publish_event(gw: Gateway) -> None:
    """§5.1 Will: delivered to subscribers and emitted as a `publish` event; not after
    DISCONNECT."""
    token = provision(gw, "dev1")
    app = gw.call(lambda: gw.service.create_app_key())
    with connected(gw.host, gw.port, "app", username=app["key"],
                   password=app["secret"].encode()) as a:
        assert a.subscribe(f"$events/{gw.cid}/dev1/publish", 0) == [0]
        assert a.subscribe("status/dev1", 0, packet_id=2) == [0]
        d = RawClient(gw.host, gw.port)
        d.connect(username="", password=token.encode(), will_topic="status/dev1",
                  will_payload=b"offline")
        d.close()  # abruptly: no DISCONNECT
        got = [a.recv(), a.recv()]
        topics = sorted(p.topic for p in got if isinstance(p, Publish))
        assert topics == [f"$events/{gw.cid}/dev1/publish", "status/dev1"]
        event = next(json.loads(p.payload) for p in got
                     if isinstance(p, Publish) and p.topic.startswith("$events"))
        assert event["payload"] == {"topic": "status/dev1", "payload": "offline"}


@pytest.mark.parametrize(("change", "reason"), [
    ({"locked": True}, "locked"),
    ({"auth": {"expire": 0}}, "reprovision"),
    ({"auth": {"type": "token", "key": "Z" * 40}}, "credentials_changed"),
    (None, "deleted"),
])
def test_administrator_changes_close_the_device(gw: Gateway, change: dict[str, Any] | None,
                                                reason: str) -> None:
    """§3.1: lock, revoke, new credentials or removal close the connected device; the reason
    is in the debug log and the disconnect event, and the device is offline."""
    token = provision(gw, "dev1")
    d = device(gw, token)
    if change is None:
        gw.call(lambda: gw.service.removeIdentity(identity="dev1"))
    else:
        gw.call(lambda: gw.service.updateIdentity(identity="dev1", **change))
    d.expect_closed()
    d.close()
    assert gw.close_reasons(reason) == 1
    assert reason in gw.debug_reasons()
    assert not gw.call(lambda: gw.service.online(gw.cid, "dev1"))
    events = gw.call(lambda: gw.service.getLogs(type="event", identity="dev1"))
    assert [e["detail"] for e in events if e["type"] == "disconnect"] == [reason]


def test_nobody_takes_a_device_client_id(gateway_factory: Callable[..., Gateway]) -> None:
    """A device's session is <connector>.<identity>: another client asking for that client id
    is refused with CONNACK 2 and the device stays connected."""
    gw = gateway_factory(allow_anonymous=True)
    gw.call(lambda: gw.service.addGatewayResource(alias="temp", format="number"))
    token = provision(gw, "dev1")
    with device(gw, token) as d:
        with RawClient(gw.host, gw.port) as c:
            c.connect(f"{gw.cid}.dev1", expect_rc=2)
        d.publish("$resource/temp", b"1", qos=1, packet_id=1)
        d.expect(Puback(1))
    # The device itself may send its fully qualified identity as client id (§5.1).
    with RawClient(gw.host, gw.port) as d:
        d.connect(f"{gw.cid}.dev1", username="", password=token.encode())


def test_password_devices_hash_off_the_loop(gw: Gateway) -> None:
    """§2.4 password mode over MQTT: provision with a ≥20-character password, then log in with
    identity + password (hashed in a worker thread while the CONNECT waits); a wrong password
    gets CONNACK 4; a username that is no device is left to the plain policy (here: 5). A
    PUBLISH sent right behind the CONNECT waits for the decision and is then handled."""
    gw.call(lambda: gw.service.updateGatewaySettings(provisioning={"auth_type": "password"}))
    loop_thread = gw.call(threading.get_ident)
    hashed_in: list[int] = []
    hash_new = gw.service.hash_new_password

    def hash_spy(password: str) -> str | None:
        hashed_in.append(threading.get_ident())
        return hash_new(password)

    gw.service.hash_new_password = hash_spy  # type: ignore[method-assign]
    password = b"correct horse battery staple"
    with RawClient(gw.host, gw.port) as c:
        c.connect()
        c.publish("$provision/pw1", password, qos=1, packet_id=1)
        c.expect(Puback(1))
        reply = c.recv()
        assert isinstance(reply, Publish) and reply.payload == b""  # password mode: no token
    # The new password was hashed in a worker thread, not on the loop.
    assert len(hashed_in) == 1 and hashed_in[0] != loop_thread
    with RawClient(gw.host, gw.port) as d:
        d.send(codec.encode(Connect("", True, 60, username="pw1", password=password))
               + codec.encode_publish("$resource/temp", b"5", 1, packet_id=9))
        assert d.recv() == Connack(False, 0)
        d.expect(Puback(9))
    state = gw.call(lambda: gw.service.getIdentityState(identity="pw1"))
    assert state["temp"]["reported"] == 5
    with RawClient(gw.host, gw.port) as d:
        d.connect(username="pw1", password=b"wrong horse battery staple", expect_rc=4)
    with RawClient(gw.host, gw.port) as d:
        d.connect(username="nobody", password=b"whatever", expect_rc=5)
    assert "bad_credentials" in gw.debug_reasons()


def test_whitelisted_identities_expire_in_the_background(gw: Gateway) -> None:
    """§3.1 expired: a whitelisted identity not provisioned before auth.expire is deleted by
    the background sweep, with an `expired` event; provisioned ones and ones without expiry
    stay."""
    past = int(time.time() * 1_000_000) - 1_000_000
    gw.call(lambda: gw.service.addIdentity(identity="late", auth={"expire": past}))
    gw.call(lambda: gw.service.addIdentity(identity="open"))
    provision(gw, "dev1")
    app = gw.call(lambda: gw.service.create_app_key())
    with connected(gw.host, gw.port, "app", username=app["key"],
                   password=app["secret"].encode()) as a:
        assert a.subscribe(f"$events/{gw.cid}/+/expired", 0) == [0]
        event = json.loads(a.recv(timeout=5).payload)  # type: ignore[attr-defined]
    assert (event["type"], event["identity"]) == ("expired", "late")
    listed = gw.call(lambda: gw.service.listIdentities())
    assert sorted(d["identity"] for d in listed["devices"]) == ["dev1", "open"]


def test_failures_before_connect_reach_the_connector_debug_log(gw: Gateway) -> None:
    """§8.2: pre-authentication failures (here a first packet that is not CONNECT) are in the
    connector's debug log, with the client's IP."""
    with RawClient(gw.host, gw.port) as c:
        c.send(Subscribe(1, [("a", 0)]))
        c.expect_closed()
    entries = gw.call(lambda: gw.service.getLogs(type="debug", ip="127.0.0.1"))
    assert [e["type"] for e in entries] == ["protocol_error"]


def test_paho_application_receives_device_data(gw: Gateway) -> None:
    """An independent client as the application: key/secret login, `$data` subscription."""
    token = provision(gw, "dev1")
    app_key = gw.call(lambda: gw.service.create_app_key())
    got: list[tuple[str, bytes]] = []
    app = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="exosense")
    app.username_pw_set(app_key["key"], app_key["secret"])
    app.on_message = lambda c, u, m: got.append((m.topic, m.payload))
    subscribed: list[int] = []
    app.on_subscribe = lambda c, u, mid, codes, props: subscribed.append(mid)
    app.connect(gw.host, gw.port)
    app.loop_start()
    try:
        app.subscribe(f"$data/{gw.cid}/+/temp", qos=0)
        deadline = time.monotonic() + 5
        while not subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        with device(gw, token) as d:
            d.publish("$resource/temp", b"19.5", qos=1, packet_id=1)
            d.expect(Puback(1))
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        app.loop_stop()
        app.disconnect()
    assert got == [(f"$data/{gw.cid}/dev1/temp", b"19.5")]
