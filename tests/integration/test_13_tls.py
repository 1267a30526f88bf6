"""MQTT over TLS (listeners.mqtt_tls, broker/transport/tls.py): the self-signed server
certificate, SNI, client certificates accepted unverified and handed to the hooks, ALPN (mqtt,
none, http/1.1 to a registered protocol, anything else refused), TLS failures in the debug hook
with the client's address, the handshake deadline, QoS 1, back-pressure and 1 MiB payloads
through the wrapper, and the minimum TLS version.

Clients are the stdlib ``ssl`` module (raw MQTT bytes, ``tests.rawclient``) and paho-mqtt's
``tls_set``; the broker runs on loopback ports chosen by the OS.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import queue
import socket
import ssl
import stat
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from broker.config import Config, ConfigError, load
from broker.core.connection import Connection
from broker.mqtt import codec
from broker.mqtt.framing import Framer
from broker.mqtt.packets import Connect, Puback, Publish
from broker.security.policy import PlainPolicy
from broker.transport.tls import TLS_INFO, TlsInfo, TlsSetupError
from tests.conftest import RunningBroker, make_config, start_broker, start_gateway
from tests.rawclient import Closed, RawClient

CN = "abc123.m2.localhost"


# -- helpers -------------------------------------------------------------------------------------

class Recorder(PlainPolicy):
    """The plain-broker policy that also keeps what reaches ``on_debug``: (reason, client IP,
    detail, attrs["tls"])."""

    def __init__(self, config: Config) -> None:
        super().__init__(config.mqtt)
        self.debug: list[tuple[str, str, str, TlsInfo | None]] = []

    def on_debug(self, client: Connection | None, reason: str, detail: str) -> None:
        if client is not None:
            self.debug.append((reason, client.peer[0], detail, client.attrs.get("tls")))


@dataclass
class Tls:
    running: RunningBroker
    hooks: Recorder
    data: Path

    @property
    def address(self) -> tuple[str, int]:
        return self.running.server.addresses["mqtt_tls"]

    @property
    def cafile(self) -> str:
        return str(self.data / "tls" / "server.crt")

    def context(self, alpn: list[str] | None = None, *, maximum: ssl.TLSVersion | None = None,
                cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        """A client context that checks the server against its self-signed certificate."""
        ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default: the cert passes it
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
        if maximum is not None:
            ctx.maximum_version = maximum
        if cert is not None:
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        return ctx

    def client(self, ctx: ssl.SSLContext | None = None, server_hostname: str = CN,
               rcvbuf: int | None = None) -> TlsClient:
        return TlsClient.wrap(self.address, ctx or self.context(), server_hostname, rcvbuf)

    def wait_debug(self, reason: str, timeout: float = 5.0) -> tuple[str, str, str, Any]:
        def found() -> Any:
            return next((d for d in self.hooks.debug if d[0] == reason), None)
        return self.running.wait(found, timeout)  # type: ignore[no-any-return]


class TlsClient(RawClient):
    """``RawClient`` over a stdlib TLS socket (``wrap``: connect and shake hands)."""

    def __init__(self, sock: ssl.SSLSocket, timeout: float = 5.0) -> None:
        self.sock = sock
        self.timeout = timeout
        self.framer = Framer(256 * 1024 * 1024)
        self.pending = []

    @classmethod
    def wrap(cls, address: tuple[str, int], ctx: ssl.SSLContext, server_hostname: str,
             rcvbuf: int | None = None, timeout: float = 5.0) -> TlsClient:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connecting, to take effect
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(timeout)
        try:
            raw.connect(address)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return cls(ctx.wrap_socket(raw, server_hostname=server_hostname), timeout)
        except BaseException:
            raw.close()
            raise

    @property
    def tls(self) -> ssl.SSLSocket:
        assert isinstance(self.sock, ssl.SSLSocket)
        return self.sock

    def recv(self, timeout: float | None = None) -> Any:
        try:
            return super().recv(timeout)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError):
            raise Closed() from None


def tls_broker(tmp_path: Path, *, tls: dict[str, Any] | None = None,
               **mqtt: Any) -> tuple[Tls, Callable[[], None]]:
    config = make_config(tmp_path, **mqtt)
    config.listeners.mqtt_tls = "127.0.0.1:0"
    for key, value in (tls or {}).items():
        setattr(config.tls, key, value)
    hooks = Recorder(config)
    running, stop = start_broker(config, hooks=hooks)
    return Tls(running, hooks, Path(config.server.data)), stop


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[Tls]:
    broker, stop = tls_broker(tmp_path)
    yield broker
    stop()


def client_certificate(directory: Path, cn: str = "device-7", *,
                       issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
                       ca: bool = False, name: str = "client",
                       ) -> tuple[Path, Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``cn`` (self-signed, or signed by ``issuer``), written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    signer_cert, signer_key = issuer if issuer else (None, key)
    cert = (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(signer_cert.subject if signer_cert else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer_key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert, key


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def the_tls_connection(tls: Tls, client_id: str) -> Connection:
    def find() -> Any:
        return next((c for c in tls.running.broker.connections if c.client_id == client_id),
                    None)
    return tls.running.wait(find)  # type: ignore[no-any-return]


# -- the server certificate ----------------------------------------------------------------------

def test_the_self_signed_certificate_is_made_once_and_names_the_device_hosts(
        tmp_path: Path) -> None:
    tls, stop = tls_broker(tmp_path)
    crt, key = tls.data / "tls" / "server.crt", tls.data / "tls" / "server.key"
    try:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(san.get_values_for_type(x509.DNSName)) == {
            "localhost", "*.m2.localhost", "*.devmode-m2.localhost"}
        assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert lifetime > datetime.timedelta(days=3600)
        # The names a client checks: a connector's FQDN, localhost, the loopback address.
        for name in (CN, "xyz.devmode-m2.localhost", "localhost", "127.0.0.1"):
            with tls.client(server_hostname=name) as client:
                client.connect("c")
        with pytest.raises(ssl.SSLCertVerificationError):
            tls.client(server_hostname="other.example")
    finally:
        stop()
    made = crt.read_bytes(), key.read_bytes()
    tls, stop = tls_broker(tmp_path)  # the same data directory: reused, not made again
    try:
        assert (crt.read_bytes(), key.read_bytes()) == made
        with tls.client() as client:
            client.connect("again")
    finally:
        stop()


def test_a_configured_certificate_is_served_instead(tmp_path: Path) -> None:
    """tls.cert/tls.key: served as given; nothing is made in <data>/tls."""
    ca_crt, ca_key, ca, ca_private = client_certificate(tmp_path, "Test CA", ca=True, name="ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker.test")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("broker.test")]), False)
            .sign(ca_private, hashes.SHA256()))
    (tmp_path / "srv.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "srv.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    tls, stop = tls_broker(tmp_path, tls={"cert": str(tmp_path / "srv.crt"),
                                          "key": str(tmp_path / "srv.key")})
    try:
        ctx = ssl.create_default_context(cafile=str(ca_crt))
        with TlsClient.wrap(tls.address, ctx, "broker.test") as client:
            client.connect("c")
        assert not (tls.data / "tls").exists()
    finally:
        stop()


# -- raw MQTT and paho over TLS ------------------------------------------------------------------

def test_raw_mqtt_over_tls_with_sni_and_no_client_certificate(tls: Tls) -> None:
    """SNI is lower-cased into attrs["tls"]; a client without a certificate is fine; the
    connection is ``mqtts`` (the plain listener's are ``mqtt`` and have no "tls" key)."""
    with tls.client(server_hostname="ABC123.M2.Localhost") as sub, \
            RawClient(*tls.running.server.addresses["mqtt"]) as plain:
        sub.connect("sub")
        plain.connect("plain")
        assert sub.subscribe("t/#", 1) == [1]
        conn = the_tls_connection(tls, "sub")
        info = conn.attrs["tls"]
        assert info == TlsInfo("abc123.m2.localhost", None, (), None)
        assert conn.protocol == "mqtts"
        other = the_tls_connection(tls, "plain")
        assert "tls" not in other.attrs and other.protocol == "mqtt"
        plain.publish("t/1", b"through TLS", 1, packet_id=5)
        plain.expect(Puback(5))
        got = sub.recv()
        assert isinstance(got, Publish) and (got.topic, got.payload) == ("t/1", b"through TLS")
        sub.send(Puback(got.packet_id))


def test_without_sni_the_server_name_is_none(tls: Tls) -> None:
    ctx = tls.context()
    ctx.check_hostname = False  # an IP address: no SNI is sent for it
    with tls.client(ctx, server_hostname="127.0.0.1") as client:
        client.connect("ip")
        assert the_tls_connection(tls, "ip").attrs["tls"].server_name is None


def test_a_self_signed_client_certificate_reaches_the_hooks(tls: Tls, tmp_path: Path) -> None:
    """The TLS layer accepts a certificate nobody could verify (pinning, connector-spec §2.4);
    the DER of what the client sent is in attrs["tls"]."""
    crt, key, cert, _ = client_certificate(tmp_path, "device-7")
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        client_id = f"cert-{version.name}"
        with tls.client(tls.context(maximum=version, cert=(crt, key))) as client:
            client.connect(client_id)
            info = the_tls_connection(tls, client_id).attrs["tls"]
            assert info.peer_certificate == der(cert)
            assert info.chain == (der(cert),)
            assert client.tls.version() == version.name.replace("v1_", "v1.")


def test_the_chain_the_client_sent_is_kept_leaf_first(tls: Tls, tmp_path: Path) -> None:
    root_crt, _, root, root_key = client_certificate(tmp_path, "Root", ca=True, name="root")
    _, _, inter, inter_key = client_certificate(tmp_path, "Intermediate", ca=True,
                                                issuer=(root, root_key), name="inter")
    crt, key, leaf, _ = client_certificate(tmp_path, "device-8", issuer=(inter, inter_key))
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(crt.read_bytes() + inter.public_bytes(serialization.Encoding.PEM))
    with tls.client(tls.context(cert=(bundle, key))) as client:
        client.connect("chained")
        info = the_tls_connection(tls, "chained").attrs["tls"]
        assert info.peer_certificate == der(leaf)
        assert info.chain == (der(leaf), der(inter))


def test_paho_over_tls(tls: Tls, tmp_path: Path) -> None:
    """paho-mqtt's tls_set (checking the server certificate), with a client certificate:
    QoS 1 both ways."""
    crt, key, cert, _ = client_certificate(tmp_path, "paho-device")
    connacks: queue.Queue[int] = queue.Queue()
    messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="paho-tls",
                         reconnect_on_failure=False)
    client.tls_set(ca_certs=tls.cafile, certfile=str(crt), keyfile=str(key))
    client.on_connect = lambda c, u, f, reason, p: connacks.put(int(reason.value))
    client.on_message = lambda c, u, message: messages.put(message)
    host, port = tls.address
    client.connect("localhost", port, keepalive=30)
    client.loop_start()
    try:
        assert connacks.get(timeout=5) == 0
        client.subscribe("paho/#", 1)
        info = client.publish("paho/x", b"over tls", 1)
        info.wait_for_publish(5)
        message = messages.get(timeout=5)
        assert (message.topic, message.payload, message.qos) == ("paho/x", b"over tls", 1)
        tls_info = the_tls_connection(tls, "paho-tls").attrs["tls"]
        assert tls_info.peer_certificate == der(cert) and tls_info.server_name == "localhost"
    finally:
        client.disconnect()
        client.loop_stop()


def test_sessions_are_not_resumed_so_every_connection_has_its_chain(
        tls: Tls, tmp_path: Path) -> None:
    """A resumed session would carry the client's leaf certificate but not the intermediates
    it sent (OpenSSL keeps only the leaf): the server does full handshakes, so the gateway
    always gets the whole chain. TLS 1.2 (session ids) and TLS 1.3 (tickets)."""
    _, _, root, root_key = client_certificate(tmp_path, "Root", ca=True, name="root")
    _, _, inter, inter_key = client_certificate(tmp_path, "Intermediate", ca=True,
                                                issuer=(root, root_key), name="inter")
    crt, key, leaf, _ = client_certificate(tmp_path, "device-9", issuer=(inter, inter_key))
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(crt.read_bytes() + inter.public_bytes(serialization.Encoding.PEM))
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = tls.context(maximum=version, cert=(bundle, key))
        with tls.client(ctx) as first:
            first.connect(f"first-{version.name}")
            first.expect_silence(0.1)  # lets the TLS 1.3 tickets arrive
            session = first.tls.session
        assert session is not None
        raw = socket.create_connection(tls.address, timeout=5)
        with TlsClient(ctx.wrap_socket(raw, server_hostname=CN, session=session)) as again:
            assert not again.tls.session_reused
            again.connect(f"again-{version.name}")
            info = the_tls_connection(tls, f"again-{version.name}").attrs["tls"]
            assert info.chain == (der(leaf), der(inter))


# -- ALPN ----------------------------------------------------------------------------------------

class Hello(asyncio.Protocol):
    """A tiny HTTP/1.1 responder, standing for the sidecar's device application."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.info = transport.get_extra_info(TLS_INFO)

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data:
            body = f"hello {self.info.alpn} {self.info.server_name}".encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"  # type: ignore[attr-defined]
                                 b"Connection: close\r\n\r\n%s" % (len(body), body))
            self.transport.close()


def test_alpn_mqtt_none_and_http(tls: Tls) -> None:
    with tls.client(tls.context(["mqtt"])) as client:
        assert client.tls.selected_alpn_protocol() == "mqtt"
        client.connect("alpn-mqtt")
        assert the_tls_connection(tls, "alpn-mqtt").attrs["tls"].alpn == "mqtt"
    with tls.client(tls.context()) as client:
        assert client.tls.selected_alpn_protocol() is None
        client.connect("alpn-none")
    # http/1.1 is not served until something registers it: only mqtt is agreed.
    with pytest.raises(ssl.SSLError, match="NO_APPLICATION_PROTOCOL|no application protocol"):
        tls.client(tls.context(["http/1.1"]))
    assert tls.wait_debug("tls_error")[2].startswith("no ALPN protocol in common")
    tls.running.call(lambda: tls.running.server.alpn_protocols.__setitem__("http/1.1", Hello))
    stats = tls.running.broker.stats
    before = tls.running.call(lambda: stats.connections_total)
    with tls.client(tls.context(["http/1.1"])) as client:
        assert client.tls.selected_alpn_protocol() == "http/1.1"
        client.tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := client.tls.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(
            b"hello http/1.1 abc123.m2.localhost")
    # The HTTP connection was never an MQTT connection.
    assert tls.running.call(lambda: stats.connections_total) == before
    # A client offering both in its order of preference gets its first choice.
    with tls.client(tls.context(["mqtt", "http/1.1"])) as client:
        assert client.tls.selected_alpn_protocol() == "mqtt"
        client.connect("both")


# -- failures ------------------------------------------------------------------------------------

def test_garbage_instead_of_a_client_hello_is_a_tls_error(tls: Tls) -> None:
    with socket.create_connection(tls.address, timeout=5) as sock:
        sock.sendall(codec.encode(Connect("plain", True, 60)))  # MQTT without TLS
        sock.settimeout(5)
        assert sock.recv(100) == b""  # closed: not a TLS record, so not even an alert
    reason, ip, detail, _ = tls.wait_debug("tls_error")
    assert ip == "127.0.0.1" and detail
    assert tls.running.close_reason_count("tls_error") == 1


def test_a_client_that_never_shakes_hands_is_closed_at_the_connect_deadline(
        tmp_path: Path) -> None:
    tls, stop = tls_broker(tmp_path, connect_timeout=1.0)
    try:
        with socket.create_connection(tls.address, timeout=5) as sock:
            started = time.monotonic()
            assert sock.recv(100) == b""  # closed by the server
            waited = time.monotonic() - started
        assert 0.8 < waited < 3.0, waited
        reason, ip, detail, _ = tls.wait_debug("idle_timeout")
        assert ip == "127.0.0.1" and "no TLS handshake" in detail
    finally:
        stop()


def test_the_connect_deadline_counts_from_the_tcp_open(tmp_path: Path) -> None:
    """A slow handshake does not restart the 5 s (here 1.5 s) CONNECT deadline."""
    tls, stop = tls_broker(tmp_path, connect_timeout=1.5)
    try:
        raw = socket.create_connection(tls.address, timeout=5)
        opened = time.monotonic()
        time.sleep(0.8)  # a slow device: the handshake starts late on purpose
        with TlsClient(tls.context().wrap_socket(raw, server_hostname=CN)) as client:
            client.expect_closed(timeout=4)
            assert time.monotonic() - opened < 3.2
        reason, _, detail, info = tls.wait_debug("idle_timeout")
        assert detail == "no CONNECT" and info is not None and info.server_name == CN
    finally:
        stop()


def test_a_hang_up_during_the_handshake_is_ssl_closed(tls: Tls) -> None:
    with socket.create_connection(tls.address, timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello record
    reason, ip, detail, _ = tls.wait_debug("ssl_closed")
    assert ip == "127.0.0.1" and "handshake" in detail


def test_a_bad_record_after_the_handshake_closes_with_tls_error(tls: Tls) -> None:
    """The stdlib's memory-BIO client does the handshake; then a forged application-data
    record (its authentication fails) reaches the MQTT connection as ``tls_error``."""
    ctx = tls.context(maximum=ssl.TLSVersion.TLSv1_2)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=CN)
    with socket.create_connection(tls.address, timeout=5) as sock:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        sock.sendall(outgoing.read())
        obj.write(codec.encode(Connect("good", True, 60)))
        sock.sendall(outgoing.read())
        the_tls_connection(tls, "good")
        sock.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))  # forged record
        sock.settimeout(5)
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
    reason, ip, detail, info = tls.wait_debug("tls_error")
    assert ip == "127.0.0.1" and "bad record mac" in detail.lower() and info is not None


def test_min_version_13_refuses_a_tls12_client(tmp_path: Path) -> None:
    tls, stop = tls_broker(tmp_path, tls={"min_version": "1.3"})
    try:
        with pytest.raises(ssl.SSLError):
            tls.client(tls.context(maximum=ssl.TLSVersion.TLSv1_2))
        assert tls.wait_debug("tls_error")[1] == "127.0.0.1"
        with tls.client(tls.context()) as client:
            assert client.tls.version() == "TLSv1.3"
            client.connect("v13")
    finally:
        stop()


def test_the_default_min_version_12_accepts_tls12(tls: Tls) -> None:
    ctx = tls.context(maximum=ssl.TLSVersion.TLSv1_2)
    with tls.client(ctx) as client:
        assert client.tls.version() == "TLSv1.2"
        client.connect("v12")
    ctx = tls.context()
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        tls.client(ctx)
    assert "protocol" in tls.wait_debug("tls_error")[2]  # refused by the server


def test_tls_failures_reach_the_connectors_debug_log_with_the_ip(tmp_path: Path) -> None:
    """Through the gateway's hooks: a bad handshake lands in the default connector's debug log
    (connector-spec §8.2, filterable by IP)."""
    config = make_config(tmp_path, allow_anonymous=False)
    config.listeners.mqtt_tls = "127.0.0.1:0"
    running, gateway, stop = start_gateway(config)
    try:
        with socket.create_connection(running.server.addresses["mqtt_tls"], timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")
            sock.settimeout(5)
            while sock.recv(100):
                pass

        def logged() -> Any:
            ring = gateway.service.logs[gateway.connector].ring("debug")
            return [e for e in ring if e["type"] == "tls_error"]
        entries = running.wait(logged)
        assert entries[0]["ip"] == "127.0.0.1" and entries[0]["detail"]
    finally:
        stop()


# -- traffic -------------------------------------------------------------------------------------

def test_one_mebibyte_payloads_both_ways(tls: Tls) -> None:
    payload = os.urandom(1024 * 1024)
    with tls.client() as a, tls.client() as b:
        a.connect("a")
        b.connect("b")
        a.subscribe("big/a", 1)
        b.subscribe("big/b", 1)
        for sender, receiver, topic in ((b, a, "big/a"), (a, b, "big/b")):
            sender.publish(topic, payload, 1, packet_id=9)
            got = sender.recv(10)
            assert got == Puback(9), type(got)
            got = receiver.recv(10)
            assert isinstance(got, Publish) and got.topic == topic
            assert got.payload == payload  # 1 MiB, in 64+ TLS records each way
            receiver.send(Puback(got.packet_id))


def test_qos1_stream_and_a_stalled_tls_subscriber(tmp_path: Path) -> None:
    """Back-pressure through the wrapper: a TLS subscriber that stops reading is paused (its
    QoS 0 is dropped and counted) while QoS 1 keeps flowing to a healthy TLS subscriber."""
    tls, stop = tls_broker(tmp_path, write_high_water=4096)
    try:
        with tls.client(rcvbuf=4096) as stalled, tls.client() as healthy, \
                tls.client() as pub:
            stalled.connect("stalled")
            healthy.connect("healthy")
            pub.connect("pub")
            stalled.subscribe("flood/#", 0)  # and never reads again
            healthy.subscribe("ok/#", 1)
            deadline = time.monotonic() + 30
            packet_id = 0
            b = tls.running
            while not b.call(lambda: b.broker.stats.messages_dropped):
                assert time.monotonic() < deadline, "the stalled subscriber was never paused"
                for _ in range(50):
                    pub.publish("flood/x", b"z" * 16384)
                packet_id = packet_id % 65535 + 1
                pub.publish("ok/1", b"%d" % packet_id, 1, packet_id=packet_id)
                pub.expect(Puback(packet_id), timeout=10)
                got = healthy.recv(10)
                assert isinstance(got, Publish) and got.payload == b"%d" % packet_id, got
                healthy.send(Puback(got.packet_id))
            assert b.call(lambda: b.broker.clients["stalled"].paused)
            # 200 QoS 1 messages in a row, each acknowledged and delivered in order.
            for n in range(1, 201):
                pub.publish("ok/seq", b"%d" % n, 1, packet_id=n)
            for n in range(1, 201):
                pub.expect(Puback(n), timeout=10)
            for n in range(1, 201):
                got = healthy.recv(10)
                assert isinstance(got, Publish) and got.payload == b"%d" % n
                healthy.send(Puback(got.packet_id))
    finally:
        stop()


def test_stop_closes_tls_connections_with_close_notify(tmp_path: Path) -> None:
    tls, stop = tls_broker(tmp_path)
    stopped = False
    try:
        with tls.client() as client, socket.create_connection(tls.address, timeout=5) as idle:
            client.connect("bye")
            stop()
            stopped = True
            assert client.tls.recv(10) == b""  # a clean TLS close (close_notify), not a reset
            idle.settimeout(5)
            try:  # the one still in its handshake is dropped too (aborted: maybe a reset)
                assert idle.recv(10) == b""
            except ConnectionResetError:
                pass
    finally:
        if not stopped:
            stop()


# -- settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("tls", "message"), [
    ({"min_version": "1.1"}, "tls.min_version must be 1.2 or 1.3"),
    ({"cert": "server.crt"}, "tls.cert and tls.key go together"),
    ({"handshake_timeout": 0.0}, "tls.handshake_timeout must be positive"),
])
def test_tls_settings_are_checked(tls: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(None, {"tls": tls})


def test_an_unusable_certificate_stops_the_start(tmp_path: Path) -> None:
    """A missing file, or a key that is not the certificate's: one clear error, before any
    listener opens."""
    crt, _, _, _ = client_certificate(tmp_path, "broker.test", name="srv")
    _, other_key, _, _ = client_certificate(tmp_path, "other", name="other")
    for cert, key, message in ((tmp_path / "missing.crt", other_key, "No such file"),
                               (other_key, other_key, "not a PEM certificate"),
                               (crt, crt, "not an unencrypted PEM private key"),
                               (crt, other_key, "is not the key of tls.cert")):
        config = make_config(tmp_path)
        config.listeners.mqtt_tls = "127.0.0.1:0"
        config.tls.cert, config.tls.key = str(cert), str(key)
        with pytest.raises(TlsSetupError, match=message):
            start_broker(config)
