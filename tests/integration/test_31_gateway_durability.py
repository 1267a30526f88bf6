"""Durability of the MQTT device API (product.md §5): a device write PUBACKed at QoS 1 is in the
store, even if the broker is SIGKILLed under load right after; provisioned identities, their
credentials and state survive a graceful restart. The broker runs as ``python -m broker serve``
(LMDB, ``storage.sync = always``); the store is prepared and checked through the Device2 service
while no broker process has it open."""

from __future__ import annotations

import os
import secrets
import signal
import string
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from broker.gateway.service import Device2Service
from broker.mqtt.packets import Puback, Publish
from broker.storage.lmdb_store import LmdbStore
from tests.integration.test_serve_cli import free_port, run_serve, wait_for_port
from tests.rawclient import Closed, RawClient, provision_mqtt

ALNUM = string.ascii_letters + string.digits


def new_token() -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(40))


@contextmanager
def offline_service(data: Path) -> Iterator[Device2Service]:
    """The Device2 service on ``<data>/lmdb``, for use while no broker process runs."""
    store = LmdbStore(data / "lmdb")
    try:
        yield Device2Service(store, password_cost=1024)
    finally:
        store.close()


def prepare(data: Path, devices: int = 0) -> dict[str, str]:
    """The default connector with its resources, and ``devices`` identities with known tokens."""
    tokens = {f"dev{i}": new_token() for i in range(devices)}
    with offline_service(data) as service:
        service.ensure_default_connector()
        service.addGatewayResource(alias="data_in", format="string")
        service.addGatewayResource(alias="config_io", format="string", settable=True)
        for identity, token in tokens.items():
            service.addIdentity(identity=identity, auth={"type": "token", "key": token})
    return tokens


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM (a graceful stop); it must exit 0 promptly. Its stderr (the log)."""
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError("the broker did not stop on SIGTERM") from None
    assert process.returncode == 0, stderr
    return stderr


def kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)


def device(port: int, token: str) -> RawClient:
    """connector-spec §5.1 token mode: username empty, password = token."""
    client = RawClient("127.0.0.1", port)
    client.connect(username="", password=token.encode())
    return client


# -- SIGKILL under load ---------------------------------------------------------------------------


class Device(threading.Thread):
    """Writes ``$resource/data_in`` at QoS 1 with the values ``<identity>-1``, ``-2``, … with up
    to ``window`` writes unacknowledged, until ``count`` writes, ``seconds`` or the broker's
    death. ``acked`` is the highest acknowledged number, ``sent`` the highest sent one."""

    def __init__(self, port: int, identity: str, token: str, count: int = 20_000,
                 window: int = 8, seconds: float = 20.0) -> None:
        super().__init__(name=identity, daemon=True)
        self.port, self.identity, self.token = port, identity, token
        self.count, self.window, self.seconds = count, window, seconds
        self.acked = 0
        self.sent = 0
        self.unacked: list[int] = []  # packet ids in sending order (PUBACKs come in order)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            client = device(self.port, self.token)
        except (OSError, Closed) as error:
            self.error = error
            return
        deadline = time.monotonic() + self.seconds
        try:
            while (self.sent < self.count and time.monotonic() < deadline) or self.unacked:
                while (self.sent < self.count and len(self.unacked) < self.window
                       and time.monotonic() < deadline):
                    self.sent += 1
                    packet_id = (self.sent - 1) % 65535 + 1
                    self.unacked.append(self.sent)
                    client.publish("$resource/data_in", f"{self.identity}-{self.sent}".encode(),
                                   qos=1, packet_id=packet_id)
                got = client.recv(5)
                assert isinstance(got, Puback), got
                number = self.unacked.pop(0)
                assert got.packet_id == (number - 1) % 65535 + 1, (got, number)
                self.acked = number
        except (OSError, Closed, TimeoutError):
            return  # the broker was killed
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
        finally:
            client.close()


def test_sigkill_under_device_writes_loses_no_acknowledged_value(tmp_path: Path) -> None:
    """Six devices write as fast as a window of 8 allows; SIGKILL mid-load. Afterwards each
    device's ``reported`` value is the last acknowledged one or one sent after it: never an
    older one, never missing once something was acknowledged."""
    data = tmp_path / "data"
    tokens = prepare(data, devices=6)
    port = free_port()
    process = run_serve("--mqtt", f"127.0.0.1:{port}", "--data", str(data))
    try:
        wait_for_port(port, process)
        devices = [Device(port, identity, token) for identity, token in tokens.items()]
        for d in devices:
            d.start()
        deadline = time.monotonic() + 15
        while sum(d.acked for d in devices) < 2000 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)  # mid-load: writes are still arriving
        process.wait(10)
        for d in devices:
            d.join(10)
    finally:
        kill(process)
    for d in devices:
        assert d.error is None, f"{d.identity}: {d.error!r}"
        assert not d.is_alive()
    assert sum(d.acked for d in devices) >= 100, "too few acknowledged writes to be a test"
    assert any(d.unacked for d in devices), "the broker was not killed mid-load"

    with offline_service(data) as service:
        for d in devices:
            state = service.getIdentityState(identity=d.identity)
            reported = state.get("data_in", {}).get("reported")
            if d.acked == 0:
                assert reported is None or reported.startswith(f"{d.identity}-"), reported
                continue
            assert reported is not None, f"{d.identity}: write {d.acked} acknowledged, nothing"
            number = int(reported.rsplit("-", 1)[1])
            assert reported == f"{d.identity}-{number}", reported
            assert d.acked <= number <= d.sent, (
                f"{d.identity}: stored {number}, acknowledged {d.acked}, sent {d.sent}")
            assert state["data_in"]["set"] == reported


# -- graceful restart -----------------------------------------------------------------------------


def provision(port: int, identity: str) -> str:
    return provision_mqtt("127.0.0.1", port, identity)


def write(port: int, token: str, value: bytes) -> None:
    with device(port, token) as client:
        client.publish("$resource/data_in", value, qos=1, packet_id=1)
        client.expect(Puback(1))


def test_provisioned_identity_and_state_survive_a_graceful_restart(tmp_path: Path) -> None:
    """Provisioned over MQTT, written, SIGTERM: the identity, its token and its state are in the
    store; a value set while the broker was down reaches the device on its first connect after
    the restart (§5.4 step 3); the token still works and writes are stored."""
    data = tmp_path / "data"
    prepare(data)
    port = free_port()
    args = ("--mqtt", f"127.0.0.1:{port}", "--data", str(data))
    process = run_serve(*args)
    try:
        wait_for_port(port, process)
        token = provision(port, "sensor-1")
        write(port, token, b"before")
        stop(process)
    finally:
        kill(process)

    with offline_service(data) as service:
        record = service.getIdentity(identity="sensor-1")
        assert (record["status"], record["auth"]["type"]) == ("provisioned", "token")
        assert service.getIdentityState(identity="sensor-1")["data_in"]["reported"] == "before"
        service.setIdentityState(identity="sensor-1", config_io="on")

    process = run_serve(*args)
    try:
        wait_for_port(port, process)
        with device(port, token) as client:  # CONNACK 0: the token survived
            pushed = client.recv()
            assert isinstance(pushed, Publish) and pushed.qos == 1, pushed
            assert pushed.topic.startswith("$resource/config_io/") and pushed.payload == b"on"
            client.send(Puback(pushed.packet_id))
            client.publish("$resource/data_in", b"after", qos=1, packet_id=1)
            client.expect(Puback(1))
            client.publish("$resource/config_io", b"on", qos=1, packet_id=2)  # acknowledge
            client.expect(Puback(2))
        with RawClient("127.0.0.1", port) as client:  # a wrong token is still refused
            client.connect(username="", password=new_token().encode(), expect_rc=4)
        stop(process)
    finally:
        kill(process)

    with offline_service(data) as service:
        state = service.getIdentityState(identity="sensor-1")
        assert state["data_in"]["reported"] == "after"
        assert state["config_io"]["reported"] == state["config_io"]["set"] == "on"
        assert service.getIdentity(identity="sensor-1")["status"] == "provisioned"


# -- applications ---------------------------------------------------------------------------------


def test_application_key_in_the_store_and_refused_sets(tmp_path: Path) -> None:
    """product.md §4: an application key kept in the store logs in after a start; a ``$set``
    the service refuses (resource not settable, unknown identity) is acknowledged and logged
    (``not_settable``, ``not_found``), and the application stays connected; a valid one
    reaches the device and the store."""
    data = tmp_path / "data"
    tokens = prepare(data, devices=1)
    with offline_service(data) as service:
        cid = service.ensure_default_connector()
        app = service.create_app_key(name="dashboard")
    port = free_port()
    process = run_serve("--mqtt", f"127.0.0.1:{port}", "--data", str(data), "--log-level", "debug")
    try:
        wait_for_port(port, process)
        with RawClient("127.0.0.1", port) as a, device(port, tokens["dev0"]) as d:
            a.connect("dashboard", username=app["key"], password=app["secret"].encode())
            a.publish(f"$set/{cid}/dev0/data_in", b"x", qos=1, packet_id=1)  # not settable
            a.expect(Puback(1))
            a.publish(f"$set/{cid}/nobody/config_io", b"x", qos=1, packet_id=2)  # no such device
            a.expect(Puback(2))
            a.publish(f"$set/{cid}/dev0/config_io", b"on", qos=1, packet_id=3)
            a.expect(Puback(3))
            pushed = d.recv()
            assert isinstance(pushed, Publish) and pushed.payload == b"on", pushed
            assert pushed.topic.startswith("$resource/config_io/")
        log = stop(process)
    finally:
        kill(process)
    assert "not_settable dashboard@" in log and "not_found dashboard@" in log, log
    with offline_service(data) as service:
        assert service.getIdentityState(identity="dev0")["config_io"]["set"] == "on"
