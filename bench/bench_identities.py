"""Gateway at fleet size: 100k identities provisioned through Device2Service, then a page of
listIdentities, a tag search and a token authentication; against MemoryStore and, when present,
LmdbStore (with its on-disk bytes per identity). Prints times; asserts nothing.

    .venv/bin/python -m bench.bench_identities [--count 100000] [--store memory|lmdb|both]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from broker.gateway.service import Device2Service
from broker.storage.memory_store import MemoryStore


def timed(label: str, fn: Any, *args: Any, **kw: Any) -> Any:
    start = time.perf_counter()
    result = fn(*args, **kw)
    print(f"  {label:<44} {time.perf_counter() - start:9.3f} s")
    return result


def run(kind: str, count: int) -> None:
    tmp = None
    if kind == "lmdb":
        from broker.storage.lmdb_store import LmdbStore
        tmp = tempfile.TemporaryDirectory()
        store: Any = LmdbStore(Path(tmp.name) / "db", sync="batch")
    else:
        store = MemoryStore()
    print(f"{kind}: {count} identities")
    svc = Device2Service(store, "localhost")
    svc.ensure_default_connector()
    svc.addGatewayResource(alias="config_io", settable=True, initial="{}")
    svc.addGatewayResource(alias="data_in")

    def provision_all() -> str | None:
        token = None
        for i in range(count):
            out = svc.provision(identity=f"dev{i:07d}", ip="10.0.0.1")
            token = out.token
        return token

    start = time.perf_counter()
    token = provision_all()
    spent = time.perf_counter() - start
    print(f"  {'provision (one txn each)':<44} {spent:9.3f} s  "
          f"({count / spent:,.0f}/s)")

    def tag_some() -> None:
        for i in range(0, count, 1000):  # 0.1 % of the fleet carries site=Lyon
            svc.addIdentityTag(identity=f"dev{i:07d}", tags=[{"name": "site", "value": "Lyon"}])
    timed(f"addIdentityTag x {count // 1000}", tag_some)
    page = timed("listIdentities limit=50 (first page)", svc.listIdentities, limit=50)
    timed("listIdentities limit=50 offset=count/2", svc.listIdentities, limit=50,
          offset=count // 2)
    found = timed("listIdentities tag site=Lyon", svc.listIdentities, tag_name="site",
                  tag_value="Lyon")
    timed("listIdentities status=provisioned (filter)", svc.listIdentities,
          status="provisioned", limit=50)
    timed("countIdentities identity=dev00001*", svc.countIdentities, identity="dev00001*")
    timed("authenticate(token)", svc.authenticate, token=token)
    print(f"  total={page['total']} tagged={found['total']}")
    if kind == "lmdb":
        store.flush()
        data = Path(tmp.name) / "db" / "data.mdb"  # type: ignore[union-attr]
        info = store.env.info()
        stat = store.env.stat()
        used = (info["last_pgno"] + 1) * stat["psize"]
        print(f"  LMDB pages in use {used / 1e6:.1f} MB = {used / count:.0f} bytes/identity "
              f"(file {os.path.getsize(data) / 1e6:.1f} MB, map grown {store.map_grown}x)")
        store.close()
        tmp.cleanup()  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--store", choices=("memory", "lmdb", "both"), default="both")
    args = parser.parse_args()
    kinds = ["memory", "lmdb"] if args.store == "both" else [args.store]
    for kind in kinds:
        if kind == "lmdb":
            try:
                import broker.storage.lmdb_store  # noqa: F401
            except ImportError:
                print("lmdb: broker.storage.lmdb_store not available, skipped")
                continue
        run(kind, args.count)


if __name__ == "__main__":
    main()
