"""``<data>/admin.token``: made once with mode 0600, reused afterwards."""

from __future__ import annotations

import stat
from pathlib import Path

from admin.token import load_or_create_token


def test_token_created_then_reused(tmp_path: Path) -> None:
    token, created = load_or_create_token(tmp_path / "data")
    assert created and len(token) >= 43
    path = tmp_path / "data" / "admin.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(tmp_path / "data") == (token, False)
