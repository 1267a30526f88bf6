"""Compile bench/loadgen.c into bench/.build/loadgen (only when the source is newer).

The loadgen links OpenSSL (its ``--tls`` mode): the headers come with Debian's ``libssl-dev``
(``make bench`` installs it when ``/usr/include/openssl/ssl.h`` is missing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SOURCE = BENCH_DIR / "loadgen.c"
BINARY = BENCH_DIR / ".build" / "loadgen"
CFLAGS = ["-O2", "-Wall", "-Wextra"]
LIBS = ["-lssl", "-lcrypto"]


def build_loadgen(force: bool = False) -> Path:
    """Return the loadgen binary path, compiling it first if it is missing or stale."""
    stale = not BINARY.exists() or BINARY.stat().st_mtime < SOURCE.stat().st_mtime
    if force or stale:
        BINARY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", *CFLAGS, "-o", str(BINARY), str(SOURCE), *LIBS], check=True)
    return BINARY


if __name__ == "__main__":
    print(build_loadgen(force="--force" in sys.argv))
