"""Prepare a Fleetgate data directory for the device-writes scenarios (before the broker starts).

    .venv/bin/python -m bench.devices --data DIR --count 10000 --tokens tokens.txt [--json]

Opens ``<DIR>/lmdb`` with ``sync="none"`` (the preparation need not be durable; ``close()``
fsyncs once at the end), makes the default connector, the ``data_in`` resource (string), N
identities ``dev000000``… with a random 40-character base62 token each (``auth={"type":
"token", "key": token}``) and one application key. Writes the tokens, one per line (line i =
identity i), and prints the connector id and the application key/secret (``--json``: one JSON
object).

Batching: ``Device2Service.addIdentity`` is one store transaction per call. The identities are
added through the service's own ``addIdentity`` on a store whose ``write()`` hands out one
shared transaction per chunk (``_ChunkedStore``), so 10,000 identities are a few commits
instead of 10,000.
"""

from __future__ import annotations

import argparse
import json
import secrets
import string
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.gateway.service import Device2Service
from broker.storage.lmdb_store import LmdbStore, LmdbWriteTxn

TOKEN_ALPHABET = string.ascii_letters + string.digits  # base62
TOKEN_LENGTH = 40
RESOURCE = "data_in"
CHUNK = 1000  # identities per LMDB commit


def new_token() -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def identity_name(i: int) -> str:
    return f"dev{i:06d}"


class _ChunkedStore:
    """An ``LmdbStore`` whose ``write()`` blocks share one transaction until ``commit()``.

    Reads go to the store (a committed snapshot) except inside ``write()``, where the shared
    transaction reads its own pending writes, so the service's checks (identity exists, token
    in use) see the chunk's earlier identities."""

    def __init__(self, store: LmdbStore) -> None:
        self.store = store
        self._txn: LmdbWriteTxn | None = None

    def read(self) -> Any:
        return self.store.read()

    @contextmanager
    def write(self) -> Iterator[LmdbWriteTxn]:
        if self._txn is None:
            self._txn = LmdbWriteTxn(self.store)
        yield self._txn  # an exception propagates and the chunk is never committed

    def commit(self) -> None:
        txn, self._txn = self._txn, None
        if txn is None:
            return
        txn._end_read()
        if txn.pending:
            self.store.apply(txn.pending)


@dataclass
class Prepared:
    connector: str
    app_key: str
    app_secret: str
    count: int
    tokens_path: str
    seconds: float
    identities_per_s: float


def prepare(data: Path, count: int, tokens_path: Path) -> Prepared:
    """Make ``<data>/lmdb`` with the connector, resource, ``count`` devices and an app key."""
    started = time.perf_counter()
    store = LmdbStore(data / "lmdb", sync="none")
    try:
        service = Device2Service(store)
        cid = service.ensure_default_connector()
        service.addGatewayResource(alias=RESOURCE, format="string")
        app = service.create_app_key(name="bench")
        tokens = [new_token() for _ in range(count)]
        chunked = _ChunkedStore(store)
        bulk = Device2Service(chunked)  # type: ignore[arg-type]  # a Store in all but name
        t0 = time.perf_counter()
        for start in range(0, count, CHUNK):
            for i in range(start, min(start + CHUNK, count)):
                bulk.addIdentity(
                    identity=identity_name(i),
                    auth={"type": "token", "key": tokens[i]},
                    connector_id=cid,
                )
            chunked.commit()
        spent = time.perf_counter() - t0
    finally:
        store.close()
    tokens_path.write_text("".join(t + "\n" for t in tokens), encoding="ascii")
    tokens_path.chmod(0o600)
    return Prepared(
        cid,
        app["key"],
        app["secret"],
        count,
        str(tokens_path),
        time.perf_counter() - started,
        count / spent if spent > 0 else 0.0,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.devices",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--data", required=True, type=Path, help="Fleetgate data directory")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--tokens", type=Path, help="tokens file (default <data>/tokens.txt)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if (args.data / "lmdb").exists():
        print(f"{args.data / 'lmdb'} exists: use a fresh data directory", file=sys.stderr)
        return 2
    args.data.mkdir(parents=True, exist_ok=True)
    out = prepare(args.data, args.count, args.tokens or args.data / "tokens.txt")
    if args.json:
        print(json.dumps(out.__dict__))
    else:
        print(
            f"connector   {out.connector}\napp key     {out.app_key}\n"
            f"app secret  {out.app_secret}\ntokens      {out.tokens_path} ({out.count})\n"
            f"took        {out.seconds:.2f} s ({out.identities_per_s:,.0f} identities/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
