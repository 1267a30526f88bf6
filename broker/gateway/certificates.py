"""Device client certificates in certificate mode (connector-spec §2.4, §2.7): the identity a
certificate names, and its verification against a connector's client CA.

- Identity: the subject's common name, as text. Exactly one CN: ``CN=00AB01, O=Acme`` is
  identity ``00AB01``; a subject without a CN, or with two, names nobody (``invalid_identity``).
- Without a client CA (``pki`` null, or no ``pki.client_ca``) the certificate itself is the
  credential, pinned at provisioning by its SHA-256 fingerprint (``credentials``); its validity
  dates are not checked (a pinned certificate is "used as a password", §2.4).
- With a client CA (``pki.client_ca``: one or more PEM certificates, each a trust anchor) the
  leaf and the intermediates the client sent in its TLS handshake must build a path to one of
  them (RFC 5280 path validation by ``cryptography.x509.verification``): every signature valid;
  every certificate of the path within its validity period at the connector's clock; CA
  certificates with ``basicConstraints CA:TRUE`` (and ``keyCertSign`` if they carry a
  keyUsage, ``clientAuth`` if they carry an extendedKeyUsage); the leaf not a CA, and usable
  for client authentication if it carries an extendedKeyUsage (``clientAuth`` or
  ``anyExtendedKeyUsage``). Subject alternative names are not required (device certificates
  seldom have one). CA signatures must use the Web PKI algorithms (RSA of at least 2048 bits,
  ECDSA P-256/P-384/P-521, with SHA-256/384/512): a CA signing with Ed25519 or SHA-1 is refused.

Refusals, as debug reasons (§8.2):

    invalid_identity   no CN, or several
    bad_credentials    not a certificate; no path to the client CA (another CA, an intermediate
                       not sent, a bad signature); the leaf is a CA or not for client auth;
                       the connector's client CA does not parse
    expired            the leaf, an intermediate or the CA is past its notAfter
    not_yet_valid      the leaf, an intermediate or the CA is before its notBefore

Cost: a verification is ~0.2 ms (P-256, one intermediate); the parsed CA is kept by the
service per connector (``ClientCA``), so a CONNECT parses only what the client sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from broker.gateway.errors import ServiceError

ANY_EXTENDED_KEY_USAGE = x509.ObjectIdentifier("2.5.29.37.0")
CLIENT_USAGES = (ExtendedKeyUsageOID.CLIENT_AUTH, ANY_EXTENDED_KEY_USAGE)


@dataclass(frozen=True, slots=True)
class CertificateCheck:
    """What a presented certificate proves: ``identity`` (its CN; None if it names nobody),
    or the refusal ``reason`` with a ``detail`` for the debug log. ``verified``: it chains to
    the connector's client CA (then it proves the identity without a pinned fingerprint)."""

    identity: str | None
    reason: str | None = None
    detail: str = ""
    verified: bool = False

    @property
    def ok(self) -> bool:
        return self.reason is None


# -- extension policies: the RFC 5280 rules that matter for device PKIs, not the Web PKI's ------

def _leaf_constraints(_: Policy, cert: x509.Certificate,
                      value: x509.BasicConstraints | None) -> None:
    if value is not None and value.ca:
        raise ValueError("the client certificate is a CA certificate")


def _leaf_usage(_: Policy, cert: x509.Certificate,
                value: x509.ExtendedKeyUsage | None) -> None:
    if value is not None and not any(usage in value for usage in CLIENT_USAGES):
        raise ValueError("the client certificate is not for client authentication")


def _ca_constraints(_: Policy, cert: x509.Certificate, value: x509.BasicConstraints) -> None:
    if not value.ca:
        raise ValueError("basicConstraints CA is false")  # the path builder says so too


def _ca_key_usage(_: Policy, cert: x509.Certificate, value: x509.KeyUsage | None) -> None:
    if value is not None and not value.key_cert_sign:
        raise ValueError("the CA's keyUsage lacks keyCertSign")


def _ca_usage(_: Policy, cert: x509.Certificate, value: x509.ExtendedKeyUsage | None) -> None:
    if value is not None and not any(usage in value for usage in CLIENT_USAGES):
        raise ValueError("the CA's extendedKeyUsage excludes client authentication")


# permit_all as the base: a device PKI made with openssl's defaults has CAs without keyUsage
# and leaves without subjectAltName, which the Web PKI profile would refuse.
LEAF_POLICY = (ExtensionPolicy.permit_all()
               .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, _leaf_constraints)
               .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _leaf_usage))
CA_POLICY = (ExtensionPolicy.permit_all()
             .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _ca_constraints)
             .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage)
             .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _ca_usage))


# -- parsing -------------------------------------------------------------------------------------

def parse(certificate: str | bytes) -> x509.Certificate:
    """A certificate given as DER bytes or PEM (text or bytes); ValueError if it is neither."""
    if isinstance(certificate, str):
        return x509.load_pem_x509_certificate(certificate.strip().encode("ascii"))
    if certificate.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(certificate.strip())
    return x509.load_der_x509_certificate(bytes(certificate))


def identity_of(cert: x509.Certificate) -> str | None:
    """The subject CN as text; None when there is no CN or more than one."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        return None
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def describe(cert: x509.Certificate) -> str:
    """The subject as RFC 4514 text, for the debug log."""
    return cert.subject.rfc4514_string() or "(empty subject)"


def client_ca_pem(settings: Mapping[str, Any]) -> str | None:
    """The connector's client CA (``pki.client_ca``), None in pinning mode."""
    pki = settings.get("pki")
    if not isinstance(pki, Mapping):
        return None
    pem = pki.get("client_ca")
    return pem if isinstance(pem, str) and pem.strip() else None


class ClientCA:
    """A connector's parsed client CA: its trust anchors, ready to verify client chains. Only
    the intermediates a client sends count (nothing is remembered between connections, so a
    device's result never depends on which devices connected before)."""

    __slots__ = ("pem", "anchors", "store")

    def __init__(self, pem: str) -> None:
        try:
            anchors = x509.load_pem_x509_certificates(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ServiceError(400, "bad_request",
                               "pki.client_ca must hold PEM certificates") from exc
        self.pem = pem
        self.anchors = anchors
        self.store = Store(anchors)

    def verify(self, leaf: x509.Certificate, intermediates: list[x509.Certificate],
               when: dt.datetime) -> tuple[str, str] | None:
        """None when ``leaf`` (with ``intermediates``) chains to this CA at ``when``, else
        (reason, detail)."""
        refused = _validity(leaf, when, "the certificate")
        if refused is not None:
            return refused
        verifier = (PolicyBuilder().store(self.store).time(when)
                    .extension_policies(ca_policy=CA_POLICY, ee_policy=LEAF_POLICY)
                    .build_client_verifier())
        try:
            verifier.verify(leaf, intermediates)
        except VerificationError as error:
            # The path failed: a certificate that could be on it and is out of its validity
            # period is the likeliest cause, and the most useful one to report.
            issuers = {leaf.issuer, *(i.issuer for i in intermediates)}
            for cert in (*intermediates, *self.anchors):
                if cert.subject in issuers:
                    refused = _validity(cert, when, "the CA" if cert in self.anchors
                                        else "an intermediate")
                    if refused is not None:
                        return refused
            return "bad_credentials", f"no valid path to the client CA: {_short(error)}"
        return None


def _validity(cert: x509.Certificate, when: dt.datetime, what: str) -> tuple[str, str] | None:
    if when > cert.not_valid_after_utc:
        return "expired", (f"{what} ({describe(cert)}) expired at "
                           f"{cert.not_valid_after_utc.isoformat()}")
    if when < cert.not_valid_before_utc:
        return "not_yet_valid", (f"{what} ({describe(cert)}) is valid from "
                                 f"{cert.not_valid_before_utc.isoformat()}")
    return None


def _short(error: VerificationError) -> str:
    text = str(error)
    return text.split(" (encountered processing", 1)[0]


def check(certificate: str | bytes, chain: Sequence[bytes], client_ca: ClientCA | None,
          now_us: int) -> CertificateCheck:
    """Who ``certificate`` (the client's leaf) is, or why it proves nothing. ``chain``: every
    certificate the client sent (DER, leaf first; the leaf is skipped). With ``client_ca`` the
    path must verify at ``now_us`` (µs since the epoch); without, only the CN matters (the
    fingerprint is compared by the caller, against the pinned one)."""
    try:
        leaf = parse(certificate)
    except (ValueError, UnicodeEncodeError):
        return CertificateCheck(None, "bad_credentials", "not an X.509 certificate")
    verified = False
    if client_ca is not None:
        try:
            intermediates = [x509.load_der_x509_certificate(bytes(der)) for der in chain]
        except ValueError:
            return CertificateCheck(None, "bad_credentials",
                                    "the client sent a chain that does not parse")
        intermediates = [c for c in intermediates if c != leaf]
        when = dt.datetime.fromtimestamp(now_us / 1_000_000, dt.UTC)
        refused = client_ca.verify(leaf, intermediates, when)
        if refused is not None:
            return CertificateCheck(identity_of(leaf), *refused)
        verified = True
    identity = identity_of(leaf)
    if identity is None:
        return CertificateCheck(None, "invalid_identity",
                                f"the certificate's subject ({describe(leaf)}) has no single CN")
    return CertificateCheck(identity, verified=verified)
