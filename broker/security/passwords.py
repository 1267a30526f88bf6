"""Slow salted password hashes (scrypt) and constant-time checks.

Stored form: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``. A verification costs ~60 ms of CPU, too
much to repeat on every reconnect of a fleet, so a successful check is remembered as an HMAC under
a per-process random key; a later CONNECT with the same password is then checked in microseconds,
still in constant time, and nothing reversible is kept in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P = 2**14, 8, 1
_PROCESS_KEY = os.urandom(32)
# A fixed hash to verify against for unknown users, so timing does not reveal who exists.
_DUMMY = None


def hash_password(password: bytes, *, n: int = N) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password, salt=salt, n=n, r=R, p=P, dklen=32)
    return "$".join(("scrypt", str(n), str(R), str(P), _b64(salt), _b64(digest)))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class PasswordVerifier:
    """Checks passwords against stored hashes, with the fast path for repeated successes."""

    def __init__(self) -> None:
        self._remembered: dict[str, bytes] = {}

    def remembered(self, stored: str, password: bytes) -> bool:
        """True if this password was verified against ``stored`` before (microseconds, constant
        time); False means only ``verify`` (slow) can tell."""
        known = self._remembered.get(stored)
        if known is None:
            return False
        tag = hmac.new(_PROCESS_KEY, stored.encode() + b"\0" + password, "sha256").digest()
        return hmac.compare_digest(known, tag)

    def verify(self, stored: str | None, password: bytes) -> bool:
        global _DUMMY
        if stored is None:
            if _DUMMY is None:
                _DUMMY = hash_password(os.urandom(16))
            stored, ok_if_match = _DUMMY, False
        else:
            ok_if_match = True
        tag = hmac.new(_PROCESS_KEY, stored.encode() + b"\0" + password, "sha256").digest()
        known = self._remembered.get(stored)
        if known is not None and hmac.compare_digest(known, tag):
            return ok_if_match
        try:
            scheme, n, r, p, salt, digest = stored.split("$")
            if scheme != "scrypt":
                return False
            expected = base64.b64decode(digest)
            actual = hashlib.scrypt(password, salt=base64.b64decode(salt), n=int(n), r=int(r),
                                    p=int(p), dklen=len(expected))
        except (ValueError, TypeError):
            return False
        if not hmac.compare_digest(actual, expected):
            return False
        if ok_if_match:
            self._remembered[stored] = tag
        return ok_if_match
