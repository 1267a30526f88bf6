"""broker/security/passwords.py: the scrypt hash format and PasswordVerifier's decisions."""

from __future__ import annotations

import base64

import pytest

from broker.security import passwords
from broker.security.passwords import PasswordVerifier, hash_password

FAST_N = 1024  # 2**10: the format and checks are the same, at a fraction of the CPU


def test_hash_format() -> None:
    """Stored form is scrypt$<n>$<r>$<p>$<salt b64>$<hash b64> with a 16-byte salt."""
    stored = hash_password(b"secret", n=FAST_N)
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "1024", str(passwords.R), str(passwords.P))
    assert len(base64.b64decode(salt, validate=True)) == 16
    assert len(base64.b64decode(digest, validate=True)) == 32


def test_default_cost() -> None:
    """Without n the stored cost is the module's N (2**14)."""
    assert hash_password(b"x").split("$")[1] == str(2**14)


def test_salted() -> None:
    """The same password hashes differently each time (random salt)."""
    assert hash_password(b"same", n=FAST_N) != hash_password(b"same", n=FAST_N)


def test_verify_good_and_bad() -> None:
    """The right password verifies; a wrong or empty one does not."""
    stored = hash_password(b"right", n=FAST_N)
    verifier = PasswordVerifier()
    assert verifier.verify(stored, b"right")
    assert not PasswordVerifier().verify(stored, b"wrong")
    assert not PasswordVerifier().verify(stored, b"")
    assert not PasswordVerifier().verify(stored, b"right\n")


def test_unknown_user_never_verifies() -> None:
    """stored=None (unknown user) is rejected, also on repeated tries with the same password."""
    verifier = PasswordVerifier()
    for password in (b"", b"x", b"x"):
        assert not verifier.verify(None, password)


def test_remembered_fast_path_rejects_wrong_password() -> None:
    """After a success is remembered, a wrong password for the same hash is still rejected."""
    stored = hash_password(b"right", n=FAST_N)
    verifier = PasswordVerifier()
    assert verifier.verify(stored, b"right")
    assert verifier.verify(stored, b"right")  # the remembered path
    assert not verifier.verify(stored, b"wrong")
    assert not verifier.verify(stored, b"righ")
    assert verifier.verify(stored, b"right")


def test_remembered_success_is_per_stored_hash() -> None:
    """A success remembered for one user's hash does not accept the password for another hash."""
    alice = hash_password(b"pw-a", n=FAST_N)
    bob = hash_password(b"pw-b", n=FAST_N)
    verifier = PasswordVerifier()
    assert verifier.verify(alice, b"pw-a")
    assert not verifier.verify(bob, b"pw-a")
    assert verifier.verify(bob, b"pw-b")


def test_remembered_path_skips_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The second success with the same password does not run scrypt again (the fast path)."""
    stored = hash_password(b"right", n=FAST_N)
    verifier = PasswordVerifier()
    assert verifier.verify(stored, b"right")

    def no_scrypt(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("scrypt ran on the remembered path")

    monkeypatch.setattr(passwords.hashlib, "scrypt", no_scrypt)
    assert verifier.verify(stored, b"right")


def test_stored_hash_not_kept_reversibly() -> None:
    """What is remembered is not the password itself."""
    stored = hash_password(b"plain-secret", n=FAST_N)
    verifier = PasswordVerifier()
    assert verifier.verify(stored, b"plain-secret")
    assert all(b"plain-secret" not in tag for tag in verifier._remembered.values())


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "bcrypt$1024$8$1$AAAA$AAAA",
        "scrypt$1024$8$1$AAAA",  # a field missing
        "scrypt$1024$8$1$AAAA$AAAA$extra",
        "scrypt$notanumber$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
        "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # n not a power of two
        "scrypt$1024$8$1$!!!$AAAA",  # salt not base64
        "scrypt$1024$8$1$AAAAAAAAAAAAAAAAAAAAAA==$***",  # hash not base64
    ],
)
def test_malformed_stored_string_is_false(stored: str) -> None:
    """A malformed stored string never verifies and raises nothing."""
    assert PasswordVerifier().verify(stored, b"anything") is False


def test_empty_digest_does_not_verify_everything() -> None:
    """A stored hash with an empty digest part is refused, not matched by any password."""
    stored = hash_password(b"x", n=FAST_N)
    head = stored.rsplit("$", 1)[0]
    assert PasswordVerifier().verify(head + "$", b"anything") is False
