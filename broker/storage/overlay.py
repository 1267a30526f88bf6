"""The write transaction every store uses: puts and deletes buffered in ``pending`` over
layers of earlier writes not yet committed and a base to read the committed data from.

Reads see the transaction's own writes first, then the layers newest first, then the base. The
owner commits ``pending`` (a dict of (table, key) -> value, ``None`` for a delete) when the
transaction's block ends; nothing is written before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

Ops = dict[tuple[str, bytes], bytes | None]  # None: deleted
_MISSING = object()


class OverlayTxn:
    def __init__(self, base_get: Callable[[str, bytes], bytes | None],
                 base_scan: Callable[[str, bytes, bytes], Iterable[tuple[bytes, bytes]]],
                 layers: Sequence[Ops] = ()) -> None:
        self._base_get = base_get
        self._base_scan = base_scan
        self._layers = layers
        self.pending: Ops = {}

    def get(self, table: str, key: bytes) -> bytes | None:
        for layer in (self.pending, *reversed(self._layers)):
            value = layer.get((table, key), _MISSING)
            if value is not _MISSING:
                return value  # type: ignore[return-value]
        return self._base_get(table, key)

    def scan(self, table: str, prefix: bytes = b"",
             start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        merged = dict(self._base_scan(table, prefix, start))
        for layer in (*self._layers, self.pending):
            for (t, key), value in layer.items():
                if t == table and key.startswith(prefix) and key >= start:
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
        yield from sorted(merged.items())

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.pending[(table, bytes(key))] = bytes(value)

    def delete(self, table: str, key: bytes) -> bool:
        existed = self.get(table, key) is not None
        self.pending[(table, bytes(key))] = None
        return existed
