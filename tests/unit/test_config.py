"""broker/config.py: defaults, TOML merge, unknown keys, types, addresses and validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.config import Config, ConfigError, load, parse_address


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleetgate.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    """With no file and no overrides, load() returns the documented defaults."""
    config = load()
    assert config == Config()
    assert config.mqtt.allow_anonymous is False
    assert config.mqtt.max_inflight == 20
    assert config.mqtt.connect_timeout == 5.0
    assert config.storage.sync == "always"
    assert config.listeners.mqtt == "127.0.0.1:1883"
    assert config.server.data == "./data"


def test_toml_file_merges_over_defaults(tmp_path: Path) -> None:
    """Keys in the file replace defaults; keys it leaves out keep theirs."""
    path = write(tmp_path, """
[server]
domain = "example.org"

[mqtt]
max_inflight = 5
allow_anonymous = true

[storage]
sync = "batch"
""")
    config = load(path)
    assert config.server.domain == "example.org"
    assert config.server.data == "./data"
    assert config.mqtt.max_inflight == 5
    assert config.mqtt.allow_anonymous is True
    assert config.mqtt.max_queued_messages == 1000
    assert config.storage.sync == "batch"


def test_overrides_win_over_file(tmp_path: Path) -> None:
    """Command-line overrides are applied after the file."""
    path = write(tmp_path, "[mqtt]\nmax_inflight = 5\nmax_queued_messages = 7\n")
    config = load(path, {"mqtt": {"max_inflight": 9}})
    assert config.mqtt.max_inflight == 9
    assert config.mqtt.max_queued_messages == 7


def test_loads_are_independent() -> None:
    """Each load() builds fresh sections: one config's change does not leak into the next."""
    first = load(None, {"mqtt": {"max_inflight": 3}})
    assert load().mqtt.max_inflight == 20
    assert first.mqtt.max_inflight == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mqtt": {"max_infligt": 1}}, "unknown configuration key mqtt.max_infligt"),
        ({"mqttt": {}}, "unknown configuration key mqttt"),
        ({"server": {"tls": {}}}, "unknown configuration key server.tls"),
    ],
)
def test_unknown_key_is_an_error(overrides: dict[str, Any], message: str) -> None:
    """A misspelt key is reported with its dotted path instead of being ignored."""
    with pytest.raises(ConfigError, match=message):
        load(None, overrides)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    """An unknown key in the TOML file is an error too."""
    with pytest.raises(ConfigError, match="unknown configuration key storage.fsync"):
        load(write(tmp_path, "[storage]\nfsync = true\n"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mqtt": {"max_inflight": "20"}}, "mqtt.max_inflight must be int"),
        ({"mqtt": {"max_inflight": 2.5}}, "mqtt.max_inflight must be int"),
        ({"mqtt": {"max_inflight": True}}, "mqtt.max_inflight must be int"),
        ({"mqtt": {"allow_anonymous": 1}}, "mqtt.allow_anonymous must be bool"),
        ({"mqtt": {"allow_anonymous": "yes"}}, "mqtt.allow_anonymous must be bool"),
        ({"mqtt": {"connect_timeout": "5"}}, "mqtt.connect_timeout must be float"),
        ({"mqtt": {"connect_timeout": True}}, "mqtt.connect_timeout must be float"),
        ({"server": {"data": 3}}, "server.data must be str"),
        ({"mqtt": 3}, "mqtt must be a table"),
    ],
)
def test_type_errors(overrides: dict[str, Any], message: str) -> None:
    """A value of the wrong type is an error naming the key and the expected type."""
    with pytest.raises(ConfigError, match=message):
        load(None, overrides)


def test_int_accepted_for_float() -> None:
    """An integer where a float is expected becomes a float (``connect_timeout = 3``)."""
    config = load(None, {"mqtt": {"connect_timeout": 3, "sys_interval": 0}})
    assert config.mqtt.connect_timeout == 3.0
    assert isinstance(config.mqtt.connect_timeout, float)
    assert isinstance(config.mqtt.sys_interval, float)


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    """A file that is not TOML is a ConfigError naming the file."""
    path = write(tmp_path, "[mqtt\n")
    with pytest.raises(ConfigError, match=str(path)):
        load(path)


def test_missing_file_names_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming the file."""
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=str(path)):
        load(path)


# -- parse_address ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:1883", ("127.0.0.1", 1883)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        (":8080", ("0.0.0.0", 8080)),
        ("[::1]:8883", ("::1", 8883)),
        ("localhost:65535", ("localhost", 65535)),
    ],
)
def test_parse_address(value: str, expected: tuple[str, int]) -> None:
    """HOST:PORT splits at the last colon; an empty host is 0.0.0.0; IPv6 brackets go."""
    assert parse_address(value) == expected


@pytest.mark.parametrize("value", ["1883", "host:", "host:port", "host:65536", "host:-1"])
def test_parse_address_invalid(value: str) -> None:
    """Anything but HOST:PORT with a port in 0..65535 is a ConfigError naming the setting."""
    with pytest.raises(ConfigError, match="listeners.mqtt: expected HOST:PORT"):
        parse_address(value, "listeners.mqtt")


def test_listener_addresses_validated() -> None:
    """load() validates every non-empty listener address; '' switches a listener off."""
    with pytest.raises(ConfigError, match="listeners.http"):
        load(None, {"listeners": {"http": "nonsense"}})
    assert load(None, {"listeners": {"http": ""}}).listeners.http == ""


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sync", ["always", "batch", "none"])
def test_storage_sync_values(sync: str) -> None:
    """storage.sync accepts always, batch and none."""
    assert load(None, {"storage": {"sync": sync}}).storage.sync == sync


@pytest.mark.parametrize("sync", ["", "sometimes", "ALWAYS"])
def test_storage_sync_invalid(sync: str) -> None:
    """Any other storage.sync is a ConfigError."""
    with pytest.raises(ConfigError, match="storage.sync"):
        load(None, {"storage": {"sync": sync}})


@pytest.mark.parametrize(
    "name",
    ["max_packet_size", "max_connections", "max_inflight", "max_queued_messages",
     "write_high_water"],
)
@pytest.mark.parametrize("value", [0, -1])
def test_limits_at_least_one(name: str, value: int) -> None:
    """Every size/count limit must be at least 1."""
    with pytest.raises(ConfigError, match=f"mqtt.{name} must be at least 1"):
        load(None, {"mqtt": {name: value}})
    assert getattr(load(None, {"mqtt": {name: 1}}).mqtt, name) == 1


@pytest.mark.parametrize(("value", "ok"), [(-1, False), (0, True), (65535, True), (65536, False)])
def test_default_keepalive_range(value: int, ok: bool) -> None:
    """mqtt.default_keepalive lies within 0..65535 (the CONNECT field's range)."""
    if ok:
        assert load(None, {"mqtt": {"default_keepalive": value}}).mqtt.default_keepalive == value
    else:
        with pytest.raises(ConfigError, match="default_keepalive"):
            load(None, {"mqtt": {"default_keepalive": value}})


@pytest.mark.parametrize("value", [0, -1.5])
def test_connect_timeout_positive(value: float) -> None:
    """mqtt.connect_timeout must be positive."""
    with pytest.raises(ConfigError, match="connect_timeout must be positive"):
        load(None, {"mqtt": {"connect_timeout": value}})


@pytest.mark.parametrize("text", ["inf", "nan", "-inf"])
def test_connect_timeout_finite(tmp_path: Path, text: str) -> None:
    """TOML's inf/nan are no connect timeout (the deadline wheel cannot file them)."""
    with pytest.raises(ConfigError, match="connect_timeout"):
        load(write(tmp_path, f"[mqtt]\nconnect_timeout = {text}\n"))


def test_max_inflight_fits_packet_identifiers() -> None:
    """mqtt.max_inflight is at most 65535: a larger window would exhaust packet identifiers
    (MQTT-2.3.1) and the allocator would search forever."""
    assert load(None, {"mqtt": {"max_inflight": 65535}}).mqtt.max_inflight == 65535
    with pytest.raises(ConfigError, match="max_inflight"):
        load(None, {"mqtt": {"max_inflight": 65536}})
