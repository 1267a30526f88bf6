"""The 14 MQTT 3.1.1 control packets as small value objects.

Both codec implementations (pure and Cython) build these same classes, so tests can compare
their output with ``==``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from broker.mqtt import constants as c


class Packet:
    __slots__: tuple[str, ...] = ()
    type: ClassVar[int] = 0
    # Every slot of the class and its bases: subclasses such as Puback declare ``__slots__ = ()``
    # and inherit their fields, so ``self.__slots__`` alone would compare Puback(1) == Puback(2).
    _field_names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            names.extend(klass.__dict__.get("__slots__", ()))
        cls._field_names = tuple(names)

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._field_names)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._fields() == other._fields()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._field_names)
        return f"{type(self).__name__}({args})"


class Connect(Packet):
    __slots__ = (
        "client_id", "clean_session", "keepalive", "username", "password",
        "will_topic", "will_payload", "will_qos", "will_retain",
        "protocol_name", "protocol_level",
    )
    type = c.CONNECT

    def __init__(
        self,
        client_id: str = "",
        clean_session: bool = True,
        keepalive: int = 0,
        username: str | None = None,
        password: bytes | None = None,
        will_topic: str | None = None,
        will_payload: bytes = b"",
        will_qos: int = 0,
        will_retain: bool = False,
        protocol_name: str = c.PROTOCOL_NAME,
        protocol_level: int = c.PROTOCOL_LEVEL,
    ) -> None:
        self.client_id = client_id
        self.clean_session = clean_session
        self.keepalive = keepalive
        self.username = username
        self.password = password
        self.will_topic = will_topic
        self.will_payload = will_payload
        self.will_qos = will_qos
        self.will_retain = will_retain
        self.protocol_name = protocol_name
        self.protocol_level = protocol_level


class Connack(Packet):
    __slots__ = ("session_present", "return_code")
    type = c.CONNACK

    def __init__(self, session_present: bool = False, return_code: int = 0) -> None:
        self.session_present = session_present
        self.return_code = return_code


class Publish(Packet):
    __slots__ = ("topic", "payload", "qos", "retain", "dup", "packet_id")
    type = c.PUBLISH

    def __init__(
        self,
        topic: str,
        payload: bytes = b"",
        qos: int = 0,
        retain: bool = False,
        dup: bool = False,
        packet_id: int = 0,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packet_id = packet_id


class _IdOnly(Packet):
    __slots__ = ("packet_id",)

    def __init__(self, packet_id: int) -> None:
        self.packet_id = packet_id


class Puback(_IdOnly):
    __slots__ = ()
    type = c.PUBACK


class Pubrec(_IdOnly):
    __slots__ = ()
    type = c.PUBREC


class Pubrel(_IdOnly):
    __slots__ = ()
    type = c.PUBREL


class Pubcomp(_IdOnly):
    __slots__ = ()
    type = c.PUBCOMP


class Unsuback(_IdOnly):
    __slots__ = ()
    type = c.UNSUBACK


class Subscribe(Packet):
    __slots__ = ("packet_id", "topics")
    type = c.SUBSCRIBE

    def __init__(self, packet_id: int, topics: list[tuple[str, int]]) -> None:
        self.packet_id = packet_id
        self.topics = topics


class Suback(Packet):
    __slots__ = ("packet_id", "return_codes")
    type = c.SUBACK

    def __init__(self, packet_id: int, return_codes: list[int]) -> None:
        self.packet_id = packet_id
        self.return_codes = return_codes


class Unsubscribe(Packet):
    __slots__ = ("packet_id", "topics")
    type = c.UNSUBSCRIBE

    def __init__(self, packet_id: int, topics: list[str]) -> None:
        self.packet_id = packet_id
        self.topics = topics


class _Empty(Packet):
    __slots__ = ()


class Pingreq(_Empty):
    __slots__ = ()
    type = c.PINGREQ


class Pingresp(_Empty):
    __slots__ = ()
    type = c.PINGRESP


class Disconnect(_Empty):
    __slots__ = ()
    type = c.DISCONNECT


PACKET_CLASSES: dict[int, type[Packet]] = {
    cls.type: cls
    for cls in (Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp, Subscribe, Suback,
                Unsubscribe, Unsuback, Pingreq, Pingresp, Disconnect)
}
