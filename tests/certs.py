"""X.509 certificates for the certificate-mode tests, made with ``cryptography`` (ECDSA P-256,
SHA-256): a CA, intermediates and device certificates with the dates, CN and extensions a test
asks for, as DER/PEM, and written to files for ``ssl.SSLContext.load_cert_chain``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = dt.timedelta(days=1)


def utc(us: int) -> dt.datetime:
    """A µs timestamp (the service clock's unit) as an aware datetime."""
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def write(self, directory: Path, name: str, *chain: Issued) -> tuple[Path, Path]:
        """``<name>.crt`` (this certificate, then ``chain``) and ``<name>.key``: the files a
        TLS client loads with ``load_cert_chain`` (it sends the chain after the leaf)."""
        cert = directory / f"{name}.crt"
        key = directory / f"{name}.key"
        cert.write_text(self.pem + "".join(c.pem for c in chain))
        key.write_bytes(self.key_pem())
        return cert, key


def _name(cn: str | None, *more_cns: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fleetgate tests")]
    attrs += [x509.NameAttribute(NameOID.COMMON_NAME, v) for v in (cn, *more_cns) if v]
    return x509.Name(attrs)


def issue(cn: str | None, issuer: Issued | None = None, *, ca: bool = False,
          not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
          at: dt.datetime | None = None, usages: list[x509.ObjectIdentifier] | None = None,
          extra_cns: tuple[str, ...] = (), key: ec.EllipticCurvePrivateKey | None = None
          ) -> Issued:
    """A certificate for ``cn`` signed by ``issuer`` (self-signed without one), valid from a
    day before ``at`` (default: now) to ten days after unless the dates are given. ``ca``
    makes a CA certificate (basicConstraints CA:TRUE, keyCertSign); ``usages`` adds an
    extendedKeyUsage."""
    at = at or now()
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = _name(cn, *extra_cns)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or at - DAY)
               .not_valid_after(not_after or at + 10 * DAY)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False)
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    signer = issuer.key if issuer is not None else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


class ServiceViews:
    """What the certificate tests read of a running gateway: its debug log, an identity,
    and a settings change, on the broker's loop (``call``) for ``cid``."""

    service: Any
    cid: str
    call: Callable[[Callable[[], Any]], Any]

    def debug(self, cid: str | None = None) -> list[tuple[str, Any]]:
        return self.call(lambda: [(e["type"], e["identity"]) for e in self.service.getLogs(
            type="debug", connector_id=cid or self.cid)])

    def identity(self, identity: str, cid: str | None = None) -> dict[str, Any]:
        return self.call(lambda: self.service.getIdentity(identity=identity,
                                                          connector_id=cid or self.cid))

    def settings(self, cid: str | None = None, **patch: Any) -> None:
        self.call(lambda: self.service.updateGatewaySettings(connector_id=cid or self.cid,
                                                             **patch))
