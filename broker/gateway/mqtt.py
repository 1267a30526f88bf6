"""The MQTT device API (connector-spec §3.4, §5) and application clients (product.md §4), as the
broker's hooks. The core calls these; they call the Device2 service.

Which connector (product.md §2): on a TLS connection, the one its SNI names
(``<cid>.m2.<domain>`` or ``<cid>.devmode-m2.<domain>``, broker/gateway/hosts.py); any other SNI,
none, or a plain connection: the default connector. An SNI naming a connector that does not
exist is refused: CONNACK 5, debug reason ``missing_sni`` in the default connector's log.

Who a connection is, decided at CONNECT and kept in ``client.attrs["realm"]``:
- ``device``: token in the password with an empty username, or identity + password (§5.1);
  or, on a connector in certificate mode, no username and no password on a TLS connection that
  carries a client certificate: the identity is the certificate's CN (§2.4, §5.1), checked
  against the pinned certificate or the connector's client CA. Certificate devices never
  activate (§3.3): the first CONNECT of an unknown (presenter identity on) or whitelisted
  identity, or of one whose re-provisioning is pending, provisions it through the §3.2
  decision (pins its certificate), then connects.
  Its MQTT client id is replaced by ``<connector>.<identity>``, so a second connection of the
  same device takes over the first (``duplicate_connection``), and its session is always clean
  (§5.1: Clean Session is ignored; pending set values are sent again on every connect).
  A device connected on a plain (non-TLS) listener is flagged ``devmode`` (§2.2).
- ``provision``: no credentials at all (and no certificate login): may only publish
  ``$provision/<identity>`` (§3.4), and ordinary topics when ``mqtt.allow_anonymous`` is on.
- ``app``: an application key and secret: ``$data/<cid>/…`` and ``$events/<cid>/…`` subscriptions
  and ``$set/<cid>/<identity>/<alias>`` publishes for its own connector, ordinary topics too.
- ``plain``: anything else goes to the plain-broker policy (password file, ACL).

Device writes go through the broker's group committer: every write of a loop turn lands in one
transaction (fsync'd per ``storage.sync``), then their PUBACKs leave, in order.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from broker.core.connection import CLOSED
from broker.core.handle_connect import connect_decided
from broker.gateway import events as events_mod
from broker.gateway.errors import ServiceError
from broker.gateway.hosts import connector_in_host
from broker.gateway.provisioning import Presented
from broker.gateway.resources import value_text
from broker.gateway.settings import CONNECTOR_ID_RE
from broker.hooks import AUTHENTICATING, PublishDecision
from broker.mqtt import constants as c
from broker.security.policy import PlainPolicy
from broker.session.session import Message

if TYPE_CHECKING:
    from broker.core.broker import Broker
    from broker.core.connection import Connection
    from broker.gateway.service import Device2Service
    from broker.mqtt.packets import Connect, Publish
    from broker.transport.tls import TlsInfo

ROUTE = PublishDecision.ROUTE
HANDLED = PublishDecision.HANDLED
DEFERRED = PublishDecision.DEFERRED
DENIED = PublishDecision.DENIED

DEVICE_FILTERS = ("$resource/#", "$resource/+/+", "$provision/#")
EXPIRY_SWEEP_S = 1.0
EXPIRY_SWEEP_BATCH = 1000
# Topics of the gateway's own: only devices and applications of a connector may use them.
GATEWAY_TOPICS = ("$resource", "$provision", "$data/", "$events/", "$set/")
# CONNACK for a refused device (§5.1): 4 stops real clients from retrying; locked is ignored.
REFUSAL_CODES = {"bad_credentials": c.CONNACK_BAD_CREDENTIALS, "locked": -1}


class GatewayHooks:
    """``BrokerHooks`` for a gateway: devices, provisioning, applications, then plain MQTT."""

    def __init__(self, service: Device2Service, plain: PlainPolicy) -> None:
        self.service = service
        self.plain = plain
        self.connector = service.ensure_default_connector()  # plain listeners serve it
        self.broker: Broker | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None
        self.devices: dict[tuple[str, str], Connection] = {}
        service.push = self.push
        service.disconnect = self.disconnect
        service.online = self.online
        service.on_event = self.publish_event
        service.wants_event = self.wants_event

    def attach(self, broker: Broker) -> None:
        self.broker = broker
        if broker.committer is not None:
            self.service.attach_committer(broker.committer)
        self._sweep_handle = asyncio.get_running_loop().call_later(EXPIRY_SWEEP_S, self._sweep)

    def detach(self) -> None:
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None

    def _sweep(self) -> None:
        """§3.1 expired: a step of the sweep that deletes whitelisted identities past their
        provisioning window (EXPIRY_SWEEP_BATCH identities a connector per step, so 100k
        identities are swept every 100 s without a long pause)."""
        try:
            self.service.expire_step(EXPIRY_SWEEP_BATCH)
        finally:
            loop = asyncio.get_running_loop()
            self._sweep_handle = loop.call_later(EXPIRY_SWEEP_S, self._sweep)

    # -- CONNECT ----------------------------------------------------------------------

    def authenticate(self, client: Connection, packet: Connect) -> int:
        attrs = client.attrs
        tls: TlsInfo | None = attrs.get("tls")
        cid = self._selected_connector(tls)
        if cid is None:
            self.service.logs[self.connector].debug(
                self.service.clock(), "missing_sni", ip=client.peer[0], protocol="mqtt",
                connection_id=client.connection_id,
                detail=f"SNI {tls.server_name if tls else None!r} names no connector")
            attrs["logged"] = "not_authorized"  # the close below: logged once, as missing_sni
            return c.CONNACK_NOT_AUTHORIZED
        attrs["connector"] = cid  # refusals before a realm go to this connector's log
        username = packet.username or ""
        password = packet.password
        if not username and not password:
            if (tls is not None and tls.peer_certificate is not None
                    and self.service.uses_certificates(cid)):
                return self._certificate_login(client, packet, cid, tls)
            attrs.update(realm="provision", connector=cid)
            return self._not_a_device(packet, c.CONNACK_ACCEPTED)
        secret = _text(password)
        if username:
            app_connector = self.service.verify_app_key(username, secret or "")
            if app_connector is not None:
                attrs.update(realm="app", connector=app_connector)
                return self._not_a_device(packet, c.CONNACK_ACCEPTED)
            # Identity + password: scrypt (~60 ms) unless remembered, and for an unknown
            # identity too (equal timing). Hashed in a thread; the CONNECT waits, not the loop.
            slow, stored = self.service.password_hash_to_check(
                identity=username, password=secret or "", connector_id=cid)
            offload = client.broker.offload
            if slow and offload is not None:
                raw = (secret or "").encode("utf-8", "surrogatepass")
                verifier = self.service.verifier
                offload(lambda: verifier.verify(stored, raw),
                        lambda ok: self._hashed(client, packet, secret, ok, stored is None))
                return AUTHENTICATING
        return self._decide(client, packet, secret)

    def _selected_connector(self, tls: TlsInfo | None) -> str | None:
        """The connector the SNI names, else the default; None if it names a connector that
        does not exist (product.md §2)."""
        named = connector_in_host(tls.server_name if tls is not None else None,
                                  self.service.domain)
        if named is None:
            return self.connector
        if CONNECTOR_ID_RE.fullmatch(named):
            try:
                return self.service.device_connector(named)[0]
            except ServiceError:
                pass
        return None

    def _certificate_login(self, client: Connection, packet: Connect, cid: str,
                           tls: TlsInfo) -> int:
        """§2.4 certificate mode: the identity is the client certificate's CN; a first
        CONNECT provisions it (service.certificate_login)."""
        assert tls.peer_certificate is not None
        result = self.service.certificate_login(
            certificate=tls.peer_certificate, chain=tls.chain, ip=client.peer[0],
            protocol="mqtt", connection_id=client.connection_id, connector_id=cid)
        if result.ok and result.identity is not None:
            return self._device(client, packet, cid, result.identity,
                                Presented(certificate=tls.peer_certificate))
        client.attrs["logged"] = result.reason  # logged by the service
        return REFUSAL_CODES.get(result.reason or "", c.CONNACK_NOT_AUTHORIZED)

    def _device(self, client: Connection, packet: Connect, cid: str, identity: str,
                presented: Presented) -> int:
        """An authenticated device: its realm, and the client id that makes a second
        connection take over (``presented``: kept for a re-provision over this connection,
        §3.2 step 6: old credentials)."""
        client.attrs.update(realm="device", connector=cid, identity=identity,
                            presented=presented)
        client.client_id = f"{cid}.{identity}"
        packet.clean_session = True
        return c.CONNACK_ACCEPTED

    def _hashed(self, client: Connection, packet: Connect, secret: str | None, ok: bool,
                unknown: bool) -> None:
        """The password hash of a waiting CONNECT is done (back on the loop)."""
        if ok:  # remembered by the verifier now: the decision below hashes nothing
            code = self._decide(client, packet, secret)
        elif unknown:  # not a device of this connector: maybe a user of the plain broker
            code = self._plain(client, packet)
        else:
            self.service.logs[client.attrs["connector"]].debug(
                self.service.clock(), "bad_credentials", identity=packet.username,
                ip=client.peer[0], protocol="mqtt", connection_id=client.connection_id,
                detail="bad_credentials")
            client.attrs["logged"] = "bad_credentials"
            code = c.CONNACK_BAD_CREDENTIALS
        if code != AUTHENTICATING:
            connect_decided(client, code)

    def _decide(self, client: Connection, packet: Connect, secret: str | None) -> int:
        cid = client.attrs["connector"]
        username = packet.username or ""
        result = self.service.authenticate(
            token=None if username else secret, identity=username or None,
            password=secret if username else None, ip=client.peer[0], protocol="mqtt",
            connection_id=client.connection_id, connector_id=cid)
        if result.ok and result.identity is not None:
            presented = Presented(password=secret) if username else Presented(token=secret)
            return self._device(client, packet, cid, result.identity, presented)
        if username and result.identity is None:
            return self._plain(client, packet)
        # service.authenticate logged the refusal: the core's close must not log it again.
        client.attrs["logged"] = result.reason
        return REFUSAL_CODES.get(result.reason or "", c.CONNACK_NOT_AUTHORIZED)

    def _plain(self, client: Connection, packet: Connect) -> int:
        """Not a device: a user of the plain broker (password file, allow_anonymous)."""
        client.attrs.update(realm="plain", connector=self.connector)
        code = self._not_a_device(packet, c.CONNACK_ACCEPTED)
        if code != c.CONNACK_ACCEPTED:
            return code
        return self.plain.authenticate(client, packet)

    def _not_a_device(self, packet: Connect, code: int) -> int:
        """Devices' client ids (<connector>.<identity>, of any connector) are theirs: nobody
        else may take one over (``duplicate_connection``)."""
        head, dot, _ = packet.client_id.partition(".")
        if dot and CONNECTOR_ID_RE.fullmatch(head):
            try:
                self.service.device_connector(head)
            except ServiceError:
                return code
            return c.CONNACK_IDENTIFIER_REJECTED
        return code

    def on_connect(self, client: Connection) -> None:
        attrs = client.attrs
        if attrs.get("realm") != "device":
            return
        key = (attrs["connector"], attrs["identity"])
        self.devices[key] = client
        attrs["will"] = client.will  # the core drops it before on_disconnect
        committer = client.broker.committer
        # §2.2: a device that came through the devmode endpoint is flagged: the plain listener
        # (devmode, or opened explicitly with --mqtt); TLS connections carry attrs["tls"].
        devmode = "tls" not in attrs
        # lastip/lastseen/devmode go with the loop turn's other writes (no fsync of its own);
        # the connect event and the pending set values follow the commit.
        self.service.submit_connected(
            committer.submit, _Connected(self, client, key), identity=key[1],
            ip=client.peer[0], protocol="mqtt", connection_id=client.connection_id,
            devmode=devmode, connector_id=key[0])

    def on_disconnect(self, client: Connection, reason: str) -> None:
        attrs = client.attrs
        if attrs.get("realm") != "device":
            return
        key = (attrs["connector"], attrs["identity"])
        last = self.devices.get(key) is client
        if last:
            del self.devices[key]
        will = attrs.get("will")
        if will is not None and reason not in ("normal", "server_shutdown"):
            # §5.1: a device's Will is delivered (by the core) and becomes a `publish` event.
            self._publish_event(client, will.topic, will.payload)
        self.service.device_disconnected(
            identity=key[1], reason=reason, ip=client.peer[0], protocol="mqtt",
            connection_id=client.connection_id, connector_id=key[0], release=last,
            submit=client.broker.committer.submit)

    def on_debug(self, client: Connection | None, reason: str, detail: str) -> None:
        if client is None or client.attrs.pop("logged", None) == reason:
            return
        # Before CONNECT a connection has no connector yet: the one its SNI names (TLS), else
        # the default one, keeps such pre-authentication failures in its debug log (§8.2).
        cid = client.attrs.get("connector") or self._selected_connector(
            client.attrs.get("tls")) or self.connector
        self.service.logs[cid].debug(
            self.service.clock(), reason, identity=client.attrs.get("identity"),
            ip=client.peer[0], protocol="mqtt", connection_id=client.connection_id,
            detail=detail)

    # -- PUBLISH ----------------------------------------------------------------------

    def on_publish(self, client: Connection, packet: Publish) -> PublishDecision:
        realm = client.attrs.get("realm")
        if (realm == "plain" or (realm == "provision" and self.plain.allow_anonymous)) and \
                self.plain.acl is None and not packet.topic.startswith("$"):
            return ROUTE  # a plain client on an ordinary topic: nothing to check (the hot path)
        if realm == "device":
            return self._device_publish(client, packet)
        if realm == "provision":
            return self._provision_publish(client, packet)
        if realm == "app":
            return self._app_publish(client, packet)
        if packet.topic.startswith(GATEWAY_TOPICS):
            client.broker.debug(client, "not_authorized", f"PUBLISH to {packet.topic!r}")
            return DENIED
        return self.plain.on_publish(client, packet)

    def _device_publish(self, client: Connection, packet: Publish) -> PublishDecision:
        topic = packet.topic
        if packet.qos == 2:
            # §5.2: QoS 2 is not supported and MQTT offers no way to accept it lower.
            client.close("unsupported_qos", f"QoS 2 PUBLISH to {topic!r}")
            return DEFERRED
        if topic.startswith("$provision/"):
            return self._provision_publish(client, packet)
        if not topic.startswith("$"):
            self._publish_event(client, topic, packet.payload)
            return ROUTE
        entries = self._entries(client, topic, packet.payload)
        if entries is None:
            return HANDLED
        attrs = client.attrs
        committer = client.broker.committer
        # Grouped with the loop turn's other writes; the PUBACK follows the commit, in order
        # with the client's other acknowledgements (the core's acks_waiting).
        done = _WriteStored(self, client, packet if packet.qos else None, entries)
        if packet.qos:
            client.acks_waiting += 1
        self.service.submit_values(
            committer.submit, done, identity=attrs["identity"], entries=entries,
            ip=client.peer[0], protocol="mqtt", connection_id=client.connection_id,
            connector_id=attrs["connector"])
        return DEFERRED

    def _entries(self, client: Connection, topic: str,
                 payload: bytes) -> list[tuple[object, dict[str, Any]]] | None:
        """The (timestamp, values) entries of a ``$resource…`` write, or None (logged)."""
        text = _text(payload)
        if text is None:
            client.broker.debug(client, "invalid_value", f"{topic}: payload is not UTF-8")
            return None
        if topic.startswith("$resource/") and topic.count("/") == 1:
            return [(None, {topic[len("$resource/"):]: text})]
        if topic in ("$resource", "$resource.batch"):
            try:
                document = json.loads(text)
            except ValueError as error:
                client.broker.debug(client, "invalid_value", f"{topic}: {error}")
                return None
            if topic == "$resource" and isinstance(document, dict):
                return [(None, document)]
            if topic == "$resource.batch" and isinstance(document, list) and all(
                isinstance(e, dict) and isinstance(e.get("values"), dict) for e in document
            ):
                return [(e.get("timestamp"), e["values"]) for e in document]
            client.broker.debug(client, "invalid_value", f"{topic}: wrong JSON shape")
            return None
        client.broker.debug(client, "invalid_topic", f"PUBLISH to {topic!r}")
        return None

    def _provision_publish(self, client: Connection, packet: Publish) -> PublishDecision:
        topic = packet.topic
        attrs = client.attrs
        if not topic.startswith("$provision/"):
            if self.plain.allow_anonymous:  # an anonymous plain MQTT client
                if topic.startswith(GATEWAY_TOPICS):
                    client.broker.debug(client, "not_authorized", f"PUBLISH to {topic!r}")
                    return DENIED
                return self.plain.on_publish(client, packet)
            client.close("not_authenticated", f"PUBLISH to {topic!r} before authenticating")
            return DEFERRED
        password = _text(packet.payload) or None
        offload = client.broker.offload
        if (password is not None and offload is not None
                and self.service.registers_passwords(attrs["connector"])):
            # scrypt (~60 ms) in a worker thread: the loop goes on serving everyone else.
            hash_new = self.service.hash_new_password
            offload(lambda: hash_new(password),
                    lambda hashed: self._provision(client, packet, password, hashed))
            return DEFERRED
        return self._provision(client, packet, password, None)

    def _provision(self, client: Connection, packet: Publish, password: str | None,
                   password_hash: str | None) -> PublishDecision:
        """§3.4 with the password (if any) hashed; ignored if the client left meanwhile."""
        if client.state == CLOSED:
            return DEFERRED
        topic = packet.topic
        attrs = client.attrs
        identity = topic[len("$provision/"):]
        tls: TlsInfo | None = attrs.get("tls")
        outcome = self.service.provision(
            identity=identity, ip=client.peer[0], protocol="mqtt",
            connection_id=client.connection_id, presented=attrs.get("presented", Presented()),
            password=password, password_hash=password_hash, connector_id=attrs["connector"],
            # certificate mode: the client certificate is the credential to pin
            certificate=tls.peer_certificate if tls is not None else None,
            chain=tls.chain if tls is not None else ())
        if not outcome.accepted:
            # §3.4 step 4: no reply; the reason is logged and the connection closed.
            client.close(outcome.debug_reason or "not_authenticated", outcome.message)
            return DEFERRED
        client.complete(packet)
        reply = (outcome.token or "").encode()
        client.send_publish(Message(topic, reply, 0, False), 0, False)
        return DEFERRED  # acknowledged above, before the reply

    def _app_publish(self, client: Connection, packet: Publish) -> PublishDecision:
        topic = packet.topic
        if not topic.startswith("$"):
            return ROUTE
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "$set" or parts[1] != client.attrs["connector"]:
            client.broker.debug(client, "invalid_topic", f"PUBLISH to {topic!r}")
            return DENIED
        value = _text(packet.payload)
        try:
            self.service.setIdentityState(connector_id=parts[1], identity=parts[2],
                                          **{parts[3]: value})
        except ServiceError as error:
            client.broker.debug(client, error.code, f"{topic}: {error.message}")
        return HANDLED

    # -- SUBSCRIBE and wills ------------------------------------------------------------

    def authorize_subscribe(self, client: Connection, topic_filter: str, qos: int) -> int:
        realm = client.attrs.get("realm")
        if realm in ("device", "provision"):
            # §5.3: delivery needs no SUBSCRIBE; these filters are granted for old clients.
            allowed = topic_filter in DEVICE_FILTERS or (
                topic_filter.startswith("$resource/") and topic_filter.count("/") == 1
                and "+" not in topic_filter and "#" not in topic_filter)
            if realm == "provision":
                if self.plain.allow_anonymous and not topic_filter.startswith(GATEWAY_TOPICS):
                    return self.plain.authorize_subscribe(client, topic_filter, qos)
                allowed = topic_filter.startswith("$provision/")
            return min(qos, 1) if allowed else c.SUBACK_FAILURE
        if realm == "app":
            cid = client.attrs["connector"]
            if topic_filter.startswith(("$data/", "$events/")):
                ok = topic_filter.split("/")[1] == cid
                return qos if ok else c.SUBACK_FAILURE
            if topic_filter.startswith("$"):
                return c.SUBACK_FAILURE
            return qos
        if topic_filter.startswith(GATEWAY_TOPICS):
            return c.SUBACK_FAILURE  # device data is for the connector's applications only
        return self.plain.authorize_subscribe(client, topic_filter, qos)

    def authorize_will(self, client: Connection, topic: str, qos: int, retain: bool) -> bool:
        if client.attrs.get("realm") in ("device", "app"):
            return not topic.startswith("$")
        return self.plain.authorize_will(client, topic, qos, retain)

    # -- from the service to devices and applications ---------------------------------

    def push(self, cid: str, identity: str, alias: str, value: Any, timestamp_us: int) -> bool:
        """§5.4 step 2: a set value goes to the connected device at once."""
        client = self.devices.get((cid, identity))
        if client is None:
            return False
        self._deliver(client, alias, value, timestamp_us)
        return True

    def _deliver(self, client: Connection, alias: str, value: Any, timestamp_us: int) -> None:
        session = client.session
        if session is not None:
            topic = f"$resource/{alias}/{timestamp_us}"
            session.deliver(Message(topic, value_text(value).encode(), 1, False))

    def disconnect(self, cid: str, identity: str, reason: str) -> None:
        client = self.devices.get((cid, identity))
        if client is not None:
            client.close(reason, "by an administrator")

    def online(self, cid: str, identity: str) -> bool:
        return (cid, identity) in self.devices

    def wants_event(self, cid: str, identity: str, event_type: str) -> bool:
        """Does anybody subscribe to this event's topic? (Asked before building one.)"""
        broker = self.broker
        return broker is not None and bool(
            broker.tree.match(f"$events/{cid}/{identity}/{event_type}"))

    def publish_event(self, cid: str, event: dict[str, Any]) -> None:
        """Every event as JSON on ``$events/<cid>/<identity>/<type>`` (product.md §4)."""
        broker = self.broker
        if broker is None:
            return
        topic = f"$events/{cid}/{event['identity']}/{event['type']}"
        if not broker.tree.match(topic):
            return  # nobody listens: skip the JSON
        broker.publish(topic, json.dumps(event, separators=(",", ":")).encode(), 0, False)

    def mirror_data(self, cid: str, identity: str,
                    entries: list[tuple[object, dict[str, Any]]]) -> None:
        """Raw values of a device write on ``$data/<cid>/<identity>/<alias>``."""
        broker = self.broker
        if broker is None:
            return
        for _, values in entries:
            for alias, value in values.items():
                topic = f"$data/{cid}/{identity}/{alias}"
                if broker.tree.match(topic):
                    raw = value if isinstance(value, str) else json.dumps(value)
                    broker.publish(topic, raw.encode(), 0, False)

    def _publish_event(self, client: Connection, topic: str, payload: bytes) -> None:
        attrs = client.attrs
        event = events_mod.publish(
            attrs["identity"], topic, payload.decode("utf-8", "replace"),
            timestamp=self.service.clock(), ip=client.peer[0], protocol="mqtt",
            connection_id=client.connection_id)
        self.service.emit(attrs["connector"], event)


class _WriteStored:
    """A device write is committed: a refusal goes to the debug log, the values to ``$data``
    subscribers, then the PUBACK (QoS 1). ``conn`` lets a failed commit close the device."""

    __slots__ = ("hooks", "conn", "packet", "entries")

    def __init__(self, hooks: GatewayHooks, conn: Connection, packet: Publish | None,
                 entries: list[tuple[object, dict[str, Any]]]) -> None:
        self.hooks = hooks
        self.conn = conn
        self.packet = packet
        self.entries = entries

    def __call__(self, error: ServiceError | None) -> None:
        conn = self.conn
        attrs = conn.attrs
        if error is not None:
            conn.broker.debug(conn, error.code, error.message)
        else:
            self.hooks.mirror_data(attrs["connector"], attrs["identity"], self.entries)
        if self.packet is not None:
            conn.acks_waiting -= 1
            conn.complete(self.packet)


class _Connected:
    """A device's connect is committed: the pending set values go to it (if it is still this
    device's connection); an identity removed meanwhile closes it. ``conn`` lets a failed
    commit close the device."""

    __slots__ = ("hooks", "conn", "key")

    def __init__(self, hooks: GatewayHooks, conn: Connection, key: tuple[str, str]) -> None:
        self.hooks = hooks
        self.conn = conn
        self.key = key

    def __call__(self, result: dict[str, tuple[Any, int]] | ServiceError) -> None:
        conn = self.conn
        if isinstance(result, ServiceError):
            conn.close(result.code, result.message)
            return
        if self.hooks.devices.get(self.key) is not conn:
            return  # gone or taken over meanwhile: the next connection gets them
        for alias, (value, timestamp) in result.items():
            self.hooks._deliver(conn, alias, value, timestamp)


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
