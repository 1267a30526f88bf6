"""The one error of the gateway domain layer.

Every refusal of an admin or device operation is a ``ServiceError`` with an HTTP-like ``status``
and a one-word ``code`` (connector-spec §11: errors are ``{status, code, message}``), so the HTTP
sidecar and the MQTT layer map it without knowing which module raised it.
Example: ``ServiceError(404, "not_found", "identity 'x' does not exist")``.
"""

from __future__ import annotations


class ServiceError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "code": self.code, "message": self.message}


def bad_request(message: str, code: str = "bad_request") -> ServiceError:
    return ServiceError(400, code, message)


def not_found(message: str) -> ServiceError:
    return ServiceError(404, "not_found", message)


def conflict(message: str) -> ServiceError:
    return ServiceError(409, "conflict", message)
