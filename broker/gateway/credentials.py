"""Device credentials and application keys: making them, storing them hashed, checking them.

- Token (CIK, connector-spec §1/§2.4): 40 characters of ``[A-Za-z0-9]`` from ``secrets``
  (~238 bits). Stored as HMAC-SHA256 under a per-connector random key. A slow hash buys
  nothing against a guess space of 2**238 and would cost ~60 ms on every reconnect of a fleet;
  a *deterministic* keyed hash also lets the token alone find its identity (MQTT token mode
  has an empty username) through an index keyed by the digest, and the per-connector key means
  a leaked table cannot be matched against tokens of another installation. Checks use
  ``hmac.compare_digest``.
- Password (§2.4): device-chosen, at least 20 characters; low entropy is possible, so it is
  stored with scrypt (broker.security.passwords) and checked by ``PasswordVerifier`` (constant
  time, with the remembered fast path for repeated reconnects).
- Certificate (§2.4, without a client CA): the certificate is pinned by its SHA-256 fingerprint
  over the DER bytes.
- Application key (product.md §4): ``key`` is a public id, ``secret`` 40 base62 characters shown
  once; the secret is stored like a token (same reasoning: it is random, not chosen).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import ssl
import string

from broker.gateway.errors import ServiceError
from broker.security.passwords import N as SCRYPT_N
from broker.security.passwords import hash_password

BASE62 = string.ascii_letters + string.digits
TOKEN_LENGTH = 40
MIN_PASSWORD_LENGTH = 20
APP_KEY_LENGTH = 20
MAX_SECRET_LENGTH = 1024


def random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def new_token() -> str:
    return random_base62(TOKEN_LENGTH)


def new_hash_key() -> str:
    """A per-connector HMAC key (hex), kept in the connector record."""
    return secrets.token_hex(32)


def token_digest(hash_key: str, token: str) -> str:
    """Hex HMAC-SHA256 of ``token``: stored in place of the token and used as its index key."""
    return hmac.new(bytes.fromhex(hash_key), token.encode("utf-8", "surrogatepass"),
                    hashlib.sha256).hexdigest()


def token_matches(hash_key: str, stored_digest: str | None, token: str) -> bool:
    if stored_digest is None:
        # Compare anyway so an absent credential costs the same as a wrong one.
        hmac.compare_digest(token_digest(hash_key, token), "0" * 64)
        return False
    return hmac.compare_digest(token_digest(hash_key, token), stored_digest)


def check_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ServiceError(400, "bad_credentials",
                           f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_SECRET_LENGTH:
        raise ServiceError(400, "bad_credentials", "password too long")
    return password


def hash_device_password(password: str, *, n: int = SCRYPT_N) -> str:
    return hash_password(check_password(password).encode("utf-8"), n=n)


def certificate_fingerprint(certificate: str | bytes) -> str:
    """SHA-256 (hex) of a certificate given as PEM text or DER bytes; 400 if it is neither."""
    try:
        if isinstance(certificate, str) or certificate.lstrip().startswith(b"-----BEGIN"):
            text = certificate if isinstance(certificate, str) else certificate.decode("ascii")
            der = ssl.PEM_cert_to_DER_cert(text.strip())
        else:
            der = bytes(certificate)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ServiceError(400, "bad_request", "certificate is not a PEM certificate") from exc
    if not der:
        raise ServiceError(400, "bad_request", "empty certificate")
    return hashlib.sha256(der).hexdigest()


def new_app_credentials() -> tuple[str, str]:
    """(key, secret) of a new application key."""
    alphabet = string.ascii_lowercase + string.digits
    key = "".join(secrets.choice(alphabet) for _ in range(APP_KEY_LENGTH))
    return key, random_base62(TOKEN_LENGTH)

