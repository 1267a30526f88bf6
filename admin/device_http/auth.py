"""Who sends a device HTTP request (connector-spec §2.4, §6).

- token mode: ``X-Exosite-CIK: <token>``;
- password mode: ``Authorization: Basic base64(<identity>:<password>)``;
- certificate mode needs TLS (the HTTPS listener, not built yet): over plain HTTP such a
  device cannot authenticate.

Refusals: no credentials → 401 ``not_authenticated``; unknown or wrong credentials → 401
``bad_credentials``; credentials revoked (re-provision pending) → 401 ``not_authenticated``;
whitelisted past its window → 401 ``expired``; locked → 403 ``locked``. Each goes to the
connector's debug log (the service logs token and password refusals itself).
A password is checked with scrypt (~60 ms) in the default executor, as the MQTT path does, so
a burst of Basic requests never stalls the loop; a verified password is remembered and later
requests skip the hash.
"""

from __future__ import annotations

import asyncio
import base64

from aiohttp import web

from admin.device_http.context import CONNECTOR, SERVICE, ctx
from broker.gateway.errors import ServiceError
from broker.gateway.provisioning import Presented

CIK_HEADER = "X-Exosite-CIK"


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
        if basic is None:
            service.logs[cid].debug(service.clock(), "not_authenticated", detail="no credentials",
                                    **context)
            raise ServiceError(401, "not_authenticated", "no credentials")
        identity, password = basic
        if await verify_password(request, identity, password) is False:
            service.logs[cid].debug(service.clock(), "bad_credentials", identity=identity,
                                    detail="bad_credentials", **context)
            raise ServiceError(401, "bad_credentials", "wrong identity or password")
        result = service.authenticate(identity=identity, password=password, connector_id=cid,
                                      **context)
    if result.ok and result.identity is not None:
        return result.identity
    reason = result.reason or "bad_credentials"
    if reason == "locked":
        raise ServiceError(403, "locked", "the device is locked")
    if reason == "reprovision":
        reason = "not_authenticated"
    raise ServiceError(401, reason, "the device is not authenticated")
