"""Who sends a device HTTP request (connector-spec §2.4, §6).

- token mode: ``X-Exosite-CIK: <token>``;
- password mode: ``Authorization: Basic base64(<identity>:<password>)``;
- certificate mode (the connector's ``auth_type``), when neither is given: the TLS client
  certificate (HTTPS, or HTTP over ALPN ``http/1.1`` on the MQTT TLS port); the identity is its
  CN (``Device2Service.certificate_login``). Certificate devices never activate (§3.3), so the
  first request of an unknown (presenter identity on) or whitelisted identity provisions it
  (pins the certificate), as over MQTT. Over plain HTTP there is no certificate.

Refusals: no credentials → 401 ``not_authenticated``; unknown or wrong credentials → 401
``bad_credentials``; credentials revoked (re-provision pending) → 401 ``not_authenticated``;
whitelisted past its window → 401 ``expired``; locked → 403 ``locked``. A certificate login
adds: a certificate out of its validity period (client CA mode) → 401 ``expired`` /
``not_yet_valid``; no single CN or an identity of the wrong format → 401
``invalid_identity``; a first login refused by the provisioning decision → 403
``presenter_identity_disabled`` · ``ip_not_allowed`` · ``provision_disabled``. Each goes to
the connector's debug log (the service logs token, password and certificate refusals itself).
A password is checked with scrypt (~60 ms) in the default executor, as the MQTT path does, so
a burst of Basic requests never stalls the loop; a verified password is remembered and later
requests skip the hash.
"""

from __future__ import annotations

import asyncio
import base64

from aiohttp import web

from admin.device_http.context import CONNECTOR, SERVICE, ctx, tls_info
from broker.gateway.errors import ServiceError
from broker.gateway.provisioning import AuthResult, Presented

CIK_HEADER = "X-Exosite-CIK"
# Refusals that are not about the credentials: the device is known to be barred.
FORBIDDEN = ("locked", "ip_not_allowed", "presenter_identity_disabled", "provision_disabled")


def _basic(header: str | None) -> tuple[str, str] | None:
    """``(identity, password)`` of a Basic authorization, None if there is none; 401
    ``bad_credentials`` if it is malformed."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, non-ASCII text
        raise ServiceError(401, "bad_credentials", "malformed Basic credentials") from None
    identity, sep, password = decoded.partition(":")
    if not sep or not identity:
        raise ServiceError(401, "bad_credentials", "Basic credentials need identity:password")
    return identity, password


def presented(request: web.Request) -> Presented:
    """The credentials a request carries, as proof of the current ones (re-provisioning)."""
    token = request.headers.get(CIK_HEADER)
    if token:
        return Presented(token=token)
    basic = _basic(request.headers.get("Authorization"))
    if basic is not None:
        return Presented(password=basic[1])
    return Presented()


async def verify_password(request: web.Request, identity: str, password: str) -> bool | None:
    """Check ``identity``'s password in a worker thread when that needs scrypt (~60 ms), so
    the event loop never runs it: False when wrong; True when right (the verifier remembers
    it, and the service's own check is then instant); None when no slow check was needed."""
    service = request.app[SERVICE]
    slow, stored = service.password_hash_to_check(identity=identity, password=password,
                                                   connector_id=request[CONNECTOR])
    if not slow:
        return None
    raw = password.encode("utf-8", "surrogatepass")
    loop = asyncio.get_running_loop()
    return bool(await loop.run_in_executor(None, service.verifier.verify, stored, raw))


async def authenticate(request: web.Request) -> str:
    """The identity of an authenticated device request, or a ServiceError (401/403)."""
    service = request.app[SERVICE]
    cid = request[CONNECTOR]
    context = ctx(request)
    token = request.headers.get(CIK_HEADER)
    if token:
        result = service.authenticate(token=token, connector_id=cid, **context)
    else:
        basic = _basic(request.headers.get("Authorization"))
        tls = tls_info(request) if basic is None else None
        if basic is not None:
            identity, password = basic
        elif (tls is not None and tls.peer_certificate is not None
                and service.uses_certificates(cid)):
            return _identity(service.certificate_login(
                certificate=tls.peer_certificate, chain=tls.chain, connector_id=cid,
                **context))
        else:
            service.logs[cid].debug(service.clock(), "not_authenticated", detail="no credentials",
                                    **context)
            raise ServiceError(401, "not_authenticated", "no credentials")
        if await verify_password(request, identity, password) is False:
            service.logs[cid].debug(service.clock(), "bad_credentials", identity=identity,
                                    detail="bad_credentials", **context)
            raise ServiceError(401, "bad_credentials", "wrong identity or password")
        result = service.authenticate(identity=identity, password=password, connector_id=cid,
                                      **context)
    return _identity(result)


def _identity(result: AuthResult) -> str:
    """The identity of a successful authentication, else its refusal (401, or 403)."""
    if result.ok and result.identity is not None:
        return result.identity
    reason = result.reason or "bad_credentials"
    if reason in FORBIDDEN:
        raise ServiceError(403, reason, "the device may not connect")
    if reason == "reprovision":
        reason = "not_authenticated"
    raise ServiceError(401, reason, "the device is not authenticated")
