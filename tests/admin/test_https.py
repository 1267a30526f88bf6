"""The device HTTP API over TLS (product.md §2, connector-spec §6): on the HTTPS listener and
over ALPN ``http/1.1`` on the MQTT TLS port, one application behind both (and the same service
as MQTT). In process: a gateway broker with both TLS listeners on loopback ports and the
sidecar started by ``admin.site.admin_hook``, as ``fleetgate serve`` does; then ``fleetgate
serve`` itself as a subprocess. Clients: the stdlib ``ssl`` module and ``http.client``.
"""

from __future__ import annotations

import asyncio
import datetime
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from admin.device_http.context import POLLS
from admin.site import TlsSite, admin_hook
from broker.mqtt.framing import Framer
from broker.mqtt.packets import Puback, Publish
from broker.transport.tls import TLS_INFO, TlsListener, make_context
from tests.conftest import RunningBroker, make_config, start_gateway
from tests.rawclient import Closed, RawClient

ROOT = Path(__file__).resolve().parents[2]
FORM = "application/x-www-form-urlencoded; charset=utf-8"
WRITE = "/onep:v1/stack/alias"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    alpn: str | None


def tls_request(port: int, cafile: Path, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None, *, sni: str | None = None,
                alpn: list[str] | None = None, cert: tuple[Path, Path] | None = None,
                timeout: float = 10.0) -> Answer:
    """One HTTP/1.1 request over a fresh TLS connection to 127.0.0.1:``port``, checking the
    server's certificate (``sni``: the name sent and checked; None: the IP address)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with ctx.wrap_socket(raw, server_hostname=sni or "127.0.0.1") as sock:
        head = {"Host": sni or f"127.0.0.1:{port}", "Connection": "close",
                "Content-Length": str(len(body)), **(headers or {})}
        request = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
        sock.sendall(request.encode() + body)
        response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
        response.begin()
        data = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                      data, sock.selected_alpn_protocol())


@dataclass
class Sidecar:
    running: RunningBroker
    cid: str
    service: Any
    data: Path

    @property
    def https(self) -> int:
        return self.running.server.addresses["https"][1]

    @property
    def mqtt_tls(self) -> int:
        return self.running.server.addresses["mqtt_tls"][1]

    @property
    def cafile(self) -> Path:
        return self.data / "tls" / "server.crt"

    def request(self, port: int, method: str, path: str, body: bytes = b"", *,
                token: str | None = None, alpn: list[str] | None = None,
                **kw: Any) -> Answer:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["X-Exosite-CIK"] = token
        if body:
            headers.setdefault("Content-Type", FORM)
        return tls_request(port, self.cafile, method, path, body, headers, alpn=alpn, **kw)

    def op(self, operation: str, **args: Any) -> Any:
        return self.running.call(lambda: self.service.call(self.cid, operation, args))


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    """A gateway with both TLS listeners, the sidecar as ``fleetgate serve`` starts it."""
    config = make_config(tmp_path, allow_anonymous=False)
    config.listeners.mqtt_tls = "127.0.0.1:0"
    config.listeners.https = "127.0.0.1:0"
    config.listeners.admin = "127.0.0.1:0"
    config.listeners.http = "127.0.0.1:0"
    config.server.plain_http = True
    running, gateway, stop = start_gateway(config)
    try:
        cleanup = asyncio.run_coroutine_threadsafe(
            admin_hook(config)(running.server), running.loop).result(15)
        assert cleanup is not None
        try:
            yield Sidecar(running, gateway.connector, gateway.service,
                          Path(config.server.data))
        finally:
            asyncio.run_coroutine_threadsafe(cleanup(), running.loop).result(15)
    finally:
        stop()


def mqtt_client(sock: ssl.SSLSocket) -> RawClient:
    """``RawClient`` (raw MQTT packets) over a TLS socket."""
    client = RawClient.__new__(RawClient)
    client.sock, client.timeout, client.pending = sock, 5.0, []
    client.framer = Framer(1 << 20)
    return client


def activate(s: Sidecar, port: int, identity: str, **kw: Any) -> str:
    answer = s.request(port, "POST", "/provision/activate", f"id={identity}".encode(), **kw)
    assert answer.status == 200, (answer.status, answer.body)
    token = answer.body.decode()
    assert len(token) == 40
    return token


# -- the device API over HTTPS and over ALPN on the MQTT port ------------------------------------

def test_device_api_over_https(sidecar: Sidecar) -> None:
    s = sidecar
    s.op("addGatewayResource", alias="temp", format="number")
    answer = s.request(s.https, "GET", "/timestamp")
    assert answer.status == 200 and abs(int(answer.body) - time.time()) < 5
    assert answer.alpn is None  # a client without ALPN gets HTTP on the HTTPS port
    token = activate(s, s.https, "https-1")
    assert s.request(s.https, "POST", WRITE, b"temp=21.5", token=token).status == 204
    read = s.request(s.https, "GET", f"{WRITE}?temp", token=token, alpn=["h2", "http/1.1"])
    assert (read.status, read.body, read.alpn) == (200, b"temp=21.5", "http/1.1")
    assert s.request(s.https, "GET", f"{WRITE}?temp", token="x" * 40).status == 401


def test_writes_over_plain_http_flag_the_device_devmode(sidecar: Sidecar) -> None:
    """§2.2: a device that came through the devmode endpoint (plain HTTP) is flagged
    ``devmode``; its next write over HTTPS clears the flag."""
    s = sidecar
    s.op("addGatewayResource", alias="temp", format="number")
    token = activate(s, s.https, "both-1")
    plain = http.client.HTTPConnection("127.0.0.1", s.running.server.addresses["http"][1],
                                       timeout=10)
    try:
        plain.request("POST", WRITE, body=b"temp=1",
                      headers={"X-Exosite-CIK": token, "Content-Type": FORM})
        assert plain.getresponse().status == 204
    finally:
        plain.close()
    assert s.op("getIdentity", identity="both-1")["devmode"] is True
    assert s.op("listIdentities", status="devmode")["total"] == 1
    assert s.request(s.https, "POST", WRITE, b"temp=2", token=token).status == 204
    assert s.op("getIdentity", identity="both-1")["devmode"] is False


def test_device_api_over_alpn_http_on_the_mqtt_tls_port(sidecar: Sidecar) -> None:
    """Dual protocol (connector-spec §2.1): the same application as on the HTTPS port."""
    s = sidecar
    s.op("addGatewayResource", alias="temp", format="number")
    token = activate(s, s.mqtt_tls, "dual-1", alpn=["http/1.1"])
    write = s.request(s.mqtt_tls, "POST", WRITE, b"temp=7", token=token, alpn=["http/1.1"])
    assert (write.status, write.alpn) == (204, "http/1.1")
    # Written over the MQTT port's HTTP, read over HTTPS: one service.
    assert s.request(s.https, "GET", f"{WRITE}?temp", token=token).body == b"temp=7"
    # MQTT still answers on the same port, by ALPN or without.
    ctx = ssl.create_default_context(cafile=str(s.cafile))
    ctx.set_alpn_protocols(["mqtt"])
    raw = socket.create_connection(("127.0.0.1", s.mqtt_tls), timeout=5)
    with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        assert sock.selected_alpn_protocol() == "mqtt"
        client = mqtt_client(sock)
        client.connect(username="", password=token.encode())  # a token device (§5.1)
        client.publish("$resource/temp", b"8", 1, packet_id=1)
        client.expect(Puback(1))
    assert s.request(s.https, "GET", f"{WRITE}?temp", token=token).body == b"temp=8"


def test_a_set_value_reaches_a_long_poll_over_https(sidecar: Sidecar) -> None:
    """A request waiting inside the TLS wrapper is answered when the cloud sets a value."""
    s = sidecar
    s.op("addGatewayResource", alias="cmd", format="string", settable=True)
    token = activate(s, s.https, "poller")
    answers: list[Answer] = []
    poller = threading.Thread(target=lambda: answers.append(s.request(
        s.https, "GET", f"{WRITE}?cmd", token=token, headers={"Request-Timeout": "20000"},
        timeout=30)))
    poller.start()
    try:
        polls = s.running.server.device_app[POLLS]
        s.running.wait(lambda: polls.waiting)
        s.op("setIdentityState", identity="poller", cmd="go")
    finally:
        poller.join(30)
    assert (answers[0].status, answers[0].body) == (200, b"cmd=go")


def test_a_one_mebibyte_value_both_ways_over_https(sidecar: Sidecar) -> None:
    s = sidecar
    s.op("addGatewayResource", alias="blob", format="string")
    token = activate(s, s.https, "big")
    value = os.urandom(512 * 1024).hex()  # exactly the 1 MiB value limit (§5.5)
    write = s.request(s.https, "POST", WRITE, f"blob={value}".encode(), token=token)
    assert write.status == 204, write.body
    read = s.request(s.https, "GET", f"{WRITE}?blob", token=token)
    assert read.status == 200 and read.body == f"blob={value}".encode()


def test_a_failed_https_handshake_is_in_the_debug_log(sidecar: Sidecar) -> None:
    s = sidecar
    with socket.create_connection(("127.0.0.1", s.https), timeout=5) as sock:
        sock.sendall(b"GET /timestamp HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to HTTPS
        assert sock.recv(100) == b""

    def logged() -> Any:
        ring = s.service.logs[s.cid].ring("debug")
        return [e for e in ring if e["type"] == "tls_error"]
    [entry] = s.running.wait(logged)
    assert entry["ip"] == "127.0.0.1" and entry["protocol"] == "http" and entry["detail"]


def test_alpn_http_is_withdrawn_when_the_sidecar_stops(tmp_path: Path) -> None:
    config = make_config(tmp_path, allow_anonymous=False)
    config.listeners.mqtt_tls = "127.0.0.1:0"
    config.listeners.https = ""
    config.listeners.admin = ""
    running, gateway, stop = start_gateway(config)
    try:
        cleanup = asyncio.run_coroutine_threadsafe(
            admin_hook(config)(running.server), running.loop).result(15)
        assert cleanup is not None
        port = running.server.addresses["mqtt_tls"][1]
        cafile = Path(config.server.data) / "tls" / "server.crt"
        answer = tls_request(port, cafile, "GET", "/timestamp", alpn=["http/1.1"])
        assert answer.status == 200
        asyncio.run_coroutine_threadsafe(cleanup(), running.loop).result(15)
        assert "http/1.1" not in running.server.alpn_protocols
        with pytest.raises(ssl.SSLError):
            tls_request(port, cafile, "GET", "/timestamp", alpn=["http/1.1"])
    finally:
        stop()


# -- what a handler sees: TLS_INFO and request.secure, through TlsSite -------------------------

def _client_certificate(directory: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "http-device")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    crt, pem = directory / "device.crt", directory / "device.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem, cert.public_bytes(serialization.Encoding.DER)


def test_handlers_see_the_tls_session(sidecar: Sidecar, tmp_path: Path) -> None:
    """A TlsSite serving a small aiohttp app: the handler reads TLS_INFO from its transport
    (SNI, the unverified client certificate) and aiohttp calls the request secure."""
    s = sidecar

    async def handler(request: web.Request) -> web.Response:
        info = request.transport.get_extra_info(TLS_INFO) if request.transport else None
        return web.json_response({
            "secure": request.secure, "scheme": request.scheme,
            "server_name": info.server_name if info else None,
            "certificate": info.peer_certificate.hex() if info and info.peer_certificate
            else None,
            "remote": request.remote})

    async def start() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_get("/who", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        context = make_context(*s.running.server.certificate())
        site = TlsSite(runner, "127.0.0.1", 0,
                       lambda server: TlsListener(context, {"http/1.1": server}, 5.0))
        await site.start()
        assert site._server is not None
        return runner, site._server.sockets[0].getsockname()[1]

    runner, port = asyncio.run_coroutine_threadsafe(start(), s.running.loop).result(10)
    try:
        crt, key, der = _client_certificate(tmp_path)
        answer = tls_request(port, s.cafile, "GET", "/who", sni="Dev.M2.localhost",
                             cert=(crt, key))
        seen = json.loads(answer.body)
        assert seen == {"secure": True, "scheme": "https", "server_name": "dev.m2.localhost",
                        "certificate": der.hex(), "remote": "127.0.0.1"}
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), s.running.loop).result(10)


# -- fleetgate serve -----------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_opens_both_tls_listeners(tmp_path: Path) -> None:
    """``fleetgate serve`` on loopback TLS addresses: health only once every listener is up,
    the ready line lists them, HTTPS and ALPN answer, MQTT over TLS works, SIGTERM is clean."""
    mqtt_tls, https, admin = _free_port(), _free_port(), _free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--data", str(data), "--mqtt-tls",
         f"127.0.0.1:{mqtt_tls}", "--https", f"127.0.0.1:{https}", "--admin",
         f"127.0.0.1:{admin}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/api/v1/health",
                                            timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "not healthy in time"
                time.sleep(0.05)
        # Healthy means every listener is up: both TLS ports accept at once.
        cafile = data / "tls" / "server.crt"
        assert tls_request(https, cafile, "GET", "/timestamp").status == 200
        over_alpn = tls_request(mqtt_tls, cafile, "GET", "/timestamp", alpn=["http/1.1"])
        assert (over_alpn.status, over_alpn.alpn) == (200, "http/1.1")
        ctx = ssl.create_default_context(cafile=str(cafile))
        raw = socket.create_connection(("127.0.0.1", mqtt_tls), timeout=5)
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            client = mqtt_client(sock)
            client.connect()  # no credentials: a provisioning session (connector-spec §3.4)
            client.publish("$provision/serve-1", b"", 1, packet_id=1)
            client.expect(Puback(1))
            reply = client.recv()
            assert isinstance(reply, Publish) and len(reply.payload) == 40
            proc.send_signal(signal.SIGTERM)
            with pytest.raises((Closed, ssl.SSLError, ConnectionError)):
                client.recv(15)  # closed by the graceful stop
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    text = out.decode()
    assert f"mqtt_tls 127.0.0.1:{mqtt_tls}" in text and f"https 127.0.0.1:{https}" in text
    assert (data / "tls" / "server.key").stat().st_mode & 0o077 == 0
