"""``POST /provision/activate`` (connector-spec §3.2, §3.3).

Body ``id=<identity>`` (form-encoded); the legacy ``vendor=<cid>&model=<cid>&sn=<identity>`` is
accepted too: ``sn`` is a synonym of ``id``, and ``vendor``/``model`` must name the connector
the request is for (else 404 ``not_found``). Password mode adds ``password=<password>`` (at
least 20 characters), hashed with scrypt in a worker thread.

Success: token mode 200 ``text/plain`` with the new 40-character token; password mode 204.
Re-provisioning a provisioned device needs its current credentials (``X-Exosite-CIK`` or
Basic): then a new token is issued (rotation).

Refusals, each a ``text/plain`` body holding the reason:

    400 invalid_identity            no id, or it fails the identity format
    400 not_authenticated           re-provision with wrong credentials
    400 bad_credentials             password too short; certificate mode (see below)
    403 locked · ip_not_allowed · expired
    404 presenter_identity_disabled unknown identity and presenter identity off
    409 already_provisioned         provisioned, and no credentials given
    409 provision_disabled          provisioning is off for the connector

The debug log records ``already_provisioned`` as ``not_authenticated`` (the §8.2 word); the
body names the finer reason. Certificate mode takes the identity from the TLS client
certificate; plain HTTP has none, so it answers 400 ``bad_credentials`` until the HTTPS
listener exists.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from admin.device_http.auth import presented, verify_password
from admin.device_http.context import CONNECTOR, SERVICE, ctx, no_content, text
from admin.device_http.stack import body_pairs
from broker.gateway.errors import ServiceError

REFUSAL_STATUS = {
    "invalid_identity": 400,
    "not_authenticated": 400,
    "bad_credentials": 400,
    "locked": 403,
    "ip_not_allowed": 403,
    "expired": 403,
    "presenter_identity_disabled": 404,
    "already_provisioned": 409,
    "provision_disabled": 409,
}


async def activate(request: web.Request) -> web.Response:
    service, cid = request.app[SERVICE], request[CONNECTOR]
    fields: dict[str, str] = {}
    for key, value in await body_pairs(request):
        if key in fields and fields[key] != value:
            raise ServiceError(400, "bad_form", f"{key!r} is given twice")
        fields[key] = value
    for name in ("vendor", "model"):
        if name in fields and fields[name] != cid:
            raise ServiceError(404, "not_found", f"{name} {fields[name]!r} is not this connector")
    identity = fields.get("id")
    serial = fields.get("sn")
    if identity is not None and serial is not None and identity != serial:
        raise ServiceError(400, "invalid_identity", "id and sn differ")
    identity = identity if identity is not None else serial
    if not identity:
        raise ServiceError(400, "invalid_identity", "the body needs id=<identity>")
    # scrypt runs in worker threads, never on the loop: the old password of a rotation is
    # checked there (and remembered), the new one hashed there.
    proof = presented(request)
    if proof.password is not None:
        await verify_password(request, identity, proof.password)
    password = fields.get("password")
    hashed = None
    if password is not None and service.registers_passwords(cid):
        loop = asyncio.get_running_loop()
        hashed = await loop.run_in_executor(None, service.hash_new_password, password)
    outcome = service.provision(identity=identity, presented=proof, password=password,
                                password_hash=hashed, connector_id=cid, **ctx(request))
    if not outcome.accepted:
        reason = outcome.reason or "not_authenticated"
        raise ServiceError(REFUSAL_STATUS.get(reason, 400), reason, outcome.message)
    if outcome.token is not None:
        return text(200, outcome.token)
    return no_content()
