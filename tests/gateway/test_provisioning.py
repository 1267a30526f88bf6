"""broker/gateway/provisioning.py: the §3.2 decision in its order, and device authentication."""

from __future__ import annotations

from typing import Any

import pytest

from broker.gateway.provisioning import Presented
from broker.gateway.service import Device2Service
from tests.certs import issue, utc
from tests.gateway.conftest import Clock, Recorder

PEM = ("-----BEGIN CERTIFICATE-----\n"
       "MIIBszCCAVmgAwIBAgIUQ2ZlZ2F0ZXRlc3RjZXJ0aWZpY2F0ZTAKBggqhkjOPQQDAjAP\n"
       "-----END CERTIFICATE-----\n")


def configure(service: Device2Service, **provisioning: Any) -> None:
    service.updateGatewaySettings(provisioning=provisioning)


def test_token_provisioning_success(service: Device2Service, recorder: Recorder) -> None:
    service.addGatewayResource(alias="cfg", settable=True, initial="v0")
    out = service.provision(identity="dev1", ip="10.0.0.1", protocol="http")
    assert out.accepted and out.created and out.auth_type == "token"
    assert out.token is not None and len(out.token) == 40
    rec = service.getIdentity(identity="dev1")
    assert rec["status"] == "provisioned" and rec["lastip"] == "10.0.0.1"
    assert rec["state"]["cfg"]["set"] == "v0"  # initial values on auto-whitelist
    assert "secret" not in str(rec) and out.token not in str(rec)
    assert recorder.types() == ["provisioned"]
    assert recorder.events[0][1]["auth"] == {"type": "token"}
    assert service.getLogs(type="event")[-1]["type"] == "provision"


def test_1_provision_disabled_first(service: Device2Service) -> None:
    configure(service, enabled=False)
    out = service.provision(identity="a/b")  # would also be invalid: disabled wins
    assert (out.accepted, out.reason) == (False, "provision_disabled")
    assert service.getLogs(type="debug")[-1]["type"] == "provision_disabled"


def test_2_invalid_identity(service: Device2Service) -> None:
    service.updateGatewaySettings(identity_format={"type": "base10"})
    out = service.provision(identity="abc")
    assert out.reason == "invalid_identity"
    assert service.countIdentities() == {"total": 0}


def test_3_locked(service: Device2Service) -> None:
    service.addIdentity(identity="d", locked=True)
    configure(service, presenter_identity=False, ip_whitelisting={"enabled": True})
    assert service.provision(identity="d", ip="1.1.1.1").reason == "locked"


def test_4_presenter_identity_disabled(service: Device2Service) -> None:
    configure(service, presenter_identity=False)
    out = service.provision(identity="stranger")
    assert out.reason == "presenter_identity_disabled"
    assert service.countIdentities() == {"total": 0}
    service.addIdentity(identity="known")
    assert service.provision(identity="known").accepted


def test_5_ip_whitelist_first_time_only(service: Device2Service) -> None:
    configure(service, ip_whitelisting={"enabled": True, "allowed": ["10.0.0.0/8"]})
    out = service.provision(identity="d", ip="192.168.0.1")
    assert out.reason == "ip_not_allowed"
    assert service.countIdentities() == {"total": 0}  # the auto-whitelist is not kept
    first = service.provision(identity="d", ip="10.1.1.1")
    assert first.accepted
    # Rotation from anywhere with the old token: not a first provisioning.
    again = service.provision(identity="d", ip="192.168.0.1",
                              presented=Presented(token=first.token))
    assert again.accepted and again.rotated


def test_6_already_provisioned_vs_not_authenticated(service: Device2Service) -> None:
    first = service.provision(identity="d")
    none = service.provision(identity="d")
    assert (none.reason, none.debug_reason) == ("already_provisioned", "not_authenticated")
    wrong = service.provision(identity="d", presented=Presented(token="x" * 40))
    assert wrong.reason == "not_authenticated"
    rotated = service.provision(identity="d", presented=Presented(token=first.token))
    assert rotated.accepted and rotated.rotated and rotated.token != first.token
    assert not service.authenticate(token=first.token).ok  # the old token is gone
    assert service.authenticate(token=rotated.token).identity == "d"


def test_7_expired_is_refused_and_deleted(service: Device2Service, clock: Clock,
                                          recorder: Recorder) -> None:
    service.addIdentity(identity="d", auth={"expire": clock.now + 1_000_000})
    clock.advance(2)
    out = service.provision(identity="d")
    assert (out.reason, out.deleted) == ("expired", True)
    assert service.countIdentities() == {"total": 0}
    assert "expired" in recorder.types()


def test_reprovision_flag_accepts_without_credentials(service: Device2Service,
                                                      recorder: Recorder) -> None:
    first = service.provision(identity="d")
    service.updateIdentity(identity="d", auth={"expire": 0})
    assert recorder.disconnected[-1][1:] == ("d", "reprovision")
    assert service.getIdentity(identity="d")["status"] == "reprovision"
    assert service.authenticate(token=first.token).reason == "bad_credentials"
    out = service.provision(identity="d")
    assert out.accepted and service.getIdentity(identity="d")["status"] == "provisioned"
    assert not service.getIdentity(identity="d")["reprovision"]


def test_password_mode(service: Device2Service) -> None:
    configure(service, auth_type="password")
    short = service.provision(identity="d", password="short")
    assert short.reason == "bad_credentials"
    ok = service.provision(identity="d", password="p" * 20)
    assert ok.accepted and ok.token is None and ok.auth_type == "password"
    assert service.authenticate(identity="d", password="p" * 20).ok
    assert service.authenticate(identity="d", password="q" * 20).reason == "bad_credentials"
    assert service.authenticate(identity="nobody", password="p" * 20).reason == \
        "bad_credentials"
    # Rotation in password mode needs the current password.
    assert service.provision(identity="d", password="n" * 20).reason == "already_provisioned"
    assert service.provision(identity="d", password="n" * 20,
                             presented=Presented(password="x" * 20)).reason == \
        "not_authenticated"
    assert service.provision(identity="d", password="n" * 20,
                             presented=Presented(password="p" * 20)).accepted
    assert service.authenticate(identity="d", password="n" * 20).ok


def test_certificate_mode(service: Device2Service, clock: Clock) -> None:
    configure(service, auth_type="certificate")
    cert = issue("d", at=utc(clock.now)).pem  # certificate mode: the identity is the CN
    assert service.provision(identity="d").reason == "bad_credentials"
    assert service.provision(identity="d", certificate=PEM).reason == "bad_credentials"
    assert service.provision(identity="d", certificate=cert).accepted
    assert service.authenticate(identity="d", certificate=cert).ok
    assert service.authenticate(identity="d",
                                certificate=b"\x30\x01\x00").reason == "bad_credentials"
    assert service.authenticate(identity="d").reason == "bad_credentials"


def test_authenticate_refusals(service: Device2Service, clock: Clock) -> None:
    token = service.provision(identity="d").token
    assert service.authenticate(token=token).ok
    assert service.authenticate(token="").reason == "bad_credentials"
    assert service.authenticate(token="nope").reason == "bad_credentials"
    service.updateIdentity(identity="d", locked=True)
    assert service.authenticate(token=token).reason == "locked"
    service.updateIdentity(identity="d", locked=False)
    assert service.authenticate(token=token).ok
    configure(service, auth_type="password")
    service.provision(identity="p", password="p" * 20)
    service.updateIdentity(identity="p", auth={"expire": 0})
    assert service.authenticate(identity="p", password="p" * 20).reason == "reprovision"
    service.addIdentity(identity="w", auth={"expire": clock.now + 10})
    assert service.authenticate(identity="w", password="p" * 20).reason == "bad_credentials"
    clock.advance(1)
    assert service.authenticate(identity="w", password="p" * 20).reason == "expired"
    reasons = [e["type"] for e in service.getLogs(type="debug")]
    assert {"bad_credentials", "locked", "not_authenticated", "expired"} <= set(reasons)


def test_expire_timer(service: Device2Service, clock: Clock, recorder: Recorder) -> None:
    service.addIdentity(identity="late", auth={"expire": clock.now + 10})
    service.addIdentity(identity="forever")
    service.provision(identity="done")
    clock.advance(1)
    assert service.expire_identities() == ["late"]
    assert service.countIdentities() == {"total": 2}
    assert recorder.types()[-1] == "expired"


@pytest.mark.parametrize("reason", ["provision_disabled", "invalid_identity", "locked",
                                    "presenter_identity_disabled", "ip_not_allowed",
                                    "already_provisioned", "not_authenticated", "expired"])
def test_every_refusal_changes_nothing_but_expiry(service: Device2Service, clock: Clock,
                                                  reason: str) -> None:
    service.addIdentity(identity="other", tags=[{"name": "k", "value": "v"}])
    before = service.listIdentities()
    setup = {
        "provision_disabled": lambda: configure(service, enabled=False),
        "invalid_identity": lambda: None,
        "locked": lambda: service.addIdentity(identity="x", locked=True),
        "presenter_identity_disabled": lambda: configure(service, presenter_identity=False),
        "ip_not_allowed": lambda: configure(service, ip_whitelisting={"enabled": True}),
        "already_provisioned": lambda: service.provision(identity="x"),
        "not_authenticated": lambda: service.provision(identity="x"),
        "expired": lambda: service.addIdentity(identity="x", auth={"expire": clock.now}),
    }[reason]
    setup()
    clock.advance(1)
    before = service.listIdentities()
    presented = Presented(token="w" * 40) if reason == "not_authenticated" else Presented()
    out = service.provision(identity="x#" if reason == "invalid_identity" else "x",
                            ip="1.2.3.4", presented=presented)
    assert out.reason == reason
    after = service.listIdentities()
    if reason == "expired":
        assert [d["identity"] for d in after["devices"]] == ["other"]
    else:
        assert after == before
