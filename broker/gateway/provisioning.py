"""The provisioning decision and device authentication, for both protocols.

connector-spec §3.2, in this order, for a provision request of identity X from address a:

    1 provisioning disabled                              → provision_disabled
    2 X fails the identity format                        → invalid_identity
    3 X locked                                           → locked
    4 X unknown: presenter_identity off                  → presenter_identity_disabled
                 else auto-whitelisted (stored only if the request succeeds)
    5 first provisioning and a not in the IP whitelist   → ip_not_allowed
    6 X provisioned and not flagged reprovision:
        no credentials presented                         → already_provisioned (HTTP 409)
        wrong credentials presented                      → not_authenticated  (HTTP 400)
        the old credentials                              → accepted: rotation
    7 whitelisted X past auth.expire                     → expired (and X is deleted)
    8 success: store hashed credentials, clear reprovision, initial state for a new X, emit
      ``provisioned``.

"First provisioning" (5) means X holds no credentials: never provisioned, or revoked.
A refusal changes nothing except the deletion of 7. ``ProvisionOutcome.reason`` is the fine
reason; ``debug_reason`` is the §8.2 word for the debug log (``already_provisioned`` logs as
``not_authenticated``, the spec's reason for a re-provision without old credentials).

Authentication (§2.4, §5.1): token alone (its digest finds the identity), identity + password,
or identity + certificate; refusals ``bad_credentials`` (CONNACK 4), ``locked`` (ignored),
``reprovision`` and ``expired`` (CONNACK 5).

Certificate mode (§2.4): the certificate matches the identity's pinned fingerprint; or, with
``certificate_verified`` (the caller checked that it chains to the connector's client CA and
that its CN is the identity: ``broker.gateway.certificates``), it proves the identity by itself,
so a certificate re-issued by the same CA works without re-provisioning. Either way the
identity's own credential must be a certificate.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.gateway import credentials, identities, tables
from broker.gateway import state as state_mod
from broker.gateway.errors import ServiceError
from broker.gateway.identity_format import validate_identity
from broker.gateway.settings import ip_allowed
from broker.security.passwords import PasswordVerifier
from broker.storage import ReadTxn, WriteTxn

REFUSALS = ("provision_disabled", "invalid_identity", "locked", "presenter_identity_disabled",
            "ip_not_allowed", "already_provisioned", "not_authenticated", "expired",
            "bad_credentials", "not_yet_valid")


@dataclass(frozen=True)
class Presented:
    """Credentials that came with a request: proof of the *current* credentials."""
    token: str | None = None
    password: str | None = None
    certificate: str | bytes | None = None  # PEM text or DER bytes

    @property
    def empty(self) -> bool:
        return self.token is None and self.password is None and self.certificate is None


NOTHING = Presented()


@dataclass
class ProvisionOutcome:
    accepted: bool
    identity: str
    reason: str | None = None
    message: str = ""
    auth_type: str | None = None
    token: str | None = None  # the new token, token mode only: shown once
    rotated: bool = False
    created: bool = False  # the identity was auto-whitelisted by this request
    deleted: bool = False  # refused as expired and removed
    record: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def debug_reason(self) -> str | None:
        return "not_authenticated" if self.reason == "already_provisioned" else self.reason


@dataclass
class AuthResult:
    identity: str | None
    reason: str | None = None
    record: dict[str, Any] | None = field(default=None, repr=False)
    provisioned: bool = False  # a certificate login that provisioned the identity first

    @property
    def ok(self) -> bool:
        return self.reason is None


def _refuse(identity: str, reason: str, message: str, **kw: Any) -> ProvisionOutcome:
    return ProvisionOutcome(False, identity, reason, message, **kw)


def credential_matches(record: Mapping[str, Any], presented: Presented, hash_key: str,
                       verifier: PasswordVerifier, certificate_verified: bool = False) -> bool:
    """The presented credential is the one stored for ``record`` (constant time per kind);
    ``certificate_verified``: the presented certificate chains to the client CA (see above)."""
    auth = record["auth"]
    secret = auth["secret"]
    if auth["type"] == "token":
        return presented.token is not None and credentials.token_matches(
            hash_key, secret, presented.token)
    if auth["type"] == "password":
        if presented.password is None:
            return False
        return verifier.verify(secret, presented.password.encode("utf-8", "surrogatepass"))
    if presented.certificate is None:
        return False
    if certificate_verified:
        return True
    try:
        fingerprint = credentials.certificate_fingerprint(presented.certificate)
    except ServiceError:
        return False
    return secret is not None and hmac.compare_digest(fingerprint, secret)


def provision(txn: WriteTxn, cid: str, hash_key: str, settings: Mapping[str, Any],
              identity: str | None, *, ip: str | None, now_us: int,
              presented: Presented = NOTHING, password: str | None = None,
              certificate: str | bytes | None = None, verifier: PasswordVerifier,
              password_cost: int = credentials.SCRYPT_N,
              password_hash: str | None = None,
              certificate_verified: bool = False) -> ProvisionOutcome:
    """The §3.2 decision; on success the write transaction holds the new credentials.

    ``password`` is the password to register (password mode), ``certificate`` the client
    certificate to pin (certificate mode); ``presented`` proves the old credentials for a
    rotation. ``password_hash``: ``password`` already hashed (in a worker thread, so that the
    event loop does not run scrypt), used instead of hashing it here. ``certificate_verified``:
    the presented certificate chains to the connector's client CA, so it proves the current
    credentials of a rotation by itself (the new one is pinned)."""
    prov = settings["provisioning"]
    shown = identity if isinstance(identity, str) else repr(identity)
    if not prov["enabled"]:
        return _refuse(shown, "provision_disabled", "provisioning is disabled")
    try:
        identity = validate_identity(identity, settings["identity_format"])
    except ServiceError as exc:
        return _refuse(shown, "invalid_identity", exc.message)
    record = identities.load(txn, cid, identity)
    if record is not None and record["locked"]:
        return _refuse(identity, "locked", "identity is locked")
    created = record is None
    if record is None:
        if not prov["presenter_identity"]:
            return _refuse(identity, "presenter_identity_disabled",
                           "identity is not whitelisted and presenter identity is off")
        record = identities.new_record(identity, prov["auth_type"], now_us)
    first = not identities.has_credentials(record)
    if first and not ip_allowed(settings, ip):
        return _refuse(identity, "ip_not_allowed", f"address {ip} is not whitelisted")
    rotated = False
    if not first and not record["reprovision"]:
        if presented.empty:
            return _refuse(identity, "already_provisioned", "identity is already provisioned")
        if not credential_matches(record, presented, hash_key, verifier,
                                  certificate_verified):
            return _refuse(identity, "not_authenticated",
                           "re-provisioning needs the current credentials")
        rotated = True
    expire = record["auth"]["expire"]
    if first and not record["reprovision"] and expire is not None and now_us > expire:
        if not created:
            identities.delete(txn, cid, record)
        return _refuse(identity, "expired", "the provisioning window has expired",
                       deleted=not created)

    auth_type = prov["auth_type"]
    token: str | None = None
    try:
        if auth_type == "token":
            token = credentials.new_token()
            secret = credentials.token_digest(hash_key, token)
        elif auth_type == "password":
            secret = password_hash or credentials.hash_device_password(
                password, n=password_cost)  # type: ignore[arg-type]
        else:
            if certificate is None:
                raise ServiceError(400, "bad_credentials", "no client certificate")
            secret = credentials.certificate_fingerprint(certificate)
    except ServiceError as exc:
        return _refuse(identity, "bad_credentials", exc.message)
    identities.clear_secret(txn, cid, record)
    record["auth"] = {"type": auth_type, "secret": None, "expire": None}
    identities.set_token_secret(txn, cid, record, secret)
    record["reprovision"] = False
    if ip:
        record["lastip"] = ip
    identities.save(txn, cid, record)
    if created:
        state_mod.save(txn, cid, identity, state_mod.initial_state(settings["resources"], now_us))
    return ProvisionOutcome(True, identity, auth_type=auth_type, token=token, rotated=rotated,
                            created=created, record=record)


def authenticate(txn: ReadTxn, cid: str, hash_key: str, *, now_us: int,
                 verifier: PasswordVerifier, token: str | None = None,
                 identity: str | None = None, password: str | None = None,
                 certificate: str | bytes | None = None,
                 certificate_verified: bool = False) -> AuthResult:
    """Who is connecting, or why not. Token alone, or identity with password/certificate."""
    if identity is None:
        if not token:
            return AuthResult(None, "bad_credentials")
        found = identities.identity_for_token(txn, cid, credentials.token_digest(hash_key, token))
        if found is None:
            return AuthResult(None, "bad_credentials")
        identity = found
    record = identities.load(txn, cid, identity) if isinstance(identity, str) else None
    if record is None:
        if password is not None:
            verifier.verify(None, password.encode("utf-8", "surrogatepass"))  # same cost
        return AuthResult(None, "bad_credentials")
    if record["locked"]:
        return AuthResult(identity, "locked", record)
    if record["reprovision"]:
        return AuthResult(identity, "reprovision", record)
    if not identities.has_credentials(record):
        expire = record["auth"]["expire"]
        reason = "expired" if expire is not None and now_us > expire else "bad_credentials"
        return AuthResult(identity, reason, record)
    presented = Presented(token=token, password=password, certificate=certificate)
    if not credential_matches(record, presented, hash_key, verifier, certificate_verified):
        return AuthResult(identity, "bad_credentials", record)
    return AuthResult(identity, None, record)


def expire_due(txn: WriteTxn, cid: str, now_us: int, *, start: bytes = b"",
               limit: int | None = None) -> tuple[list[str], bytes | None]:
    """Delete whitelisted identities past ``auth.expire`` (the timer of §3.1): their names, and
    the key to resume from (None when the walk reached the end).

    Walks the connector's records from ``start``, at most ``limit`` of them, so a timer can
    sweep a large fleet in small steps instead of one long scan."""
    gone: list[str] = []
    rows = txn.scan(tables.IDENTITIES, tables.prefix(cid), start)
    for count, (key, raw) in enumerate(rows):
        if limit is not None and count == limit:
            return gone, key
        record = tables.loads(raw)
        expire = record["auth"]["expire"]
        if (expire is not None and now_us > expire and not record["reprovision"]
                and not identities.has_credentials(record)):
            identities.delete(txn, cid, record)
            gone.append(record["identity"])
    return gone, None
