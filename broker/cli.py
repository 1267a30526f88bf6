"""``fleetgate`` command line: ``serve`` runs the gateway; ``passwd`` writes password-file lines.

``serve`` also starts the admin API (package ``admin``) on ``listeners.admin``. The management
commands (devices, resources, content, tags, logs, settings, connectors, apps: ``admin.cli``)
talk to it; see docs/cli.md.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path
from typing import Any

from broker.config import Config, ConfigError, ListenerConfig, load


def _serve_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {"server": {}, "listeners": {}, "mqtt": {}}
    if args.data:
        overrides["server"]["data"] = args.data
    if args.dev:
        overrides["server"]["devmode"] = True
    for name in ("mqtt", "http", "mqtt_tls", "https", "admin"):
        value = getattr(args, name)
        if value is not None:
            overrides["listeners"][name] = value
    if args.mqtt is not None:
        overrides["server"]["plain_mqtt"] = True
    if args.http is not None:
        overrides["server"]["plain_http"] = True
    if args.allow_anonymous:
        overrides["mqtt"]["allow_anonymous"] = True
    if args.log_level:
        overrides["server"]["log_level"] = args.log_level
    return overrides


def keep_on_loopback(config: Config) -> None:
    """Devmode is a first try on this machine: TLS listeners still at their public default
    addresses move to loopback, same ports (other addresses are kept)."""
    defaults = ListenerConfig()
    for name in ("mqtt_tls", "https"):
        address = getattr(config.listeners, name)
        if address and address == getattr(defaults, name):
            setattr(config.listeners, name, "127.0.0.1:" + address.rpartition(":")[2])


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        config = load(args.config, _serve_overrides(args))
    except ConfigError as error:
        print(f"fleetgate: {error}", file=sys.stderr)
        return 2
    if config.server.devmode and not config.mqtt.password_file:
        # A first try on loopback should just work with any MQTT client.
        config.mqtt.allow_anonymous = True
    if config.server.devmode:
        keep_on_loopback(config)
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from admin.site import admin_hook
    from broker.gateway.app import gateway_hooks
    from broker.transport.server import run

    try:
        run(config, gateway_hooks(config), admin_hook(config))
    except OSError as error:
        print(f"fleetgate: {error}", file=sys.stderr)
        return 1
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    from broker.security.passwords import hash_password

    if ":" in args.username or not args.username:
        print("fleetgate: a username must be non-empty and contain no ':'", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass()
    if not password:
        print("fleetgate: empty password", file=sys.stderr)
        return 2
    path = Path(args.file)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    lines = [line for line in lines if not line.startswith(f"{args.username}:")]
    lines.append(f"{args.username}:{hash_password(password.encode())}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetgate", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--data", help="data directory (default ./data)")
    serve.add_argument("--dev", action="store_true",
                       help="devmode: plain MQTT/HTTP listeners on loopback, anonymous MQTT")
    serve.add_argument("--mqtt", metavar="HOST:PORT",
                       help="plain MQTT listener (opened even without --dev)")
    serve.add_argument("--mqtt-tls", dest="mqtt_tls", metavar="HOST:PORT")
    serve.add_argument("--http", metavar="HOST:PORT",
                       help="plain device HTTP listener (opened even without --dev)")
    serve.add_argument("--https", metavar="HOST:PORT")
    serve.add_argument("--admin", metavar="HOST:PORT")
    serve.add_argument("--allow-anonymous", action="store_true",
                       help="accept MQTT clients without credentials")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=cmd_serve)
    passwd = sub.add_parser("passwd", help="add or replace a user in an MQTT password file")
    passwd.add_argument("file")
    passwd.add_argument("username")
    passwd.add_argument("--stdin", action="store_true", help="read the password from stdin")
    passwd.set_defaults(func=cmd_passwd)
    from admin.cli import register  # the management commands: clients of the admin API

    register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
