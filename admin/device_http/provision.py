"""``POST /provision/activate`` (connector-spec §3.2, §3.3).

Body ``id=<identity>`` (form-encoded); the legacy ``vendor=<cid>&model=<cid>&sn=<identity>`` is
accepted too: ``sn`` is a synonym of ``id``, and ``vendor``/``model`` must name the connector
the request is for (else 404 ``not_found``). Password mode adds ``password=<password>`` (at
least 20 characters), hashed with scrypt in a worker thread.

Success: token mode 200 ``text/plain`` with the new 40-character token; password mode 204.
Re-provisioning a provisioned device needs its current credentials (``X-Exosite-CIK`` or
Basic): then a new token is issued (rotation).

Certificate mode (§3.3): the identity is the CN of the TLS client certificate (HTTPS, or HTTP
over ALPN on the MQTT TLS port); ``id``/``sn`` may be left out, and if given must equal it
(else 400 ``invalid_identity``). With a client CA the certificate must chain to it. The
certificate is pinned; success is 204. The certificate also proves the current credentials:
activating again with the pinned certificate (or, with a client CA, any certificate of that
identity that chains to it) re-pins and answers 204. Over plain HTTP there is no certificate:
400 ``bad_credentials``. Certificate devices need not activate at all: their first
authenticated request provisions them (auth.py).

Refusals, each a ``text/plain`` body holding the reason:

    400 invalid_identity            no id, or it fails the identity format
    400 not_authenticated           re-provision with wrong credentials
    400 bad_credentials             password too short; certificate mode without a client
                                    certificate, or one that does not verify
    403 locked · ip_not_allowed · expired · not_yet_valid (certificate dates, client CA mode)
    404 presenter_identity_disabled unknown identity and presenter identity off
    409 already_provisioned         provisioned, and no credentials given
    409 provision_disabled          provisioning is off for the connector

The debug log records ``already_provisioned`` as ``not_authenticated`` (the §8.2 word); the
body names the finer reason.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from admin.device_http.auth import presented, verify_password
from admin.device_http.context import CONNECTOR, SERVICE, ctx, no_content, text, tls_info
from admin.device_http.stack import body_pairs
from broker.gateway.errors import ServiceError
from broker.gateway.provisioning import Presented

REFUSAL_STATUS = {
    "invalid_identity": 400,
    "not_authenticated": 400,
    "bad_credentials": 400,
    "locked": 403,
    "ip_not_allowed": 403,
    "expired": 403,
    "not_yet_valid": 403,
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
    tls = tls_info(request)
    certificate = tls.peer_certificate if tls is not None else None
    by_certificate = certificate is not None and service.uses_certificates(cid)
    if not identity and not by_certificate:
        raise ServiceError(400, "invalid_identity", "the body needs id=<identity>")
    # scrypt runs in worker threads, never on the loop: the old password of a rotation is
    # checked there (and remembered), the new one hashed there.
    proof = presented(request)
    if proof.empty and by_certificate:
        proof = Presented(certificate=certificate)
    if proof.password is not None:
        await verify_password(request, identity, proof.password)
    password = fields.get("password")
    hashed = None
    if password is not None and service.registers_passwords(cid):
        loop = asyncio.get_running_loop()
        hashed = await loop.run_in_executor(None, service.hash_new_password, password)
    # Certificate mode: the service takes the identity from the certificate's CN when no id
    # was given, and checks the certificate (CN, client CA) before the §3.2 decision.
    outcome = service.provision(identity=identity or None, presented=proof, password=password,
                                password_hash=hashed, certificate=certificate,
                                chain=tls.chain if tls is not None else (), connector_id=cid,
                                **ctx(request))
    if not outcome.accepted:
        reason = outcome.reason or "not_authenticated"
        raise ServiceError(REFUSAL_STATUS.get(reason, 400), reason, outcome.message)
    if outcome.token is not None:
        return text(200, outcome.token)
    return no_content()
