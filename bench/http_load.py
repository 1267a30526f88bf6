"""HTTP device API scenarios: keep-alive device writes (wrk) and held long polls.

Usage: python -m bench.http_load [--scenario writes|writes_tls|longpoll|all] [--repeat 3]
                                 [--quick]

Each run prepares a fresh data directory (bench/devices.py: N token devices, the ``data_in``
resource, plus a settable ``cmd`` resource for the long polls), starts ``fleetgate serve`` with
the plain device HTTP listener pinned to CPU 0 (``storage.sync = always``, the default), and the
load on CPU 1:

- ``writes`` (``writes_tls``: the same over HTTPS): wrk (Debian package ``wrk``) with a Lua
  script, 100 keep-alive connections, each
  request ``POST /onep:v1/stack/alias`` ``data_in=<n>`` with the next device's ``X-Exosite-CIK``
  (requests rotate over the N devices). Reports requests/s, latency p50/p99 and broker CPU per
  write. Every 204 is a write committed (fsync'd) before it was answered.
- ``longpoll``: a client process (this module with ``--client``) opens N connections, each
  holding ``GET /onep:v1/stack/alias?cmd`` with ``Request-Timeout``; then sets ``cmd`` for K
  devices through the admin API and measures set→answer latency. Reports broker RSS per held
  poll, broker CPU while holding, and the wake latency percentiles.

There is no Mosquitto counterpart for an HTTP API: figures are absolute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load import (
    BROKER_CPU,
    LOADGEN_CPU,
    ROOT,
    _port_open,
    _raise_nofile,
    cpu_seconds,
    free_port,
    rss_kib,
)

START_DEADLINE_S = 30.0
WRK_LUA = """
local tokens = {}
local n = 0
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
end
function request()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("POST", "/onep:v1/stack/alias", {
    ["X-Exosite-CIK"] = token,
    ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"}, "data_in=" .. n)
end
"""


class Gateway:
    """``fleetgate serve`` on a prepared data directory, pinned to BROKER_CPU."""

    def __init__(self, devices: int) -> None:
        from bench.devices import prepare
        from broker.gateway.service import Device2Service
        from broker.storage.lmdb_store import LmdbStore

        self.workdir = Path(tempfile.mkdtemp(prefix="bench-http-"))
        data = self.workdir / "data"
        data.mkdir()
        self.prepared = prepare(data, devices, self.workdir / "tokens.txt")
        store = LmdbStore(data / "lmdb", sync="none")
        try:
            Device2Service(store).addGatewayResource(alias="cmd", format="string",
                                                     settable=True)
        finally:
            store.close()
        self.http_port, self.https_port = free_port(), free_port()
        self.admin_port = free_port()
        # HTTPS on loopback with the self-signed certificate made on first start.
        cmd = ["taskset", "-c", BROKER_CPU, sys.executable, "-m", "broker", "serve",
               "--data", str(data), "--log-level", "warning", "--mqtt-tls", "",
               "--https", f"127.0.0.1:{self.https_port}",
               "--http", f"127.0.0.1:{self.http_port}", "--admin", f"127.0.0.1:{self.admin_port}"]
        self.log = open(self.workdir / "gateway.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_raise_nofile)
        deadline = time.monotonic() + START_DEADLINE_S
        while not all(_port_open(p) for p in (self.http_port, self.https_port, self.admin_port)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("gateway did not start:\n" + self.log_tail())
            time.sleep(0.05)
        self.token = (data / "admin.token").read_text().strip()

    def log_tail(self) -> str:
        text = (self.workdir / "gateway.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-15:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


# ------------------------------------------------------------------------------ writes


def _wrk_latency_us(text: str, pct: str) -> float | None:
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not match:
        return None
    scale = {"us": 1.0, "ms": 1e3, "s": 1e6}[match.group(2)]
    return float(match.group(1)) * scale


def run_writes(devices: int, duration: float, connections: int,
               tls: bool = False) -> dict[str, Any]:
    """wrk against the plain listener, or (``tls``) the HTTPS one: keep-alive connections,
    so the TLS handshakes are 100 and the figure is the per-request cost of TLS records."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (make bench installs the Debian package)")
    gw = Gateway(devices)
    try:
        script = gw.workdir / "writes.lua"
        script.write_text(WRK_LUA)
        cmd = ["taskset", "-c", LOADGEN_CPU, "wrk", "-t1", f"-c{connections}",
               f"-d{duration:.0f}s", "--latency", "-s", str(script),
               f"https://127.0.0.1:{gw.https_port}" if tls
               else f"http://127.0.0.1:{gw.http_port}", "--", gw.prepared.tokens_path]
        cpu0 = cpu_seconds(gw.proc.pid)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
        spent = cpu_seconds(gw.proc.pid) - cpu0
        text = out.stdout
        rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
        total = re.search(r"(\d+) requests in", text)
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        errors = re.search(r"Socket errors:.*", text)
        requests = int(total.group(1)) if total else 0
        return {
            "requests_per_s": float(rate.group(1)) if rate else None,
            "requests": requests,
            "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(0) if errors else "",
            "lat_p50_us": _wrk_latency_us(text, "50"),
            "lat_p99_us": _wrk_latency_us(text, "99"),
            "broker_cpu_us_per_write": spent / requests * 1e6 if requests else None,
            "broker_cpu_frac": spent / duration,
        }
    finally:
        gw.stop()


# ---------------------------------------------------------------------------- long polls


def run_longpoll(devices: int, wake: int, hold: float) -> dict[str, Any]:
    gw = Gateway(devices)
    try:
        rss0 = rss_kib(gw.proc.pid)
        client = subprocess.Popen(
            ["taskset", "-c", LOADGEN_CPU, sys.executable, "-m", "bench.http_load", "--client",
             "--port", str(gw.http_port), "--admin-port", str(gw.admin_port),
             "--admin-token", gw.token, "--connector", gw.prepared.connector,
             "--tokens", gw.prepared.tokens_path, "--wake", str(wake), "--hold", str(hold)],
            cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
            preexec_fn=_raise_nofile)
        assert client.stdout is not None
        result: dict[str, Any] = {}
        deadline = time.monotonic() + hold + 300
        for line in client.stdout:
            if time.monotonic() > deadline:
                break
            msg = json.loads(line)
            if msg["phase"] == "held":
                time.sleep(1.0)  # let the broker settle before sampling
                result["rss_per_poll_b"] = (rss_kib(gw.proc.pid) - rss0) * 1024 / msg["held"]
                cpu0, t0 = cpu_seconds(gw.proc.pid), time.monotonic()
                result["held"] = msg["held"]
                result["setup_s"] = msg["setup_s"]
            elif msg["phase"] == "holding_done":
                result["broker_cpu_frac_holding"] = (
                    (cpu_seconds(gw.proc.pid) - cpu0) / (time.monotonic() - t0))
            elif msg["phase"] == "done":
                result.update({k: v for k, v in msg.items() if k != "phase"})
                break
        client.wait(30)
        return result
    finally:
        gw.stop()


async def _client(args: argparse.Namespace) -> None:
    """Open one long poll per device, hold, then wake ``--wake`` of them by cloud sets."""
    tokens = Path(args.tokens).read_text().split()
    polls: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
    since = int(time.time())
    sem = asyncio.Semaphore(200)

    async def open_poll(i: int) -> None:
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
            writer.write(
                (f"GET /onep:v1/stack/alias?cmd HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"X-Exosite-CIK: {tokens[i]}\r\nRequest-Timeout: 300000\r\n"
                 f"If-Modified-Since: {since}\r\n\r\n").encode())
            await writer.drain()
            polls[i] = (reader, writer)

    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(open_poll(i) for i in range(len(tokens)))), 240)
    print(json.dumps({"phase": "held", "held": len(polls),
                      "setup_s": time.monotonic() - t0}), flush=True)
    await asyncio.sleep(args.hold)
    print(json.dumps({"phase": "holding_done"}), flush=True)

    reader, writer = await asyncio.open_connection("127.0.0.1", args.admin_port)
    latencies: list[float] = []
    answered = 0
    for i in range(min(args.wake, len(polls))):
        body = json.dumps({"identity": f"dev{i:06d}", "cmd": f"go{i}"}).encode()
        start = time.perf_counter()
        writer.write(
            (f"POST /api/v1/connectors/{args.connector}/device2/setIdentityState HTTP/1.1\r\n"
             f"Host: 127.0.0.1\r\nAuthorization: Bearer {args.admin_token}\r\n"
             f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            + body)
        poll_reader = polls[i][0]
        status = await asyncio.wait_for(poll_reader.readline(), 10)
        latencies.append((time.perf_counter() - start) * 1e6)
        answered += status.startswith(b"HTTP/1.1 200")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = re.search(rb"Content-Length: (\d+)", head, re.I)
        await reader.readexactly(int(length.group(1)) if length else 0)
    writer.close()
    for _, w in polls.values():
        w.close()
    latencies.sort()
    print(json.dumps({
        "phase": "done", "woken": len(latencies), "answered_200": answered,
        "wake_p50_us": statistics.median(latencies) if latencies else None,
        "wake_p99_us": latencies[int(len(latencies) * 0.99) - 1] if latencies else None,
    }), flush=True)


# --------------------------------------------------------------------------------- main


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = {k for r in runs for k, v in r.items() if isinstance(v, (int, float))}
    return {k: statistics.median(r[k] for r in runs if isinstance(r.get(k), (int, float)))
            for k in sorted(keys)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="all",
                    choices=["writes", "writes_tls", "longpoll", "all"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    # --client mode (started by the longpoll scenario)
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    for name in ("port", "admin-port", "wake"):
        ap.add_argument(f"--{name}", type=int, help=argparse.SUPPRESS)
    for name in ("admin-token", "connector", "tokens"):
        ap.add_argument(f"--{name}", help=argparse.SUPPRESS)
    ap.add_argument("--hold", type=float, default=5.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.client:
        import uvloop

        uvloop.run(_client(args))
        return 0
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        print("need taskset and at least 2 CPUs", file=sys.stderr)
        return 2
    devices = 1000 if args.quick else 10_000
    duration = 5.0 if args.quick else 15.0
    scenarios = ["writes", "writes_tls", "longpoll"] if args.scenario == "all" else [args.scenario]
    for scenario in scenarios:
        runs = []
        for rep in range(args.repeat):
            if scenario.startswith("writes"):
                m = run_writes(devices, duration, connections=100, tls=scenario == "writes_tls")
            else:
                m = run_longpoll(devices, wake=min(1000, devices), hold=duration / 3)
            print(f"  [{scenario} #{rep + 1}] " + " ".join(
                f"{k}={v:,.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()),
                flush=True)
            runs.append(m)
        print(f"\n=== http {scenario}, {devices} devices (median of {len(runs)})")
        for key, value in _median(runs).items():
            print(f"{key:<28}{value:>16,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
