"""The content store (connector-spec §7): bodies as files, metadata in the store.

Bodies live in ``<data>/content/<connector_id>/`` under a name derived from the content id,
never the id itself (an id is user input: ``../x`` must not become a path):

    <sha256(id) hex>.<16 random hex>       the body of one version of the item
    .tmp-<16 random hex>                   a body being uploaded

Each upload gets a new file name, so a reader that opened the current body keeps reading it
while a newer version replaces it, and two concurrent uploads of one id never write the same
file. Metadata (``gw_content``, key ``<cid>\\0<id>``)::

    {id, type, length, updated (µs), meta, sha256, file}

``file`` is the body's name and is not shown (``public``).

Crash safety, in this order: the body is written to a temp name, fsync'd, renamed to its final
name and the directory fsync'd; only then is the metadata committed; only after that commit is
the previous version's file removed. A crash therefore leaves at worst an orphan file (a body
without metadata, or an old body not yet removed), never metadata without its body. ``sweep``
removes such orphans and leftover temp files at start. A delete removes the metadata first, the
file second, for the same reason.

Ids: 1..255 bytes of UTF-8, no control characters and no ``/`` (valid: ``fw-1.2.bin``,
``images v2``; invalid: ``""``, ``a/b``, ``"a\\nb"``). Type: a MIME type, default
``application/octet-stream``. Meta: free text up to 4096 characters without control characters
(it ends the device's one-line info answer, §6.7).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from broker.gateway import tables
from broker.gateway.errors import ServiceError
from broker.storage import ReadTxn, WriteTxn

DEFAULT_MAX_SIZE = 104_857_600  # 100 MiB (connector-spec §7: uploads up to 100 MB)
MAX_ID_LENGTH = 255
MAX_TYPE_LENGTH = 255
MAX_META_LENGTH = 4096
DEFAULT_TYPE = "application/octet-stream"
TEMP_PREFIX = ".tmp-"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BODY_NAME = re.compile(r"[0-9a-f]{64}\.[0-9a-f]{16}")
_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;.*)?")

Record = dict[str, Any]


def _bad(message: str) -> ServiceError:
    return ServiceError(400, "bad_request", message)


def _is_utf8(text: str) -> bool:
    """False for text with lone surrogates (from JSON ``"\\ud800"``): it cannot be stored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_id(content_id: object) -> str:
    if not isinstance(content_id, str) or not content_id:
        raise _bad("content id must be a non-empty string")
    if "/" in content_id or _CONTROL.search(content_id) or not _is_utf8(content_id):
        raise _bad("content id must be UTF-8 text without '/' or control characters")
    # In bytes: the metadata key (connector id, NUL, id) must fit LMDB's 511-byte keys.
    if len(content_id.encode("utf-8")) > MAX_ID_LENGTH:
        raise _bad(f"content id longer than {MAX_ID_LENGTH} bytes (UTF-8)")
    return content_id


def validate_type(content_type: object) -> str:
    if content_type is None or content_type == "":
        return DEFAULT_TYPE
    if (not isinstance(content_type, str) or len(content_type) > MAX_TYPE_LENGTH
            or _CONTROL.search(content_type) or not _is_utf8(content_type)
            or not _TYPE.fullmatch(content_type.strip())):
        raise _bad("type must be a MIME type such as application/octet-stream")
    return content_type.strip()


def validate_meta(meta: object) -> str:
    if meta is None:
        return ""
    if (not isinstance(meta, str) or len(meta) > MAX_META_LENGTH or _CONTROL.search(meta)
            or not _is_utf8(meta)):
        raise _bad(f"meta must be text of at most {MAX_META_LENGTH} characters, "
                   "without control characters")
    return meta


def too_large(limit: int) -> ServiceError:
    return ServiceError(413, "too_large", f"content is larger than {limit} bytes")


def body_name(content_id: str) -> str:
    """A new file name for a version of ``content_id``'s body."""
    digest = hashlib.sha256(content_id.encode("utf-8")).hexdigest()
    return f"{digest}.{secrets.token_hex(8)}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Upload:
    """One body on its way in. The caller feeds chunks (``write``), then ``finish`` (blocking:
    fsync and rename; run it off the event loop for large bodies), then the service commits
    the metadata. ``abort`` removes whatever was written; it is safe to call at any point."""

    def __init__(self, directory: Path, connector_id: str, content_id: str, content_type: str,
                 meta: str, max_size: int) -> None:
        self.directory = directory
        self.connector_id = connector_id
        self.content_id = content_id
        self.content_type = content_type
        self.meta = meta
        self.max_size = max_size
        self.length = 0
        self.file = body_name(content_id)
        self._hash = hashlib.sha256()
        directory.mkdir(parents=True, exist_ok=True)
        self.temp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        self._out: BinaryIO | None = open(self.temp, "xb")  # noqa: SIM115 - closed by finish
        self.placed = False

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def path(self) -> Path:
        return self.directory / self.file

    def check(self, size: int) -> None:
        """413 (and the temp file removed) if ``size`` more bytes would pass the limit; lets
        a caller refuse before buffering them."""
        if self.length + size > self.max_size:
            self.abort()
            raise too_large(self.max_size)

    def write(self, chunk: bytes) -> None:
        self.check(len(chunk))
        if self._out is None:
            raise ServiceError(500, "aborted", "the upload was aborted")
        self._out.write(chunk)
        self._hash.update(chunk)
        self.length += len(chunk)

    def finish(self) -> None:
        """Make the body durable under its final name (file fsync, rename, directory fsync)."""
        out = self._out
        if out is None:
            raise ServiceError(500, "aborted", "the upload was aborted")
        try:
            out.flush()
            os.fsync(out.fileno())
        finally:
            out.close()
            self._out = None
        os.rename(self.temp, self.path)
        self.placed = True
        _fsync_dir(self.directory)

    def abort(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        with contextlib.suppress(FileNotFoundError):
            self.temp.unlink()
        if self.placed:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self.placed = False

    def record(self, updated: int) -> Record:
        return {"id": self.content_id, "type": self.content_type, "length": self.length,
                "updated": updated, "meta": self.meta, "sha256": self.sha256,
                "file": self.file}


class ContentFiles:
    """The bodies of every connector under ``root`` (``<data>/content``)."""

    def __init__(self, root: str | Path, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.root = Path(root)
        self.max_size = max_size

    def directory(self, connector_id: str) -> Path:
        # Connector ids are [a-z0-9]{1,32} (settings.validate_connector_id): a safe name.
        return self.root / connector_id

    def begin(self, connector_id: str, content_id: str, content_type: str,
              meta: str) -> Upload:
        return Upload(self.directory(connector_id), connector_id, content_id, content_type,
                      meta, self.max_size)

    def open(self, connector_id: str, record: Mapping[str, Any]) -> BinaryIO:
        return open(self.directory(connector_id) / record["file"], "rb")  # noqa: SIM115

    def remove(self, connector_id: str, file: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory(connector_id) / file).unlink()

    def remove_connector(self, connector_id: str) -> None:
        directory = self.directory(connector_id)
        if directory.is_dir():
            for path in directory.iterdir():
                if _BODY_NAME.fullmatch(path.name) or path.name.startswith(TEMP_PREFIX):
                    path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                directory.rmdir()

    def sweep(self, referenced: Mapping[str, set[str]]) -> int:
        """Remove temp files and bodies no metadata refers to (``referenced``: connector id
        → body names); only names this module makes are touched. Returns how many went.
        Run it when no upload is in progress (at start)."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for directory in self.root.iterdir():
            if not directory.is_dir():
                continue
            keep = referenced.get(directory.name, set())
            for path in directory.iterdir():
                name = path.name
                if name.startswith(TEMP_PREFIX) or (_BODY_NAME.fullmatch(name)
                                                     and name not in keep):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed


# -- metadata ----------------------------------------------------------------------------


def load(txn: ReadTxn, connector_id: str, content_id: str) -> Record | None:
    raw = txn.get(tables.CONTENT, tables.key(connector_id, content_id))
    return None if raw is None else tables.loads(raw)


def require(txn: ReadTxn, connector_id: str, content_id: str) -> Record:
    record = load(txn, connector_id, content_id)
    if record is None:
        raise ServiceError(404, "not_found", f"content {content_id!r} not found")
    return record


def save(txn: WriteTxn, connector_id: str, record: Record) -> None:
    txn.put(tables.CONTENT, tables.key(connector_id, record["id"]), tables.dumps(record))


def delete(txn: WriteTxn, connector_id: str, content_id: str) -> None:
    txn.delete(tables.CONTENT, tables.key(connector_id, content_id))


def scan(txn: ReadTxn, connector_id: str) -> Iterator[Record]:
    for _, raw in txn.scan(tables.CONTENT, tables.prefix(connector_id)):
        yield tables.loads(raw)


def referenced(txn: ReadTxn) -> dict[str, set[str]]:
    """Body file names with metadata, by connector id (for ``ContentFiles.sweep``)."""
    out: dict[str, set[str]] = {}
    for key, raw in txn.scan(tables.CONTENT):
        cid = key.split(tables.SEP, 1)[0].decode("utf-8")
        out.setdefault(cid, set()).add(tables.loads(raw)["file"])
    return out


def public(record: Mapping[str, Any]) -> Record:
    return {k: record[k] for k in ("id", "type", "length", "updated", "meta", "sha256")}
