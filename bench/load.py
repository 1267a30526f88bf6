"""Scenario driver: run the C load generator against Fleetgate and Mosquitto.

Usage: python -m bench.load [--scenario fleet|burst0|burst1|fanout|connect|idle|devices|
                             devices_burst|fleet_tls|connect_tls|idle_tls|all]
                            [--repeat 3] [--broker fleetgate|mosquitto|both] [--quick]

Each measurement starts a fresh broker on a free 127.0.0.1 port pinned to CPU 0 and the
load generator pinned to CPU 1, so the two never compete for a core.  Broker CPU time is
read from /proc at the loadgen's START/STOP events, RSS before and after connecting.

The ``*_tls`` scenarios run over TLS: Fleetgate's ``listeners.mqtt_tls`` and a Mosquitto TLS
listener, both serving one self-signed ECDSA P-256 certificate made once per run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.build import build_loadgen

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
BROKER_CPU = "0"
LOADGEN_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_DEADLINE_S = 15.0
STOP_TIMEOUT_S = 5.0
IDLE_SETTLE_S = 1.0  # let the broker finish allocating before sampling idle RSS
LOADGEN_BOUND = 0.85  # loadgen CPU fraction above which results may be client-limited
BROKERS = ("fleetgate", "mosquitto")
# Fleetgate with [storage] sync set, for the device-writes scenarios (the gateway's durable
# writes); plain "fleetgate" runs on the configuration's default.
SYNC_VARIANTS = ("fleetgate-always", "fleetgate-batch")

MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 1000000
log_dest none
"""

# A second listener for the TLS scenarios (Mosquitto's defaults otherwise: TLS 1.2 and 1.3,
# no client certificate requested, tickets on).
MOSQUITTO_TLS_CONF = """\
listener {port} 127.0.0.1
certfile {cert}
keyfile {key}
"""

# The same queue limit as mosquitto's above, so neither broker drops what the other keeps.
FLEETGATE_CONF = """\
[mqtt]
max_queued_messages = 1000000
"""


# --------------------------------------------------------------------------- scenarios


@dataclass
class Case:
    """One measurement: one or more loadgen processes started together."""

    name: str
    procs: list[list[str]]
    duration: float
    metrics: list[str]
    setup_timeout: float = 60.0
    brokers: tuple[str, ...] = BROKERS
    # Runs in a broker's fresh workdir before it starts (broker name, workdir) and returns the
    # loadgen processes for that broker, replacing ``procs`` (device data dirs, credentials).
    prepare: Callable[[str, Path], list[list[str]]] | None = None
    tls: bool = False  # over the brokers' TLS listeners (loadgen --tls)


def _lg(mode: str, duration: float, **kw: Any) -> list[str]:
    args = ["--mode", mode, "--duration", str(duration)]
    for key, value in kw.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    return args


def _srcs(first: int, count: int) -> str:
    return ",".join(f"127.0.0.{first + i}" for i in range(count))


PUBSUB_METRICS = [
    "send_rate",
    "recv_rate",
    "lost",
    "lat_p50_us",
    "lat_p99_us",
    "broker_cpu_frac",
    "broker_cpu_us_per_msg",
    "loadgen_cpu_frac",
]


DEVICE_METRICS = [
    "send_rate",
    "ack_rate",
    "recv_rate",
    "lost",
    "ack_p50_us",
    "ack_p99_us",
    "lat_p50_us",
    "lat_p99_us",
    "broker_cpu_frac",
    "broker_cpu_us_per_msg",
    "loadgen_cpu_frac",
    "setup_s",
]


def device_prepare(
    fleetgate: list[str], mosquitto: list[str], count: int
) -> Callable[[str, Path], list[list[str]]]:
    """Fleetgate: a data dir with ``count`` token devices and an app key (bench/devices.py),
    loadgen args + credentials, ``{cid}`` in them filled in. Mosquitto: ``mosquitto`` as is."""

    def prepare(name: str, workdir: Path) -> list[list[str]]:
        if not name.startswith("fleetgate"):
            return [mosquitto]
        from bench.devices import prepare as make_devices

        (workdir / "data").mkdir()
        out = make_devices(workdir / "data", count, workdir / "tokens.txt")
        args = [a.replace("{cid}", out.connector) for a in fleetgate]
        return [
            args
            + ["--password-file", out.tokens_path]
            + ["--sub-user", out.app_key, "--sub-pass", out.app_secret]
        ]

    return prepare


def build_cases(quick: bool) -> dict[str, list[Case]]:
    """Scenario name -> cases, with full or --quick parameters."""
    q = quick
    fleet_pubs, fleet_rate, fleet_d = (1000, 5000, 5.0) if q else (10000, 20000, 20.0)
    short = 3.0 if q else 10.0
    fan_subs = 200 if q else 1000
    idle_per_proc, idle_procs, idle_hold = (1000, 2, 3.0) if q else (9500, 2, 6.0)
    # Device writes: QoS 1 $resource/data_in from token devices, the values mirrored to one
    # application on $data/<cid>/+/data_in (QoS 0, as the gateway publishes them), against
    # Mosquitto's QoS 1 fleet / burst fan-in. Timestamps in hex: a device value must be UTF-8.
    device_common = {"qos": 1, "window": 10, "ts_hex": 1, "grace": 10}
    gw = {"topic": "$resource/data_in", "filter": "$data/{cid}/+/data_in"}
    dev_fleet = dict(pubs=fleet_pubs, subs=1, rate=fleet_rate, sub_qos=0, src=_srcs(2, 4))
    dev_burst = dict(pubs=100, subs=1, **device_common)
    fleet_lg = _lg("fleet", fleet_d, pubs=fleet_pubs, subs=1, rate=fleet_rate, src=_srcs(2, 4))
    fleet_metrics = PUBSUB_METRICS + ["lat_p90_us", "lat_max_us", "rss_per_conn_b"]
    connect_lg = _lg("connect", short, concurrency=100, src=_srcs(2, 4))
    connect_metrics = [
        "connect_rate",
        "lat_p50_us",
        "lat_p99_us",
        "broker_cpu_frac",
        "broker_cpu_us_per_conn",
        "loadgen_cpu_frac",
    ]
    idle_lgs = [
        _lg("idle", idle_hold, conns=idle_per_proc, src=_srcs(2 + 8 * i, 8))
        for i in range(idle_procs)
    ]
    idle_metrics = ["connected", "rss_before_kib", "rss_ready_kib", "rss_per_conn_b", "setup_s"]
    # Every TLS connection makes a full handshake (no resumption): 10k-19k of them at the
    # loadgen's 5,000/s, at most 200 in flight, take longer than plain CONNECTs.
    tls_setup = 180.0
    return {
        "fleet": [Case("fleet", [fleet_lg], fleet_d, fleet_metrics)],
        "burst0": [
            Case("burst0", [_lg("burst", short, pubs=100, subs=1, qos=0)], short, PUBSUB_METRICS)
        ],
        "burst1": [
            Case(
                "burst1",
                [_lg("burst", short, pubs=100, subs=1, qos=1, window=10)],
                short,
                PUBSUB_METRICS + ["ack_rate"],
            )
        ],
        "fanout": [
            Case(
                "fanout_full", [_lg("fanout", short, pubs=1, subs=fan_subs)], short, PUBSUB_METRICS
            ),
            Case(
                "fanout_rate",
                [_lg("fanout", short, pubs=1, subs=fan_subs, rate=10)],
                short,
                PUBSUB_METRICS,
            ),
        ],
        "connect": [Case("connect", [connect_lg], short, connect_metrics)],
        "idle": [Case("idle", idle_lgs, idle_hold, idle_metrics)],
        "devices": [
            Case(
                "devices",
                [],
                fleet_d,
                DEVICE_METRICS,
                setup_timeout=180.0,  # 10k device CONNECTs, each a grouped store write
                brokers=(*SYNC_VARIANTS, "mosquitto"),
                prepare=device_prepare(
                    _lg("fleet", fleet_d, **dev_fleet, **device_common, **gw),
                    _lg("fleet", fleet_d, **dev_fleet, **device_common),  # dev/{n}/data
                    fleet_pubs,
                ),
            )
        ],
        "devices_burst": [
            Case(
                "devices_burst",
                [],
                short,
                DEVICE_METRICS,
                brokers=(*SYNC_VARIANTS, "mosquitto"),
                prepare=device_prepare(
                    _lg("burst", short, sub_qos=0, **dev_burst, **gw),
                    _lg("burst", short, **dev_burst),  # burst1: bench/{n} -> bench/#, QoS 1
                    100,
                ),
            )
        ],
        "fleet_tls": [
            Case(
                "fleet_tls",
                [fleet_lg],
                fleet_d,
                fleet_metrics + ["setup_s"],
                setup_timeout=tls_setup,
                tls=True,
            )
        ],
        "connect_tls": [Case("connect_tls", [connect_lg], short, connect_metrics, tls=True)],
        "idle_tls": [
            Case("idle_tls", idle_lgs, idle_hold, idle_metrics, setup_timeout=tls_setup, tls=True)
        ],
    }


# ----------------------------------------------------------------------------- /proc


def _descendants(pid: int) -> list[int]:
    """pid plus all child processes (a broker might fork workers)."""
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        out.append(cur)
        for task in Path(f"/proc/{cur}/task").glob("*/children"):
            with contextlib.suppress(OSError):  # the process may exit under us
                todo += [int(c) for c in task.read_text().split()]
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree, in seconds."""
    ticks = 0
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def rss_kib(pid: int) -> int:
    """Resident set size of the process tree in KiB."""
    total = 0
    for p in _descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


# ---------------------------------------------------------------------------- brokers


class BrokerStartError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raise_nofile() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class TlsFiles:
    """The server certificate and key both brokers serve in the TLS scenarios."""

    directory: Path
    cert: Path
    key: Path


def make_tls_files() -> TlsFiles:
    """One self-signed ECDSA P-256 certificate for the run (Fleetgate's own generator: names
    localhost and 127.0.0.1). Running as root, Mosquitto drops to its ``mosquitto`` user before
    it loads the key, so that user gets the files."""
    from broker.transport.tls import make_self_signed

    directory = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    cert_pem, key_pem = make_self_signed("localhost")
    files = TlsFiles(directory, directory / "server.crt", directory / "server.key")
    files.cert.write_bytes(cert_pem)
    files.key.write_bytes(key_pem)
    files.key.chmod(0o600)
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("mosquitto")
        except KeyError:
            pass  # no such user: Mosquitto keeps running as root
        else:
            directory.chmod(0o755)
            for path in (files.cert, files.key):
                os.chown(path, user.pw_uid, user.pw_gid)
    return files


@dataclass
class Broker:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path
    procs: list[list[str]] | None = None  # loadgen processes made by Case.prepare
    tls_port: int | None = None  # the TLS listener, in the TLS scenarios

    @property
    def load_port(self) -> int:
        """Where the loadgen connects: the TLS listener if there is one."""
        return self.tls_port or self.port

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def broker_command(
    name: str, port: int, workdir: Path, tls: TlsFiles | None = None, tls_port: int = 0
) -> list[str]:
    """The broker's command line (and its config file in ``workdir``); with ``tls``, a TLS
    listener on ``tls_port`` besides the plain one."""
    if name == "mosquitto":
        conf = workdir / "mosquitto.conf"
        text = MOSQUITTO_CONF.format(port=port)
        if tls is not None:
            text += MOSQUITTO_TLS_CONF.format(port=tls_port, cert=tls.cert, key=tls.key)
        conf.write_text(text)
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        return [exe, "-c", str(conf)]
    data = workdir / "data"
    data.mkdir(exist_ok=True)  # Case.prepare may have filled it
    conf = workdir / "fleetgate.toml"
    sync = name.partition("-")[2]  # fleetgate-always -> always
    text = FLEETGATE_CONF + (f'\n[storage]\nsync = "{sync}"\n' if sync else "")
    if tls is not None:  # JSON strings are TOML basic strings
        text += f"\n[tls]\ncert = {json.dumps(str(tls.cert))}\nkey = {json.dumps(str(tls.key))}\n"
    conf.write_text(text)
    mqtt_tls = f"127.0.0.1:{tls_port}" if tls is not None else ""
    return [
        sys.executable,
        "-m",
        "broker",
        "serve",
        "--config",
        str(conf),
        "--log-level",
        "warning",
        "--mqtt",
        f"127.0.0.1:{port}",
        "--mqtt-tls",  # off unless TLS: the TLS listeners' defaults are public addresses
        mqtt_tls,
        "--https",
        "",
        "--allow-anonymous",
        "--data",
        str(data),
    ]


def start_broker(
    name: str,
    prepare: Callable[[str, Path], list[list[str]]] | None = None,
    tls: TlsFiles | None = None,
) -> Broker:
    """Start a broker pinned to BROKER_CPU and wait until its ports accept connections;
    ``prepare(name, workdir)`` runs first and gives the loadgen processes (``Broker.procs``);
    ``tls`` adds a TLS listener serving that certificate."""
    port = free_port()
    tls_port = free_port() if tls is not None else None
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        procs = prepare(name, workdir) if prepare else None
    except Exception as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise BrokerStartError(f"{name}: preparation failed: {exc!r}") from exc
    log_path = workdir / "broker.log"
    cmd = ["taskset", "-c", BROKER_CPU, *broker_command(name, port, workdir, tls, tls_port or 0)]
    with open(log_path, "wb") as log:  # a file, not a pipe: a chatty broker never blocks
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_raise_nofile,
        )
    broker = Broker(name, proc, port, workdir, log_path, procs, tls_port)
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = broker.log_tail()  # before stop_broker removes the workdir
            stop_broker(broker)
            raise BrokerStartError(f"{name} exited with code {proc.returncode}:\n{tail}")
        if _port_open(port) and (tls_port is None or _port_open(tls_port)):
            return broker
        time.sleep(0.05)
    tail = broker.log_tail()
    stop_broker(broker)
    raise BrokerStartError(
        f"{name} did not accept connections on port {broker.load_port} within "
        f"{START_DEADLINE_S:.0f}s:\n{tail}"
    )


def stop_broker(broker: Broker) -> None:
    """SIGTERM, then SIGKILL after a timeout -- always by PID."""
    proc = broker.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
    shutil.rmtree(broker.workdir, ignore_errors=True)


# --------------------------------------------------------------------------- loadgen


@dataclass
class Probe:
    """Samples the broker when every loadgen process has reported a phase event."""

    pid: int
    nprocs: int
    seen: dict[str, int] = field(default_factory=dict)
    samples: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, name: str) -> None:
        with self.lock:
            self.seen[name] = self.seen.get(name, 0) + 1
            if self.seen[name] == self.nprocs:
                self.samples[name] = (time.monotonic(), cpu_seconds(self.pid), rss_kib(self.pid))

    def wait_for(self, name: str, deadline: float) -> bool:
        while time.monotonic() < deadline:
            with self.lock:
                if name in self.samples:
                    return True
            time.sleep(0.02)
        return False


def _pump_stderr(proc: subprocess.Popen[bytes], probe: Probe, log: list[str]) -> None:
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode(errors="replace").strip()
        if line in ("READY", "START", "STOP"):
            probe.event(line)
        elif line:
            log.append(line)


def run_loadgen(case: Case, broker: Broker, loadgen: Path) -> dict[str, Any]:
    """Run the case's loadgen processes against a started broker and collect raw numbers."""
    lg_procs = broker.procs if broker.procs is not None else case.procs
    probe = Probe(broker.proc.pid, len(lg_procs))
    rss_before = rss_kib(broker.proc.pid)
    stderr_log: list[str] = []
    procs, threads = [], []
    for args in lg_procs:
        cmd = [
            "taskset",
            "-c",
            LOADGEN_CPU,
            str(loadgen),
            "--host",
            "127.0.0.1",
            "--port",
            str(broker.load_port),
            "--setup-timeout",
            str(case.setup_timeout),
            *(["--tls"] if case.tls else []),
            *args,
        ]
        p = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            preexec_fn=_raise_nofile,
        )
        t = threading.Thread(target=_pump_stderr, args=(p, probe, stderr_log), daemon=True)
        t.start()
        procs.append(p)
        threads.append(t)
    timeout = case.setup_timeout + case.duration + 30
    rss_idle = _sample_idle_rss(case, probe, broker, time.monotonic() + timeout)
    outputs = [_collect(p, timeout) for p in procs]
    for t in threads:
        t.join(1.0)
    return {
        "outputs": outputs,
        "rss_before_kib": rss_before,
        "rss_idle_kib": rss_idle,
        "samples": probe.samples,
        "stderr": stderr_log[-10:],
    }


def _sample_idle_rss(case: Case, probe: Probe, broker: Broker, deadline: float) -> int | None:
    """Idle connections: wait for READY, let the broker settle, then read RSS."""
    if not case.name.startswith("idle") or not probe.wait_for("READY", deadline):
        return None
    time.sleep(IDLE_SETTLE_S)
    return rss_kib(broker.proc.pid)


def _collect(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    # wait() + read(), not communicate(): the pump thread owns stderr, and the
    # single JSON line on stdout fits in the pipe buffer.
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # by PID; the loadgen should never need this
        proc.wait()
        return {"error": "loadgen timed out and was killed"}
    assert proc.stdout is not None
    out = proc.stdout.read()
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"loadgen exited {proc.returncode} without JSON output"}


# --------------------------------------------------------------------------- metrics


def _sum(outputs: list[dict[str, Any]], key: str) -> float:
    return float(sum(o.get(key, 0) or 0 for o in outputs))


def compute_metrics(raw: dict[str, Any]) -> dict[str, Any]:
    """Turn raw loadgen JSON + /proc samples into the reported figures."""
    outs = [o for o in raw["outputs"] if "mode" in o]
    errors = [o["error"] for o in raw["outputs"] if o.get("error")]
    m: dict[str, Any] = {"errors": errors}
    if not outs:
        return m
    for key in (
        "send_rate",
        "recv_rate",
        "ack_rate",
        "connect_rate",
        "sent",
        "received",
        "lost",
        "connected",
        "received_win",
        "cycles_win",
        "window_cpu_s",
        "tls_handshakes",
        "tls_failed",
        "tls_resumed",
    ):
        m[key] = _sum(outs, key)
    if outs[0].get("tls"):  # what the first handshake agreed, e.g. "TLSv1.3 ... X25519 alpn=mqtt"
        o = outs[0]
        m["tls_params"] = (
            f"{o['tls_version']} {o['tls_cipher']} {o['tls_group']} alpn={o['tls_alpn'] or '-'}"
        )
    lat = outs[0]["latency_us"]
    ack = outs[0].get("ack_latency_us") or {}  # QoS 1 publish -> PUBACK
    for pct in ("p50", "p90", "p99", "max"):
        m[f"lat_{pct}_us"] = lat[pct]
        m[f"ack_{pct}_us"] = ack.get(pct) if ack.get("count") else None
    m["setup_s"] = max(o["setup_s"] for o in outs)
    window = max(o["window_s"] for o in outs)
    m["loadgen_cpu_frac"] = m["window_cpu_s"] / window if window else None
    _broker_figures(m, raw)
    return m


def _broker_figures(m: dict[str, Any], raw: dict[str, Any]) -> None:
    samples, before = raw["samples"], raw["rss_before_kib"]
    m["rss_before_kib"] = before
    ready = raw["rss_idle_kib"] or (samples["READY"][2] if "READY" in samples else None)
    m["rss_ready_kib"] = ready
    conns = m.get("connected") or 0
    m["rss_per_conn_b"] = (ready - before) * 1024 / conns if ready and conns else None
    if "START" not in samples or "STOP" not in samples:
        return
    (t0, cpu0, _), (t1, cpu1, _) = samples["START"], samples["STOP"]
    cpu = cpu1 - cpu0
    m["broker_cpu_s"] = cpu
    m["broker_cpu_frac"] = cpu / (t1 - t0) if t1 > t0 else None
    m["broker_cpu_us_per_msg"] = cpu * 1e6 / m["received_win"] if m["received_win"] else None
    m["broker_cpu_us_per_conn"] = cpu * 1e6 / m["cycles_win"] if m["cycles_win"] else None


def median_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = {k for r in runs for k, v in r.items() if isinstance(v, (int, float))}
    out: dict[str, Any] = {}
    for k in sorted(keys):
        vals = [r[k] for r in runs if isinstance(r.get(k), (int, float))]
        out[k] = statistics.median(vals) if vals else None
    params = sorted({r["tls_params"] for r in runs if r.get("tls_params")})
    if params:
        out["tls_params"] = " | ".join(params)
    return out


# ---------------------------------------------------------------------------- output


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) < 10:
        return f"{v:.3f}"
    return f"{v:,.0f}"


def print_case(
    case: Case, summary: dict[str, dict[str, Any]], errors: dict[str, list[str]]
) -> None:
    names = [b for b in case.brokers if b in summary]
    fgs = [n for n in names if n != "mosquitto"]
    labels = ["fg" if n == "fleetgate" else n.partition("-")[2] for n in fgs]
    print(f"\n=== {case.name} (median over repeats)")
    print(
        f"{'metric':<24}"
        + "".join(f"{n:>18}" for n in names)
        + "".join(f"{lb + '/mq':>11}" for lb in labels)
    )
    for key in case.metrics:
        vals = [summary[n].get(key) for n in names]
        mq = summary.get("mosquitto", {}).get(key)
        ratios = ""
        for n in fgs:
            fg = summary[n].get(key)
            ratios += f"{fg / mq:.2f}".rjust(11) if fg is not None and mq else f"{'-':>11}"
        print(f"{key:<24}" + "".join(f"{_fmt(v):>18}" for v in vals) + ratios)
    for name in names:
        if summary[name].get("tls_params"):
            print(f"  {name}: {summary[name]['tls_params']}")
    for name, errs in errors.items():
        for err in sorted(set(errs)):
            print(f"  ! {name}: {err}")
    for name in names:
        if (summary[name].get("loadgen_cpu_frac") or 0) > LOADGEN_BOUND:
            print(f"  ! {name}: loadgen CPU > {LOADGEN_BOUND:.0%}: result may be client-bound")


def write_results(payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


# ------------------------------------------------------------------------------ main


def run_case(
    case: Case,
    broker_names: list[str],
    repeat: int,
    loadgen: Path,
    broken: dict[str, str],
    tls: TlsFiles | None = None,
) -> dict[str, Any]:
    """All repeats of one case, alternating which broker goes first."""
    runs: dict[str, list[dict[str, Any]]] = {b: [] for b in broker_names}
    errors: dict[str, list[str]] = {b: [] for b in broker_names}
    for rep in range(repeat):
        order = broker_names if rep % 2 == 0 else broker_names[::-1]
        for name in order:
            if name in broken:
                continue
            metrics = _measure_once(case, name, loadgen, broken, tls if case.tls else None)
            if metrics is None:
                errors[name].append(broken[name])
                continue
            runs[name].append(metrics)
            errors[name] += metrics["errors"]
            print(f"  [{case.name} #{rep + 1} {name}] " + _one_line(case, metrics), flush=True)
    summary = {b: median_metrics(r) for b, r in runs.items() if r}
    print_case(case, summary, {b: e for b, e in errors.items() if e})
    return {
        "runs": runs,
        "summary": summary,
        "errors": errors,
        "params": [list(p) for p in case.procs],
    }


def _measure_once(
    case: Case, name: str, loadgen: Path, broken: dict[str, str], tls: TlsFiles | None
) -> dict[str, Any] | None:
    try:
        broker = start_broker(name, case.prepare, tls)
    except BrokerStartError as exc:
        broken[name] = f"failed to start: {exc}"
        print(f"  ! {name} {broken[name]}", file=sys.stderr, flush=True)
        return None
    loadavg = float(Path("/proc/loadavg").read_text().split()[0])  # other work on the machine?
    try:
        raw = run_loadgen(case, broker, loadgen)
    finally:
        stop_broker(broker)
    metrics = compute_metrics(raw)
    metrics["loadavg_1m"] = loadavg
    return metrics


def _one_line(case: Case, m: dict[str, Any]) -> str:
    keys = case.metrics[:5]
    keys += [k for k in ("ack_p99_us", "broker_cpu_us_per_msg") if k in case.metrics[5:]]
    return " ".join(f"{k}={_fmt(m.get(k))}" for k in keys) + f" load={m.get('loadavg_1m')}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--scenario",
        default="all",
        choices=[
            "fleet",
            "burst0",
            "burst1",
            "fanout",
            "connect",
            "idle",
            "devices",
            "devices_burst",
            "fleet_tls",
            "connect_tls",
            "idle_tls",
            "all",
        ],
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--broker", default="both", choices=["fleetgate", "mosquitto", "both"])
    ap.add_argument("--quick", action="store_true", help="small smoke run (~1 min)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("taskset") is None or os.cpu_count() is None or os.cpu_count() < 2:
        print("need taskset and at least 2 CPUs", file=sys.stderr)
        return 2
    loadgen = build_loadgen()
    cases = build_cases(args.quick)
    names = list(cases) if args.scenario == "all" else [args.scenario]
    broken: dict[str, str] = {}
    results: dict[str, Any] = {}
    ran: set[str] = set()
    loadavg_start = Path("/proc/loadavg").read_text().split()[:3]
    need_tls = any(case.tls for scenario in names for case in cases[scenario])
    tls = make_tls_files() if need_tls else None  # one certificate for the whole run
    try:
        for scenario in names:
            for case in cases[scenario]:
                # --broker fleetgate picks every Fleetgate variant the case runs (sync=always, …)
                brokers = [b for b in case.brokers if args.broker in ("both", b.partition("-")[0])]
                ran.update(brokers)
                results[case.name] = run_case(case, brokers, args.repeat, loadgen, broken, tls)
    finally:
        if tls is not None:
            shutil.rmtree(tls.directory, ignore_errors=True)
    loadavg = Path("/proc/loadavg").read_text().split()[:3]  # was the machine otherwise idle?
    path = write_results(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "loadavg_at_start": loadavg_start,
            "loadavg_at_end": loadavg,
            "args": vars(args),
            "python": sys.version,
            "brokers_failed": broken,
            "cases": results,
        }
    )
    print(f"\nresults written to {path}")
    return 1 if broken and len(broken) == len(ran) else 0


if __name__ == "__main__":
    sys.exit(main())
