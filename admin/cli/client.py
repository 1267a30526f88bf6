"""The admin API client of the ``fleetgate`` management commands: ``http.client`` only (no
dependency beyond the standard library), one connection per request.

JSON calls answer the decoded body; an answer >= 400 is an ``ApiError`` carrying the server's
``{status, code, message}`` (a body that is not that JSON keeps the HTTP reason); a server that
cannot be reached (refused, timed out, reset before an answer) is ``Unreachable``. Uploads and
downloads stream in ``CHUNK`` pieces and report each piece to a callback (the progress bar);
``events`` reads a Server-Sent Events stream line by line.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote, urlencode, urlsplit

CHUNK = 64 * 1024
TIMEOUT = 60.0  # seconds per socket operation (not per request: a long upload keeps going)
API = "/api/v1"

Progress = Callable[[int], None]


class ApiError(Exception):
    """The admin API answered an error: ``fleetgate: 404 not_found: identity 'x' not found``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Unreachable(Exception):
    """No answer from the admin API (connection refused, timed out, closed early)."""


@dataclass
class SseEvent:
    """One Server-Sent Event: its ``event:`` name ("message" when none) and joined ``data:``."""

    event: str
    data: str
    id: str | None = None


def path(*segments: str) -> str:
    """``/api/v1/a/b`` with every segment percent-encoded (identities and content ids may hold
    any character but ``/``)."""
    return API + "".join("/" + quote(s, safe="") for s in segments)


class Client:
    def __init__(self, url: str, token: str, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the admin URL must be http://HOST:PORT, got {url!r}")
        if not token or not all("!" <= ch <= "~" for ch in token):
            raise ValueError("the admin token must be printable ASCII without spaces")
        self.url = url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")  # the API behind a reverse proxy's sub-path
        self.token = token
        self.timeout = timeout

    # -- plumbing ------------------------------------------------------------------------

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                   "User-Agent": "fleetgate-cli"}
        headers.update(extra or {})
        return headers

    def open(self, method: str, target: str, body: bytes | Iterable[bytes] | None = None, *,
             query: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
             ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Send a request; the connection and the response, whose status is < 400 (an error
        answer is read and raised as ``ApiError``). The caller reads and closes."""
        url = self.prefix + target
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        conn = self._connection(self.timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise Unreachable(self._why(exc)) from exc
        try:
            try:
                conn.request(method, url, body=body, headers=self._headers(headers))
            except (BrokenPipeError, ConnectionResetError):
                # The server may refuse a body before reading it all (413) and close: its
                # answer is then waiting to be read.
                pass
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Unreachable(self._why(exc)) from exc
        if response.status >= 400:
            raise _error(response, self._body(conn, response))
        return conn, response

    def _body(self, conn: http.client.HTTPConnection,
              response: http.client.HTTPResponse) -> bytes:
        """The whole answer body, then the connection closed; a cut body is Unreachable."""
        try:
            return response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(self._why(exc)) from exc
        finally:
            conn.close()

    def _why(self, exc: BaseException) -> str:
        if isinstance(exc, socket.timeout | TimeoutError):
            reason = "timed out"
        elif isinstance(exc, http.client.RemoteDisconnected):
            reason = "the server closed the connection without an answer"
        else:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return f"cannot reach the admin API at {self.url}: {reason}"

    # -- JSON ----------------------------------------------------------------------------

    def call(self, method: str, target: str, body: Any = None, *,
             query: Mapping[str, Any] | None = None) -> Any:
        """A JSON request; the decoded answer (``None`` for an empty body)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        conn, response = self.open(method, target, data, query=query, headers=headers)
        raw = self._body(conn, response)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(response.status, "bad_response",
                           f"the server's answer is not JSON: {raw[:80]!r}") from None

    def device2(self, connector: str, operation: str, args: Mapping[str, Any]) -> Any:
        """``POST /api/v1/connectors/<cid>/device2/<operation>`` (connector-spec §11)."""
        return self.call("POST", path("connectors", connector, "device2", operation), dict(args))

    # -- streams -------------------------------------------------------------------------

    def upload(self, method: str, target: str, source: IO[bytes], length: int,
               headers: Mapping[str, str], progress: Progress | None = None) -> Any:
        """Send ``length`` bytes of ``source`` as the raw body (``Content-Length`` known, so
        the server can refuse an oversize body at once); the JSON answer."""

        def chunks() -> Iterator[bytes]:
            left = length
            while left > 0:
                piece = source.read(min(CHUNK, left))
                if not piece:
                    raise Unreachable(f"the file ended {left} bytes early while uploading")
                left -= len(piece)
                yield piece
                if progress is not None:
                    progress(len(piece))

        sent = {**headers, "Content-Length": str(length)}
        conn, response = self.open(method, target, chunks(), headers=sent)
        raw = self._body(conn, response)
        return json.loads(raw) if raw.strip() else None

    def download(self, target: str, sink: IO[bytes],
                 started: Callable[[int | None], None] | None = None,
                 progress: Progress | None = None) -> int:
        """Copy the body of ``GET target`` into ``sink``; ``started(Content-Length or None)``
        first. Returns the bytes written; a body shorter than announced is ``Unreachable``."""
        conn, response = self.open("GET", target, headers={"Accept": "*/*"})
        try:
            announced = response.getheader("Content-Length")
            expected = int(announced) if announced and announced.isdigit() else None
            if started is not None:
                started(expected)
            written = 0
            while True:
                try:
                    piece = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise Unreachable(self._why(exc)) from exc
                if not piece:
                    break
                sink.write(piece)
                written += len(piece)
                if progress is not None:
                    progress(len(piece))
        finally:
            conn.close()
        if expected is not None and written != expected:
            raise Unreachable(f"the download ended after {written} of {expected} bytes")
        return written

    def events(self, target: str,
               query: Mapping[str, Any] | None = None) -> Generator[SseEvent, None, None]:
        """Open the Server-Sent Events stream of ``GET target`` now (so nothing published
        after this call is missed) and return its events, until the server ends the stream.
        There is no read timeout once the stream is open: a quiet log is not an error."""
        conn, response = self.open("GET", target, query=query,
                                   headers={"Accept": "text/event-stream"})
        kind = response.getheader("Content-Type", "")
        if not kind.startswith("text/event-stream"):
            conn.close()
            raise ApiError(response.status, "bad_response",
                           f"expected text/event-stream, got {kind or 'no Content-Type'}")
        if conn.sock is not None:
            conn.sock.settimeout(None)

        def read() -> Generator[SseEvent, None, None]:
            try:
                yield from _parse_sse(response)
            finally:
                conn.close()

        return read()


def _parse_sse(response: http.client.HTTPResponse) -> Iterator[SseEvent]:
    """The SSE line protocol (WHATWG HTML §9.2.6): ``field: value`` lines, a blank line
    dispatches, ``:`` starts a comment, several ``data:`` lines are joined with newlines."""
    event, data, last_id = "", [], None
    while True:
        try:
            raw = response.readline()
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"the stream broke: {exc}") from exc
        if not raw:
            return  # the server ended the stream
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            last_id = value


def _error(response: http.client.HTTPResponse, raw: bytes) -> ApiError:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return ApiError(int(body.get("status", response.status)),
                        str(body.get("code", "error")), body["message"])
    reason = response.reason or http.client.responses.get(response.status, "error")
    code = reason.lower().replace(" ", "_")
    text = raw.decode("utf-8", "replace").strip()
    return ApiError(response.status, code, text[:200] if text else reason)
