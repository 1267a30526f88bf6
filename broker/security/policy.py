"""The built-in hooks for plain MQTT use: anonymous access, a password file and an ACL file.

- No password file: ``allow_anonymous`` decides for everyone (CONNACK 5 when refused).
- Password file (``user:scrypt$…`` lines, made by ``fleetgate passwd``): a known user with the
  right password is accepted, a wrong one gets CONNACK 4; clients without a username need
  ``allow_anonymous``.
- ACL file: see broker/security/acl.py; denied publishes are acknowledged and dropped
  (3.1.1 has no negative PUBACK), denied subscriptions get SUBACK 0x80.
- Nobody publishes to ``$SYS/…``: those topics are the broker's own (MQTT-4.7.2-1).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from broker.config import MqttConfig
from broker.core.handle_connect import connect_decided
from broker.hooks import AUTHENTICATING, PublishDecision
from broker.mqtt import constants as c
from broker.security.acl import Acl, load_acl
from broker.security.passwords import PasswordVerifier

if TYPE_CHECKING:
    from broker.core.broker import Broker
    from broker.core.connection import Connection
    from broker.mqtt.packets import Connect, Publish


def load_password_file(path: str | Path) -> dict[str, str]:
    users: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        if not sep or not user or not stored.startswith("scrypt$"):
            raise ValueError(f"{path}:{number}: expected 'username:scrypt$…'")
        users[user] = stored
    return users


class PlainPolicy:
    """``BrokerHooks`` for a standard MQTT broker."""

    def __init__(self, config: MqttConfig) -> None:
        self.allow_anonymous = config.allow_anonymous
        self.users = load_password_file(config.password_file) if config.password_file else None
        self.acl = Acl(load_acl(config.acl_file)) if config.acl_file else None
        self.verifier = PasswordVerifier()

    def attach(self, broker: Broker) -> None:
        pass

    def detach(self) -> None:
        pass

    def authenticate(self, client: Connection, packet: Connect) -> int:
        if packet.username is None:
            return c.CONNACK_ACCEPTED if self.allow_anonymous else c.CONNACK_NOT_AUTHORIZED
        if self.users is None:
            return c.CONNACK_ACCEPTED if self.allow_anonymous else c.CONNACK_NOT_AUTHORIZED
        stored = self.users.get(packet.username)
        password = packet.password or b""
        if stored is not None and self.verifier.remembered(stored, password):
            return c.CONNACK_ACCEPTED
        offload = client.broker.offload
        if offload is None:
            return self._decide(self.verifier.verify(stored, password))
        # scrypt costs ~60 ms: hashed in a thread, the CONNECT answered when it is done.
        offload(lambda: self.verifier.verify(stored, password),
                lambda ok: connect_decided(client, self._decide(ok)))
        return AUTHENTICATING

    @staticmethod
    def _decide(password_ok: bool) -> int:
        return c.CONNACK_ACCEPTED if password_ok else c.CONNACK_BAD_CREDENTIALS

    def on_publish(self, client: Connection, packet: Publish) -> PublishDecision:
        topic = packet.topic
        if topic.startswith("$SYS"):
            client.broker.debug(client, "not_authorized", f"PUBLISH to {topic!r}")
            return PublishDecision.DENIED
        if self.acl is not None and not self.acl.may_publish(client.username, client.client_id,
                                                             topic):
            client.broker.debug(client, "not_authorized", f"PUBLISH to {topic!r}")
            return PublishDecision.DENIED
        return PublishDecision.ROUTE

    def authorize_subscribe(self, client: Connection, topic_filter: str, qos: int) -> int:
        if self.acl is not None and not self.acl.may_subscribe(
            client.username, client.client_id, topic_filter
        ):
            return c.SUBACK_FAILURE
        return qos

    def authorize_will(self, client: Connection, topic: str, qos: int, retain: bool) -> bool:
        if topic.startswith("$SYS"):
            return False
        return self.acl is None or self.acl.may_publish(client.username, client.client_id, topic)

    def on_connect(self, client: Connection) -> None:
        pass

    def on_disconnect(self, client: Connection, reason: str) -> None:
        pass

    def on_debug(self, client: Connection | None, reason: str, detail: str) -> None:
        pass
