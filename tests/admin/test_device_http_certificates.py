"""The device HTTP API in certificate mode and its connector selection by SNI (connector-spec
§2.4, §2.7, §3.3, §6; product.md §2) over real HTTPS: a gateway broker on a uvloop thread with
real LMDB, its sidecar started as ``fleetgate serve`` starts it (``admin.site.admin_hook``:
HTTPS on ``listeners.https``, HTTP over ALPN ``http/1.1`` on ``listeners.mqtt_tls``), and
``http.client`` over stdlib ``ssl`` sockets presenting test certificates."""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from admin.site import admin_hook
from broker.gateway.service import Device2Service
from tests.certs import DAY, Issued, ServiceViews, issue, now
from tests.conftest import RunningBroker, make_config, start_gateway

OTHER = "conn2"  # a second connector, selected by SNI
WRITE = "/onep:v1/stack/alias"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


@dataclass
class Reply:
    status: int
    text: str


@dataclass
class Site(ServiceViews):
    running: RunningBroker
    service: Device2Service
    cid: str
    data: Path
    files: Path

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.running.call(fn)

    def address(self, listener: str = "https") -> tuple[str, int]:
        return self.running.server.addresses[listener]

    def request(self, method: str, path: str, body: str | None = None,
                cert: Issued | None = None, *chain: Issued, sni: str | None = None,
                host: str | None = None, listener: str = "https",
                alpn: list[str] | None = None, **headers: str) -> Reply:
        """One request over a new TLS connection: SNI ``<default>.m2.localhost`` unless
        given, ``cert`` (then ``chain``) as the client certificate, ``host`` as Host."""
        ctx = ssl.create_default_context(cafile=str(self.data / "tls" / "server.crt"))
        if alpn is not None:
            ctx.set_alpn_protocols(alpn)
        if cert is not None:
            name = f"c{len(list(self.files.iterdir()))}"
            ctx.load_cert_chain(*map(str, cert.write(self.files, name, *chain)))
        raw = socket.create_connection(self.address(listener), timeout=10)
        conn = http.client.HTTPConnection("127.0.0.1", timeout=10)
        try:
            conn.sock = ctx.wrap_socket(raw, server_hostname=sni or f"{self.cid}.m2.localhost")
            hdrs = {k.replace("_", "-"): v for k, v in headers.items()}
            if host is not None:
                hdrs["Host"] = host
            if body is not None:
                hdrs.setdefault("Content-Type", FORM)
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, resp.read().decode())
        finally:
            conn.close()
            raw.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    config = make_config(tmp_path, allow_anonymous=False)
    config.listeners.mqtt_tls = "127.0.0.1:0"
    config.listeners.https = "127.0.0.1:0"
    config.listeners.admin = ""
    running, gateway, stop = start_gateway(config)
    try:
        cleanup = asyncio.run_coroutine_threadsafe(
            admin_hook(config)(running.server), running.loop).result(10)
        files = tmp_path / "certs"
        files.mkdir()
        s = Site(running, gateway.service, gateway.connector, Path(config.server.data), files)
        s.call(lambda: s.service.create_connector(connector_id=OTHER, name="second"))
        for cid in (s.cid, OTHER):
            s.call(lambda c=cid: s.service.addGatewayResource(connector_id=c, alias="temp",
                                                               format="number"))
            s.settings(cid, provisioning={"auth_type": "certificate"})
        yield s
        if cleanup is not None:
            asyncio.run_coroutine_threadsafe(cleanup(), running.loop).result(15)
    finally:
        stop()


def temp(site: Site, identity: str = "dev1", cid: str | None = None) -> Any:
    state = site.call(lambda: site.service.getIdentityState(identity=identity,
                                                            connector_id=cid or site.cid))
    return state["temp"]["reported"]


# -- certificate authentication ------------------------------------------------------------------

def test_first_write_provisions_the_cn(site: Site) -> None:
    """murano-client never activates in certificate mode (§3.3): its first request does."""
    cert = issue("dev1")
    assert site.request("POST", WRITE, "temp=21.5", cert).status == 204
    assert temp(site) == 21.5
    record = site.identity("dev1")
    assert (record["status"], record["auth"], record["devmode"]) == (
        "provisioned", {"type": "certificate"}, False)
    reply = site.request("GET", f"{WRITE}?temp", None, cert)
    assert (reply.status, reply.text) == (200, "temp=21.5")


def test_certificate_refusals(site: Site) -> None:
    assert site.request("POST", WRITE, "temp=1", issue("dev1")).status == 204
    assert (site.request("POST", WRITE, "temp=2", issue("dev1"))) == Reply(401,
                                                                           "bad_credentials")
    assert site.request("POST", WRITE, "temp=2") == Reply(401, "not_authenticated")
    assert site.request("POST", WRITE, "temp=2", issue(None)) == Reply(401, "invalid_identity")
    assert temp(site) == 1
    assert [r for r, _ in site.debug()] == ["bad_credentials", "not_authenticated",
                                            "invalid_identity"]


def test_locked_and_not_whitelisted(site: Site) -> None:
    cert = issue("dev1")
    assert site.request("POST", WRITE, "temp=1", cert).status == 204
    site.call(lambda: site.service.updateIdentity(identity="dev1", locked=True))
    assert site.request("POST", WRITE, "temp=2", cert) == Reply(403, "locked")
    site.settings(provisioning={"presenter_identity": False})
    assert site.request("POST", WRITE, "temp=2", issue("dev2")) == Reply(
        403, "presenter_identity_disabled")


def test_a_certificate_is_no_credential_in_token_mode(site: Site) -> None:
    site.settings(provisioning={"auth_type": "token"})
    assert site.request("POST", WRITE, "temp=1", issue("dev1")) == Reply(
        401, "not_authenticated")


def test_http_over_alpn_on_the_mqtt_tls_port(site: Site) -> None:
    """Dual protocol (§2.1): the MQTT TLS port serves HTTP to ALPN http/1.1 clients, with the
    same certificate authentication."""
    cert = issue("dev1")
    reply = site.request("POST", WRITE, "temp=3", cert, listener="mqtt_tls",
                         alpn=["http/1.1"])
    assert reply.status == 204 and temp(site) == 3


# -- activation in certificate mode --------------------------------------------------------------

def test_activate_with_a_certificate(site: Site) -> None:
    cert = issue("dev1")
    assert site.request("POST", "/provision/activate", "", cert) == Reply(204, "")
    assert site.identity("dev1")["status"] == "provisioned"
    # again, with its id and the pinned certificate: re-pinned (§3.2 step 6)
    assert site.request("POST", "/provision/activate", "id=dev1", cert).status == 204
    assert site.request("POST", "/provision/activate", "sn=dev1", cert).status == 204
    assert site.request("POST", "/provision/activate", "id=dev2", cert) == Reply(
        400, "invalid_identity")
    assert site.request("POST", "/provision/activate", "id=dev1", issue("dev1")) == Reply(
        400, "not_authenticated")
    # without a certificate: "already activated" (§3.2), or nothing to pin for a new one
    assert site.request("POST", "/provision/activate", "id=dev1") == Reply(
        409, "already_provisioned")
    assert site.request("POST", "/provision/activate", "id=dev3") == Reply(
        400, "bad_credentials")
    assert ("invalid_identity", "dev2") in site.debug()


# -- with a client CA ----------------------------------------------------------------------------

def test_client_ca(site: Site) -> None:
    ca = issue("Device CA", ca=True)
    intermediate = issue("Device intermediate", ca, ca=True)
    site.settings(pki={"client_ca": ca.pem})
    assert site.request("POST", "/provision/activate", "",
                        issue("dev1", intermediate), intermediate).status == 204
    reissued = issue("dev1", ca)  # same CA, no re-activation needed
    assert site.request("POST", WRITE, "temp=4", reissued).status == 204
    assert site.request("POST", WRITE, "temp=5", issue("dev1", intermediate)) == Reply(
        401, "bad_credentials")  # the intermediate not sent
    expired = issue("dev1", ca, not_before=now() - 9 * DAY, not_after=now() - DAY)
    assert site.request("POST", WRITE, "temp=5", expired) == Reply(401, "expired")
    assert site.request("POST", "/provision/activate", "", expired) == Reply(403, "expired")
    assert site.request("POST", WRITE, "temp=5", issue("dev1")) == Reply(401, "bad_credentials")
    assert temp(site) == 4


# -- connector selection: SNI, then Host, then the default ---------------------------------------

def test_sni_selects_the_connector_before_host(site: Site) -> None:
    cert = issue("dev1")
    reply = site.request("POST", WRITE, "temp=6", cert, sni=f"{OTHER}.m2.localhost",
                         host=f"{site.cid}.m2.localhost")
    assert reply.status == 204 and temp(site, cid=OTHER) == 6
    assert site.call(lambda: site.service.countIdentities()) == {"total": 0}


def test_host_when_the_sni_names_no_connector(site: Site) -> None:
    reply = site.request("POST", WRITE, "temp=7", issue("dev1"), sni="localhost",
                         host=f"{OTHER}.m2.localhost:8443")
    assert reply.status == 204 and temp(site, cid=OTHER) == 7
    reply = site.request("POST", WRITE, "temp=8", issue("dev2"), sni="localhost")
    assert reply.status == 204 and temp(site, "dev2") == 8  # neither: the default


def test_sni_naming_an_unknown_connector(site: Site) -> None:
    reply = site.request("POST", WRITE, "temp=9", issue("dev1"), sni="nosuch.m2.localhost",
                         host=f"{OTHER}.m2.localhost")
    assert reply == Reply(404, "not_found")
    assert site.debug() == [("missing_sni", None)]
    assert site.debug(OTHER) == []
