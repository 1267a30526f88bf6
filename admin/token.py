"""The admin bearer token: ``<data>/admin.token``, made on first start (mode 0600), reused after."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_FILE = "admin.token"


def load_or_create_token(data_dir: str | Path) -> tuple[str, bool]:
    """The token and whether it was created just now (the caller prints it once then)."""
    path = Path(data_dir) / TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token, False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # O_EXCL: never follow or clobber a file someone else made; 0600 from the first byte.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    if not path.exists():
        flags |= os.O_EXCL
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return token, True
