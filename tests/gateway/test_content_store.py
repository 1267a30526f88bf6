"""broker/gateway/content.py and the service's content operations (connector-spec §7): bodies as
files (temp, fsync, rename), metadata in a real LMDB store, limits, replacement, deletion, the
crash leftovers swept at start, and the Device2 operations contentList/Info/Upload/Download/
Delete."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.config import ConfigError, load
from broker.gateway import content as content_mod
from broker.gateway.app import gateway_hooks
from broker.gateway.errors import ServiceError
from broker.gateway.service import Device2Service
from broker.storage.commit import GroupCommitter
from broker.storage.lmdb_store import LmdbStore
from tests.gateway.conftest import FAST_SCRYPT, Clock


class World:
    """An LMDB store and a service with a content directory, reopenable like a restart."""

    def __init__(self, path: Path, max_size: int = 1024) -> None:
        self.path = path
        self.max_size = max_size
        self.clock = Clock()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.store: LmdbStore | None = None
        self.open()

    @property
    def content_dir(self) -> Path:
        return self.path / "content"

    def open(self) -> Device2Service:
        self.store = LmdbStore(self.path / "lmdb", sync="always")
        self.service = Device2Service(self.store, clock=self.clock, password_cost=FAST_SCRYPT,
                                      content_dir=self.content_dir,
                                      content_max_size=self.max_size)
        self.service.event_listeners.append(lambda cid, e: self.events.append((cid, e)))
        self.cid = self.service.ensure_default_connector()
        return self.service

    def restart(self) -> Device2Service:
        assert self.store is not None
        self.store.close()
        return self.open()

    def files(self) -> list[str]:
        directory = self.content_dir / self.cid
        return sorted(p.name for p in directory.iterdir()) if directory.exists() else []

    def upload(self, content_id: str, chunks: list[bytes], **kw: Any) -> dict[str, Any]:
        upload = self.service.content_begin(id=content_id, connector_id=self.cid, **kw)
        for chunk in chunks:
            upload.write(chunk)
        upload.finish()
        info, _ = self.service.content_commit(upload)
        return info


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    assert w.store is not None
    w.store.close()


def fails(fn: Any, **kw: Any) -> tuple[int, str]:
    with pytest.raises(ServiceError) as info:
        fn(**kw)
    return info.value.status, info.value.code


# -- ids, types, meta ----------------------------------------------------------------------

@pytest.mark.parametrize("content_id", ["fw-1.2.bin", "images v2", "é", "x" * 255, "é" * 127,
                                        "..", "a,b"])
def test_valid_ids(content_id: str) -> None:
    assert content_mod.validate_id(content_id) == content_id


@pytest.mark.parametrize("content_id", ["", "x" * 256, "é" * 128, "a/b", "a\nb", "a\0b",
                                        "a\x7fb", "\ud800", None, 5])
def test_invalid_ids(content_id: Any) -> None:
    with pytest.raises(ServiceError) as info:
        content_mod.validate_id(content_id)
    assert (info.value.status, info.value.code) == (400, "bad_request")


def test_the_longest_id_is_stored_under_the_longest_connector_id(tmp_path: Path) -> None:
    """255 bytes of id (non-ASCII: 127 two-byte characters + 1) next to a 32-character
    connector id still make an LMDB key (≤ 511 bytes)."""
    store = LmdbStore(tmp_path / "lmdb", sync="none")
    try:
        service = Device2Service(store, content_dir=tmp_path / "content",
                                 password_cost=FAST_SCRYPT)
        cid = service.create_connector(connector_id="c" * 32)["id"]
        content_id = "é" * 127 + "x"
        service.contentUpload(id=content_id, data="aGk=", connector_id=cid)
        assert service.contentInfo(id=content_id, connector_id=cid)["length"] == 2
    finally:
        store.close()


def test_types_and_meta() -> None:
    assert content_mod.validate_type(None) == "application/octet-stream"
    assert content_mod.validate_type("text/plain; charset=utf-8") == "text/plain; charset=utf-8"
    for bad in ("nonsense", "text/plain\r\nX: y", 5):
        with pytest.raises(ServiceError):
            content_mod.validate_type(bad)
    assert content_mod.validate_meta(None) == ""
    for bad in ("line\nbreak", "x" * 4097, "\udfff", 1):
        with pytest.raises(ServiceError):
            content_mod.validate_meta(bad)


def test_body_names_never_come_from_the_id() -> None:
    name = content_mod.body_name("../../etc/passwd")
    assert "/" not in name and ".." not in name
    assert name.startswith(hashlib.sha256(b"../../etc/passwd").hexdigest() + ".")
    assert content_mod.body_name("x") != content_mod.body_name("x")  # one per version


# -- upload, read, replace, delete ---------------------------------------------------------

def test_streamed_upload_stores_body_and_metadata(world: World) -> None:
    chunks = [b"abc" * 50, b"", b"\x00\xff" * 100]
    info = world.upload("fw.bin", chunks, type="application/x-fw", meta="v1")
    body = b"".join(chunks)
    assert info == {"id": "fw.bin", "type": "application/x-fw", "length": len(body),
                    "updated": world.clock.now, "meta": "v1",
                    "sha256": hashlib.sha256(body).hexdigest()}
    [name] = world.files()  # no temp file left
    assert (world.content_dir / world.cid / name).read_bytes() == body
    got, handle = world.service.content_open(id="fw.bin", connector_id=world.cid)
    with handle:
        assert (got, handle.read()) == (info, body)
    assert world.service.contentList(connector_id=world.cid) == [info]


def test_metadata_and_body_survive_a_restart(world: World) -> None:
    info = world.upload("keep", [b"durable"])
    service = world.restart()
    assert service.contentInfo(id="keep", connector_id=world.cid) == info
    assert base64.b64decode(service.contentDownload(id="keep")["data"]) == b"durable"


def test_over_the_limit_stores_nothing(world: World) -> None:
    upload = world.service.content_begin(id="big", connector_id=world.cid)
    upload.write(b"x" * 1000)
    with pytest.raises(ServiceError) as info:
        upload.write(b"x" * 25)  # 1025 > 1024
    assert (info.value.status, info.value.code) == (413, "too_large")
    assert world.files() == []  # the temp file is gone
    assert fails(world.service.contentInfo, id="big") == (404, "not_found")


def test_exactly_the_limit_is_accepted(world: World) -> None:
    assert world.upload("edge", [b"y" * 1024])["length"] == 1024


def test_abort_removes_the_temp_file_and_is_idempotent(world: World) -> None:
    upload = world.service.content_begin(id="gone", connector_id=world.cid)
    upload.write(b"partial")
    assert len(world.files()) == 1
    upload.abort()
    upload.abort()
    assert world.files() == []


def test_replacement_removes_the_old_body_but_open_readers_keep_it(world: World) -> None:
    world.upload("item", [b"version one"])
    _, old_reader = world.service.content_open(id="item", connector_id=world.cid)
    upload = world.service.content_begin(id="item", connector_id=world.cid)
    upload.write(b"version two!")
    upload.finish()
    info, created = world.service.content_commit(upload)
    assert created is False and info["length"] == 12
    assert len(world.files()) == 1  # the old version's file is removed
    with old_reader:
        assert old_reader.read() == b"version one"
    _, reader = world.service.content_open(id="item", connector_id=world.cid)
    with reader:
        assert reader.read() == b"version two!"


def test_delete_then_unknown(world: World) -> None:
    world.upload("doomed", [b"bye"])
    world.service.contentDelete(id="doomed", connector_id=world.cid)
    assert world.files() == []
    for op in (world.service.contentInfo, world.service.contentDelete,
               world.service.contentDownload, world.service.content_open):
        assert fails(op, id="doomed") == (404, "not_found")


def test_a_commit_for_a_removed_connector_leaves_no_file(world: World) -> None:
    other = world.service.create_connector(connector_id="other1")["id"]
    upload = world.service.content_begin(id="x", connector_id=other)
    upload.write(b"data")
    upload.finish()
    world.service.remove_connector(other)
    assert fails(world.service.content_commit, upload=upload) == (404, "not_found")
    assert not upload.path.exists()


def test_remove_connector_drops_its_content(world: World) -> None:
    other = world.service.create_connector(connector_id="other2")["id"]
    upload = world.service.content_begin(id="x", connector_id=other)
    upload.write(b"data")
    upload.finish()
    world.service.content_commit(upload)
    world.service.remove_connector(other)
    assert not (world.content_dir / other).exists()
    world.service.create_connector(connector_id="other2")
    assert world.service.contentList(connector_id="other2") == []


# -- crash leftovers -----------------------------------------------------------------------

def test_restart_sweeps_orphans_and_keeps_referenced_bodies(world: World) -> None:
    world.upload("kept", [b"kept body"])
    [kept] = world.files()
    # A crash after the rename, before the metadata commit: a body nobody refers to.
    orphan = world.service.content_begin(id="lost", connector_id=world.cid)
    orphan.write(b"never committed")
    orphan.finish()
    # A crash mid-upload: a temp file.
    partial = world.service.content_begin(id="partial", connector_id=world.cid)
    partial.write(b"half")
    # A file that is not ours stays.
    (world.content_dir / world.cid / "README").write_text("mine")
    assert len(world.files()) == 4
    world.restart()
    assert world.files() == sorted([kept, "README"])
    assert base64.b64decode(world.service.contentDownload(id="kept")["data"]) == b"kept body"


# -- the Device2 operations ------------------------------------------------------------------

def test_device2_operations(world: World) -> None:
    svc, cid = world.service, world.cid
    data = base64.b64encode(b"\x01\x02payload").decode()
    info = svc.call(cid, "contentUpload", {"id": "a", "data": data, "type": "image/png",
                                           "meta": "m"})
    assert (info["id"], info["type"], info["length"], info["meta"]) == ("a", "image/png", 9, "m")
    assert svc.call(cid, "contentInfo", {"id": "a"}) == info
    assert svc.call(cid, "contentList", {}) == [info]
    assert svc.call(cid, "contentDownload", {"id": "a"}) == dict(info, data=data)
    assert svc.call(cid, "contentDelete", {"id": "a"}) is None
    assert svc.call(cid, "contentList", {}) == []
    assert world.events == []  # admin uploads are not device events


def test_device2_errors(world: World) -> None:
    svc, cid = world.service, world.cid
    for args, expected in [
        ({"id": "a", "data": "not base64!"}, (400, "bad_request")),
        ({"id": "a", "data": 5}, (400, "bad_request")),
        ({"id": "a/b", "data": ""}, (400, "bad_request")),
        ({"id": "", "data": ""}, (400, "bad_request")),
        ({"id": "a", "data": base64.b64encode(b"z" * 1025).decode()}, (413, "too_large")),
        ({"id": "a", "data": "", "type": "bad type"}, (400, "bad_request")),
    ]:
        assert fails(svc.call, connector_id=cid, operation="contentUpload", args=args) == \
            expected, args
    assert fails(svc.call, connector_id=cid, operation="contentInfo",
                 args={"id": "nope"}) == (404, "not_found")
    assert world.files() == []


def test_device_upload_logs_and_emits_content_in(world: World) -> None:
    world.service.addIdentity(identity="dev1", tags=[{"name": "site", "value": "north"}])
    upload = world.service.content_begin(id="log.txt", type="text/plain")
    upload.write(b"device log")
    upload.finish()
    world.service.content_commit(upload, identity="dev1", ip="10.0.0.9", protocol="http",
                                 connection_id="c1")
    [(cid, event)] = world.events
    assert cid == world.cid
    assert (event["type"], event["identity"], event["ip"], event["protocol"]) == (
        "content_in", "dev1", "10.0.0.9", "http")
    assert event["payload"] == {"id": "log.txt", "type": "text/plain", "length": 10}
    assert event["tags"] == [{"name": "site", "value": "north"}]
    [entry] = world.service.getLogs(type="event", identity="dev1")[-1:]
    assert entry["type"] == "content_in" and entry["detail"]["id"] == "log.txt"


def test_content_in_follows_events_types(world: World) -> None:
    world.service.updateGatewaySettings(events={"types": ["data_in"]})
    upload = world.service.content_begin(id="quiet")
    upload.write(b"x")
    upload.finish()
    world.service.content_commit(upload, identity="dev1")
    assert world.events == []


def test_without_a_content_directory_uploads_answer_503(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "lmdb", sync="none")
    try:
        svc = Device2Service(store, clock=Clock())
        svc.ensure_default_connector()
        assert fails(svc.content_begin, id="x") == (503, "content_unavailable")
        assert fails(svc.contentUpload, id="x", data="") == (503, "content_unavailable")
        assert svc.contentList() == []
    finally:
        store.close()


def test_finish_fsyncs_and_renames(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The body is fsync'd before the rename, and the directory after it (crash order)."""
    calls: list[str] = []
    real_fsync, real_rename = os.fsync, os.rename
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "rename", lambda a, b: (calls.append("rename"), real_rename(a, b))[1])
    upload = world.service.content_begin(id="ordered")
    upload.write(b"z")
    upload.finish()
    assert calls == ["fsync", "rename", "fsync"]


def test_configuration_key(tmp_path: Path) -> None:
    assert load().content.max_size == content_mod.DEFAULT_MAX_SIZE == 104_857_600
    config_file = tmp_path / "f.toml"
    config_file.write_text(f'[server]\ndata = "{tmp_path / "d"}"\n[content]\nmax_size = 5\n')
    config = load(config_file)
    assert config.content.max_size == 5
    for bad in (0, -1, True, "big"):
        with pytest.raises(ConfigError):
            load(None, {"content": {"max_size": bad}})
    # The server's service keeps bodies under <data>/content with that limit.
    store = LmdbStore(tmp_path / "lmdb", sync="none")
    try:
        hooks = gateway_hooks(config)(store, GroupCommitter(store, lambda fn: None))
        files = hooks.service.content
        assert files is not None
        assert (files.root, files.max_size) == (tmp_path / "d" / "content", 5)
    finally:
        store.close()
