"""Certificate mode in the service (connector-spec §2.4, §2.7, §3.2): ``certificate_login`` (a
device that presents only its TLS client certificate: identity = CN, provisioned on first
login, pinned or chained to the client CA) and ``provision`` with a certificate (HTTP
activation, MQTT ``$provision``); every refusal in the debug log."""

from __future__ import annotations

from typing import Any

import pytest

from broker.gateway.provisioning import AuthResult, Presented
from broker.gateway.service import Device2Service
from tests.certs import DAY, Issued, issue, utc
from tests.gateway.conftest import Clock, Recorder


@pytest.fixture
def at(clock: Clock) -> Any:
    return utc(clock.now)


@pytest.fixture
def cert_mode(service: Device2Service) -> Device2Service:
    service.updateGatewaySettings(provisioning={"auth_type": "certificate"})
    return service


@pytest.fixture
def ca(at: Any) -> Issued:
    return issue("Device CA", ca=True, at=at)


def with_ca(service: Device2Service, ca: Issued | None) -> None:
    service.updateGatewaySettings(pki={"vendor": {"name": "test"},
                                       "client_ca": ca.pem if ca else None})


def login(service: Device2Service, cert: Issued, *chain: Issued, ip: str = "10.0.0.1"
          ) -> AuthResult:
    return service.certificate_login(certificate=cert.der,
                                     chain=(cert.der, *(c.der for c in chain)), ip=ip,
                                     protocol="mqtt", connection_id="c1")


def debug(service: Device2Service) -> list[tuple[str, Any]]:
    return [(e["type"], e["identity"]) for e in service.getLogs(type="debug")]


# -- pinning (no client CA) -----------------------------------------------------------------------

def test_first_login_provisions_and_pins(cert_mode: Device2Service, recorder: Recorder,
                                         at: Any) -> None:
    service = cert_mode
    service.addGatewayResource(alias="cfg", settable=True, initial="v0")
    cert = issue("dev1", at=at)
    first = login(service, cert)
    assert (first.ok, first.identity, first.provisioned) == (True, "dev1", True)
    rec = service.getIdentity(identity="dev1")
    assert (rec["status"], rec["auth"], rec["lastip"]) == ("provisioned", {"type": "certificate"},
                                                           "10.0.0.1")
    assert rec["state"]["cfg"]["set"] == "v0"
    assert recorder.types() == ["provisioned"]
    assert service.getLogs(type="event")[-1]["type"] == "provision"
    again = login(service, cert)
    assert (again.ok, again.provisioned) == (True, False)
    assert recorder.types() == ["provisioned"]  # once
    # another certificate with the same CN is somebody else
    impostor = login(service, issue("dev1", at=at))
    assert (impostor.ok, impostor.reason) == (False, "bad_credentials")
    assert debug(service)[-1] == ("bad_credentials", "dev1")


def test_whitelisted_identity_provisions_on_first_login(cert_mode: Device2Service,
                                                        at: Any) -> None:
    cert_mode.addIdentity(identity="dev1")
    assert login(cert_mode, issue("dev1", at=at)).provisioned
    assert cert_mode.getIdentity(identity="dev1")["status"] == "provisioned"


def test_admin_pinned_certificate(cert_mode: Device2Service, at: Any) -> None:
    cert = issue("dev1", at=at)
    cert_mode.addIdentity(identity="dev1", auth={"type": "certificate", "key": cert.pem})
    result = login(cert_mode, cert)
    assert (result.ok, result.provisioned) == (True, False)
    assert login(cert_mode, issue("dev1", at=at)).reason == "bad_credentials"


def test_pinned_certificate_dates_are_not_checked(cert_mode: Device2Service, at: Any) -> None:
    old = issue("dev1", not_before=at - 30 * DAY, not_after=at - DAY)
    assert login(cert_mode, old).ok and login(cert_mode, old).ok


@pytest.mark.parametrize("setup,reason", [
    ({"presenter_identity": False}, "presenter_identity_disabled"),
    ({"enabled": False}, "provision_disabled"),
    ({"ip_whitelisting": {"enabled": True, "allowed": ["192.168.0.0/16"]}}, "ip_not_allowed"),
])
def test_first_login_goes_through_the_provisioning_decision(
        cert_mode: Device2Service, recorder: Recorder, at: Any, setup: dict[str, Any],
        reason: str) -> None:
    cert_mode.updateGatewaySettings(provisioning=setup)
    result = login(cert_mode, issue("dev1", at=at))
    assert (result.ok, result.identity, result.reason) == (False, "dev1", reason)
    assert cert_mode.countIdentities() == {"total": 0}
    assert recorder.types() == []
    assert debug(cert_mode)[-1] == (reason, "dev1")
    assert cert_mode.provision_results[(cert_mode.device_connector()[0], reason)] == 1


def test_ip_whitelist_only_for_the_first_login(cert_mode: Device2Service, at: Any) -> None:
    cert_mode.updateGatewaySettings(provisioning={
        "ip_whitelisting": {"enabled": True, "allowed": ["10.0.0.0/8"]}})
    cert = issue("dev1", at=at)
    assert login(cert_mode, issue("dev2", at=at), ip="192.168.1.1").reason == "ip_not_allowed"
    assert login(cert_mode, cert, ip="10.1.2.3").provisioned
    assert login(cert_mode, cert, ip="192.168.1.1").ok  # provisioned: from anywhere


def test_locked_identity(cert_mode: Device2Service, at: Any) -> None:
    cert = issue("dev1", at=at)
    login(cert_mode, cert)
    cert_mode.updateIdentity(identity="dev1", locked=True)
    assert login(cert_mode, cert).reason == "locked"
    cert_mode.addIdentity(identity="dev2", locked=True)  # whitelisted and locked
    assert login(cert_mode, issue("dev2", at=at)).reason == "locked"
    assert [r for r, _ in debug(cert_mode)] == ["locked", "locked"]


def test_revoked_identity_pins_the_next_certificate(cert_mode: Device2Service,
                                                    at: Any) -> None:
    old, new = issue("dev1", at=at), issue("dev1", at=at)
    login(cert_mode, old)
    cert_mode.updateIdentity(identity="dev1", auth={"expire": 0})  # §2.4: re-provision
    assert cert_mode.getIdentity(identity="dev1")["status"] == "reprovision"
    assert login(cert_mode, new).provisioned
    assert login(cert_mode, new).ok
    assert login(cert_mode, old).reason == "bad_credentials"


def test_identity_must_be_a_valid_cn(cert_mode: Device2Service, at: Any) -> None:
    assert login(cert_mode, issue(None, at=at)).reason == "invalid_identity"
    cert_mode.updateGatewaySettings(identity_format={"type": "mac"})
    result = login(cert_mode, issue("not-a-mac", at=at))
    assert (result.identity, result.reason) == ("not-a-mac", "invalid_identity")
    assert login(cert_mode, issue("00:11:22:33:44:55", at=at)).ok
    assert [r for r, _ in debug(cert_mode)] == ["invalid_identity", "invalid_identity"]


def test_only_in_certificate_mode(service: Device2Service, at: Any) -> None:
    result = login(service, issue("dev1", at=at))  # token mode
    assert (result.ok, result.reason) == (False, "bad_credentials")
    assert service.countIdentities() == {"total": 0}
    assert debug(service) == [("bad_credentials", None)]


def test_a_token_identity_does_not_log_in_with_a_certificate(service: Device2Service,
                                                              at: Any) -> None:
    service.provision(identity="dev1")  # token mode
    service.updateGatewaySettings(provisioning={"auth_type": "certificate"})
    assert login(service, issue("dev1", at=at)).reason == "bad_credentials"
    assert service.getIdentity(identity="dev1")["auth"] == {"type": "token"}


# -- with a client CA ------------------------------------------------------------------------------

def test_ca_login_and_reissued_certificate(cert_mode: Device2Service, ca: Issued,
                                           at: Any) -> None:
    with_ca(cert_mode, ca)
    intermediate = issue("Device intermediate", ca, ca=True, at=at)
    first = login(cert_mode, issue("dev1", intermediate, at=at), intermediate)
    assert (first.ok, first.provisioned) == (True, True)
    # a re-issued certificate of the same identity from the same CA: no re-provisioning
    reissued = login(cert_mode, issue("dev1", ca, at=at))
    assert (reissued.ok, reissued.provisioned) == (True, False)


@pytest.mark.parametrize("make,reason", [
    (lambda ca, at: issue("dev1", at=at), "bad_credentials"),  # self-signed
    (lambda ca, at: issue("dev1", issue("Device CA", ca=True, at=at), at=at), "bad_credentials"),
    (lambda ca, at: issue("dev1", ca, not_before=at - 9 * DAY, not_after=at - DAY), "expired"),
    (lambda ca, at: issue("dev1", ca, not_before=at + DAY, not_after=at + 9 * DAY),
     "not_yet_valid"),
])
def test_ca_refusals_create_nothing(cert_mode: Device2Service, recorder: Recorder, ca: Issued,
                                    at: Any, make: Any, reason: str) -> None:
    with_ca(cert_mode, ca)
    result = login(cert_mode, make(ca, at))
    assert (result.ok, result.identity, result.reason) == (False, "dev1", reason)
    assert cert_mode.countIdentities() == {"total": 0} and recorder.types() == []
    entry = cert_mode.getLogs(type="debug")[-1]
    assert (entry["type"], entry["identity"], entry["ip"]) == (reason, "dev1", "10.0.0.1")


def test_ca_checks_provisioned_identities_too(cert_mode: Device2Service, ca: Issued,
                                              clock: Clock, at: Any) -> None:
    with_ca(cert_mode, ca)
    cert = issue("dev1", ca, at=at)  # valid until at + 10 days
    assert login(cert_mode, cert).provisioned
    clock.advance(20 * 86400)
    assert login(cert_mode, cert).reason == "expired"


def test_removing_the_ca_falls_back_to_pinning(cert_mode: Device2Service, ca: Issued,
                                               at: Any) -> None:
    with_ca(cert_mode, ca)
    pinned, reissued = issue("dev1", ca, at=at), issue("dev1", ca, at=at)
    login(cert_mode, pinned)
    assert login(cert_mode, reissued).ok
    with_ca(cert_mode, None)
    assert login(cert_mode, reissued).reason == "bad_credentials"
    assert login(cert_mode, pinned).ok


def test_ca_is_parsed_once_and_replaced_on_a_settings_change(cert_mode: Device2Service,
                                                             ca: Issued, at: Any) -> None:
    with_ca(cert_mode, ca)
    cid = cert_mode.device_connector()[0]
    assert login(cert_mode, issue("dev1", ca, at=at)).ok
    parsed = cert_mode._client_cas[cid]
    assert login(cert_mode, issue("dev1", ca, at=at)).ok
    assert cert_mode._client_cas[cid] is parsed  # the same parsed CA
    cert_mode.addGatewayResource(alias="other")  # a settings change that keeps the CA
    assert login(cert_mode, issue("dev1", ca, at=at)).ok
    assert cert_mode._client_cas[cid] is parsed
    other = issue("Other CA", ca=True, at=at)
    with_ca(cert_mode, other)
    assert login(cert_mode, issue("dev1", ca, at=at)).reason == "bad_credentials"
    assert login(cert_mode, issue("dev1", other, at=at)).ok


# -- provision() with a certificate (HTTP activation, MQTT $provision) ---------------------------

def test_provision_takes_the_identity_from_the_cn(cert_mode: Device2Service, at: Any) -> None:
    cert = issue("dev1", at=at)
    out = cert_mode.provision(identity=None, certificate=cert.der)
    assert (out.accepted, out.identity, out.token) == (True, "dev1", None)
    assert cert_mode.authenticate(identity="dev1", certificate=cert.der).ok


def test_provision_id_must_be_the_cn(cert_mode: Device2Service, at: Any) -> None:
    out = cert_mode.provision(identity="dev2", certificate=issue("dev1", at=at).der)
    assert (out.accepted, out.identity, out.reason) == (False, "dev2", "invalid_identity")
    assert "names 'dev1', not 'dev2'" in out.message
    assert cert_mode.countIdentities() == {"total": 0}
    assert debug(cert_mode) == [("invalid_identity", "dev2")]


def test_provision_again_with_the_pinned_certificate(cert_mode: Device2Service,
                                                     at: Any) -> None:
    cert, other = issue("dev1", at=at), issue("dev1", at=at)
    assert cert_mode.provision(identity="dev1", certificate=cert.der).accepted
    # §3.2 step 6: the current credentials (the certificate) allow a re-provision
    again = cert_mode.provision(identity="dev1", certificate=cert.der,
                                presented=Presented(certificate=cert.der))
    assert (again.accepted, again.rotated) == (True, True)
    refused = cert_mode.provision(identity="dev1", certificate=other.der,
                                  presented=Presented(certificate=other.der))
    assert refused.reason == "not_authenticated"


def test_provision_with_a_ca(cert_mode: Device2Service, ca: Issued, at: Any) -> None:
    with_ca(cert_mode, ca)
    assert cert_mode.provision(identity="dev1",
                               certificate=issue("dev1", at=at).der).reason == "bad_credentials"
    first, reissued = issue("dev1", ca, at=at), issue("dev1", ca, at=at)
    assert cert_mode.provision(identity="dev1", certificate=first.der).accepted
    # a certificate that chains to the CA proves the identity: it re-pins
    out = cert_mode.provision(identity="dev1", certificate=reissued.der,
                              presented=Presented(certificate=reissued.der))
    assert (out.accepted, out.rotated) == (True, True)
    with_ca(cert_mode, None)
    assert login(cert_mode, reissued).ok and login(cert_mode, first).reason == "bad_credentials"
