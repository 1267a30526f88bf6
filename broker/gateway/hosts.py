"""Connector selection by name (product.md §2, connector-spec §1): the TLS SNI name, else the
HTTP ``Host``, of ``<cid>.m2.<domain>`` or ``<cid>.devmode-m2.<domain>`` names connector
``<cid>``; any other name (an address, ``localhost``, the bare domain) names none, and the
default connector serves it. The MQTT hooks and the device HTTP API both use this.

    connector_in_host("abc.m2.example.com:8443", "example.com")   → "abc"
    connector_in_host("ABC.devmode-m2.example.com.", "example.com") → "abc"
    connector_in_host("127.0.0.1", "example.com")                 → None
"""

from __future__ import annotations

HOST_MARKERS = (".m2.", ".devmode-m2.")


def connector_in_host(host: str | None, domain: str) -> str | None:
    """The connector id a ``Host`` header or SNI name names (the port and a trailing dot
    ignored, case-insensitive), or None when it names none. The id is not checked here."""
    if not host:
        return None
    name = host.strip().lower()
    if name.startswith("["):
        return None  # an IPv6 address
    name = name.rpartition(":")[0] if ":" in name else name
    name = name.rstrip(".")
    for marker in HOST_MARKERS:
        suffix = marker + domain.lower().rstrip(".")
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return None
