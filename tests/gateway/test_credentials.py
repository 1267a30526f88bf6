"""broker/gateway/credentials.py: tokens, keyed token digests, passwords, certificates, app keys."""

from __future__ import annotations

import re

import pytest

from broker.gateway import credentials as c
from broker.gateway.errors import ServiceError
from broker.security.passwords import PasswordVerifier
from tests.gateway.conftest import FAST_SCRYPT

# A tiny self-signed certificate is not needed: any DER bytes pin the same way; PEM framing
# is what the parser checks.
PEM = ("-----BEGIN CERTIFICATE-----\n"
       "MIIBszCCAVmgAwIBAgIUQ2ZlZ2F0ZXRlc3RjZXJ0aWZpY2F0ZTAKBggqhkjOPQQDAjAP\n"
       "-----END CERTIFICATE-----\n")


def test_token_shape_and_randomness() -> None:
    tokens = {c.new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9]{40}", t) for t in tokens)


def test_token_digest_keyed_and_checked() -> None:
    key1, key2 = c.new_hash_key(), c.new_hash_key()
    token = c.new_token()
    d1 = c.token_digest(key1, token)
    assert len(d1) == 64 and token not in d1
    assert d1 == c.token_digest(key1, token)  # deterministic: usable as an index key
    assert d1 != c.token_digest(key2, token)  # keyed per connector
    assert c.token_matches(key1, d1, token)
    assert not c.token_matches(key1, d1, token[:-1] + "x")
    assert not c.token_matches(key1, None, token)


def test_password_rules_and_scrypt() -> None:
    with pytest.raises(ServiceError) as info:
        c.hash_device_password("short", n=FAST_SCRYPT)
    assert info.value.code == "bad_credentials"
    with pytest.raises(ServiceError):
        c.check_password("x" * 2000)
    stored = c.hash_device_password("p" * 20, n=FAST_SCRYPT)
    assert stored.startswith("scrypt$1024$")
    verifier = PasswordVerifier()
    assert verifier.verify(stored, b"p" * 20)
    assert not verifier.verify(stored, b"q" * 20)


def test_certificate_fingerprint() -> None:
    fp = c.certificate_fingerprint(PEM)
    assert re.fullmatch(r"[0-9a-f]{64}", fp)
    assert c.certificate_fingerprint(PEM.encode()) == fp
    assert c.certificate_fingerprint(b"\x30\x03\x02\x01\x01") != fp  # DER bytes
    for bad in ("hello", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"):
        with pytest.raises(ServiceError) as info:
            c.certificate_fingerprint(bad)
        assert info.value.code == "bad_request"


def test_app_credentials() -> None:
    key, secret = c.new_app_credentials()
    assert re.fullmatch(r"[a-z0-9]{20}", key)
    assert re.fullmatch(r"[A-Za-z0-9]{40}", secret)
