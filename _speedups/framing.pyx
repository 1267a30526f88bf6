# cython: language_level=3
"""Stream framing, Cython twin of ``broker/mqtt/framing.py`` (same rules, same results).

- MQTT-2.2.3: the remaining length uses at most four bytes (``ff ff ff ff 7f`` is malformed).
- ``max_packet_size`` (whole packet, header included) fails with ``message_too_large`` as soon as
  the header announces an oversize packet, before buffering it.

Where the bytes live: whole packets are decoded straight from the caller's chunk; only a partial
tail is copied, into a C buffer that grows with the bytes received. The next chunk tops up that
one packet, after which parsing continues in the new chunk. Nothing is re-sliced.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.string cimport memcpy

from _speedups.codec cimport check_header, decode_body

from broker.mqtt.errors import ProtocolError

cdef object _ProtocolError = ProtocolError

# A buffer grown past this for one large packet is freed once that packet is decoded, so a
# connection that sent one big message does not hold the memory for its lifetime.
cdef Py_ssize_t _KEEP_CAPACITY = 4096


cdef inline Py_ssize_t _header(
    const unsigned char* p, Py_ssize_t n, Py_ssize_t* length
) noexcept nogil:
    """Size of the fixed header at ``p``: >0 when complete, 0 if more bytes are needed,
    -1 when the remaining length runs past four bytes (MQTT-2.2.3)."""
    cdef Py_ssize_t value = 0
    cdef Py_ssize_t i = 1
    cdef int shift = 0
    cdef unsigned char byte
    if n < 2:  # as the reference: nothing is parsed before two bytes are there
        return 0
    while i < n:
        byte = p[i]
        value |= (<Py_ssize_t>(byte & 0x7F)) << shift
        i += 1
        if not byte & 0x80:
            length[0] = value
            return i
        shift += 7
        if shift > 21:
            return -1
    return 0


cdef class Framer:
    cdef unsigned char* _buf  # the held bytes of one packet not yet complete
    cdef Py_ssize_t _len
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _need  # that packet's whole size once its header is held, else 0
    cdef Py_ssize_t _header_size
    cdef public Py_ssize_t max_packet_size
    cdef public bint failed

    def __cinit__(self) -> None:
        self._buf = NULL
        self._len = self._cap = self._need = self._header_size = 0

    def __init__(self, Py_ssize_t max_packet_size=2 * 1024 * 1024) -> None:
        self.max_packet_size = max_packet_size
        self.failed = False

    def __dealloc__(self) -> None:
        PyMem_Free(self._buf)

    def buffered(self) -> int:
        """Bytes held of a packet not yet complete."""
        return self._len

    def feed(self, data):
        if self.failed:
            return []
        if PyBytes_CheckExact(data):  # what the transport hands us: no buffer export needed
            return self._feed(
                <const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)
            )
        cdef Py_buffer view
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._feed(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef int _reserve(self, Py_ssize_t size) except -1:
        # Grow with the bytes that actually arrived, never to the size a header merely announces:
        # a trickled 5-byte header must not commit max_packet_size bytes per connection.
        cdef unsigned char* grown
        cdef Py_ssize_t capacity
        if size <= self._cap:
            return 0
        capacity = max(size, 2 * self._cap, 64)
        if self._need and capacity > self._need:
            capacity = max(size, self._need)
        grown = <unsigned char*>PyMem_Realloc(self._buf, capacity)
        if grown == NULL:
            raise MemoryError()
        self._buf = grown
        self._cap = capacity
        return 0

    cdef int _hold(self, const unsigned char* p, Py_ssize_t n) except -1:
        self._reserve(self._len + n)
        memcpy(self._buf + self._len, p, n)
        self._len += n
        return 0

    cdef void _release(self) noexcept:
        self._len = self._need = self._header_size = 0
        if self._cap > _KEEP_CAPACITY:
            PyMem_Free(self._buf)
            self._buf = NULL
            self._cap = 0

    cdef list _fail(self, list out, error):
        self.failed = True
        self._release()
        out.append(error)
        return out

    cdef object _too_large(self, Py_ssize_t size):
        return _ProtocolError(
            f"packet of {size} bytes exceeds the limit of {self.max_packet_size}", "",
            "message_too_large",
        )

    cdef list _feed(self, const unsigned char* p, Py_ssize_t n):
        cdef list out = []
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t start, size, length, take
        try:
            if self._len:
                # Top up the held packet: first its header (at most five bytes), then its body.
                if not self._need:
                    take = min(n, 5 - self._len)
                    self._hold(p, take)
                    size = _header(self._buf, self._len, &length)
                    if size < 0:
                        return self._fail(out, _ProtocolError(
                            "remaining length longer than four bytes", "MQTT-2.2.3"))
                    if size == 0:
                        return out  # every byte of the chunk went into the header
                    # Bytes taken past the header belong to the body; give back any beyond it.
                    pos = take
                    if self._len > size + length:
                        pos -= self._len - (size + length)
                        self._len = size + length
                    if size + length > self.max_packet_size:
                        return self._fail(out, self._too_large(size + length))
                    self._need = size + length
                    self._header_size = size
                    check_header(self._buf[0])  # refuse garbage before waiting for its body
                take = min(self._need - self._len, n - pos)
                self._hold(p + pos, take)
                pos += take
                if self._len < self._need:
                    return out
                out.append(decode_body(
                    self._buf[0], self._buf + self._header_size, self._need - self._header_size))
                self._release()
            # Whole packets straight from the chunk.
            while n - pos >= 2:
                start = pos
                size = _header(p + start, n - start, &length)
                if size < 0:
                    return self._fail(out, _ProtocolError(
                        "remaining length longer than four bytes", "MQTT-2.2.3"))
                if size == 0:
                    break
                if size + length > self.max_packet_size:
                    return self._fail(out, self._too_large(size + length))
                if n - start - size < length:
                    check_header(p[start])  # refuse garbage before waiting for its body
                    self._need = size + length
                    self._header_size = size
                    break
                out.append(decode_body(p[start], p + start + size, length))
                pos = start + size + length
        except _ProtocolError as error:
            return self._fail(out, error)
        if pos < n:
            self._hold(p + pos, n - pos)
        return out
