"""``Device2Service``: every Device2 operation of connector-spec §11, plus connectors,
application keys and the device-facing calls the MQTT hooks and the HTTP sidecar make.

Operations keep their Device2 names and take keyword arguments, as Murano scripts call them
(``Device2.setIdentityState({identity=…, data_out=…})``); ``call(connector_id, operation,
args)`` dispatches through the explicit ``operations`` table. ``connector_id=None`` means the
default connector. Errors are ``ServiceError``. Each operation is one store transaction, so a
refused operation changes nothing.

Callbacks (all optional), given the connector id first because identities are per connector:
``push(cid, identity, alias, value, ts_us) -> bool`` delivers a set value to a connected
device (truthy when delivered: a ``data_out`` event follows); ``disconnect(cid, identity,
reason)`` closes a device's connections; ``online(cid, identity) -> bool``; ``on_event(cid,
event)`` receives the §10 events allowed by ``events.types``.
Besides those single callbacks (the MQTT hooks own them), any number of observers may listen:
``event_listeners`` get every emitted event like ``on_event`` (the HTTP sidecar's streams and
webhooks), ``set_listeners`` get ``(cid, identity, {alias: value}, ts_us)`` after every cloud
set that leaves values pending for the device (long polls wait on them).
Time comes from ``clock()``, µs since the epoch.

The hot cache (``_hot``): the decoded identity record and state of the devices being written
(connected over MQTT, or written recently), so a device write neither reads nor decodes them
from the store. The cached record and state are always the newest (a device write updates them
and writes the state in the same transaction), except ``lastseen``: kept in the cache and
written to the store only when ``lastip`` changes, at connect, when the stored value is
``LASTSEEN_PERSIST_US`` (10 s on average, jittered) old, when the entry leaves the cache
(disconnect, eviction) and before any other operation rewrites the record.
getIdentity/listIdentities show the cached (exact) ``lastseen``; sorting listIdentities by
``lastseen`` uses the stored one (≤ 15 s old).
Invalidation, kept simple:
- every synchronous operation that changes an identity (its record, state, tags, credentials,
  provisioning, removal) first writes that identity's unsaved ``lastseen`` into its own
  transaction and drops the identity's entry once that transaction is committed;
- a settings or resources change and a connector's removal write every unsaved ``lastseen``
  and drop the whole cache; a failed group commit drops it without writing
  (``attach_committer`` hooks the committer's ``on_error``); a failed synchronous device write
  drops its identity's entry; ``expire_identities`` drops the entries of the identities gone.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from broker.gateway import arguments, certificates, credentials, events, identities, tables, tags
from broker.gateway import content as content_mod
from broker.gateway import settings as settings_mod
from broker.gateway import state as state_mod
from broker.gateway.bulk_csv import Row, parse_csv, row_from_item
from broker.gateway.errors import ServiceError
from broker.gateway.identity_format import make_identity, validate_identity
from broker.gateway.logs import Logs
from broker.gateway.provisioning import (
    NOTHING,
    AuthResult,
    Presented,
    ProvisionOutcome,
    expire_due,
)
from broker.gateway.provisioning import authenticate as auth_decide
from broker.gateway.provisioning import provision as provision_decide
from broker.gateway.resources import FIELDS, Value, batch_timestamp_us, validate_definition
from broker.security.passwords import N as SCRYPT_N
from broker.security.passwords import PasswordVerifier
from broker.storage import ReadTxn, Store, WriteTxn

Clock = Callable[[], int]
Push = Callable[[str, str, str, Value, int], Any]
Disconnect = Callable[[str, str, str], Any]
Online = Callable[[str, str], bool]
EventSink = Callable[[str, events.Event], Any]
WantsEvent = Callable[[str, str, str], bool]
SetSink = Callable[[str, str, Mapping[str, Value], int], Any]
Submit = Callable[[Callable[[WriteTxn], None], Callable[[], None]], None]

IMPORT_CHUNK = 1000  # rows per write transaction of a bulk import (import_rows)
# A device write rewrites the identity record for lastseen only when the stored lastseen is
# this old (or lastip changed); in between the newer lastseen is in the hot cache.
LASTSEEN_PERSIST_US = 10_000_000
HOT_MAX = 100_000  # hot cache entries; the oldest leaves (its lastseen written) beyond this


def _now_us() -> int:
    return time.time_ns() // 1000


def _bad(message: str) -> ServiceError:
    return ServiceError(400, "bad_request", message)


class Device2Service:
    def __init__(self, store: Store, domain: str = "localhost", clock: Clock = _now_us, *,
                 push: Push | None = None, disconnect: Disconnect | None = None,
                 online: Online | None = None, on_event: EventSink | None = None,
                 logs: Logs | None = None, password_cost: int = SCRYPT_N,
                 wants_event: WantsEvent | None = None,
                 content_dir: str | Path | None = None,
                 content_max_size: int = content_mod.DEFAULT_MAX_SIZE) -> None:
        self.store = store
        # Reads that no device write changes (authentication, application keys) need not wait
        # for the group committer's batches in flight: attach_committer sets the raw store.
        self.auth_store: Store = store
        self.domain = domain
        self.clock = clock
        self.push = push
        self.disconnect = disconnect
        self.online = online
        self.on_event = on_event
        # wants_event(cid, identity, type): does anybody listen to this event? (None: yes.)
        # Asked before a data_in event is built, per device write.
        self.wants_event = wants_event
        # (connector id, "accepted" or the debug reason) -> provision requests, for /metrics.
        self.provision_results: Counter[tuple[str, str]] = Counter()
        self.event_listeners: list[EventSink] = []
        self.set_listeners: list[SetSink] = []
        self._hot: dict[tuple[str, str], _Hot] = {}
        self.logs = logs if logs is not None else Logs()
        self.password_cost = password_cost
        self.verifier = PasswordVerifier()
        # Content bodies (§7) are files under content_dir; without one the content operations
        # answer 503. Orphans of a crash (see broker/gateway/content.py) go at start.
        self.content: content_mod.ContentFiles | None = None
        if content_dir is not None:
            self.content = content_mod.ContentFiles(content_dir, content_max_size)
            with store.read() as txn:
                self.content.sweep(content_mod.referenced(txn))
        # Connector records by id; every change goes through this object, which updates it.
        self._connectors: dict[str, dict[str, Any]] = {}
        self._sweep: dict[str, bytes] = {}  # connector id -> key the expiry sweep resumes at
        # Parsed client CAs (pki.client_ca) by connector id; an entry is used only while its
        # PEM is the connector's, and replaced when the setting changes.
        self._client_cas: dict[str, certificates.ClientCA] = {}
        self._default: str | None = None
        self.operations: dict[str, Callable[..., Any]] = {
            "getGatewaySettings": self.getGatewaySettings,
            "updateGatewaySettings": self.updateGatewaySettings,
            "getGatewayResource": self.getGatewayResource,
            "addGatewayResource": self.addGatewayResource,
            "updateGatewayResource": self.updateGatewayResource,
            "removeGatewayResource": self.removeGatewayResource,
            "addIdentity": self.addIdentity,
            "addIdentities": self.addIdentities,
            "makeIdentity": self.makeIdentity,
            "removeIdentity": self.removeIdentity,
            "getIdentity": self.getIdentity,
            "listIdentities": self.listIdentities,
            "countIdentities": self.countIdentities,
            "getIdentityState": self.getIdentityState,
            "setIdentityState": self.setIdentityState,
            "updateIdentity": self.updateIdentity,
            "updateIdentities": self.updateIdentities,
            "addIdentityTag": self.addIdentityTag,
            "removeIdentityTag": self.removeIdentityTag,
            "getIdentityTag": self.getIdentityTag,
            "listTagNames": self.listTagNames,
            "listTagName": self.listTagName,
            "getLogs": self.getLogs,
            "contentList": self.contentList,
            "contentInfo": self.contentInfo,
            "contentUpload": self.contentUpload,
            "contentDownload": self.contentDownload,
            "contentDelete": self.contentDelete,
        }

    # -- dispatch ------------------------------------------------------------------------

    def call(self, connector_id: str | None, operation: str, args: Mapping[str, Any]) -> Any:
        """Run a Device2 operation by name with a JSON object of arguments."""
        method = self.operations.get(operation)
        if method is None:
            raise ServiceError(404, "not_found", f"unknown operation {operation!r}")
        if not isinstance(args, Mapping):
            raise _bad("arguments must be a JSON object")
        if "connector_id" in args:
            raise _bad("connector_id is given by the route, not the arguments")
        try:
            inspect.signature(method).bind(**args)
        except TypeError as exc:
            raise _bad(f"{operation}: {exc}") from exc
        arguments.check(operation, method, args)
        return method(connector_id=connector_id, **args)

    # -- the hot cache -------------------------------------------------------------------

    def attach_committer(self, committer: Any) -> None:
        """Device writes go through ``committer`` (a GroupCommitter on this service's store):
        a failed commit drops the hot cache; authentication reads its store undrained."""
        self.auth_store = committer.store
        previous = committer.on_error

        def on_error(error: BaseException, dones: list[Callable[[], None]]) -> None:
            self._hot.clear()
            if previous is not None:
                previous(error, dones)

        committer.on_error = on_error

    def _hot_entry(self, txn: WriteTxn, cid: str, identity: str) -> _Hot:
        """The identity's cache entry, loaded through ``txn`` on a miss (404 if unknown)."""
        hot = self._hot.get((cid, identity))
        if hot is None:
            record = identities.require(txn, cid, identity)
            key = tables.key(cid, identity)
            raw = txn.get(tables.STATE, key)
            hot = _Hot(record, {} if raw is None else tables.loads(raw), key)
            if len(self._hot) >= HOT_MAX:
                old_key = next(iter(self._hot))
                old = self._hot.pop(old_key)
                if old.stored_seen != old.record["lastseen"]:
                    txn.put(tables.IDENTITIES, old.key, tables.dumps(old.record))
            self._hot[(cid, identity)] = hot
        return hot

    def _flush_hot(self, txn: WriteTxn, cid: str, identity: str) -> None:
        """Write the identity's unsaved lastseen into ``txn`` (the entry stays)."""
        hot = self._hot.get((cid, identity))
        if hot is not None and hot.stored_seen != hot.record["lastseen"]:
            txn.put(tables.IDENTITIES, hot.key, tables.dumps(hot.record))

    def _flush_all(self, txn: WriteTxn) -> None:
        for hot in self._hot.values():
            if hot.stored_seen != hot.record["lastseen"]:
                txn.put(tables.IDENTITIES, hot.key, tables.dumps(hot.record))

    @contextmanager
    def _identity_write(self, cid: str, identity: object) -> Iterator[WriteTxn]:
        """A synchronous write changing ``identity``: its unsaved lastseen goes into the
        transaction first; its cache entry is dropped once the transaction is committed (a
        refused operation changes nothing, so the entry stays valid)."""
        with self.store.write() as txn:
            if isinstance(identity, str):
                self._flush_hot(txn, cid, identity)
            yield txn
        if isinstance(identity, str):
            self._hot.pop((cid, identity), None)

    @contextmanager
    def _connector_write(self) -> Iterator[WriteTxn]:
        """A synchronous write that may change any identity: every unsaved lastseen first,
        the whole cache dropped after the commit."""
        with self.store.write() as txn:
            self._flush_all(txn)
            yield txn
        self._hot.clear()

    def _seen(self, cid: str, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` with the cached lastseen/lastip (newer than the stored ones)."""
        hot = self._hot.get((cid, record["identity"]))
        if hot is None:
            return record
        return dict(record, lastseen=hot.record["lastseen"], lastip=hot.record["lastip"])

    # -- connectors ----------------------------------------------------------------------

    def create_connector(self, *, name: str = "", description: str = "",
                         connector_id: str | None = None, default: bool = False
                         ) -> dict[str, Any]:
        cid = settings_mod.validate_connector_id(connector_id or settings_mod.new_connector_id())
        settings = settings_mod.validate_settings(
            settings_mod.default_settings(name=name, description=description))
        record = {"id": cid, "default": default, "created": self.clock(),
                  "hash_key": credentials.new_hash_key(), "settings": settings}
        with self.store.write() as txn:
            if txn.get(tables.CONNECTORS, tables.key(cid)) is not None:
                raise ServiceError(409, "conflict", f"connector {cid!r} exists")
            if default:
                for _, raw in list(txn.scan(tables.CONNECTORS)):
                    other = tables.loads(raw)
                    if other["default"]:
                        other["default"] = False
                        txn.put(tables.CONNECTORS, tables.key(other["id"]), tables.dumps(other))
            txn.put(tables.CONNECTORS, tables.key(cid), tables.dumps(record))
        self._connectors.clear()
        self._default = None
        return self._summary(record)

    def ensure_default_connector(self, name: str = "default") -> str:
        """The default connector's id, made on first start (product.md §2)."""
        with self.store.read() as txn:
            for _, raw in txn.scan(tables.CONNECTORS):
                if tables.loads(raw)["default"]:
                    return tables.loads(raw)["id"]
        return self.create_connector(name=name, default=True)["id"]

    def list_connectors(self) -> list[dict[str, Any]]:
        with self.store.read() as txn:
            return [self._summary(tables.loads(raw)) for _, raw in txn.scan(tables.CONNECTORS)]

    def remove_connector(self, connector_id: str) -> None:
        cid = self._connector(connector_id)["id"]
        gone: list[str] = []
        with self._connector_write() as txn:
            txn.delete(tables.CONNECTORS, tables.key(cid))
            for table in (tables.IDENTITIES, tables.STATE, tables.TAGS, tables.TOKENS,
                          tables.APPS, tables.CONTENT):
                for k, _ in list(txn.scan(table, tables.prefix(cid))):
                    txn.delete(table, k)
                    if table == tables.IDENTITIES:
                        gone.append(tables.last_part(k))
        if self.disconnect is not None:  # its devices lose their credentials with it
            for identity in gone:
                if self.online is None or self.online(cid, identity):
                    self.disconnect(cid, identity, "deleted")
        if self.content is not None:  # after the metadata, as a content delete does
            self.content.remove_connector(cid)
        self._connectors.clear()
        self._client_cas.pop(cid, None)
        self._default = None
        self.logs.drop(cid)

    def _summary(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {"id": record["id"], "name": record["settings"]["name"],
                "default": record["default"], "created": record["created"],
                "fqdn": settings_mod.fqdn(record["id"], self.domain)}

    def _connector(self, connector_id: str | None) -> dict[str, Any]:
        if connector_id is None:
            if self._default is None:
                with self.store.read() as txn:
                    for _, raw in txn.scan(tables.CONNECTORS):
                        if tables.loads(raw)["default"]:
                            self._default = tables.loads(raw)["id"]
                            break
                if self._default is None:
                    raise ServiceError(404, "not_found", "no default connector")
            connector_id = self._default
        record = self._connectors.get(connector_id)
        if record is None:
            raw = None
            if isinstance(connector_id, str):
                with self.store.read() as txn:
                    raw = txn.get(tables.CONNECTORS, tables.key(connector_id))
            if raw is None:
                raise ServiceError(404, "not_found", f"connector {connector_id!r} not found")
            record = self._connectors[connector_id] = tables.loads(raw)
        return record

    def _save_settings(self, txn: WriteTxn, connector: dict[str, Any],
                       new: dict[str, Any]) -> None:
        """Store new settings; values of resources that disappeared are dropped (§11)."""
        gone = set(connector["settings"]["resources"]) - set(new["resources"])
        if gone:
            cid = connector["id"]
            for k, raw in list(txn.scan(tables.STATE, tables.prefix(cid))):
                state = tables.loads(raw)
                if gone.intersection(state):
                    txn.put(tables.STATE, k, tables.dumps(
                        {a: e for a, e in state.items() if a not in gone}))
        updated = dict(connector, settings=new)
        txn.put(tables.CONNECTORS, tables.key(connector["id"]), tables.dumps(updated))

    def _commit_settings(self, connector: dict[str, Any], new: dict[str, Any]) -> None:
        with self._connector_write() as txn:
            self._save_settings(txn, connector, new)
        self._connectors.pop(connector["id"], None)

    def emit(self, connector_id: str, event: events.Event) -> None:
        """An event a protocol layer made (a device's custom publish), to the event sink."""
        self._emit(self._connector(connector_id), event)

    def _emit(self, connector: Mapping[str, Any], event: events.Event) -> None:
        if not events.enabled(connector["settings"], event["type"]):
            return
        if self.on_event is not None:
            self.on_event(connector["id"], event)
        for listener in self.event_listeners:
            listener(connector["id"], event)

    # -- settings and resources (§2, §4.1) -----------------------------------------------

    def getGatewaySettings(self, *, connector_id: str | None = None) -> dict[str, Any]:
        c = self._connector(connector_id)
        return settings_mod.public_settings(c["settings"], c["id"], self.domain)

    def updateGatewaySettings(self, *, connector_id: str | None = None,
                              **patch: Any) -> None:
        c = self._connector(connector_id)
        new = settings_mod.apply_update(c["settings"], patch, c["id"], self.domain)
        self._commit_settings(c, new)

    def getGatewayResource(self, *, alias: str,
                           connector_id: str | None = None) -> dict[str, Any]:
        resources = self._connector(connector_id)["settings"]["resources"]
        if alias not in resources:
            raise ServiceError(404, "not_found", f"resource {alias!r} is not defined")
        return dict(resources[alias], alias=alias)

    def addGatewayResource(self, *, alias: str, connector_id: str | None = None,
                           **definition: Any) -> None:
        c = self._connector(connector_id)
        if alias in c["settings"]["resources"]:
            raise ServiceError(409, "conflict", f"resource {alias!r} already exists")
        new = dict(c["settings"])
        new["resources"] = dict(new["resources"], **{alias: validate_definition(alias,
                                                                                definition)})
        self._commit_settings(c, new)

    def updateGatewayResource(self, *, alias: str, connector_id: str | None = None,
                              **changes: Any) -> None:
        c = self._connector(connector_id)
        current = c["settings"]["resources"].get(alias)
        if current is None:
            raise ServiceError(404, "not_found", f"resource {alias!r} is not defined")
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise _bad(f"resource {alias!r}: unknown fields {sorted(unknown)}")
        new = dict(c["settings"])
        new["resources"] = dict(new["resources"], **{
            alias: validate_definition(alias, dict(current, **changes))})
        self._commit_settings(c, new)

    def removeGatewayResource(self, *, alias: str, connector_id: str | None = None) -> None:
        c = self._connector(connector_id)
        if alias not in c["settings"]["resources"]:
            raise ServiceError(404, "not_found", f"resource {alias!r} is not defined")
        new = dict(c["settings"])
        new["resources"] = {a: d for a, d in new["resources"].items() if a != alias}
        self._commit_settings(c, new)

    # -- identities (§3, §11) ------------------------------------------------------------

    def _apply_auth(self, txn: WriteTxn, c: Mapping[str, Any], record: dict[str, Any],
                    auth: object) -> bool:
        """addIdentity/updateIdentity ``auth``; True when credentials changed or were revoked
        (the device must be disconnected)."""
        if not isinstance(auth, Mapping):
            raise _bad("auth must be an object {type, key, expire}")
        unknown = set(auth) - {"type", "key", "expire"}
        if unknown:
            raise _bad(f"auth: unknown fields {sorted(unknown)}")
        auth_type = settings_mod.canonical_auth_type(auth.get("type", record["auth"]["type"]))
        expire = auth.get("expire")
        if expire is not None and (not isinstance(expire, int) or isinstance(expire, bool)
                                   or expire < 0):
            raise _bad("auth.expire must be a µs timestamp (0 revokes)")
        key = auth.get("key")
        changed = False
        if key is not None:
            if not isinstance(key, str) or not key or len(key) > credentials.MAX_SECRET_LENGTH:
                raise _bad("auth.key must be a non-empty string")
            if auth_type == "token":
                secret = credentials.token_digest(c["hash_key"], key)
                holder = identities.identity_for_token(txn, c["id"], secret)
                if holder is not None and holder != record["identity"]:
                    raise ServiceError(409, "conflict", "this token is in use")
            elif auth_type == "password":
                try:
                    secret = credentials.hash_device_password(key, n=self.password_cost)
                except ServiceError as exc:
                    raise _bad(exc.message) from exc
            else:
                secret = credentials.certificate_fingerprint(key)
            identities.clear_secret(txn, c["id"], record)
            record["auth"]["type"] = auth_type
            identities.set_token_secret(txn, c["id"], record, secret)
            record["reprovision"] = False
            changed = True
        elif auth_type != record["auth"]["type"]:
            identities.clear_secret(txn, c["id"], record)
            record["auth"]["type"] = auth_type
            changed = True
        if expire == 0:  # connector-spec §2.4: revoke, force re-provisioning
            identities.clear_secret(txn, c["id"], record)
            record["reprovision"] = True
            record["auth"]["expire"] = None
            changed = True
        elif expire is not None:
            record["auth"]["expire"] = expire
        return changed

    def _add(self, txn: WriteTxn, c: Mapping[str, Any], identity: object, *,
             auth: object = None, locked: object = False, tags_: object = None,
             certificate: str | None = None, expire: int | None = None) -> dict[str, Any]:
        settings = c["settings"]
        identity = validate_identity(identity, settings["identity_format"])
        if identities.load(txn, c["id"], identity) is not None:
            raise ServiceError(409, "conflict", f"identity {identity!r} already exists")
        if not isinstance(locked, bool):
            raise _bad("locked must be a boolean")
        now = self.clock()
        record = identities.new_record(identity, settings["provisioning"]["auth_type"], now,
                                       expire=expire, locked=locked)
        if certificate is not None:
            auth = {"type": "certificate", "key": certificate}
        if auth is not None:
            self._apply_auth(txn, c, record, auth)
        if tags_ is not None:
            record["tags"] = tags.validate_tags(tags_, schema=settings.get("tags_schema"))
            tags.reindex(txn, c["id"], identity, [], record["tags"])
        identities.save(txn, c["id"], record)
        state_mod.save(txn, c["id"], identity,
                       state_mod.initial_state(settings["resources"], now))
        return record

    def _public(self, txn: ReadTxn, c: Mapping[str, Any],
                record: Mapping[str, Any]) -> dict[str, Any]:
        state = state_mod.visible(state_mod.load(txn, c["id"], record["identity"]),
                                  c["settings"]["resources"])
        online = bool(self.online(c["id"], record["identity"])) if self.online else False
        return identities.public(self._seen(c["id"], record), state, online)

    def addIdentity(self, *, identity: str, auth: Mapping[str, Any] | None = None,
                    locked: bool = False, tags: list[Any] | None = None,
                    connector_id: str | None = None) -> dict[str, Any]:
        c = self._connector(connector_id)
        with self._identity_write(c["id"], identity) as txn:
            record = self._add(txn, c, identity, auth=auth, locked=locked, tags_=tags)
            return self._public(txn, c, record)

    def addIdentities(self, *, identities: str | list[Any], expire: int | None = None,
                      connector_id: str | None = None) -> dict[str, Any]:
        """Bulk whitelist (§3.5): a CSV text or a list of identities / {identity, tags}.

        Rows go through ``import_rows`` ``IMPORT_CHUNK`` at a time. A bad row is reported
        with its line and adds nothing; the others are added."""
        c = self._connector(connector_id)
        _check_expire(expire)
        if isinstance(identities, str):
            rows = parse_csv(identities)
        elif isinstance(identities, list):
            rows = [row_from_item(i + 1, item) for i, item in enumerate(identities)]
        else:
            raise _bad("identities must be CSV text or a list")
        added = 0
        failed: list[dict[str, Any]] = []
        seen: set[str] = set()
        for start in range(0, len(rows), IMPORT_CHUNK):
            out = self.import_rows(rows[start:start + IMPORT_CHUNK], expire=expire, seen=seen,
                                   connector_id=c["id"])
            added += out["added"]
            failed.extend(out["failed"])
        return {"added": added, "failed": failed}

    def import_rows(self, rows: Iterable[Row], *, expire: int | None = None,
                    seen: set[str] | None = None,
                    connector_id: str | None = None) -> dict[str, Any]:
        """One batch of a bulk import (§3.5, ``broker.gateway.bulk_csv`` rows) in one write
        transaction: each row is checked (its own error, identity format, repeated in this
        import — ``seen`` holds the identities earlier batches added and gets this batch's —,
        already stored, tags, certificate); a bad row adds nothing and is listed as
        ``{line, identity, error, message}``, the valid rows are added. A streamed import
        (the admin API's CSV upload) calls it once per batch as rows arrive."""
        c = self._connector(connector_id)
        _check_expire(expire)
        seen = set() if seen is None else seen
        settings = c["settings"]
        failed: list[dict[str, Any]] = []
        added: list[str] = []
        try:
            with self.store.write() as txn:
                for line, identity, row_tags, cert, error in rows:
                    try:
                        if error is not None:
                            raise _bad(error)
                        identity = validate_identity(identity, settings["identity_format"])
                        if identity in seen:
                            raise ServiceError(409, "conflict", "identity repeated in the input")
                        if identities_exists(txn, c["id"], identity):
                            raise ServiceError(409, "conflict", "identity already exists")
                        row_tags = tags.validate_tags(row_tags,
                                                      schema=settings.get("tags_schema"))
                        if cert is not None:
                            credentials.certificate_fingerprint(cert)
                    except ServiceError as exc:
                        failed.append({"line": line, "identity": identity, "error": exc.code,
                                       "message": exc.message})
                        continue
                    self._add(txn, c, identity, tags_=row_tags, certificate=cert,
                              expire=expire)
                    seen.add(identity)
                    added.append(identity)
        except BaseException:
            seen.difference_update(added)  # the batch is not committed: nothing was added
            raise
        for identity in added:
            self._hot.pop((c["id"], identity), None)  # new identities: none, to be sure
        return {"added": len(added), "failed": failed}

    def makeIdentity(self, *, prefix: str | None = None,
                     connector_id: str | None = None) -> dict[str, Any]:
        c = self._connector(connector_id)
        settings = c["settings"]
        if not settings["provisioning"]["generate_identity"]:
            raise _bad("generate_identity is disabled for this connector")
        if prefix is not None and not isinstance(prefix, str):
            raise _bad("prefix must be a string")
        for _ in range(8):  # a collision is astronomically rare unless the format is tiny
            identity = make_identity(settings["identity_format"], prefix)
            with self._identity_write(c["id"], identity) as txn:
                if identities.load(txn, c["id"], identity) is None:
                    return self._public(txn, c, self._add(txn, c, identity))
        raise ServiceError(409, "conflict", "could not find a free identity for this format")

    def removeIdentity(self, *, identity: str, connector_id: str | None = None) -> None:
        c = self._connector(connector_id)
        with self._identity_write(c["id"], identity) as txn:
            record = identities.require(txn, c["id"], identity)
            identities.delete(txn, c["id"], record)
        if self.disconnect is not None:
            self.disconnect(c["id"], identity, "deleted")
        now = self.clock()
        self.logs[c["id"]].event(now, "deleted", identity=identity)
        self._emit(c, events.deleted(identity, timestamp=now, tags=record["tags"]))

    def getIdentity(self, *, identity: str, connector_id: str | None = None) -> dict[str, Any]:
        c = self._connector(connector_id)
        with self.store.read() as txn:
            return self._public(txn, c, identities.require(txn, c["id"], identity))

    def listIdentities(self, *, limit: int | None = None, offset: int = 0,
                       sort: str | None = None, order: str | None = None,
                       status: str | None = None,
                       identity: str | None = None, ipaddress: str | None = None,
                       tag_name: str | None = None, tag_value: str | None = None,
                       online: bool | str | None = None, before: int | None = None,
                       version: str | None = None,
                       connector_id: str | None = None) -> dict[str, Any]:
        """``{devices, total, mayLoadMore}``, sorted by ``sort`` (``identities.SORT_FIELDS``;
        ``-field`` or ``order="desc"`` for descending); ``version`` is accepted and ignored
        (§11 lists it without meaning for us)."""
        c = self._connector(connector_id)
        query = identities.Query(status=status, identity=identity, ipaddress=ipaddress,
                                 tag_name=tag_name, tag_value=tag_value, online=online,
                                 before=before)
        is_online = self._is_online(c["id"])
        with self.store.read() as txn:
            page, total = identities.select(txn, c["id"], query, limit=limit, offset=offset,
                                            sort=sort, order=order, is_online=is_online)
            devices = [self._public(txn, c, r) for r in page]
        return {"devices": devices, "total": total,
                "mayLoadMore": offset + len(devices) < total}

    def countIdentities(self, *, status: str | None = None, identity: str | None = None,
                        ipaddress: str | None = None, tag_name: str | None = None,
                        tag_value: str | None = None, online: bool | str | None = None,
                        before: int | None = None, version: str | None = None,
                        connector_id: str | None = None) -> dict[str, int]:
        c = self._connector(connector_id)
        query = identities.Query(status=status, identity=identity, ipaddress=ipaddress,
                                 tag_name=tag_name, tag_value=tag_value, online=online,
                                 before=before)
        with self.store.read() as txn:
            _, total = identities.select(txn, c["id"], query, limit=0, offset=0, sort=None,
                                         is_online=self._is_online(c["id"]))
        return {"total": total}

    def _is_online(self, cid: str) -> Callable[[str], bool] | None:
        online = self.online
        if online is None:
            return None
        return lambda identity: bool(online(cid, identity))

    def getIdentityState(self, *, identity: str,
                         connector_id: str | None = None) -> dict[str, Any]:
        c = self._connector(connector_id)
        with self.store.read() as txn:
            identities.require(txn, c["id"], identity)
            return state_mod.visible(state_mod.load(txn, c["id"], identity),
                                     c["settings"]["resources"])

    def setIdentityState(self, *, identity: str, connector_id: str | None = None,
                         **values: Any) -> dict[str, Any]:
        """Set ``set`` values (400 ``not_settable``/``invalid_value``, 404 unknown identity),
        then push settable+sync values to the device (§5.4)."""
        c = self._connector(connector_id)
        now = self.clock()
        resources = c["settings"]["resources"]
        with self._identity_write(c["id"], identity) as txn:
            identities.require(txn, c["id"], identity)
            state = state_mod.load(txn, c["id"], identity)
            to_push = state_mod.cloud_set(state, resources, values, now)
            state_mod.save(txn, c["id"], identity, state)
        for listener in self.set_listeners:
            listener(c["id"], identity, to_push, now)
        if self.push is not None:
            for alias, value in to_push.items():
                if self.push(c["id"], identity, alias, value, now):
                    self._emit(c, events.data_out(identity, alias, value, now, timestamp=now))
        return {}

    def updateIdentity(self, *, identity: str, locked: bool | None = None,
                       auth: Mapping[str, Any] | None = None, tags: list[Any] | None = None,
                       connector_id: str | None = None) -> dict[str, Any]:
        """Lock/unlock, set credentials, revoke (``auth.expire: 0`` → reprovision), replace
        tags. A lock, revocation or credential change disconnects the device."""
        c = self._connector(connector_id)
        reason: str | None = None
        with self._identity_write(c["id"], identity) as txn:
            record = identities.require(txn, c["id"], identity)
            if locked is not None:
                if not isinstance(locked, bool):
                    raise _bad("locked must be a boolean")
                if locked and not record["locked"]:
                    reason = "locked"
                record["locked"] = locked
            if auth is not None and self._apply_auth(txn, c, record, auth):
                reason = reason or ("reprovision" if record["reprovision"]
                                    else "credentials_changed")
            if tags is not None:
                new = self._validate_tags(c, tags)
                _reindex(txn, c["id"], record, new)
            identities.save(txn, c["id"], record)
            public = self._public(txn, c, record)
        if reason is not None and self.disconnect is not None:
            self.disconnect(c["id"], identity, reason)
        return public

    def updateIdentities(self, *, identities: list[Any],
                         connector_id: str | None = None) -> dict[str, Any]:
        """Bulk updateIdentity: each item is applied on its own; failures are listed."""
        if not isinstance(identities, list):
            raise _bad("identities must be a list of updates")
        updated = 0
        failed: list[dict[str, Any]] = []
        for index, item in enumerate(identities):
            try:
                if not isinstance(item, Mapping) or "identity" not in item:
                    raise _bad("each update is an object with an identity")
                unknown = set(item) - {"identity", "locked", "auth", "tags"}
                if unknown:
                    raise _bad(f"unknown fields {sorted(unknown)}")
                self.updateIdentity(connector_id=connector_id, **item)
                updated += 1
            except ServiceError as exc:
                failed.append({"index": index, "identity": _identity_of(item),
                               "error": exc.code, "message": exc.message})
        return {"updated": updated, "failed": failed}

    # -- tags (§9) -----------------------------------------------------------------------

    def _validate_tags(self, c: Mapping[str, Any], given: object, *,
                       value_required: bool = True) -> list[dict[str, str]]:
        return tags.validate_tags(given, value_required=value_required,
                                  schema=c["settings"].get("tags_schema"))

    def addIdentityTag(self, *, identity: str, tags: list[Any], replace: bool = False,
                       connector_id: str | None = None) -> list[dict[str, str]]:
        c = self._connector(connector_id)
        given = self._validate_tags(c, tags)
        with self._identity_write(c["id"], identity) as txn:
            record = identities.require(txn, c["id"], identity)
            _reindex(txn, c["id"], record, _tags_mod.merge(record["tags"], given,
                                                           replace=bool(replace)))
            identities.save(txn, c["id"], record)
            return record["tags"]

    def removeIdentityTag(self, *, identity: str, tags: list[Any],
                          connector_id: str | None = None) -> list[dict[str, str]]:
        c = self._connector(connector_id)
        given = self._validate_tags(c, tags, value_required=False)
        with self._identity_write(c["id"], identity) as txn:
            record = identities.require(txn, c["id"], identity)
            _reindex(txn, c["id"], record, _tags_mod.remove(record["tags"], given))
            identities.save(txn, c["id"], record)
            return record["tags"]

    def getIdentityTag(self, *, identity: str, name: str | None = None,
                       connector_id: str | None = None) -> list[dict[str, str]]:
        c = self._connector(connector_id)
        with self.store.read() as txn:
            record = identities.require(txn, c["id"], identity)
        return [t for t in record["tags"] if name is None or t["name"] == name]

    def listTagNames(self, *, connector_id: str | None = None) -> list[str]:
        c = self._connector(connector_id)
        with self.store.read() as txn:
            return _tags_mod.names(txn, c["id"])

    def listTagName(self, *, name: str,
                    connector_id: str | None = None) -> list[dict[str, Any]]:
        c = self._connector(connector_id)
        _tags_mod.validate_name(name)
        with self.store.read() as txn:
            return _tags_mod.values(txn, c["id"], name)

    # -- logs (§8) -----------------------------------------------------------------------

    def getLogs(self, *, type: str = "event", identity: str | None = None,
                ip: str | None = None, since: int | None = None, limit: int | None = None,
                connector_id: str | None = None) -> list[dict[str, Any]]:
        from broker.gateway.logs import Filter

        c = self._connector(connector_id)
        try:
            ring = self.logs[c["id"]].ring(type)
        except ValueError as exc:
            raise _bad(str(exc)) from exc
        if since is not None and (not isinstance(since, int) or isinstance(since, bool)):
            raise _bad("since must be a µs timestamp")
        return ring.query(Filter(identity=identity, ip=ip, since=since), limit)

    # -- content (§7, §6.7) ---------------------------------------------------------------
    # A streamed upload (the HTTP layers): content_begin, Upload.write per chunk,
    # Upload.finish (blocking: off the loop), content_commit; Upload.abort on any failure.

    def _files(self) -> content_mod.ContentFiles:
        if self.content is None:
            raise ServiceError(503, "content_unavailable", "no content directory configured")
        return self.content

    def content_begin(self, *, id: str, type: str | None = None, meta: str | None = None,
                      connector_id: str | None = None) -> content_mod.Upload:
        files = self._files()
        c = self._connector(connector_id)
        return files.begin(c["id"], content_mod.validate_id(id),
                           content_mod.validate_type(type), content_mod.validate_meta(meta))

    def content_commit(self, upload: content_mod.Upload, *, identity: str | None = None,
                       ip: str | None = None, protocol: str | None = None,
                       connection_id: str | None = None) -> tuple[dict[str, Any], bool]:
        """Store the metadata of a finished upload: ``(info, created)``. The previous
        version's body goes after the commit. A device's upload (``identity``) is logged and
        emits ``content_in``."""
        now = self.clock()
        record = upload.record(now)
        try:
            c = self._connector(upload.connector_id)
            with self.store.write() as txn:
                old = content_mod.load(txn, c["id"], upload.content_id)
                content_mod.save(txn, c["id"], record)
                device = identities.load(txn, c["id"], identity) if identity else None
        except BaseException:
            upload.abort()
            raise
        if old is not None and old["file"] != record["file"]:
            self._files().remove(c["id"], old["file"])
        if identity is not None:
            ctx = {"ip": ip, "protocol": protocol, "connection_id": connection_id}
            self.logs[c["id"]].event(now, "content_in", identity=identity, detail={
                "id": record["id"], "type": record["type"], "length": record["length"]}, **ctx)
            self._emit(c, events.content_in(
                identity, record["id"], record["type"], record["length"], timestamp=now,
                tags=device["tags"] if device else None, **ctx))
        return content_mod.public(record), old is None

    def content_open(self, *, id: str, connector_id: str | None = None
                     ) -> tuple[dict[str, Any], BinaryIO]:
        """The item's info and its body opened for reading (the caller closes it). Opened
        in the same loop step as the metadata is read, so a replacement cannot come between."""
        files = self._files()
        c = self._connector(connector_id)
        content_id = content_mod.validate_id(id)
        with self.store.read() as txn:
            record = content_mod.require(txn, c["id"], content_id)
        try:
            body = files.open(c["id"], record)
        except FileNotFoundError:
            raise ServiceError(404, "not_found", f"content {content_id!r} has no body") from None
        return content_mod.public(record), body

    def contentList(self, *, connector_id: str | None = None) -> list[dict[str, Any]]:
        c = self._connector(connector_id)
        with self.store.read() as txn:
            return [content_mod.public(r) for r in content_mod.scan(txn, c["id"])]

    def contentInfo(self, *, id: str, connector_id: str | None = None) -> dict[str, Any]:
        c = self._connector(connector_id)
        with self.store.read() as txn:
            return content_mod.public(
                content_mod.require(txn, c["id"], content_mod.validate_id(id)))

    def contentUpload(self, *, id: str, data: str, type: str | None = None,
                      meta: str | None = None,
                      connector_id: str | None = None) -> dict[str, Any]:
        """Create or replace an item from base64 ``data``; its info."""
        if not isinstance(data, str):
            raise _bad("data must be base64 text")
        try:
            body = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _bad(f"data is not valid base64: {exc}") from exc
        upload = self.content_begin(id=id, type=type, meta=meta, connector_id=connector_id)
        try:
            upload.write(body)
            upload.finish()
        except BaseException:
            upload.abort()
            raise
        return self.content_commit(upload)[0]

    def contentDownload(self, *, id: str, connector_id: str | None = None) -> dict[str, Any]:
        """The item's info with its body as base64 ``data``."""
        info, body = self.content_open(id=id, connector_id=connector_id)
        with body:
            data = body.read()
        return dict(info, data=base64.b64encode(data).decode("ascii"))

    def contentDelete(self, *, id: str, connector_id: str | None = None) -> None:
        """Metadata first, then the body (a crash in between leaves an orphan file)."""
        files = self._files()
        c = self._connector(connector_id)
        content_id = content_mod.validate_id(id)
        with self.store.write() as txn:
            record = content_mod.require(txn, c["id"], content_id)
            content_mod.delete(txn, c["id"], content_id)
        files.remove(c["id"], record["file"])

    # -- application keys (product.md §4) ------------------------------------------------

    def create_app_key(self, *, name: str = "",
                       connector_id: str | None = None) -> dict[str, str]:
        """A new application key: ``{key, secret}``; the secret is not kept and not shown
        again."""
        c = self._connector(connector_id)
        if not isinstance(name, str) or len(name) > 256:
            raise _bad("name must be a string")
        key, secret = credentials.new_app_credentials()
        with self.store.write() as txn:
            txn.put(tables.APPS, tables.key(c["id"], key), tables.dumps({
                "key": key, "name": name, "created": self.clock(),
                "secret": credentials.token_digest(c["hash_key"], secret)}))
        return {"key": key, "secret": secret}

    def list_app_keys(self, *, connector_id: str | None = None) -> list[dict[str, Any]]:
        c = self._connector(connector_id)
        with self.store.read() as txn:
            return [{k: v for k, v in tables.loads(raw).items() if k != "secret"}
                    for _, raw in txn.scan(tables.APPS, tables.prefix(c["id"]))]

    def delete_app_key(self, *, key: str, connector_id: str | None = None) -> None:
        c = self._connector(connector_id)
        if not isinstance(key, str) or "\0" in key:
            raise _bad("key must be a string")
        with self.store.write() as txn:
            if not txn.delete(tables.APPS, tables.key(c["id"], key)):
                raise ServiceError(404, "not_found", f"application key {key!r} not found")

    def verify_app_key(self, key: str, secret: str) -> str | None:
        """The connector id the application key belongs to, if ``secret`` is right."""
        if not isinstance(key, str) or not isinstance(secret, str) or "\0" in key:
            return None
        with self.auth_store.read() as txn:
            for _, raw in txn.scan(tables.CONNECTORS):
                c = tables.loads(raw)
                app = txn.get(tables.APPS, tables.key(c["id"], key))
                if app is not None:
                    stored = tables.loads(app)["secret"]
                    ok = credentials.token_matches(c["hash_key"], stored, secret)
                    return c["id"] if ok else None
        return None

    # -- the device side (called by the MQTT hooks and the HTTP device API) --------------

    def device_connector(self, connector_id: str | None = None
                         ) -> tuple[str, Mapping[str, Mapping[str, Any]]]:
        """The connector a device request is for (None: the default): its id and its resource
        definitions (shared, read-only); 404 if there is no such connector."""
        c = self._connector(connector_id)
        return c["id"], c["settings"]["resources"]

    def provision(self, *, identity: str | None, ip: str | None = None,
                  protocol: str | None = None,
                  connection_id: str | None = None, presented: Presented = NOTHING,
                  password: str | None = None, certificate: str | bytes | None = None,
                  chain: Sequence[bytes] = (), connector_id: str | None = None,
                  password_hash: str | None = None) -> ProvisionOutcome:
        """A device's provision request (§3.2); logs it and emits ``provisioned``.
        ``password_hash`` is ``password`` hashed by ``hash_new_password`` beforehand.
        Certificate mode: ``certificate`` is the client's TLS certificate, whose CN must be
        ``identity`` (None: the CN is the identity) and which must chain to the connector's
        client CA if it has one (``chain``: the certificates the client sent, leaf first);
        refused before the §3.2 decision otherwise (``broker.gateway.certificates``
        reasons). In other modes ``certificate`` is ignored."""
        c = self._connector(connector_id)
        now = self.clock()
        ctx = {"ip": ip, "protocol": protocol, "connection_id": connection_id}
        prov = c["settings"]["provisioning"]
        verified = False
        if certificate is not None and prov["enabled"] and prov["auth_type"] == "certificate":
            check = self._check_certificate(c, certificate, chain, now)
            if check.ok and identity is not None and check.identity != identity:
                check = certificates.CertificateCheck(
                    check.identity, "invalid_identity",
                    f"the certificate names {check.identity!r}, not {identity!r}")
            if not check.ok:
                shown = identity if isinstance(identity, str) else check.identity or ""
                refused = ProvisionOutcome(False, shown, check.reason, check.detail)
                return self._provisioned(c, now, refused, ctx)
            identity = check.identity
            verified = check.verified
        with self._identity_write(c["id"], identity) as txn:
            outcome = provision_decide(
                txn, c["id"], c["hash_key"], c["settings"], identity, ip=ip, now_us=now,
                presented=presented, password=password, certificate=certificate,
                verifier=self.verifier, password_cost=self.password_cost,
                password_hash=password_hash, certificate_verified=verified)
        return self._provisioned(c, now, outcome, ctx)

    def _provisioned(self, c: Mapping[str, Any], now: int, outcome: ProvisionOutcome,
                     ctx: Mapping[str, Any]) -> ProvisionOutcome:
        """The log entry, metric and event of a provision request's outcome."""
        logs = self.logs[c["id"]]
        result = "accepted" if outcome.accepted else outcome.debug_reason or "refused"
        self.provision_results[(c["id"], result)] += 1
        shown = outcome.identity
        if outcome.accepted:
            logs.event(now, "provision", identity=shown,
                       detail={"auth_type": outcome.auth_type, "rotated": outcome.rotated}, **ctx)
            record = outcome.record or {}
            self._emit(c, events.provisioned(shown, outcome.auth_type or "", timestamp=now,
                                             tags=record.get("tags"), **ctx))
        else:
            logs.debug(now, outcome.debug_reason or "", identity=shown,
                       detail=outcome.message, **ctx)
            if outcome.deleted:
                self._emit(c, events.expired(shown, timestamp=now, **ctx))
        return outcome

    def _client_ca(self, c: Mapping[str, Any]) -> certificates.ClientCA | None:
        """The connector's parsed client CA (None: pinning mode), parsed once per PEM."""
        pem = certificates.client_ca_pem(c["settings"])
        if pem is None:
            return None
        ca = self._client_cas.get(c["id"])
        if ca is None or ca.pem != pem:
            ca = self._client_cas[c["id"]] = certificates.ClientCA(pem)
        return ca

    def _check_certificate(self, c: Mapping[str, Any], certificate: str | bytes,
                           chain: Sequence[bytes], now: int) -> certificates.CertificateCheck:
        try:
            ca = self._client_ca(c)
        except ServiceError as exc:  # stored before settings checked that it parses
            return certificates.CertificateCheck(None, "bad_credentials",
                                                 f"the connector's client CA: {exc.message}")
        return certificates.check(certificate, chain, ca, now)

    def certificate_login(self, *, certificate: bytes, chain: Sequence[bytes] = (),
                          ip: str | None = None, protocol: str | None = None,
                          connection_id: str | None = None,
                          connector_id: str | None = None) -> AuthResult:
        """A device that presents only a TLS client certificate, on a connector in certificate
        mode (§2.4): its identity is the certificate's CN. A provisioned identity is
        authenticated (pinned fingerprint, or a chain to the client CA); an unknown or
        whitelisted one, or one whose re-provisioning is pending, is provisioned first through
        the §3.2 decision (the certificate pinned; ``AuthResult.provisioned``), since
        certificate devices never activate (§3.3, §3.4). Refusals go to the debug log."""
        c = self._connector(connector_id)
        now = self.clock()
        ctx = {"ip": ip, "protocol": protocol, "connection_id": connection_id}
        logs = self.logs[c["id"]]
        if c["settings"]["provisioning"]["auth_type"] != "certificate":
            logs.debug(now, "bad_credentials", detail="the connector is not in certificate mode",
                       **ctx)
            return AuthResult(None, "bad_credentials")
        check = self._check_certificate(c, certificate, chain, now)
        if not check.ok or check.identity is None:
            logs.debug(now, check.reason or "bad_credentials", identity=check.identity,
                       detail=check.detail, **ctx)
            return AuthResult(check.identity, check.reason or "bad_credentials")
        identity = check.identity
        with self.auth_store.read() as txn:
            record = identities.load(txn, c["id"], identity)
            if record is not None and (record["locked"] or identities.has_credentials(record)):
                result = auth_decide(txn, c["id"], c["hash_key"], now_us=now,
                                     verifier=self.verifier, identity=identity,
                                     certificate=certificate,
                                     certificate_verified=check.verified)
                if not result.ok:
                    reason = result.reason if result.reason != "reprovision" \
                        else "not_authenticated"
                    logs.debug(now, reason or "", identity=identity, detail=result.reason,
                               **ctx)
                return result
        with self._identity_write(c["id"], identity) as txn:
            outcome = provision_decide(
                txn, c["id"], c["hash_key"], c["settings"], identity, ip=ip, now_us=now,
                presented=Presented(certificate=certificate), certificate=certificate,
                verifier=self.verifier, certificate_verified=check.verified)
        self._provisioned(c, now, outcome, ctx)
        if not outcome.accepted:
            return AuthResult(identity, outcome.debug_reason, outcome.record)
        return AuthResult(identity, None, outcome.record, provisioned=True)

    def registers_passwords(self, connector_id: str | None = None) -> bool:
        """Does provisioning on this connector register a password (scrypt, ~60 ms)?"""
        return bool(self._connector(connector_id)["settings"]["provisioning"]["auth_type"]
                    == "password")

    def uses_certificates(self, connector_id: str | None = None) -> bool:
        """Is this connector in certificate mode (a client certificate alone logs in)?"""
        return bool(self._connector(connector_id)["settings"]["provisioning"]["auth_type"]
                    == "certificate")

    def hash_new_password(self, password: str) -> str | None:
        """``password`` hashed for ``provision(password_hash=…)``; None if it is not a valid
        password (``provision`` then refuses it). Thread-safe: no store or cache access, so
        the protocol layers run it in a worker thread."""
        try:
            return credentials.hash_device_password(password, n=self.password_cost)
        except ServiceError:
            return None

    def password_hash_to_check(self, *, identity: str, password: str,
                               connector_id: str | None = None) -> tuple[bool, str | None]:
        """Whether authenticating ``identity`` with ``password`` would run the slow hash
        (scrypt, ~60 ms), and against which stored hash (None: an unknown identity, checked
        against a dummy so timing tells nothing). The MQTT layer hashes in a thread first;
        a success is then remembered by ``self.verifier`` and ``authenticate`` is instant."""
        c = self._connector(connector_id)
        with self.auth_store.read() as txn:
            record = identities.load(txn, c["id"], identity)
        if record is None:
            return True, None
        auth = record["auth"]
        if (record["locked"] or record["reprovision"] or auth["type"] != "password"
                or not identities.has_credentials(record)):
            return False, None  # decided without hashing
        secret = auth["secret"]
        raw = password.encode("utf-8", "surrogatepass")
        return not self.verifier.remembered(secret, raw), secret

    def authenticate(self, *, token: str | None = None, identity: str | None = None,
                     password: str | None = None, certificate: str | bytes | None = None,
                     ip: str | None = None, protocol: str | None = None,
                     connection_id: str | None = None,
                     connector_id: str | None = None) -> AuthResult:
        """A connecting device (§2.4, §5.1); refusals go to the debug log."""
        c = self._connector(connector_id)
        now = self.clock()
        with self.auth_store.read() as txn:
            result = auth_decide(txn, c["id"], c["hash_key"], now_us=now,
                                 verifier=self.verifier, token=token, identity=identity,
                                 password=password, certificate=certificate)
        if not result.ok:
            reason = result.reason if result.reason != "reprovision" else "not_authenticated"
            self.logs[c["id"]].debug(now, reason or "", identity=result.identity or identity,
                                     ip=ip, protocol=protocol, connection_id=connection_id,
                                     detail=result.reason)
        return result

    def device_connected(self, *, identity: str, ip: str | None = None,
                         protocol: str | None = None, connection_id: str | None = None,
                         devmode: bool = False, connector_id: str | None = None
                         ) -> dict[str, tuple[Value, int]]:
        """Record lastip/lastseen/devmode, log and emit ``connect``; the pending set values to
        send now (§5.4 step 3). One synchronous transaction: ``submit_connected`` is the same
        through a group committer."""
        c = self._connector(connector_id)
        job = _ConnectJob(self, c, identity, self.clock(), ip, protocol, connection_id,
                          bool(devmode), None)
        self._run_sync(job, c["id"], identity)
        result = job.result
        if isinstance(result, ServiceError):
            raise result
        assert result is not None
        job.announce()
        return result

    def submit_connected(self, submit: Submit, done: Callable[[Any], None], *, identity: str,
                         ip: str | None = None, protocol: str | None = None,
                         connection_id: str | None = None, devmode: bool = False,
                         connector_id: str | None = None) -> None:
        """``device_connected`` grouped with the loop turn's other writes: once committed, the
        ``connect`` log and event, then ``done(pending values)`` (or ``done(ServiceError)``
        for an identity removed meanwhile). A ``done`` with a ``conn`` attribute has that
        connection closed if the commit fails."""
        c = self._connector(connector_id)
        job = _ConnectJob(self, c, identity, self.clock(), ip, protocol, connection_id,
                          bool(devmode), done)
        submit(job, job)

    def _run_sync(self, job: Callable[[WriteTxn], None], cid: str, identity: str) -> None:
        """A device-side job in its own transaction; a failed commit drops the cache entry
        the job changed."""
        try:
            with self.store.write() as txn:
                job(txn)
        except BaseException:
            self._hot.pop((cid, identity), None)
            raise

    def _connected(self, txn: WriteTxn, c: Mapping[str, Any], identity: str, now: int,
                   ip: str | None, devmode: bool) -> tuple[_Hot, dict[str, tuple[Value, int]]]:
        hot = self._hot_entry(txn, c["id"], identity)
        record = hot.record
        record["lastip"] = ip or record["lastip"]
        record["lastseen"] = now
        record["devmode"] = devmode
        txn.put(tables.IDENTITIES, hot.key, tables.dumps(record))
        hot.saved(now)
        return hot, state_mod.pending(hot.state, c["settings"]["resources"])

    def device_disconnected(self, *, identity: str, reason: str = "normal",
                            ip: str | None = None, protocol: str | None = None,
                            connection_id: str | None = None,
                            connector_id: str | None = None, release: bool = True,
                            submit: Submit | None = None) -> None:
        """Log and emit ``disconnect``. With ``release`` (the device's last connection) its
        cache entry goes, its unsaved lastseen written: through ``submit`` (a group
        committer's) when given, else in a transaction of its own."""
        c = self._connector(connector_id)
        now = self.clock()
        ctx = {"ip": ip, "protocol": protocol, "connection_id": connection_id}
        self.logs[c["id"]].event(now, "disconnect", identity=identity, detail=reason, **ctx)
        self._emit(c, events.disconnect(identity, reason, timestamp=now, **ctx))
        if not release:
            return
        key = (c["id"], identity)
        hot = self._hot.get(key)
        if submit is not None:
            submit(_Release(self, key), None)  # after this turn's writes of the device
        elif hot is not None:
            if hot.stored_seen != hot.record["lastseen"]:
                with self.store.write() as txn:
                    self._flush_hot(txn, c["id"], identity)
            self._hot.pop(key, None)

    def write_values(self, *, identity: str, entries: list[tuple[object, Mapping[str, Any]]],
                     ip: str | None = None, protocol: str | None = None,
                     connection_id: str | None = None, connector_id: str | None = None,
                     devmode: bool | None = None) -> dict[str, Any]:
        """A device write: ``entries`` are (timestamp or None, {alias: raw value}); a
        ``$resource/<alias>`` or HTTP write is one entry at server time, a
        ``$resource.batch`` several (timestamps by the §5.2 unit rule). Returns
        ``{accepted: {alias: value}, invalid: {alias: message}}``; invalid values are logged
        (``invalid_value``) and still reach the ``data_in`` event raw (§4.3). ``devmode``:
        whether the write came through a devmode endpoint (HTTP, where every request is its own
        connection; None: leave the flag, as MQTT sets it at CONNECT), §2.2."""
        c = self._connector(connector_id)
        job = _WriteJob(self, c, identity, entries, self.clock(), ip, protocol, connection_id,
                        None, devmode)
        self._run_sync(job, c["id"], identity)
        write = job.result
        if isinstance(write, ServiceError):
            raise write
        assert write is not None
        self._written(c, identity, write, job.now, ip, protocol, connection_id)
        return {"accepted": write.accepted, "invalid": write.invalid or {}}

    def submit_values(self, submit: Submit, done: Callable[[ServiceError | None], None], *,
                      identity: str, entries: list[tuple[object, Mapping[str, Any]]],
                      ip: str | None = None, protocol: str | None = None,
                      connection_id: str | None = None, connector_id: str | None = None,
                      devmode: bool | None = None) -> None:
        """``write_values`` grouped with the loop turn's other writes: ``submit(write, after)``
        is a group committer's. The write runs in that turn's transaction; ``done`` is called
        once it is committed, with the ServiceError if this device's write was refused (a
        refusal never fails the other writes of the batch). A ``done`` with a ``conn``
        attribute has that connection closed if the commit fails."""
        c = self._connector(connector_id)
        job = _WriteJob(self, c, identity, entries, self.clock(), ip, protocol, connection_id,
                        done, devmode)
        submit(job, job)

    def _device_write(self, txn: WriteTxn, c: Mapping[str, Any], identity: str,
                      entries: list[tuple[object, Mapping[str, Any]]], now: int,
                      ip: str | None, devmode: bool | None = None) -> _DeviceWrite:
        """Apply a device write to the identity's cached state and store the state; the
        record only when lastip or the devmode flag changed, or the stored lastseen is
        LASTSEEN_PERSIST_US old."""
        resources = c["settings"]["resources"]
        hot = self._hot_entry(txn, c["id"], identity)
        state = hot.state
        write = _DeviceWrite()
        if len(entries) == 1 and entries[0][0] is None:  # one write at server time
            values = entries[0][1]
            ok, bad = state_mod.device_write(state, resources, values, now)
            write.accepted = ok
            write.timed = [(now, values, ok)]
        else:
            timed = sorted(((batch_timestamp_us(ts, now), values) for ts, values in entries),
                           key=lambda e: e[0])
            bad = {}
            for ts, values in timed:
                ok, errors = state_mod.device_write(state, resources, values, ts)
                write.accepted.update(ok)
                bad.update(errors)
                write.timed.append((ts, values, ok))
        if bad:
            write.invalid = {a: e.message for a, e in bad.items()}
        txn.put(tables.STATE, hot.key, tables.dumps(state))
        record = hot.record
        record["lastseen"] = now
        flagged = devmode is not None and record["devmode"] != devmode
        if flagged:
            record["devmode"] = devmode
        if (flagged or (ip and ip != record["lastip"]) or hot.stored_seen is None
                or now >= hot.persist_at):
            if ip:
                record["lastip"] = ip
            txn.put(tables.IDENTITIES, hot.key, tables.dumps(record))
            hot.saved(now)
        write.tags = record["tags"]
        return write

    def _written(self, c: Mapping[str, Any], identity: str, write: _DeviceWrite, now: int,
                 ip: str | None, protocol: str | None, connection_id: str | None) -> None:
        """After a device write is stored: the logs and the ``data_in`` event (built only
        when the type is enabled and ``wants_event`` says somebody listens)."""
        cid = c["id"]
        logs = self.logs[cid]
        if write.invalid:
            for alias, message in write.invalid.items():
                logs.debug(now, "invalid_value", identity=identity, ip=ip, protocol=protocol,
                           connection_id=connection_id, detail=f"{alias}: {message}")
        timed = write.timed
        aliases = (list(timed[0][1]) if len(timed) == 1
                   else list({a: None for _, v, _ in timed for a in v}))
        if len(aliases) > 1:
            aliases.sort()
        logs.rings["event"].append({
            "timestamp_us": now, "identity": identity, "ip": ip, "protocol": protocol,
            "type": "data_in", "connection_id": connection_id, "detail": aliases})
        if "data_in" not in c["settings"]["events"]["types"]:
            return
        listeners = self.event_listeners
        if not listeners:
            if self.on_event is None:
                return
            wants = self.wants_event
            if wants is not None and not wants(cid, identity, "data_in"):
                return
        payload = [(ts, {a: ok.get(a, v) for a, v in values.items()})
                   for ts, values, ok in timed]
        event = events.data_in(identity, payload, timestamp=now, tags=write.tags, ip=ip,
                               protocol=protocol, connection_id=connection_id)
        if self.on_event is not None:
            self.on_event(cid, event)
        for listener in listeners:
            listener(cid, event)

    def read_values(self, *, identity: str, aliases: list[str],
                    connector_id: str | None = None) -> dict[str, Value]:
        c = self._connector(connector_id)
        with self.store.read() as txn:
            identities.require(txn, c["id"], identity)
            state = state_mod.load(txn, c["id"], identity)
        return state_mod.read(state, c["settings"]["resources"], aliases)

    def pending_values(self, *, identity: str,
                       connector_id: str | None = None) -> dict[str, tuple[Value, int]]:
        c = self._connector(connector_id)
        with self.store.read() as txn:
            state = state_mod.load(txn, c["id"], identity)
        return state_mod.pending(state, c["settings"]["resources"])

    def expire_identities(self, *, connector_id: str | None = None) -> list[str]:
        """Delete whitelisted identities past their provisioning window; emits ``expired``.
        One walk over every identity of the connector (``expire_step`` walks in steps)."""
        gone, _ = self._expire(connector_id, b"", None)
        return gone

    def expire_step(self, limit: int = 1000) -> int:
        """One step of the background sweep: the next ``limit`` identities of each connector,
        resuming where the previous step ended (a whole fleet is swept every
        ``identities / limit`` steps). Returns how many identities it deleted."""
        deleted = 0
        with self.store.read() as txn:
            connectors = [tables.loads(raw)["id"] for _, raw in txn.scan(tables.CONNECTORS)]
        for cid in connectors:
            gone, resume = self._expire(cid, self._sweep.get(cid, b""), limit)
            self._sweep[cid] = resume or b""
            deleted += len(gone)
        return deleted

    def _expire(self, connector_id: str | None, start: bytes,
                limit: int | None) -> tuple[list[str], bytes | None]:
        c = self._connector(connector_id)
        now = self.clock()
        with self.store.write() as txn:
            gone, resume = expire_due(txn, c["id"], now, start=start, limit=limit)
        for identity in gone:  # whitelisted ones, never written: no entry, to be sure
            self._hot.pop((c["id"], identity), None)
        for identity in gone:
            self.logs[c["id"]].event(now, "expired", identity=identity)
            self._emit(c, events.expired(identity, timestamp=now))
        return gone, resume


_tags_mod = tags


class _Hot:
    """A hot cache entry: the identity's decoded record (with the newest lastseen/lastip)
    and state, their key, and the lastseen the store holds."""

    __slots__ = ("record", "state", "key", "stored_seen", "persist_at")

    def __init__(self, record: dict[str, Any], state: state_mod.State, key: bytes) -> None:
        self.record = record
        self.state = state
        self.key = key
        self.stored_seen: int | None = record["lastseen"]
        self.persist_at = _persist_after(record["lastseen"] or 0)

    def saved(self, lastseen: int) -> None:
        """The record with this lastseen is in the store (or on its way, in the same batch)."""
        self.stored_seen = lastseen
        self.persist_at = _persist_after(lastseen)


def _persist_after(lastseen: int) -> int:
    # 0.5-1.5x LASTSEEN_PERSIST_US at random: devices that connected together (a fleet after a
    # restart) must not all rewrite their records in the same second, every 10 s.
    return lastseen + int(LASTSEEN_PERSIST_US * (0.5 + random.random()))


class _DeviceWrite:
    """What one device write did (for its logs and event): ``timed`` is (µs, raw values,
    accepted typed values) per entry, oldest first."""

    __slots__ = ("accepted", "invalid", "timed", "tags")

    def __init__(self) -> None:
        self.accepted: dict[str, Value] = {}
        self.invalid: dict[str, str] | None = None
        self.timed: list[tuple[int, Mapping[str, Any], dict[str, Value]]] = []
        self.tags: list[dict[str, str]] = []


class _WriteJob:
    """One device write through a group committer, made per message, so one object is both
    the write (called with the turn's transaction) and the callback after the commit (called
    without): the logs and event, then ``done``. It carries ``done``'s ``conn`` (if any), so
    a failed commit closes that connection."""

    __slots__ = ("service", "connector", "identity", "entries", "now", "ip", "protocol",
                 "connection_id", "done", "conn", "result", "devmode")

    def __init__(self, service: Device2Service, connector: Mapping[str, Any], identity: str,
                 entries: list[tuple[object, Mapping[str, Any]]], now: int, ip: str | None,
                 protocol: str | None, connection_id: str | None,
                 done: Callable[[ServiceError | None], None] | None,
                 devmode: bool | None = None) -> None:
        self.service = service
        self.connector = connector
        self.identity = identity
        self.entries = entries
        self.now = now
        self.ip = ip
        self.protocol = protocol
        self.connection_id = connection_id
        self.done = done
        self.conn = getattr(done, "conn", None)
        self.result: _DeviceWrite | ServiceError | None = None
        self.devmode = devmode

    def __call__(self, txn: WriteTxn | None = None) -> None:
        if txn is not None:
            try:
                self.result = self.service._device_write(txn, self.connector, self.identity,
                                                         self.entries, self.now, self.ip,
                                                         self.devmode)
            except ServiceError as error:
                self.result = error
            return
        result = self.result
        assert self.done is not None
        if type(result) is _DeviceWrite:
            self.service._written(self.connector, self.identity, result, self.now, self.ip,
                                  self.protocol, self.connection_id)
            self.done(None)
        else:
            self.done(result)  # type: ignore[arg-type]


class _ConnectJob:
    """A device's connect through a group committer (write, then after the commit), as
    ``_WriteJob``; ``done`` gets the pending set values or the ServiceError."""

    __slots__ = ("service", "connector", "identity", "now", "ip", "protocol", "connection_id",
                 "devmode", "done", "conn", "result", "tags")

    def __init__(self, service: Device2Service, connector: Mapping[str, Any], identity: str,
                 now: int, ip: str | None, protocol: str | None, connection_id: str | None,
                 devmode: bool, done: Callable[[Any], None] | None) -> None:
        self.service = service
        self.connector = connector
        self.identity = identity
        self.now = now
        self.ip = ip
        self.protocol = protocol
        self.connection_id = connection_id
        self.devmode = devmode
        self.done = done
        self.conn = getattr(done, "conn", None)
        self.result: dict[str, tuple[Value, int]] | ServiceError | None = None
        self.tags: list[dict[str, str]] = []

    def __call__(self, txn: WriteTxn | None = None) -> None:
        if txn is not None:
            try:
                hot, self.result = self.service._connected(
                    txn, self.connector, self.identity, self.now, self.ip, self.devmode)
                self.tags = hot.record["tags"]
            except ServiceError as error:
                self.result = error
            return
        if not isinstance(self.result, ServiceError):
            self.announce()
        assert self.done is not None
        self.done(self.result)

    def announce(self) -> None:
        """The ``connect`` log entry and event."""
        service, c = self.service, self.connector
        ctx = {"ip": self.ip, "protocol": self.protocol, "connection_id": self.connection_id}
        service.logs[c["id"]].event(self.now, "connect", identity=self.identity, **ctx)
        service._emit(c, events.connect(self.identity, timestamp=self.now, tags=self.tags,
                                        **ctx))


class _Release:
    """A disconnected device leaves the hot cache, its unsaved lastseen written, in the
    group committer's turn (after the device's writes of that turn)."""

    __slots__ = ("service", "key")

    def __init__(self, service: Device2Service, key: tuple[str, str]) -> None:
        self.service = service
        self.key = key

    def __call__(self, txn: WriteTxn) -> None:
        hot = self.service._hot.pop(self.key, None)
        if hot is not None and hot.stored_seen != hot.record["lastseen"]:
            txn.put(tables.IDENTITIES, hot.key, tables.dumps(hot.record))


def identities_exists(txn: ReadTxn, cid: str, identity: str) -> bool:
    return txn.get(tables.IDENTITIES, tables.key(cid, identity)) is not None


def _reindex(txn: WriteTxn, cid: str, record: dict[str, Any],
             new: list[dict[str, str]]) -> None:
    tags.reindex(txn, cid, record["identity"], record["tags"], new)
    record["tags"] = new


def _identity_of(item: object) -> Any:
    return item.get("identity") if isinstance(item, Mapping) else None


def _check_expire(expire: object) -> None:
    if expire is not None and (not isinstance(expire, int) or isinstance(expire, bool)
                               or expire <= 0):
        raise _bad("expire must be a µs timestamp")
