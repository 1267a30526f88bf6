"""TLS for the listeners (product.md §2): the server certificate, the pyOpenSSL context, and an
asyncio protocol that terminates TLS in memory and hands the plaintext to an inner protocol.

Why pyOpenSSL and not the stdlib ``ssl`` module: a device in certificate mode without a client
CA presents a self-signed certificate that is pinned, "used as a password" (connector-spec
§2.4). The stdlib cannot request a client certificate and accept it unverified (CERT_OPTIONAL
still fails the handshake on an unknown issuer); pyOpenSSL's verify callback can. So the server
requests a certificate, accepts whatever comes (OpenSSL still checks the client's
CertificateVerify signature: the client holds the certificate's private key), and records it in
``TlsInfo``; the gateway decides whether it is good (a pinned fingerprint, or a chain to the
connector's ``pki.client_ca``), since that depends on the connector, the identity and the time.

The wrapper is sans-I/O in the middle: ciphertext from the socket goes into a memory BIO, the
plaintext read out of it goes to the inner protocol; what the inner protocol writes to its
transport (``TlsTransport``) is encrypted into the other BIO and written to the socket at once
(the MQTT protocol already writes once per loop turn, so nothing more is coalesced here).

ALPN picks the inner protocol per connection (dual protocol, connector-spec §2.1): the
listener's ``protocols`` map an ALPN id to a protocol factory; a client without ALPN gets the
first. A client that offers only ids the listener does not serve is refused with the
``no_application_protocol`` alert (RFC 7301 §3.2).

Failures before the inner protocol exists (a bad handshake: ``tls_error``; no handshake by the
deadline: ``idle_timeout``; the peer gone mid-handshake: ``ssl_closed``) go to the listener's
``on_failure`` with the client's address, so they reach the connector's debug log (§8.2). A TLS
failure after the handshake reaches the inner protocol as ``connection_lost(TlsError(...))``.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

log = logging.getLogger("fleetgate.tls")


@dataclass(frozen=True, slots=True)
class TlsInfo:
    server_name: str | None  # the SNI name the client sent, lower-cased; None if none
    peer_certificate: bytes | None  # the client's leaf certificate, DER; None if none sent
    chain: tuple[bytes, ...]  # every certificate the client sent, DER, leaf first
    alpn: str | None  # the ALPN protocol agreed ("mqtt", "http/1.1") or None


TLS_INFO = "fleetgate_tls"  # transport.get_extra_info(TLS_INFO) -> TlsInfo | None
# transport.get_extra_info(OPENED_AT): the loop time of the TCP open, so that the MQTT CONNECT
# deadline (connector-spec §5.1) counts the handshake too.
OPENED_AT = "fleetgate_opened_at"

MIN_VERSIONS = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
CERTIFICATE_DAYS = 3650

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
# on_failure(peer address, what is known of the TLS session or None, debug reason, detail)
FailureHook = Callable[[tuple[str, int], "TlsInfo | None", str, str], None]


class TlsError(ConnectionError):
    """A TLS failure after the handshake (a bad record, an unexpected alert): what the inner
    protocol's ``connection_lost`` receives; ``str()`` is the detail for the debug log."""


class TlsSetupError(OSError):
    """The configured certificate or key cannot be used (reported at start, one line)."""


class _NoCommonProtocol(Exception):
    """The client offered ALPN ids, none of them served here."""


# -- the server certificate ------------------------------------------------------------------

def certificate_files(cert: str, key: str, data: str | Path, domain: str
                      ) -> tuple[Path, Path]:
    """The certificate and key files to serve: ``cert``/``key`` when configured, else
    ``<data>/tls/server.crt`` and ``server.key``, made on first use and reused later."""
    if cert:
        return Path(cert), Path(key)
    directory = Path(data) / "tls"
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    if cert_path.exists() and key_path.exists():
        _warn_if_domain_missing(cert_path, domain)
        return cert_path, key_path
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_pem, key_pem = make_self_signed(domain)
    # The key first, each to a temporary name then renamed: a crash leaves no half file, and
    # a certificate never exists without its key.
    _write_new(key_path, key_pem, 0o600)
    _write_new(cert_path, cert_pem, 0o644)
    log.info("made a self-signed server certificate for %s: %s", domain, cert_path)
    return cert_path, key_path


def make_self_signed(domain: str, now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 certificate (PEM) and its key (PEM, PKCS#8) valid for about
    ten years, for ``localhost``, ``<domain>``, ``*.m2.<domain>``, ``*.devmode-m2.<domain>``
    and 127.0.0.1 / ::1."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = now or datetime.datetime.now(datetime.UTC)
    domain = domain.lower().rstrip(".")
    names = list(dict.fromkeys(["localhost", domain, f"*.m2.{domain}",
                                f"*.devmode-m2.{domain}"]))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fleetgate")])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))  # clients with a slow clock
        .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in names]
            + [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
               x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_new(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # an old temporary file keeps its mode through O_CREAT
        with os.fdopen(fd, "wb") as file:
            fd = -1
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    finally:
        if fd >= 0:
            os.close(fd)
    os.replace(temporary, path)


def _warn_if_domain_missing(cert_path: Path, domain: str) -> None:
    """A certificate made for another ``server.domain`` still serves, but clients that check
    the name will refuse it: say so (deleting the two files makes a new one)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except (ValueError, x509.ExtensionNotFound, OSError):
        return
    wanted = f"*.m2.{domain.lower().rstrip('.')}"
    if wanted not in names:
        log.warning("%s does not name %s (made for another domain?); delete it and %s to "
                    "make a new one", cert_path, wanted, cert_path.with_suffix(".key").name)


# -- the context -----------------------------------------------------------------------------

def _accept_any_certificate(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int,
                            ok: int) -> bool:
    return True  # the gateway checks the certificate (pinning or PKI), not the TLS layer


def make_context(cert: Path, key: Path, min_version: str = "1.2", ciphers: str = ""
                 ) -> SSL.Context:
    """A server context: the certificate chain and key, TLS ``min_version`` or newer, a client
    certificate requested and accepted unverified; ALPN is set by ``TlsListener``."""
    if min_version not in MIN_VERSIONS:
        raise TlsSetupError(f"tls.min_version must be 1.2 or 1.3, not {min_version!r}")
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(MIN_VERSIONS[min_version])
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION
                        | SSL.OP_CIPHER_SERVER_PREFERENCE)
    # An idle connection gives its read/write buffers (about 34 KiB) back: fleets are idle
    # most of the time.
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    for name, path in (("tls.cert", cert), ("tls.key", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as error:
            raise TlsSetupError(f"{name} {path}: {error.strerror or error}") from None
    steps: list[tuple[Callable[[], object], str]] = [
        (lambda: context.set_cipher_list(ciphers.encode()) if ciphers else None,
         f"tls.ciphers {ciphers!r}: no usable cipher"),
        (lambda: context.use_certificate_chain_file(str(cert)),
         f"tls.cert {cert}: not a PEM certificate"),
        (lambda: context.use_privatekey_file(str(key)),
         f"tls.key {key}: not an unencrypted PEM private key"),
        (context.check_privatekey, f"tls.key {key} is not the key of tls.cert {cert}"),
    ]
    for step, problem in steps:
        try:
            step()
        except SSL.Error as error:
            reason = describe(error)
            if reason == "key values mismatch":  # OpenSSL checks the pair as it loads the key
                problem = steps[-1][1]
            raise TlsSetupError(f"{problem} ({reason})") from None
    context.set_verify(SSL.VERIFY_PEER, _accept_any_certificate)
    # No session resumption: a resumed session keeps only the client's leaf certificate, not
    # the intermediates it sent, and the gateway needs the whole chain for a client CA. Every
    # connection makes a full handshake (tickets OpenSSL still issues in TLS 1.3 cannot be
    # redeemed: there is no cache to find them in).
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    context.set_options(SSL.OP_NO_TICKET)
    context.set_session_id(b"fleetgate")  # a client offering an old session gets a clean miss
    return context


def describe(error: BaseException) -> str:
    """One line for the debug log from a pyOpenSSL error: its OpenSSL reasons."""
    if isinstance(error, SSL.SysCallError):
        return "unexpected EOF" if error.args[0] == -1 else f"system error {error.args}"
    if isinstance(error, SSL.Error) and error.args and isinstance(error.args[0], list):
        reasons = [item[-1] for item in error.args[0] if isinstance(item, tuple) and item
                   and item[-1]]
        if reasons:
            return "; ".join(str(r) for r in reasons)
    return str(error) or type(error).__name__


def _session_info(ssl: SSL.Connection) -> TlsInfo:
    name = ssl.get_servername()
    leaf = ssl.get_peer_certificate()
    leaf_der = crypto.dump_certificate(crypto.FILETYPE_ASN1, leaf) if leaf is not None else None
    # On the server side OpenSSL's peer chain leaves the leaf out; keep it first either way.
    sent = [crypto.dump_certificate(crypto.FILETYPE_ASN1, c)
            for c in ssl.get_peer_cert_chain() or ()]
    if leaf_der is not None and (not sent or sent[0] != leaf_der):
        sent.insert(0, leaf_der)
    alpn = ssl.get_alpn_proto_negotiated()
    return TlsInfo(name.decode("ascii", "replace").lower() if name else None, leaf_der,
                   tuple(sent), alpn.decode("ascii", "replace") if alpn else None)


# -- the listener and its protocol -------------------------------------------------------------

class TlsListener:
    """What one TLS listener serves: a protocol factory for ``loop.create_server``.

    ``protocols`` maps ALPN ids to inner protocol factories in order of preference; the first
    one serves clients that send no ALPN. It may change while serving (the HTTP sidecar adds
    ``http/1.1`` to the MQTT port's). ``handshake_timeout`` counts from the TCP open.
    """

    def __init__(self, context: SSL.Context, protocols: Mapping[str, ProtocolFactory],
                 handshake_timeout: float, on_failure: FailureHook | None = None) -> None:
        self.context = context
        self.protocols = protocols
        self.handshake_timeout = handshake_timeout
        self.on_failure = on_failure
        # Connections still shaking hands: no inner protocol closes them at shutdown.
        self.handshaking: set[TlsServerProtocol] = set()
        context.set_alpn_select_callback(self._select_alpn)

    def close_handshaking(self) -> None:
        """At shutdown: drop the connections that have not finished their handshake."""
        for protocol in list(self.handshaking):
            protocol.abandon()

    def __call__(self) -> TlsServerProtocol:
        return TlsServerProtocol(self)

    def _select_alpn(self, conn: SSL.Connection, offered: list[bytes]) -> bytes:
        # The client's order: a dual-protocol client says what it will speak first.
        for name in offered:
            if name.decode("ascii", "replace") in self.protocols:
                return name
        raise _NoCommonProtocol(
            "no ALPN protocol in common (offered: "
            + ", ".join(n.decode("ascii", "replace") for n in offered) + ")")

    def failed(self, peer: tuple[str, int], info: TlsInfo | None, reason: str,
               detail: str) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s:%s %s", reason, peer[0], peer[1], detail)
        if self.on_failure is not None:
            self.on_failure(peer, info, reason, detail)


HANDSHAKE, OPEN, CLOSED = 0, 1, 2
RECV_SIZE = 16 * 1024  # one TLS record's plaintext at most
BIO_READ_SIZE = 64 * 1024



def _buffered(ssl: SSL.Connection, bio: str) -> int:
    """Bytes waiting in one of a connection's memory BIOs (``_into_ssl``: ciphertext not yet
    read by OpenSSL; ``_from_ssl``: ciphertext to send). pyOpenSSL has no public accessor;
    ``BIO_get_mem_data`` with no pointer answers the length. -1 (unknown: go on as if there
    were bytes) if this pyOpenSSL keeps its BIOs elsewhere."""
    handle = getattr(ssl, bio, None)
    if handle is None:
        return -1
    return int(_lib.BIO_get_mem_data(handle, _ffi.NULL))


class TlsServerProtocol(asyncio.Protocol):
    """The server side of one TLS connection (the protocol of the socket's transport)."""

    def __init__(self, listener: TlsListener) -> None:
        self._listener = listener
        self._ssl: SSL.Connection | None = None
        self._transport: asyncio.Transport | None = None
        self._app: TlsTransport | None = None  # exists once the handshake is done
        self._state = HANDSHAKE
        self._peer: tuple[str, int] = ("", 0)
        self._opened_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._reading_paused = False
        self._error: TlsError | None = None
        self._reported = False

    # -- asyncio.Protocol, for the socket ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("", 0)
        self._peer = (peer[0], peer[1])
        loop = asyncio.get_running_loop()
        self._opened_at = loop.time()
        ssl = SSL.Connection(self._listener.context, None)  # memory BIOs
        ssl.set_accept_state()
        self._ssl = ssl
        self._timer = loop.call_at(self._opened_at + self._listener.handshake_timeout,
                                   self._handshake_expired)
        self._listener.handshaking.add(self)

    def data_received(self, data: bytes) -> None:
        ssl = self._ssl
        if ssl is None or self._state == CLOSED or self._reported:
            return  # (reported: a failed handshake, closing)
        ssl.bio_write(data)
        if self._state == HANDSHAKE:
            try:
                ssl.do_handshake()
            except SSL.WantReadError:
                self._flush()
                return
            except (_NoCommonProtocol, SSL.Error) as error:
                self._flush()  # the alert tells the client why
                self._fail("tls_error", describe(error), abort=False)
                return
            self._flush()  # the server's last handshake flight (and TLS 1.3 tickets)
            self._handshake_done()
            if self._state != OPEN:
                return
        self._read()

    def eof_received(self) -> bool:
        # A TCP FIN without close_notify: what was decrypted is delivered, then the end.
        app = self._app
        if self._state == OPEN and app is not None:
            self._read()
            if self._state == OPEN and not app._closing:
                app._protocol.eof_received()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        state, self._state = self._state, CLOSED
        self._listener.handshaking.discard(self)
        app = self._app
        if state == HANDSHAKE and not self._reported:
            self._report("ssl_closed", "closed during the TLS handshake")
        if app is not None:
            app._closing = True
            app._protocol.connection_lost(self._error or exc)
        # Let OpenSSL's memory go with this connection (and break the protocol cycles).
        self._ssl = None
        self._transport = None

    def pause_writing(self) -> None:
        if self._app is not None:
            self._app._protocol.pause_writing()

    def resume_writing(self) -> None:
        if self._app is not None:
            self._app._protocol.resume_writing()

    # -- inside -----------------------------------------------------------------------------

    def abandon(self) -> None:
        """The server stops while this connection shakes hands: close it, log nothing."""
        self._reported = True
        self._close_transport(abort=True)

    def _handshake_done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._listener.handshaking.discard(self)
        assert self._ssl is not None and self._transport is not None
        info = _session_info(self._ssl)
        protocols = self._listener.protocols
        factory = protocols.get(info.alpn) if info.alpn else next(iter(protocols.values()), None)
        if factory is None:  # the sidecar withdrew http/1.1 while this client shook hands
            self._fail("tls_error", f"ALPN {info.alpn} is not served any more", abort=False)
            return
        self._state = OPEN
        app = TlsTransport(self, info)
        self._app = app
        protocol = factory()
        app._protocol = protocol
        protocol.connection_made(app)

    def _read(self) -> None:
        """Decrypt what has arrived and give it to the inner protocol in one call."""
        ssl, app = self._ssl, self._app
        if ssl is None or app is None or app._closing:
            return
        chunks: list[bytes] = []
        ended = False
        error: BaseException | None = None
        while not self._reading_paused:
            # Once every byte that arrived is decrypted and taken, another recv could only
            # raise WantReadError (an exception per read: the costliest call of this loop).
            if chunks and not _buffered(ssl, "_into_ssl") and not ssl.pending():
                break
            try:
                chunks.append(ssl.recv(RECV_SIZE))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:  # the client's close_notify
                ended = True
                break
            except SSL.Error as exc:
                error = exc
                break
        if chunks:
            app._protocol.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self._state != OPEN:
            return
        self._flush()  # anything OpenSSL answered while reading (a key update)
        if error is not None:
            self._error = TlsError(describe(error))
            self._flush()
            self._close_transport(abort=False)
        elif ended and not app._protocol.eof_received():
            app.close()

    def _flush(self) -> None:
        """Write what OpenSSL has encrypted to the socket."""
        ssl, transport = self._ssl, self._transport
        if ssl is None or transport is None:
            return
        while _buffered(ssl, "_from_ssl") != 0:  # usually none after a read: skip bio_read
            try:
                data = ssl.bio_read(BIO_READ_SIZE)
            except SSL.WantReadError:
                return
            transport.write(data)
            if len(data) < BIO_READ_SIZE:
                return


    def _send(self, data: bytes | bytearray | memoryview) -> None:
        ssl = self._ssl
        if ssl is None or self._state != OPEN:
            return
        try:
            ssl.sendall(data)
        except SSL.Error as error:
            self._error = TlsError(describe(error))
            self._close_transport(abort=True)
            return
        self._flush()

    def _shutdown(self) -> None:
        """Close as the application asked: close_notify, then the socket once it is sent."""
        ssl = self._ssl
        if ssl is not None and self._state == OPEN:
            try:
                ssl.shutdown()
            except SSL.Error:
                pass
            self._flush()
        self._close_transport(abort=False)

    def _close_transport(self, abort: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            if abort and transport is not None:
                transport.abort()
            return
        if abort:
            transport.abort()
        else:
            transport.close()

    def _handshake_expired(self) -> None:
        self._timer = None
        if self._state == HANDSHAKE:
            self._fail("idle_timeout",
                       f"no TLS handshake within {self._listener.handshake_timeout:g} s",
                       abort=True)

    def _fail(self, reason: str, detail: str, abort: bool) -> None:
        """A connection that never reached its inner protocol: report it, then close."""
        self._report(reason, detail)
        self._close_transport(abort)

    def _report(self, reason: str, detail: str) -> None:
        if self._reported:
            return
        self._reported = True
        info = None
        ssl = self._ssl
        if ssl is not None:
            try:
                info = _session_info(ssl)
            except (SSL.Error, crypto.Error):
                info = None
            if info == TlsInfo(None, None, (), None):
                info = None
        self._listener.failed(self._peer, info, reason, detail)


class TlsTransport(asyncio.Transport):
    """The transport the inner protocol writes to: plaintext in, TLS records to the socket.
    Flow control is the socket transport's: its limits, its buffer, its pause/resume."""

    def __init__(self, owner: TlsServerProtocol, info: TlsInfo) -> None:
        super().__init__()
        self._owner = owner
        self._info = info
        self._protocol: Any = None
        self._closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        owner = self._owner
        if name == TLS_INFO:
            return self._info
        if name == OPENED_AT:
            return owner._opened_at
        if name == "sslcontext":  # truthy: aiohttp's request.secure and scheme say https
            return owner._listener.context
        if name == "cipher":
            ssl = owner._ssl
            if ssl is None:
                return default
            return (ssl.get_cipher_name(), ssl.get_cipher_version(), ssl.get_cipher_bits())
        if name in ("ssl_object", "peercert"):
            return default  # no stdlib SSLObject here; TLS_INFO has what the gateway needs
        transport = owner._transport
        if transport is None:
            return default
        return transport.get_extra_info(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing and data:
            self._owner._send(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False  # TLS has no half close

    def write_eof(self) -> None:
        raise NotImplementedError("TLS connections cannot half-close")

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._owner._shutdown()

    def abort(self) -> None:
        self._closing = True
        self._owner._close_transport(abort=True)

    def is_closing(self) -> bool:
        transport = self._owner._transport
        return self._closing or transport is None or transport.is_closing()

    def pause_reading(self) -> None:
        owner = self._owner
        owner._reading_paused = True
        if owner._transport is not None:
            owner._transport.pause_reading()

    def resume_reading(self) -> None:
        owner = self._owner
        if not owner._reading_paused:
            return
        owner._reading_paused = False
        if owner._transport is not None:
            owner._transport.resume_reading()
            # Records decrypted-but-undelivered stayed in OpenSSL's buffer: deliver them now.
            asyncio.get_running_loop().call_soon(owner._read)

    def is_reading(self) -> bool:
        return not self._owner._reading_paused and not self.is_closing()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        transport = self._owner._transport
        if transport is not None:
            transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        transport = self._owner._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        transport = self._owner._transport
        return transport.get_write_buffer_limits() if transport is not None else (0, 0)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]
