"""``python -m broker serve`` as a real process: start, serve, SIGTERM, configuration errors."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.rawclient import connected

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"serve exited early: {process.communicate()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"port {port} not listening after {timeout} s") from None
            time.sleep(0.02)


def run_serve(*args: str) -> subprocess.Popen[str]:
    """``serve`` with the TLS listeners off (their defaults are public addresses); ``args``
    may open them again on loopback (a later flag wins)."""
    return subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--mqtt-tls", "", "--https", "", *args],
        cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_serve_round_trip_and_sigterm(tmp_path: Path) -> None:
    """serve opens --mqtt, routes messages; SIGTERM closes clients and exits 0 promptly."""
    port = free_port()
    process = run_serve("--mqtt", f"127.0.0.1:{port}", "--allow-anonymous",
                        "--data", str(tmp_path / "data"))
    try:
        wait_for_port(port, process)
        messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        subscribed: queue.Queue[bool] = queue.Queue()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cli-test")
        client.on_message = lambda _c, _u, message: messages.put(message)
        client.on_subscribe = lambda *_args: subscribed.put(True)

        def on_connect(c: mqtt.Client, *_args: Any) -> None:
            c.subscribe("cli/#", 1)

        client.on_connect = on_connect
        client.connect("127.0.0.1", port)
        client.loop_start()
        try:
            subscribed.get(timeout=5)
            client.publish("cli/x", b"through-serve", 1).wait_for_publish(5)
            got = messages.get(timeout=5)
            assert (got.topic, got.payload) == ("cli/x", b"through-serve")
        finally:
            client.disconnect()
            client.loop_stop()
        with connected("127.0.0.1", port, "still-connected") as raw:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
            raw.expect_closed(timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_unknown_config_key(tmp_path: Path) -> None:
    """An unknown key in the TOML file is exit code 2 with a one-line error naming it."""
    config = tmp_path / "fleetgate.toml"
    config.write_text("[mqtt]\nallow_anonymous = true\nmax_inflite = 5\n", encoding="utf-8")
    process = run_serve("--config", str(config), "--mqtt", f"127.0.0.1:{free_port()}",
                        "--data", str(tmp_path / "data"))
    try:
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "mqtt.max_inflite" in lines[0], stderr


def test_devmode_keeps_default_tls_listeners_on_loopback() -> None:
    """--dev is a first try: TLS listeners at their public defaults move to loopback; an
    address somebody chose is kept, an empty one stays off."""
    from broker.cli import keep_on_loopback
    from broker.config import load

    config = load(None, {"server": {"devmode": True}})
    keep_on_loopback(config)
    assert (config.listeners.mqtt_tls, config.listeners.https) == (
        "127.0.0.1:8883", "127.0.0.1:8443")
    config = load(None, {"listeners": {"mqtt_tls": "127.0.0.2:9883", "https": ""}})
    keep_on_loopback(config)
    assert (config.listeners.mqtt_tls, config.listeners.https) == ("127.0.0.2:9883", "")
