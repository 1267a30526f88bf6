"""Certificate mode and SNI connector selection over MQTT (connector-spec §2.4, §2.7, §3.4, §5.1;
product.md §2), end to end: a gateway broker with its TLS listener (``listeners.mqtt_tls``) on a
loopback port, stdlib ``ssl`` clients presenting test certificates (``load_cert_chain``; the
intermediates in the file are sent after the leaf), raw MQTT bytes. Service calls run on the
broker's loop thread."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.gateway.service import Device2Service
from broker.mqtt.framing import Framer
from broker.mqtt.packets import Pingreq, Pingresp, Puback, Publish
from tests.certs import DAY, Issued, ServiceViews, issue, now
from tests.conftest import RunningBroker, make_config, start_gateway
from tests.rawclient import Closed, RawClient, provision_mqtt

OTHER = "conn2"  # a second connector, selected by SNI


class TlsClient(RawClient):
    """``RawClient`` over a stdlib TLS socket."""

    def __init__(self, address: tuple[str, int], ctx: ssl.SSLContext, server_name: str,
                 timeout: float = 5.0, session: ssl.SSLSession | None = None) -> None:
        raw = socket.create_connection(address, timeout=timeout)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = ctx.wrap_socket(raw, server_hostname=server_name, session=session)
        except BaseException:
            raw.close()
            raise
        self.timeout = timeout
        self.framer = Framer(256 * 1024 * 1024)
        self.pending = []

    def recv(self, timeout: float | None = None) -> Any:
        try:
            return super().recv(timeout)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError):
            raise Closed() from None


@dataclass
class Gateway(ServiceViews):
    running: RunningBroker
    service: Device2Service
    cid: str
    data: Path
    files: Path

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.running.call(fn)

    @property
    def tls_address(self) -> tuple[str, int]:
        return self.running.server.addresses["mqtt_tls"]

    def context(self, cert: Issued | None = None, *chain: Issued) -> ssl.SSLContext:
        """A client context that checks the server's self-signed certificate and presents
        ``cert`` (then ``chain``) if given."""
        ctx = ssl.create_default_context(cafile=str(self.data / "tls" / "server.crt"))
        if cert is not None:
            name = f"c{len(list(self.files.iterdir()))}"
            ctx.load_cert_chain(*map(str, cert.write(self.files, name, *chain)))
        return ctx

    def tls(self, cert: Issued | None = None, *chain: Issued,
            sni: str | None = None) -> TlsClient:
        """A TLS connection; SNI ``<default connector>.m2.localhost`` unless given."""
        return TlsClient(self.tls_address, self.context(cert, *chain),
                         sni or f"{self.cid}.m2.localhost")


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    config = make_config(tmp_path, allow_anonymous=False)
    config.listeners.mqtt_tls = "127.0.0.1:0"
    running, gateway, stop = start_gateway(config)
    files = tmp_path / "certs"
    files.mkdir()
    g = Gateway(running, gateway.service, gateway.connector, Path(config.server.data), files)
    for cid in (g.cid, OTHER):
        if cid == OTHER:
            g.call(lambda: g.service.create_connector(connector_id=OTHER, name="second"))
        g.call(lambda c=cid: g.service.addGatewayResource(connector_id=c, alias="temp",
                                                           format="number"))
    g.settings(provisioning={"auth_type": "certificate"})
    try:
        yield g
    finally:
        stop()


def round_trip(client: RawClient) -> None:
    """A PINGREQ answered: everything the broker did for earlier packets is done."""
    client.send(Pingreq())
    assert client.recv() == Pingresp()


# -- certificate mode, pinned ---------------------------------------------------------------------

def test_first_connect_provisions_then_the_device_writes(gw: Gateway) -> None:
    """§3.4: a certificate CONNECT (no username/password) provisions the CN and connects."""
    cert = issue("dev1")
    with gw.tls(cert) as d:
        d.connect()
        d.publish("$resource/temp", b"21.5", qos=1, packet_id=1)
        d.expect(Puback(1))
        round_trip(d)
        assert gw.running.broker.clients.get(f"{gw.cid}.dev1") is not None
    record = gw.identity("dev1")
    assert (record["status"], record["auth"]) == ("provisioned", {"type": "certificate"})
    assert record["devmode"] is False  # §2.2: TLS is not the devmode endpoint
    assert record["state"]["temp"]["reported"] == 21.5
    events = gw.call(lambda: [e["type"] for e in gw.service.getLogs(type="event")])
    assert events[:2] == ["provision", "connect"]
    with gw.tls(cert) as d:  # the pinned certificate connects again
        d.connect()
        round_trip(d)


def test_another_certificate_with_the_same_cn_is_refused(gw: Gateway) -> None:
    with gw.tls(issue("dev1")) as d:
        d.connect()
    with gw.tls(issue("dev1")) as d:
        d.connect(expect_rc=4)  # §5.1: bad credentials; clients stop retrying
        d.expect_closed()
    assert gw.debug().count(("bad_credentials", "dev1")) == 1  # logged once


def test_a_locked_device_is_closed_without_connack(gw: Gateway) -> None:
    cert = issue("dev1")
    with gw.tls(cert) as d:
        d.connect()
    gw.call(lambda: gw.service.updateIdentity(identity="dev1", locked=True))
    with gw.tls(cert) as d:
        d.send(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")  # CONNECT, empty client id
        d.expect_closed()
    assert ("locked", "dev1") in gw.debug()


def test_refusals_of_the_provisioning_decision(gw: Gateway) -> None:
    gw.settings(provisioning={"presenter_identity": False})
    with gw.tls(issue("stranger")) as d:
        d.connect(expect_rc=5)
        d.expect_closed()
    assert ("presenter_identity_disabled", "stranger") in gw.debug()
    gw.call(lambda: gw.service.addIdentity(identity="listed"))
    with gw.tls(issue("listed")) as d:  # whitelisted: provisions
        d.connect()
    assert gw.identity("listed")["status"] == "provisioned"


def test_no_cn_is_refused(gw: Gateway) -> None:
    with gw.tls(issue(None)) as d:
        d.connect(expect_rc=5)
        d.expect_closed()
    assert ("invalid_identity", None) in gw.debug()


def test_without_a_certificate_it_is_a_provisioning_session(gw: Gateway) -> None:
    """No credentials and no certificate: the provisioning session of §3.4; in certificate
    mode its $provision has no certificate to pin, so it is refused and closed."""
    with gw.tls() as d:
        d.connect()
        d.publish("$provision/dev1", b"", qos=1, packet_id=1)
        d.expect_closed()
    assert ("bad_credentials", "dev1") in gw.debug()


def test_a_device_re_provisions_over_its_connection(gw: Gateway) -> None:
    """§3.2 step 6: the connection's certificate is the current credential."""
    with gw.tls(issue("dev1")) as d:
        d.connect()
        d.publish("$provision/dev1", b"", qos=1, packet_id=1)
        d.expect(Puback(1))
        reply = d.recv()
        assert isinstance(reply, Publish) and (reply.topic, reply.payload) == (
            "$provision/dev1", b"")


def test_token_mode_with_a_client_certificate_stays_a_provisioning_session(
        gw: Gateway) -> None:
    gw.settings(provisioning={"auth_type": "token"})
    with gw.tls(issue("dev1")) as d:
        d.connect()
        d.publish("$provision/dev1", b"", qos=1, packet_id=1)
        d.expect(Puback(1))
        reply = d.recv()
        assert isinstance(reply, Publish) and len(reply.payload) == 40
    assert gw.identity("dev1")["auth"] == {"type": "token"}


# -- certificate mode with a client CA ------------------------------------------------------------

@pytest.fixture
def pki(gw: Gateway) -> tuple[Issued, Issued]:
    ca = issue("Device CA", ca=True)
    intermediate = issue("Device intermediate", ca, ca=True)
    gw.settings(pki={"vendor": {"name": "test"}, "client_ca": ca.pem})
    return ca, intermediate


def test_chain_with_its_intermediate(gw: Gateway, pki: tuple[Issued, Issued]) -> None:
    ca, intermediate = pki
    with gw.tls(issue("dev1", intermediate), intermediate) as d:
        d.connect()
        round_trip(d)
    # a certificate re-issued by the CA connects without re-provisioning
    with gw.tls(issue("dev1", ca)) as d:
        d.connect()
        round_trip(d)
    provisions = gw.call(lambda: [e for e in gw.service.getLogs(type="event")
                                  if e["type"] == "provision"])
    assert len(provisions) == 1


def test_a_reconnect_offering_its_old_tls_session_sends_its_chain_again(
        gw: Gateway, pki: tuple[Issued, Issued]) -> None:
    """A resumed TLS session would keep the leaf but not the intermediates the client sent:
    the server does not resume, so a reconnecting device's chain verifies every time."""
    _, intermediate = pki
    ctx = gw.context(issue("dev1", intermediate), intermediate)
    sni = f"{gw.cid}.m2.localhost"
    with TlsClient(gw.tls_address, ctx, sni) as first:
        first.connect()
        round_trip(first)  # TLS 1.3: a session ticket, if any, has arrived by now
        session = first.sock.session  # type: ignore[attr-defined]
    with TlsClient(gw.tls_address, ctx, sni, session=session) as again:
        assert not again.sock.session_reused  # type: ignore[attr-defined]
        again.connect()
        round_trip(again)


def test_missing_intermediate_is_refused(gw: Gateway, pki: tuple[Issued, Issued]) -> None:
    _, intermediate = pki
    with gw.tls(issue("dev1", intermediate)) as d:
        d.connect(expect_rc=4)
        d.expect_closed()
    assert ("bad_credentials", "dev1") in gw.debug()
    assert gw.call(lambda: gw.service.countIdentities()) == {"total": 0}


def test_certificate_of_another_ca_is_refused(gw: Gateway, pki: tuple[Issued, Issued]) -> None:
    with gw.tls(issue("dev1", issue("Device CA", ca=True))) as d:
        d.connect(expect_rc=4)
        d.expect_closed()


def test_expired_certificate_is_refused(gw: Gateway, pki: tuple[Issued, Issued]) -> None:
    ca, _ = pki
    expired = issue("dev1", ca, not_before=now() - 9 * DAY, not_after=now() - DAY)
    with gw.tls(expired) as d:
        d.connect(expect_rc=5)
        d.expect_closed()
    assert ("expired", "dev1") in gw.debug()


# -- SNI connector selection ----------------------------------------------------------------------

def test_sni_selects_the_connector(gw: Gateway) -> None:
    gw.settings(cid=OTHER, provisioning={"auth_type": "certificate"})
    for sni in (f"{OTHER}.m2.localhost", f"{OTHER.upper()}.devmode-m2.localhost"):
        with gw.tls(issue("dev1"), sni=sni) as d:
            d.connect()
            round_trip(d)
            assert gw.running.broker.clients.get(f"{OTHER}.dev1") is not None
        gw.call(lambda: gw.service.removeIdentity(identity="dev1", connector_id=OTHER))
    with gw.tls(issue("dev1"), sni=f"{OTHER}.m2.localhost") as d:
        d.connect()
    assert gw.identity("dev1", OTHER)["status"] == "provisioned"
    assert gw.call(lambda: gw.service.countIdentities()) == {"total": 0}  # not the default's


def test_sni_naming_no_connector_and_other_names(gw: Gateway) -> None:
    with gw.tls(issue("dev1"), sni="nosuch.m2.localhost") as d:
        d.connect(expect_rc=5)
        d.expect_closed()
    assert gw.debug().count(("missing_sni", None)) == 1  # once, in the default's log
    # a name that names no connector (the server's own name): the default connector
    with gw.tls(issue("dev1"), sni="localhost") as d:
        d.connect()
    assert gw.identity("dev1")["status"] == "provisioned"


def test_tokens_are_per_connector(gw: Gateway) -> None:
    """Token devices over TLS: provisioned and authenticated on the connector of their SNI."""
    sni = f"{OTHER}.m2.localhost"
    with gw.tls(sni=sni) as d:
        d.connect()
        d.publish("$provision/dev1", b"", qos=1, packet_id=1)
        d.expect(Puback(1))
        token = d.recv().payload  # type: ignore[attr-defined]
    with gw.tls(sni=sni) as d:
        d.connect(username="", password=token)
        round_trip(d)
        assert gw.running.broker.clients.get(f"{OTHER}.dev1") is not None
    with gw.tls() as d:  # the default connector does not know it
        d.connect(username="", password=token, expect_rc=4)


def test_device_client_ids_of_every_connector_are_reserved(gw: Gateway) -> None:
    with gw.tls() as d:
        d.connect(client_id=f"{OTHER}.dev1", expect_rc=2)  # identifier rejected
    with gw.tls() as d:
        d.connect(client_id="nosuch.dev1")  # not a connector: an ordinary client id


def test_plain_listener_devices_are_devmode(gw: Gateway) -> None:
    gw.settings(provisioning={"auth_type": "token"})
    token = provision_mqtt(gw.running.host, gw.running.port, "dev1")
    with RawClient(gw.running.host, gw.running.port) as d:
        d.connect(username="", password=token.encode())
        round_trip(d)
    assert gw.identity("dev1")["devmode"] is True
    with gw.tls() as d:
        d.connect(username="", password=token.encode())
        round_trip(d)
    assert gw.identity("dev1")["devmode"] is False


def test_tls_failures_go_to_the_log_of_the_connector_the_sni_names(gw: Gateway) -> None:
    """§8.2 pre-authentication diagnostics: a handshake refused (no ALPN protocol in common)
    after the SNI was read is logged by the connector it names."""
    ctx = gw.context()
    ctx.set_alpn_protocols(["h2"])
    with pytest.raises(ssl.SSLError):
        TlsClient(gw.tls_address, ctx, f"{OTHER}.m2.localhost")
    gw.running.wait(lambda: gw.service.getLogs(type="debug", connector_id=OTHER))
    entry = gw.call(lambda: gw.service.getLogs(type="debug", connector_id=OTHER))[-1]
    assert (entry["type"], entry["ip"]) == ("tls_error", "127.0.0.1")
    assert gw.debug() == []  # not the default connector's
