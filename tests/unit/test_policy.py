"""broker/security/policy.py: PlainPolicy with real password and ACL files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from broker import cli
from broker.core.connection import Connection
from broker.hooks import PublishDecision
from broker.mqtt import constants as c
from broker.mqtt.packets import Connack, Connect, Puback, Publish, Suback, Subscribe
from broker.security.passwords import hash_password
from broker.security.policy import PlainPolicy, load_password_file
from tests.sansio import SansIO, make_config

FAST_N = 1024


def passwd_cli(monkeypatch: pytest.MonkeyPatch, path: Path, user: str, password: str) -> int:
    """Run ``fleetgate passwd FILE USER --stdin`` with ``password`` on stdin."""
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return cli.main(["passwd", str(path), user, "--stdin"])


@pytest.fixture
def password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """alice/wonderland written by the CLI; bob/builder written as a hash line directly."""
    path = tmp_path / "passwd"
    assert passwd_cli(monkeypatch, path, "alice", "wonderland") == 0
    with path.open("a", encoding="utf-8") as f:
        f.write(f"# comment\n\nbob:{hash_password(b'builder', n=FAST_N)}\n")
    return path


def harness(**mqtt: object) -> SansIO:
    return SansIO(make_config(**mqtt))


def connection(h: SansIO, client_id: str = "c1", username: str | None = None) -> Connection:
    """A real, registered Connection of the harness's broker with the identity a CONNECT sets."""
    conn = h.open().conn
    conn.client_id = client_id
    conn.username = username
    return conn


def policy_of(h: SansIO) -> PlainPolicy:
    hooks = h.broker.hooks
    assert isinstance(hooks, PlainPolicy)
    return hooks


# -- password file ------------------------------------------------------------------------------


def test_cli_passwd_writes_loadable_file(password_file: Path) -> None:
    """``fleetgate passwd`` writes loadable 'user:scrypt$…' lines, file mode 0600."""
    users = load_password_file(password_file)
    assert set(users) == {"alice", "bob"}
    assert users["alice"].startswith("scrypt$")
    assert password_file.stat().st_mode & 0o777 == 0o600


def test_cli_passwd_replaces_existing_user(
    password_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Running passwd again for a user replaces that user's line and keeps the others."""
    before = load_password_file(password_file)
    assert passwd_cli(monkeypatch, password_file, "alice", "looking-glass") == 0
    after = load_password_file(password_file)
    assert set(after) == {"alice", "bob"}
    assert after["bob"] == before["bob"]
    assert after["alice"] != before["alice"]
    assert password_file.read_text(encoding="utf-8").count("alice:") == 1


@pytest.mark.parametrize(("user", "password"), [("a:b", "pw"), ("", "pw"), ("carol", "")])
def test_cli_passwd_refuses_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user: str, password: str
) -> None:
    """A username with ':' or empty, or an empty password, exits 2 and writes nothing."""
    path = tmp_path / "passwd"
    assert passwd_cli(monkeypatch, path, user, password) == 2
    assert not path.exists()


def test_load_password_file_bad_line(tmp_path: Path) -> None:
    """A line that is not 'user:scrypt$…' raises ValueError naming file and line."""
    path = tmp_path / "passwd"
    path.write_text("# ok\nalice:plaintext\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{path}:2: "):
        load_password_file(path)


# -- authenticate -------------------------------------------------------------------------------


@pytest.mark.parametrize("username", [None, "anyone"])
def test_no_password_file_anonymous_allowed(username: str | None) -> None:
    """Without a password file, allow_anonymous=true accepts every client."""
    h = harness(allow_anonymous=True)
    conn = connection(h)
    assert policy_of(h).authenticate(conn, Connect("c1", username=username)) == c.CONNACK_ACCEPTED


@pytest.mark.parametrize("username", [None, "anyone"])
def test_no_password_file_anonymous_refused(username: str | None) -> None:
    """Without a password file, allow_anonymous=false refuses everyone with CONNACK 5."""
    h = harness(allow_anonymous=False)
    conn = connection(h)
    code = policy_of(h).authenticate(conn, Connect("c1", username=username, password=b"x"))
    assert code == c.CONNACK_NOT_AUTHORIZED


@pytest.mark.parametrize(
    ("username", "password", "expected"),
    [
        ("alice", b"wonderland", c.CONNACK_ACCEPTED),
        ("bob", b"builder", c.CONNACK_ACCEPTED),
        ("alice", b"builder", c.CONNACK_BAD_CREDENTIALS),
        ("alice", None, c.CONNACK_BAD_CREDENTIALS),
        ("mallory", b"wonderland", c.CONNACK_BAD_CREDENTIALS),
    ],
)
def test_password_file_credentials(
    password_file: Path, username: str, password: bytes | None, expected: int
) -> None:
    """Known user with the right password: 0; wrong/missing password or unknown user: 4."""
    h = harness(allow_anonymous=False, password_file=str(password_file))
    conn = connection(h, username=username)
    packet = Connect("c1", username=username, password=password)
    assert policy_of(h).authenticate(conn, packet) == expected


@pytest.mark.parametrize(("allow", "expected"), [(True, 0), (False, c.CONNACK_NOT_AUTHORIZED)])
def test_password_file_anonymous(password_file: Path, allow: bool, expected: int) -> None:
    """With a password file, a client without username needs allow_anonymous (else 5)."""
    h = harness(allow_anonymous=allow, password_file=str(password_file))
    assert policy_of(h).authenticate(connection(h), Connect("c1")) == expected


def test_bad_credentials_through_the_connection(password_file: Path) -> None:
    """A wrong password over the wire gets CONNACK 4 and closes with reason bad_credentials."""
    h = harness(allow_anonymous=False, password_file=str(password_file))
    client = h.open()
    client.send(Connect("c1", True, 60, username="alice", password=b"nope"))
    assert client.packets() == [Connack(False, c.CONNACK_BAD_CREDENTIALS)]
    assert client.link.closed
    assert h.broker.stats.close_reasons["bad_credentials"] == 1
    assert h.broker.stats.connections_refused == 1
    ok = h.connect("c2", username="alice", password=b"wonderland")
    assert ok.conn.username == "alice"


# -- publish / subscribe / will -----------------------------------------------------------------


def test_sys_publish_denied_without_acl() -> None:
    """Nobody publishes to $SYS/… (MQTT-4.7.2-1), even with no ACL file."""
    h = harness()
    policy = policy_of(h)
    conn = connection(h)
    assert policy.on_publish(conn, Publish("$SYS/broker/uptime", b"1")) == PublishDecision.DENIED
    assert policy.on_publish(conn, Publish("a/b", b"1")) == PublishDecision.ROUTE
    assert not policy.authorize_will(conn, "$SYS/x", 0, False)
    assert policy.authorize_will(conn, "a/b", 0, False)


def test_no_acl_grants_requested_qos() -> None:
    """Without an ACL file every subscription is granted at the requested QoS."""
    h = harness()
    conn = connection(h)
    assert policy_of(h).authorize_subscribe(conn, "#", 2) == 2
    assert policy_of(h).authorize_subscribe(conn, "a/+", 1) == 1


@pytest.fixture
def acl_file(tmp_path: Path) -> Path:
    path = tmp_path / "acl"
    path.write_text(
        "deny  publish   *          dev/%c/secret\n"
        "allow all       *          dev/%c/#     # own namespace\n"
        "allow subscribe user:ops   dev/#\n"
        "allow publish   anonymous  public/#\n",
        encoding="utf-8",
    )
    return path


def test_acl_publish_decisions(acl_file: Path) -> None:
    """Publishes follow the ACL: own namespace yes, first-match deny wins, others no."""
    h = harness(acl_file=str(acl_file))
    policy = policy_of(h)
    d1 = connection(h, "d1")
    assert policy.on_publish(d1, Publish("dev/d1/temp")) == PublishDecision.ROUTE
    assert policy.on_publish(d1, Publish("dev/d1/secret")) == PublishDecision.DENIED
    assert policy.on_publish(d1, Publish("dev/d2/temp")) == PublishDecision.DENIED
    assert policy.on_publish(d1, Publish("public/x")) == PublishDecision.ROUTE
    ops = connection(h, "o", username="ops")
    assert policy.on_publish(ops, Publish("public/x")) == PublishDecision.DENIED


def test_acl_subscribe_decisions(acl_file: Path) -> None:
    """Subscriptions follow the ACL: granted QoS when covered, 0x80 when not."""
    h = harness(acl_file=str(acl_file))
    policy = policy_of(h)
    d1 = connection(h, "d1")
    assert policy.authorize_subscribe(d1, "dev/d1/+", 1) == 1
    assert policy.authorize_subscribe(d1, "dev/#", 1) == c.SUBACK_FAILURE
    ops = connection(h, "o", username="ops")
    assert policy.authorize_subscribe(ops, "dev/#", 2) == 2
    assert policy.authorize_subscribe(ops, "#", 0) == c.SUBACK_FAILURE


def test_acl_will_decisions(acl_file: Path) -> None:
    """A will topic needs publish permission; a refused will refuses the CONNECT with 5."""
    h = harness(acl_file=str(acl_file))
    policy = policy_of(h)
    d1 = connection(h, "d1")
    assert policy.authorize_will(d1, "dev/d1/status", 1, True)
    assert not policy.authorize_will(d1, "dev/d2/status", 1, True)
    client = h.open()
    client.send(Connect("d1", True, 60, will_topic="dev/d2/status", will_payload=b"gone"))
    assert client.packets() == [Connack(False, c.CONNACK_NOT_AUTHORIZED)]
    assert h.broker.stats.close_reasons["not_authorized"] == 1


def test_acl_over_the_wire(acl_file: Path) -> None:
    """A denied QoS 1 publish is acknowledged but not routed; a denied filter gets SUBACK 0x80."""
    h = harness(acl_file=str(acl_file))
    ops = h.connect("ops-1", username="ops")
    ops.send(Subscribe(1, [("dev/#", 1), ("#", 1)]))
    assert ops.packets() == [Suback(1, [1, c.SUBACK_FAILURE])]
    d1 = h.connect("d1")
    d1.send(Publish("dev/d2/temp", b"x", qos=1, packet_id=7))
    assert d1.packets() == [Puback(7)]
    assert ops.packets() == []
    d1.send(Publish("dev/d1/temp", b"y", qos=1, packet_id=8))
    assert d1.packets() == [Puback(8)]
    assert ops.packets() == [Publish("dev/d1/temp", b"y", qos=1, packet_id=1)]
