"""broker/gateway/certificates.py: the identity a client certificate names (its CN) and the PKI
verification against a connector's client CA: good chains, wrong CA, validity periods of the
leaf, the intermediate and the CA, intermediates sent or missing, extensions."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from broker.gateway import certificates
from broker.gateway.certificates import CertificateCheck, ClientCA, check, identity_of
from broker.gateway.errors import ServiceError
from broker.gateway.settings import validate_settings
from tests.certs import CLIENT_AUTH, DAY, SERVER_AUTH, Issued, issue

AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
NOW_US = int(AT.timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def ca() -> Issued:
    return issue("Fleetgate test CA", ca=True, at=AT)


@pytest.fixture(scope="module")
def intermediate(ca: Issued) -> Issued:
    return issue("Fleetgate test intermediate", ca, ca=True, at=AT)


def verify(leaf: Issued, *chain: Issued, anchors: tuple[Issued, ...] = (),
           now_us: int = NOW_US) -> CertificateCheck:
    """``check`` as the gateway calls it: the TLS chain is the leaf then what the client sent."""
    client_ca = ClientCA("".join(a.pem for a in anchors)) if anchors else None
    return check(leaf.der, (leaf.der, *(c.der for c in chain)), client_ca, now_us)


# -- the identity: the subject CN -------------------------------------------------------------

def test_identity_is_the_common_name() -> None:
    assert identity_of(issue("00:AB:01", at=AT).cert) == "00:AB:01"
    assert identity_of(issue(None, at=AT).cert) is None  # no CN
    assert identity_of(issue("a", extra_cns=("b",), at=AT).cert) is None  # ambiguous


def test_pinning_mode_checks_only_the_cn() -> None:
    leaf = issue("dev1", at=AT)
    assert verify(leaf) == CertificateCheck("dev1", verified=False)
    # PEM text or bytes work as DER does (the admin side pins PEM)
    assert check(leaf.pem, (), None, NOW_US).identity == "dev1"
    assert check(leaf.pem.encode(), (), None, NOW_US).identity == "dev1"
    # without a client CA the dates do not matter: the certificate is a password
    old = issue("dev1", not_before=AT - 20 * DAY, not_after=AT - 10 * DAY)
    assert verify(old).ok


def test_no_cn_is_invalid_identity() -> None:
    got = verify(issue(None, at=AT))
    assert (got.identity, got.reason) == (None, "invalid_identity")
    assert "O=Fleetgate tests" in got.detail
    assert verify(issue("a", extra_cns=("b",), at=AT)).reason == "invalid_identity"


@pytest.mark.parametrize("garbage", [
    b"", b"\x30\x03\x02\x01\x01", "not a certificate",
    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"])
def test_not_a_certificate_is_bad_credentials(garbage: str | bytes) -> None:
    assert check(garbage, (), None, NOW_US).reason == "bad_credentials"


# -- PKI: chains to the client CA ----------------------------------------------------------------

def test_leaf_signed_by_the_ca(ca: Issued) -> None:
    got = verify(issue("dev1", ca, at=AT), anchors=(ca,))
    assert got == CertificateCheck("dev1", verified=True)


def test_intermediate_sent_in_the_chain(ca: Issued, intermediate: Issued) -> None:
    leaf = issue("dev1", intermediate, at=AT)
    assert verify(leaf, intermediate, anchors=(ca,)).verified
    # the leaf alone in the chain, or the chain without the leaf: same result
    client_ca = ClientCA(ca.pem)
    assert check(leaf.der, (intermediate.der,), client_ca, NOW_US).verified


def test_missing_intermediate(ca: Issued, intermediate: Issued) -> None:
    got = verify(issue("dev1", intermediate, at=AT), anchors=(ca,))
    assert (got.identity, got.reason, got.verified) == ("dev1", "bad_credentials", False)
    assert "no valid path to the client CA" in got.detail


def test_wrong_ca_even_with_the_same_name(ca: Issued) -> None:
    impostor = issue("Fleetgate test CA", ca=True, at=AT)  # same subject, another key
    got = verify(issue("dev1", impostor, at=AT), anchors=(ca,))
    assert got.reason == "bad_credentials" and "signature" in got.detail
    assert verify(issue("dev1", at=AT), anchors=(ca,)).reason == "bad_credentials"  # self-signed


def test_a_forged_intermediate_does_not_help(ca: Issued) -> None:
    forged = issue("Fleetgate test intermediate", ca=True, at=AT)  # self-signed, not by the CA
    leaf = issue("dev1", forged, at=AT)
    assert verify(leaf, forged, anchors=(ca,)).reason == "bad_credentials"


def test_expired_leaf(ca: Issued) -> None:
    leaf = issue("dev1", ca, not_before=AT - 30 * DAY, not_after=AT - DAY)
    got = verify(leaf, anchors=(ca,))
    assert (got.identity, got.reason) == ("dev1", "expired")
    assert "the certificate (CN=dev1,O=Fleetgate tests) expired at 2025-05-31" in got.detail


def test_leaf_not_yet_valid(ca: Issued) -> None:
    leaf = issue("dev1", ca, not_before=AT + DAY, not_after=AT + 30 * DAY)
    got = verify(leaf, anchors=(ca,))
    assert got.reason == "not_yet_valid" and "valid from 2025-06-02" in got.detail


def test_expired_intermediate(ca: Issued) -> None:
    old = issue("Old intermediate", ca, ca=True, not_before=AT - 30 * DAY, not_after=AT - DAY)
    got = verify(issue("dev1", old, at=AT), old, anchors=(ca,))
    assert got.reason == "expired" and got.detail.startswith("an intermediate (")


def test_expired_ca() -> None:
    old_ca = issue("Old CA", ca=True, not_before=AT - 30 * DAY, not_after=AT - DAY)
    leaf = issue("dev1", old_ca, at=AT)
    got = verify(leaf, anchors=(old_ca,))
    assert got.reason == "expired" and got.detail.startswith("the CA (")


def test_verification_uses_the_given_time(ca: Issued) -> None:
    leaf = issue("dev1", ca, at=AT)  # valid AT-1d .. AT+10d
    later = int((AT + 20 * DAY).timestamp() * 1_000_000)
    assert verify(leaf, anchors=(ca,)).ok
    assert verify(leaf, anchors=(ca,), now_us=later).reason == "expired"


def test_bundle_of_anchors_and_an_intermediate_as_anchor(ca: Issued,
                                                         intermediate: Issued) -> None:
    other = issue("Another CA", ca=True, at=AT)
    assert verify(issue("dev1", ca, at=AT), anchors=(other, ca)).verified
    # an intermediate configured as the client CA is a trust anchor by itself
    assert verify(issue("dev1", intermediate, at=AT), anchors=(intermediate,)).verified


def test_no_cn_under_the_ca(ca: Issued) -> None:
    assert verify(issue(None, ca, at=AT), anchors=(ca,)).reason == "invalid_identity"


@pytest.mark.parametrize("usages,ok", [
    ([CLIENT_AUTH], True),
    ([SERVER_AUTH, CLIENT_AUTH], True),
    ([x509.ObjectIdentifier("2.5.29.37.0")], True),  # anyExtendedKeyUsage
    ([SERVER_AUTH], False),
])
def test_leaf_extended_key_usage(ca: Issued, usages: list[x509.ObjectIdentifier],
                                 ok: bool) -> None:
    got = verify(issue("dev1", ca, at=AT, usages=usages), anchors=(ca,))
    assert got.ok is ok
    if not ok:
        assert got.reason == "bad_credentials" and "client authentication" in got.detail


def test_a_ca_certificate_is_no_client_certificate(ca: Issued) -> None:
    sub_ca = issue("dev1", ca, ca=True, at=AT)
    got = verify(sub_ca, anchors=(ca,))
    assert got.reason == "bad_credentials" and "is a CA certificate" in got.detail


def test_an_intermediate_that_is_not_a_ca(ca: Issued) -> None:
    not_ca = issue("Not a CA", ca, ca=False, at=AT)
    leaf = issue("dev1", not_ca, at=AT)
    assert verify(leaf, not_ca, anchors=(ca,)).reason == "bad_credentials"


def test_unparsable_chain(ca: Issued) -> None:
    leaf = issue("dev1", ca, at=AT)
    got = check(leaf.der, (leaf.der, b"junk"), ClientCA(ca.pem), NOW_US)
    assert got.reason == "bad_credentials" and "does not parse" in got.detail


# -- the client CA setting -------------------------------------------------------------------------

def test_client_ca_must_parse(ca: Issued) -> None:
    assert len(ClientCA(ca.pem + ca.pem).anchors) == 2
    with pytest.raises(ServiceError) as info:
        ClientCA("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert (info.value.status, info.value.code) == (400, "bad_request")
    with pytest.raises(ServiceError):
        validate_settings({"pki": {"client_ca": "-----BEGIN CERTIFICATE-----\nAA\n"
                                                "-----END CERTIFICATE-----"}})
    assert validate_settings({"pki": {"client_ca": ca.pem}})["pki"]["client_ca"] == ca.pem


def test_client_ca_pem_of_settings(ca: Issued) -> None:
    assert certificates.client_ca_pem({"pki": None}) is None
    assert certificates.client_ca_pem({"pki": {"vendor": {"name": "x"}}}) is None
    assert certificates.client_ca_pem({"pki": {"client_ca": " "}}) is None
    assert certificates.client_ca_pem({"pki": {"client_ca": ca.pem}}) == ca.pem
