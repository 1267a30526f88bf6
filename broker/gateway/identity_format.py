"""Identity rules and identity formats.

connector-spec §1: an identity is at most 256 bytes (UTF-8) and holds no ``/``, ``+``, ``#`` or
NUL, so it stays usable in the MQTT topic ``$provision/<identity>``.
connector-spec §2.3: it must also match the connector's ``identity_format``
``{type, prefix, options:{casing, length}}``:

    type      accepts after the prefix
    opaque    any non-empty string
    base10    [0-9]+
    base16    [0-9A-Fa-f]+                    (alias ``hex``)
    mac:48    12 hex digits, optionally ``:``/``-`` every 2 digits   (alias ``mac``)
    uuid:v4   canonical 8-4-4-4-12 UUID v4     (alias ``uuid``)

``length`` is the exact length of the part after the prefix (0 = unlimited); ``casing`` is
``mixed`` (as is), ``lower`` or ``upper`` (letters of the other case are refused).
Valid with ``{type:"mac:48", prefix:"gw-", casing:"upper"}``: ``gw-00:AB:01:02:03:04``.
Invalid: ``gw-00:ab:01:02:03:04`` (casing), ``00AB01020304`` (prefix), ``a/b`` (§1).
The stored identity is the one presented, prefix included; nothing is rewritten.
"""

from __future__ import annotations

import re
import secrets
import string
import uuid
from collections.abc import Mapping
from typing import Any

from broker.gateway.errors import ServiceError

MAX_IDENTITY_BYTES = 256
FORBIDDEN = frozenset("/+#\0")

TYPES = ("opaque", "base10", "base16", "mac:48", "uuid:v4")
TYPE_ALIASES = {"hex": "base16", "mac": "mac:48", "uuid": "uuid:v4"}
CASINGS = ("mixed", "lower", "upper")

_PATTERNS: dict[str, re.Pattern[str]] = {
    "opaque": re.compile(r".+", re.DOTALL),
    "base10": re.compile(r"[0-9]+"),
    "base16": re.compile(r"[0-9A-Fa-f]+"),
    # No separator, or the same separator (":" or "-") between every pair of digits.
    "mac:48": re.compile(
        r"[0-9A-Fa-f]{12}|[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(\1[0-9A-Fa-f]{2}){4}"),
    "uuid:v4": re.compile(
        r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-4[0-9A-Fa-f]{3}-[89ABab][0-9A-Fa-f]{3}-[0-9A-Fa-f]{12}"),
}

DEFAULT_GENERATED_LENGTH = 16  # for opaque/base10/base16 when options.length is 0


def invalid(message: str) -> ServiceError:
    return ServiceError(400, "invalid_identity", message)


def check_identity_rules(identity: object) -> str:
    """The general rules of connector-spec §1, whatever the format."""
    if not isinstance(identity, str) or not identity:
        raise invalid("identity must be a non-empty string")
    if len(identity.encode("utf-8", "surrogatepass")) > MAX_IDENTITY_BYTES:
        raise invalid(f"identity longer than {MAX_IDENTITY_BYTES} bytes")
    bad = FORBIDDEN.intersection(identity)
    if bad:
        raise invalid(f"identity contains forbidden characters {sorted(bad)!r}")
    try:
        identity.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise invalid("identity is not valid UTF-8") from exc
    return identity


def canonical_type(name: object) -> str:
    if isinstance(name, str):
        name = TYPE_ALIASES.get(name, name)
        if name in TYPES:
            return name
    raise ServiceError(400, "bad_request",
                       f"identity_format.type must be one of {', '.join(TYPES)} (or hex/mac/uuid)")


def validate_identity(identity: object, fmt: Mapping[str, Any]) -> str:
    """Return ``identity`` if it satisfies §1 and the format ``fmt``, else raise 400
    ``invalid_identity`` saying which rule failed. ``fmt`` is a validated identity_format."""
    identity = check_identity_rules(identity)
    prefix: str = fmt.get("prefix") or ""
    options = fmt.get("options") or {}
    if not identity.startswith(prefix):
        raise invalid(f"identity must start with prefix {prefix!r}")
    rest = identity[len(prefix):]
    if not rest:
        raise invalid("identity has nothing after the prefix")
    kind = canonical_type(fmt.get("type", "opaque"))
    if not _PATTERNS[kind].fullmatch(rest):
        raise invalid(f"identity does not match format {kind}")
    length = options.get("length") or 0
    if length and len(rest) != length:
        raise invalid(f"identity must have exactly {length} characters after the prefix")
    casing = options.get("casing", "mixed")
    if casing == "lower" and rest != rest.lower():
        raise invalid("identity must be lower case")
    if casing == "upper" and rest != rest.upper():
        raise invalid("identity must be upper case")
    return identity


def make_identity(fmt: Mapping[str, Any], prefix: str | None = None) -> str:
    """A random identity conforming to ``fmt`` (makeIdentity, connector-spec §2.3/§11).

    ``prefix`` (optional) is an extra start for the random part, after the format's own prefix
    (given with the format's prefix included, it is not repeated). Raises invalid_identity when
    no conforming identity can start that way (e.g. a letter prefix for base10).
    """
    fixed: str = fmt.get("prefix") or ""
    options = fmt.get("options") or {}
    extra = prefix or ""
    if extra.startswith(fixed):
        extra = extra[len(fixed):]
    kind = canonical_type(fmt.get("type", "opaque"))
    casing = options.get("casing", "mixed")
    length = options.get("length") or 0
    if kind == "uuid:v4":
        body = str(uuid.uuid4())
        body = extra + body[len(extra):]
    else:
        if kind == "mac:48":
            alphabet, size = string.digits + "ABCDEF", 12
        elif kind == "base16":
            alphabet, size = string.digits + "abcdef", length or DEFAULT_GENERATED_LENGTH
        elif kind == "base10":
            alphabet, size = string.digits, length or DEFAULT_GENERATED_LENGTH
        else:
            alphabet = string.ascii_letters + string.digits
            size = length or DEFAULT_GENERATED_LENGTH
        if casing == "lower":
            alphabet = "".join(sorted(set(alphabet.lower())))
        elif casing == "upper":
            alphabet = "".join(sorted(set(alphabet.upper())))
        size = max(size - len(extra), 0 if length else 1)
        body = extra + "".join(secrets.choice(alphabet) for _ in range(size))
    if casing == "upper":
        body = body[:len(extra)] + body[len(extra):].upper()
    elif casing == "lower":
        body = body[:len(extra)] + body[len(extra):].lower()
    return validate_identity(fixed + body, fmt)
