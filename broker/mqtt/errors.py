"""Errors raised by the sans-I/O MQTT core. Each carries a debug-log reason and the spec rule."""


class ProtocolError(Exception):
    """A packet broke an MQTT rule; the connection that sent it is closed.

    ``reason`` is the debug-log reason (``protocol_error``, ``message_too_large``, …),
    ``rule`` the normative statement id (``MQTT-3.1.2-3``) and ``connack`` the CONNACK
    return code to send before closing, when the spec asks for one (MQTT-3.1.2-2, 3.1.3-8).
    """

    def __init__(
        self, message: str, rule: str = "", reason: str = "protocol_error", connack: int = -1
    ) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.reason = reason
        self.connack = connack

    def __str__(self) -> str:
        return f"{self.message} [{self.rule}]" if self.rule else self.message

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ProtocolError)
            and (self.message, self.rule, self.reason, self.connack)
            == (other.message, other.rule, other.reason, other.connack)
        )

    def __hash__(self) -> int:
        return hash((self.message, self.rule, self.reason, self.connack))
