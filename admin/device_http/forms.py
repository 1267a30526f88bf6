"""Form-encoded bodies and query strings of the device HTTP API (connector-spec §6).

Bodies are ``application/x-www-form-urlencoded; charset=utf-8``: ``key=value`` pairs joined by
``&``, keys and values percent-encoded UTF-8, ``+`` a space. Parsing is strict, because a
mangled write must be refused rather than stored half-read (product.md §7):

    valid    ``temp=21.5&msg=hello%20world`` · ``a=`` (empty value) · ``note=caf%C3%A9``
    invalid  ``=5`` (empty key, ``bad_form``) · ``a=%zz`` (``bad_form``) ·
             ``a=%FF`` (not UTF-8, ``bad_encoding``) · ``Content-Type: application/json``
             (``bad_content_type``)

A query string lists aliases (``?a1&a2``) or parameters (``?id=x&info=true``), so a key
without ``=`` is allowed there (its value is None). Responses are encoded with ``%20`` for
spaces, which every URL decoder reads.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

from broker.gateway.errors import ServiceError

FORM_TYPE = "application/x-www-form-urlencoded"
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")

Pairs = list[tuple[str, str | None]]


def bad_form(message: str) -> ServiceError:
    return ServiceError(400, "bad_form", message)


def _decode(part: str) -> str:
    if _BAD_PERCENT.search(part):
        raise bad_form(f"invalid percent-encoding in {part[:40]!r}")
    try:
        return unquote_to_bytes(part.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise ServiceError(400, "bad_encoding", "a key or value is not UTF-8") from None


def parse_pairs(text: str, *, values_required: bool) -> Pairs:
    """Decoded ``(key, value)`` pairs in order (repeated keys kept: ``record`` needs them);
    empty segments (``a=1&&b=2``) are skipped."""
    pairs: Pairs = []
    for item in text.split("&"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not key:
            raise bad_form("a pair has an empty key")
        if values_required and not sep:
            raise bad_form(f"{key[:40]!r} has no '=' and value")
        pairs.append((_decode(key), _decode(value) if sep else None))
    return pairs


def check_content_type(header: str | None) -> None:
    """A form body must say it is one (or say nothing); only UTF-8 is accepted."""
    if header is None or not header.strip():
        return
    mime, _, params = header.partition(";")
    if mime.strip().lower() != FORM_TYPE:
        raise ServiceError(400, "bad_content_type",
                           f"the body must be {FORM_TYPE}, not {mime.strip()[:60]!r}")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
                "utf-8", "utf8"):
            raise ServiceError(400, "bad_content_type", "the body's charset must be utf-8")


def parse_body(body: bytes, content_type: str | None) -> list[tuple[str, str]]:
    """The pairs of a form body; every pair must have a value."""
    check_content_type(content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ServiceError(400, "bad_encoding", "the body is not UTF-8") from None
    return [(k, v or "") for k, v in parse_pairs(text, values_required=True)]


def query_of(raw_path: str) -> str:
    """The raw (still percent-encoded) query string of a request target."""
    return raw_path.partition("?")[2].partition("#")[0]


def encode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
