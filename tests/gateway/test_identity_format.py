"""broker/gateway/identity_format.py: connector-spec §1 identity rules and the §2.3 formats."""

from __future__ import annotations

import pytest

from broker.gateway.errors import ServiceError
from broker.gateway.identity_format import make_identity, validate_identity


def fmt(type: str = "opaque", prefix: str = "", casing: str = "mixed",
        length: int = 0) -> dict:  # type: ignore[type-arg]
    return {"type": type, "prefix": prefix, "options": {"casing": casing, "length": length}}


@pytest.mark.parametrize("identity,f", [
    ("anything goes", fmt()),
    ("ü-device", fmt()),
    ("x" * 256, fmt()),
    ("0123", fmt("base10")),
    ("00AbFf", fmt("base16")),
    ("00AB01020304", fmt("mac:48")),
    ("00:EE:FF:01:02:03", fmt("mac:48")),
    ("00-ee-ff-01-02-03", fmt("mac:48")),
    ("f47ac10b-58cc-4372-a567-0e02b2c3d479", fmt("uuid:v4")),
    ("gw-00:AB:01:02:03:04", fmt("mac:48", prefix="gw-", casing="upper")),
    ("sn-abc", fmt(prefix="sn-", length=3)),
    ("abc1", fmt(casing="lower")),
    ("ABC1", fmt(casing="upper")),
])
def test_valid(identity: str, f: dict) -> None:  # type: ignore[type-arg]
    assert validate_identity(identity, f) == identity


@pytest.mark.parametrize("identity,f", [
    ("", fmt()),
    (None, fmt()),
    ("x" * 257, fmt()),
    ("é" * 129, fmt()),  # 258 bytes
    ("a/b", fmt()), ("a+b", fmt()), ("a#b", fmt()), ("a\0b", fmt()),
    ("12a", fmt("base10")),
    ("0g", fmt("base16")),
    ("00AB0102030", fmt("mac:48")),
    ("00:EE-FF:01:02:03", fmt("mac:48")),  # mixed separators
    ("00:EE:FF:01:02:03:04", fmt("mac:48")),
    ("f47ac10b-58cc-3372-a567-0e02b2c3d479", fmt("uuid:v4")),  # version 3
    ("f47ac10b58cc4372a5670e02b2c3d479", fmt("uuid:v4")),
    ("00AB01020304", fmt("mac:48", prefix="gw-")),
    ("gw-", fmt(prefix="gw-")),
    ("gw-00:ab:01:02:03:04", fmt("mac:48", prefix="gw-", casing="upper")),
    ("Abc", fmt(casing="lower")),
    ("sn-abcd", fmt(prefix="sn-", length=3)),
])
def test_invalid(identity: object, f: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ServiceError) as info:
        validate_identity(identity, f)
    assert (info.value.status, info.value.code) == (400, "invalid_identity")


@pytest.mark.parametrize("f", [
    fmt(), fmt(casing="lower"), fmt(casing="upper", length=8), fmt("base10", length=6),
    fmt("base16", casing="upper"), fmt("mac:48", prefix="m-"), fmt("uuid:v4", casing="upper"),
    fmt("uuid:v4"), fmt(prefix="p", length=5),
])
def test_make_identity_conforms(f: dict) -> None:  # type: ignore[type-arg]
    made = {make_identity(f) for _ in range(20)}
    assert len(made) == 20
    for identity in made:
        assert validate_identity(identity, f) == identity


def test_make_identity_extra_prefix() -> None:
    f = fmt(prefix="gw-", length=10)
    identity = make_identity(f, "lyon")
    assert identity.startswith("gw-lyon") and len(identity) == 13
    assert make_identity(f, "gw-lyon").startswith("gw-lyon")
    with pytest.raises(ServiceError):
        make_identity(fmt("base10"), "abc")
