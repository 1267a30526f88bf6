"""Configuration: embedded defaults, then a TOML file (``--config``), then command-line flags.

Every key is documented in docs/configuration.md. Unknown keys are an error, so a typo in a
config file is reported instead of silently ignored.
"""

from __future__ import annotations

import math
import tomllib
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigError(ValueError):
    pass


@dataclass
class ServerConfig:
    data: str = "./data"
    domain: str = "localhost"
    devmode: bool = False
    # Opens the plain (non-TLS) MQTT listener without devmode; set by an explicit --mqtt.
    plain_mqtt: bool = False
    # Opens the plain device HTTP listener without devmode; set by an explicit --http.
    plain_http: bool = False
    log_level: str = "info"


@dataclass
class ListenerConfig:
    # "HOST:PORT", or "" for off. Plain MQTT and HTTP are only opened in devmode.
    mqtt: str = "127.0.0.1:1883"
    mqtt_tls: str = "0.0.0.0:8883"
    http: str = "127.0.0.1:8080"
    https: str = "0.0.0.0:8443"
    admin: str = "127.0.0.1:8081"


@dataclass
class MqttConfig:
    allow_anonymous: bool = False
    password_file: str = ""
    acl_file: str = ""
    connect_timeout: float = 5.0  # seconds to the CONNECT, else idle_timeout
    default_keepalive: int = 300  # used when a client sends keepalive 0; 0 = no keepalive
    max_packet_size: int = 2 * 1024 * 1024
    max_connections: int = 100_000
    max_inflight: int = 20  # outgoing QoS 1/2 messages awaiting acknowledgement, per client
    max_queued_messages: int = 1000  # per session, while offline or the window is full
    write_high_water: int = 1024 * 1024  # bytes buffered to a slow client before pausing it
    sys_interval: float = 10.0  # seconds between $SYS updates; 0 = off


@dataclass
class StorageConfig:
    backend: str = "lmdb"  # lmdb (<data>/lmdb) | memory (nothing survives a restart; tests)
    sync: str = "always"  # always | batch | none (see docs/operations.md)
    map_size: int = 64 * 1024 * 1024  # initial LMDB map in bytes; doubled whenever it fills up


@dataclass
class TlsConfig:
    cert: str = ""  # PEM (leaf first, then intermediates); empty = <data>/tls/server.crt, made
    key: str = ""  # on first start with <data>/tls/server.key; set both or neither
    min_version: str = "1.2"  # "1.2" or "1.3"
    ciphers: str = ""  # OpenSSL cipher list for TLS 1.2; empty = OpenSSL's default
    handshake_timeout: float = 5.0  # seconds from the TCP open; MQTT: at most connect_timeout


@dataclass
class WebhooksConfig:
    # Every event (connector-spec §10, as events.types allows) is POSTed as JSON to each URL.
    urls: list[str] = field(default_factory=list)  # http(s) URLs; empty = webhooks off
    queue: int = 10_000  # events waiting per URL; more are dropped and counted
    max_attempts: int = 10  # per event and URL, the first included
    timeout: float = 10.0  # seconds per attempt
    backoff_base: float = 0.5  # seconds before the first retry, doubled for each next one
    backoff_max: float = 60.0  # longest wait between attempts
    secret: str = ""  # if set, each POST carries X-Fleetgate-Signature: sha256=<HMAC of body>


@dataclass
class ContentConfig:
    max_size: int = 104_857_600  # bytes per content item (connector-spec §7: 100 MB)


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    listeners: ListenerConfig = field(default_factory=ListenerConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)

    def validate(self) -> None:
        if self.storage.sync not in ("always", "batch", "none"):
            raise ConfigError(
                f"storage.sync must be always, batch or none, not {self.storage.sync!r}"
            )
        if self.storage.backend not in ("lmdb", "memory"):
            raise ConfigError(
                f"storage.backend must be lmdb or memory, not {self.storage.backend!r}"
            )
        if self.content.max_size < 1:
            raise ConfigError("content.max_size must be at least 1")
        if self.storage.map_size < 1024 * 1024:
            raise ConfigError("storage.map_size must be at least 1048576 (1 MiB)")
        for f in fields(self.listeners):
            value = getattr(self.listeners, f.name)
            if value:
                parse_address(value, f"listeners.{f.name}")
        m = self.mqtt
        for name in ("max_packet_size", "max_connections", "max_inflight", "max_queued_messages",
                     "write_high_water"):
            if getattr(m, name) < 1:
                raise ConfigError(f"mqtt.{name} must be at least 1")
        if m.max_inflight > 65535:
            # Each message in flight holds a packet identifier; there are 65535 of them.
            raise ConfigError("mqtt.max_inflight must be at most 65535")
        if m.default_keepalive < 0 or m.default_keepalive > 65535:
            raise ConfigError("mqtt.default_keepalive must be within 0..65535")
        # TOML allows inf and nan; neither is a deadline (math.ceil fails on them).
        if not math.isfinite(m.connect_timeout) or m.connect_timeout <= 0:
            raise ConfigError("mqtt.connect_timeout must be positive")
        self._validate_webhooks()
        self._validate_tls()

    def _validate_tls(self) -> None:
        t = self.tls
        if t.min_version not in ("1.2", "1.3"):
            raise ConfigError(f"tls.min_version must be 1.2 or 1.3, not {t.min_version!r}")
        if bool(t.cert) != bool(t.key):
            raise ConfigError("tls.cert and tls.key go together: set both, or neither for the "
                              "self-signed certificate in <data>/tls")
        if not math.isfinite(t.handshake_timeout) or t.handshake_timeout <= 0:
            raise ConfigError("tls.handshake_timeout must be positive")

    def _validate_webhooks(self) -> None:
        w = self.webhooks
        for url in w.urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"webhooks.urls: expected an http(s) URL, got {url!r}")
        if len(set(w.urls)) != len(w.urls):
            raise ConfigError("webhooks.urls: a URL is listed twice")
        if w.queue < 1 or w.max_attempts < 1:
            raise ConfigError("webhooks.queue and webhooks.max_attempts must be at least 1")
        for name in ("timeout", "backoff_base", "backoff_max"):
            value = getattr(w, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"webhooks.{name} must be positive")
        if w.backoff_max < w.backoff_base:
            raise ConfigError("webhooks.backoff_max must be at least webhooks.backoff_base")


def parse_address(value: str, name: str = "address") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name}: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _merge(target: Any, values: dict[str, Any], path: str) -> None:
    known = {f.name: f for f in fields(target)}
    hints = typing.get_type_hints(type(target))
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown configuration key {path}{key}")
        current = getattr(target, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}{key} must be a table")
            _merge(current, value, f"{path}{key}.")
            continue
        expected = type(current)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{path}{key} must be {expected.__name__}, got {value!r}")
        if expected is list:  # list[X]: every item an X (TOML arrays may mix types)
            (item,) = typing.get_args(hints[key])
            if not all(isinstance(v, item) for v in value):
                raise ConfigError(f"{path}{key} must be a list of {item.__name__}, got {value!r}")
            value = list(value)
        setattr(target, key, value)


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    config = Config()
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"{path}: {error}") from None
        _merge(config, data, "")
    if overrides:
        _merge(config, overrides, "")
    config.validate()
    return config
