"""broker/gateway/settings.py: connector ids, defaults of connector-spec §2, validation, merge."""

from __future__ import annotations

import pytest

from broker.gateway import settings as s
from broker.gateway.errors import ServiceError
from broker.gateway.events import EVENT_TYPES


def err(fn, *args, **kw) -> ServiceError:  # type: ignore[no-untyped-def]
    with pytest.raises(ServiceError) as info:
        fn(*args, **kw)
    return info.value


def test_new_connector_id_shape() -> None:
    ids = {s.new_connector_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 14 and s.CONNECTOR_ID_RE.fullmatch(i) for i in ids)


@pytest.mark.parametrize("cid", ["09iolmnn8090ol", "t41hp23nod8s00000", "a", "z" * 32])
def test_valid_connector_ids(cid: str) -> None:
    assert s.validate_connector_id(cid) == cid


@pytest.mark.parametrize("cid", ["", "A1", "a-b", "z" * 33, None, "a.b"])
def test_invalid_connector_ids(cid: object) -> None:
    assert err(s.validate_connector_id, cid).code == "bad_request"


def test_defaults_are_the_real_response() -> None:
    """connector-spec §2: protocol onep/devmode false, opaque mixed 0, token provisioning."""
    d = s.validate_settings(s.default_settings())
    assert d["protocol"] == {"name": "onep", "devmode": False}
    assert d["identity_format"] == {"prefix": "", "type": "opaque",
                                    "options": {"casing": "mixed", "length": 0}}
    assert d["provisioning"] == {"auth_type": "token", "enabled": True,
                                 "generate_identity": True, "presenter_identity": True,
                                 "ip_whitelisting": {"enabled": False, "allowed": []}}
    assert d["events"] == {"types": list(EVENT_TYPES)}
    assert d["resources"] == {} and d["pki"] is None


def test_public_settings_add_fqdn() -> None:
    out = s.public_settings(s.default_settings(), "abc", "example.com")
    assert out["fqdn"] == "abc.m2.example.com"


@pytest.mark.parametrize("given,stored", [("http", "onep:v1/http"), ("mqtt", "murano:v1/mqtt"),
                                          ("onep", "onep"), ("murano:v1/mqtt", "murano:v1/mqtt")])
def test_protocol_aliases(given: str, stored: str) -> None:
    out = s.validate_settings({"protocol": {"name": given}})
    assert out["protocol"]["name"] == stored


@pytest.mark.parametrize("given,stored", [("hex", "base16"), ("mac", "mac:48"),
                                          ("uuid", "uuid:v4"), ("base10", "base10")])
def test_identity_type_aliases(given: str, stored: str) -> None:
    out = s.validate_settings({"identity_format": {"type": given}})
    assert out["identity_format"]["type"] == stored


def test_auth_type_cik_alias() -> None:
    out = s.validate_settings({"provisioning": {"auth_type": "cik"}})
    assert out["provisioning"]["auth_type"] == "token"


@pytest.mark.parametrize("kind", ["hash", "signature"])
def test_unsupported_auth_types(kind: str) -> None:
    e = err(s.validate_settings, {"provisioning": {"auth_type": kind}})
    assert (e.status, e.code) == (400, "unsupported_auth_type")


@pytest.mark.parametrize("bad", [
    {"protocol": {"name": "coap"}},
    {"protocol": {"devmode": "yes"}},
    {"protocol": {"port": 70000}},
    {"identity_format": {"type": "base36"}},
    {"identity_format": {"options": {"casing": "title"}}},
    {"identity_format": {"options": {"length": -1}}},
    {"identity_format": {"prefix": "a/b"}},
    {"provisioning": {"auth_type": "magic"}},
    {"provisioning": {"enabled": 1}},
    {"provisioning": {"ip_whitelisting": {"allowed": ["10.0.0.300"]}}},
    {"provisioning": {"ip_whitelisting": {"allowed": "10.0.0.1"}}},
    {"provisioning": {"unknown": True}},
    {"events": {"types": ["connect", "nonsense"]}},
    {"resources": {"a.b": {}}},
    {"resources": {"x": {"format": "blob"}}},
    {"pki": "yes"},
    {"pki": {"client_ca": "not pem"}},
    {"surprise": 1},
    {"name": 5},
])
def test_invalid_settings(bad: dict) -> None:  # type: ignore[type-arg]
    assert err(s.validate_settings, bad).code == "bad_request"


def test_ip_whitelist_entries_and_matching() -> None:
    st = s.validate_settings({"provisioning": {"ip_whitelisting": {
        "enabled": True, "allowed": ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]}}})
    assert s.ip_allowed(st, "10.1.2.3")
    assert s.ip_allowed(st, "192.168.1.7")
    assert s.ip_allowed(st, "::ffff:10.9.9.9")
    assert s.ip_allowed(st, "2001:db8::5")
    assert not s.ip_allowed(st, "192.168.1.8")
    assert not s.ip_allowed(st, None)
    assert not s.ip_allowed(st, "garbage")
    assert s.ip_allowed(s.validate_settings({}), "1.1.1.1")  # disabled: everyone


def test_events_types_subset_kept_in_canonical_order() -> None:
    out = s.validate_settings({"events": {"types": ["publish", "connect"]}})
    assert out["events"]["types"] == ["connect", "publish"]


def test_update_deep_merges_and_validates_before_storing() -> None:
    stored = s.validate_settings(s.default_settings(name="n"))
    out = s.apply_update(stored, {"provisioning": {"ip_whitelisting": {"enabled": True}}},
                         "c", "d")
    assert out["provisioning"]["ip_whitelisting"] == {"enabled": True, "allowed": []}
    assert out["provisioning"]["auth_type"] == "token"
    assert out["name"] == "n"
    # A bad merged result raises and leaves the stored object untouched.
    e = err(s.apply_update, stored, {"identity_format": {"type": "nope"}}, "c", "d")
    assert e.code == "bad_request"
    assert stored["identity_format"]["type"] == "opaque"


def test_update_null_removes_a_resource_and_fqdn_rules() -> None:
    stored = s.validate_settings({"resources": {"a": {}, "b": {"format": "number"}}})
    out = s.apply_update(stored, {"resources": {"a": None}}, "c", "d")
    assert list(out["resources"]) == ["b"]
    assert s.apply_update(stored, {"fqdn": "c.m2.d"}, "c", "d") == stored
    assert err(s.apply_update, stored, {"fqdn": "x.m2.d"}, "c", "d").code == "bad_request"
    assert err(s.apply_update, stored, [], "c", "d").code == "bad_request"


def test_blank_length_means_unlimited() -> None:
    out = s.validate_settings({"identity_format": {"options": {"length": ""}}})
    assert out["identity_format"]["options"]["length"] == 0
