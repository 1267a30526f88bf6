"""Connector ids and the connector settings object.

connector-spec §1: connector ids are lower-case alphanumerics; we make 14 characters from a
CSPRNG and accept ``[a-z0-9]{1,32}`` (``09iolmnn8090ol`` valid, ``Abc``/``a-b`` invalid).
connector-spec §2: the settings object is
``{name, description, fqdn, protocol, identity_format, provisioning, resources, events, pki}``
with the defaults of a real response (``protocol {name:"onep", devmode:false}`` …). ``fqdn`` is
derived (``<cid>.m2.<domain>``), never stored. Every field is validated; an update is a deep
merge (a ``null`` inside a nested object removes that key, RFC 7386 style, so a resource can be
dropped with ``{"resources": {"x": null}}``) and the merged result is validated as a whole before
anything is stored.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import secrets
import string
from collections.abc import Mapping
from typing import Any

from broker.gateway.certificates import ClientCA
from broker.gateway.errors import ServiceError
from broker.gateway.events import EVENT_TYPES
from broker.gateway.identity_format import CASINGS, canonical_type, check_identity_rules
from broker.gateway.resources import validate_definition

CONNECTOR_ID_RE = re.compile(r"[a-z0-9]{1,32}")
CONNECTOR_ID_LENGTH = 14
_ID_ALPHABET = string.ascii_lowercase + string.digits

PROTOCOLS = ("onep", "onep:v1/http", "murano:v1/mqtt")
PROTOCOL_ALIASES = {"http": "onep:v1/http", "mqtt": "murano:v1/mqtt"}
AUTH_TYPES = ("token", "password", "certificate")
AUTH_ALIASES = {"cik": "token"}  # legacy listings (connector-spec §2.4)
UNSUPPORTED_AUTH_TYPES = ("hash", "signature")

TOP_LEVEL = ("name", "description", "fqdn", "protocol", "identity_format", "provisioning",
             "resources", "events", "pki", "tags_schema")


def new_connector_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(CONNECTOR_ID_LENGTH))


def validate_connector_id(connector_id: object) -> str:
    if not isinstance(connector_id, str) or not CONNECTOR_ID_RE.fullmatch(connector_id):
        raise ServiceError(400, "bad_request", "connector id must match [a-z0-9]{1,32}")
    return connector_id


def fqdn(connector_id: str, domain: str) -> str:
    return f"{connector_id}.m2.{domain}"


def default_settings(name: str = "", description: str = "") -> dict[str, Any]:
    """Stored settings of a new connector (connector-spec §2 defaults; events: all types)."""
    return {
        "name": name,
        "description": description,
        "protocol": {"name": "onep", "devmode": False},
        "identity_format": {"prefix": "", "type": "opaque",
                            "options": {"casing": "mixed", "length": 0}},
        "provisioning": {"auth_type": "token", "enabled": True, "generate_identity": True,
                         "presenter_identity": True,
                         "ip_whitelisting": {"enabled": False, "allowed": []}},
        "resources": {},
        "events": {"types": list(EVENT_TYPES)},
        "pki": None,
        "tags_schema": None,
    }


def canonical_auth_type(value: object) -> str:
    if isinstance(value, str):
        value = AUTH_ALIASES.get(value, value)
        if value in AUTH_TYPES:
            return value
        if value in UNSUPPORTED_AUTH_TYPES:
            raise ServiceError(400, "unsupported_auth_type",
                               f"auth type {value!r} is not supported")
    raise ServiceError(400, "bad_request", f"auth_type must be one of {', '.join(AUTH_TYPES)}")


def _bad(message: str) -> ServiceError:
    return ServiceError(400, "bad_request", message)


def _object(value: object, where: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(f"{where} must be an object")
    unknown = set(value) - set(keys)
    if unknown:
        raise _bad(f"{where}: unknown fields {sorted(unknown)}")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{where} must be a boolean")
    return value


def _str(value: object, where: str, limit: int = 1024) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(f"{where} must be a string of at most {limit} characters")
    return value


def validate_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised stored form (aliases resolved, missing fields defaulted) or 400."""
    base = default_settings()
    s = _object(settings, "settings", TOP_LEVEL)
    merged = deep_merge(base, {k: v for k, v in s.items() if k != "fqdn" and v is not None},
                        drop_nulls=False)
    out: dict[str, Any] = {
        "name": _str(merged["name"] or "", "name", 256),
        "description": _str(merged["description"] or "", "description", 4096),
    }

    p = _object(merged["protocol"], "protocol", ("name", "devmode", "port"))
    pname = PROTOCOL_ALIASES.get(p.get("name"), p.get("name"))  # type: ignore[arg-type]
    if pname not in PROTOCOLS:
        raise _bad(f"protocol.name must be one of {', '.join(PROTOCOLS)} (or http/mqtt)")
    protocol: dict[str, Any] = {"name": pname,
                                "devmode": _bool(p.get("devmode", False), "protocol.devmode")}
    if p.get("port") is not None:
        port = p["port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise _bad("protocol.port must be a port number")
        protocol["port"] = port
    out["protocol"] = protocol

    f = _object(merged["identity_format"], "identity_format", ("type", "prefix", "options"))
    o = _object(f.get("options") or {}, "identity_format.options", ("casing", "length"))
    prefix = _str(f.get("prefix") or "", "identity_format.prefix", 128)
    if prefix:
        try:
            check_identity_rules(prefix)
        except ServiceError as exc:
            raise _bad(f"identity_format.prefix: {exc.message}") from exc
    casing = o.get("casing", "mixed")
    if casing not in CASINGS:
        raise _bad(f"identity_format.options.casing must be one of {', '.join(CASINGS)}")
    length = o.get("length", 0)
    if length is None or length == "":
        length = 0  # the UI's "blank = no limit" (connector-spec §2.3)
    if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= 256:
        raise _bad("identity_format.options.length must be an integer 0..256")
    out["identity_format"] = {"prefix": prefix, "type": canonical_type(f.get("type", "opaque")),
                              "options": {"casing": casing, "length": length}}

    v = _object(merged["provisioning"], "provisioning",
                ("enabled", "auth_type", "generate_identity", "presenter_identity",
                 "ip_whitelisting"))
    w = _object(v.get("ip_whitelisting") or {}, "provisioning.ip_whitelisting",
                ("enabled", "allowed"))
    allowed = w.get("allowed") or []
    if not isinstance(allowed, list):
        raise _bad("provisioning.ip_whitelisting.allowed must be a list")
    for entry in allowed:
        parse_network(entry)
    out["provisioning"] = {
        "auth_type": canonical_auth_type(v.get("auth_type", "token")),
        "enabled": _bool(v.get("enabled", True), "provisioning.enabled"),
        "generate_identity": _bool(v.get("generate_identity", True),
                                   "provisioning.generate_identity"),
        "presenter_identity": _bool(v.get("presenter_identity", True),
                                    "provisioning.presenter_identity"),
        "ip_whitelisting": {
            "enabled": _bool(w.get("enabled", False), "provisioning.ip_whitelisting.enabled"),
            "allowed": list(allowed)},
    }

    resources = merged["resources"] or {}
    if not isinstance(resources, Mapping):
        raise _bad("resources must be an object")
    out["resources"] = {alias: validate_definition(alias, defn)
                        for alias, defn in resources.items()}

    e = _object(merged["events"] or {}, "events", ("types",))
    types = e.get("types", list(EVENT_TYPES))
    if not isinstance(types, list) or any(t not in EVENT_TYPES for t in types):
        raise _bad(f"events.types must be a subset of {', '.join(EVENT_TYPES)}")
    out["events"] = {"types": [t for t in EVENT_TYPES if t in types]}

    pki = merged["pki"]
    if pki is not None:
        if not isinstance(pki, Mapping):
            raise _bad("pki must be an object or null")
        vendor = pki.get("vendor")
        if vendor is not None and not (isinstance(vendor, Mapping)
                                       and isinstance(vendor.get("name", ""), str)):
            raise _bad("pki.vendor must be an object with a string name")
        ca = pki.get("client_ca")
        if ca is not None and not (isinstance(ca, str) and "BEGIN CERTIFICATE" in ca):
            raise _bad("pki.client_ca must be a PEM certificate")
        if ca is not None:
            ClientCA(ca)  # 400 unless every certificate in it parses (certificate mode uses it)
        pki = copy.deepcopy(dict(pki))
    out["pki"] = pki

    schema = merged.get("tags_schema")
    if schema is not None and not isinstance(schema, Mapping):
        raise _bad("tags_schema must be a JSON-Schema object or null")
    out["tags_schema"] = copy.deepcopy(schema)
    return out


def parse_network(entry: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An ip_whitelisting entry: one IPv4/IPv6 address or a CIDR range (connector-spec §2.6)."""
    if not isinstance(entry, str):
        raise _bad(f"ip_whitelisting entry {entry!r} must be a string")
    try:
        return ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError as exc:
        raise _bad(f"ip_whitelisting entry {entry!r} is not an address or CIDR range") from exc


def ip_allowed(settings: Mapping[str, Any], ip: str | None) -> bool:
    """True when first-time provisioning from ``ip`` is allowed (connector-spec §2.6)."""
    whitelist = settings["provisioning"]["ip_whitelisting"]
    if not whitelist["enabled"]:
        return True
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # a dual-stack listener reports ::ffff:a.b.c.d
    return any(address in parse_network(entry) for entry in whitelist["allowed"])


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any], *,
               drop_nulls: bool = True) -> dict[str, Any]:
    """``patch`` merged into a copy of ``base``: objects merge key by key, anything else
    replaces; with ``drop_nulls`` a null removes the key (nested levels only: top-level nulls
    reset the field to its default during validation)."""
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_nested(out[key], value) if drop_nulls else deep_merge(
                out[key], value, drop_nulls=False)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_nested(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge_nested(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def public_settings(stored: Mapping[str, Any], connector_id: str,
                    domain: str) -> dict[str, Any]:
    """The getGatewaySettings object: stored settings plus the derived fqdn."""
    out = copy.deepcopy(dict(stored))
    out["fqdn"] = fqdn(connector_id, domain)
    return out


def apply_update(stored: Mapping[str, Any], patch: Mapping[str, Any], connector_id: str,
                 domain: str) -> dict[str, Any]:
    """updateGatewaySettings: merge, then validate the whole result (nothing stored on error).

    ``fqdn`` is derived; sending back the same value (a GET body PATCHed back) is accepted,
    changing it is not."""
    if not isinstance(patch, Mapping):
        raise _bad("settings update must be an object")
    _object(patch, "settings", TOP_LEVEL)
    if "fqdn" in patch and patch["fqdn"] != fqdn(connector_id, domain):
        raise _bad("fqdn is derived from the connector id and domain; it cannot be changed")
    merged = deep_merge(stored, {k: v for k, v in patch.items() if k != "fqdn"})
    return validate_settings(merged)
