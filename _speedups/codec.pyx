# cython: language_level=3
"""MQTT 3.1.1 packet codec, Cython twin of ``broker/mqtt/codec.py``.

The reference owns the semantics and the rule list; this module must decode to the same packet
objects and raise equal ``ProtocolError``s (message, rule, reason, connack). Error paths reuse the
reference's topic validators so their messages cannot drift; the PUBLISH and ack paths are C.

Example: ``decode(0x30, b"\\x00\\x03a/b" + b"hi")`` is ``Publish("a/b", b"hi")``; the same body
after ``0x36`` (QoS 3) raises ``ProtocolError(rule="MQTT-3.3.1-4")``.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8
from libc.string cimport memcpy

from broker.mqtt import constants as c
from broker.mqtt.errors import ProtocolError
from broker.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from broker.mqtt.topics import validate_topic_filter, validate_topic_name

# C-level references: a cdef object read is a pointer load, a module global is a dict lookup.
cdef object _ProtocolError = ProtocolError
cdef object _Publish = Publish
cdef object _validate_topic_name = validate_topic_name
cdef object _validate_topic_filter = validate_topic_filter
cdef dict _PACKET_NAMES = dict(c.PACKET_NAMES)
cdef str _PROTOCOL_NAME = c.PROTOCOL_NAME
cdef int _PROTOCOL_LEVEL = c.PROTOCOL_LEVEL
cdef int _CONNACK_UNACCEPTABLE_PROTOCOL = c.CONNACK_UNACCEPTABLE_PROTOCOL
cdef int _CONNACK_IDENTIFIER_REJECTED = c.CONNACK_IDENTIFIER_REJECTED
cdef int _SUBACK_FAILURE = c.SUBACK_FAILURE
cdef Py_ssize_t _MAX_REMAINING_LENGTH = c.MAX_REMAINING_LENGTH

# Required fixed-header flags by packet type (MQTT-2.2.2-1); -1 marks PUBLISH/reserved types.
cdef int _REQUIRED_FLAGS[16]
cdef int _i
for _i in range(16):
    _REQUIRED_FLAGS[_i] = c.REQUIRED_FLAGS.get(_i, -1)
# Packet class by type for the types whose body is only a packet identifier / is empty.
cdef tuple _ID_ONLY = tuple([
    {cls.type: cls for cls in (Puback, Pubrec, Pubrel, Pubcomp, Unsuback)}.get(t)
    for t in range(16)
])
cdef tuple _EMPTY = tuple([
    {cls.type: cls for cls in (Pingreq, Pingresp, Disconnect)}.get(t) for t in range(16)
])

# Byte classes for one branch-free pass over a string: which checks can the fast path skip?
cdef enum:
    CLS_HIGH = 1  # non-ASCII: full UTF-8 validation needed (MQTT-1.5.3-1)
    CLS_NUL = 2  # U+0000 (MQTT-1.5.3-2)
    CLS_WILD = 4  # '+' or '#': not allowed in a topic name (MQTT-3.3.2-2)

cdef unsigned char _CLASS[256]
for _i in range(256):
    _CLASS[_i] = CLS_HIGH if _i >= 0x80 else 0
_CLASS[0] = CLS_NUL
_CLASS[ord("+")] = CLS_WILD
_CLASS[ord("#")] = CLS_WILD


cdef inline int _scan(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef int cls = 0
    cdef Py_ssize_t i
    for i in range(n):
        cls |= _CLASS[p[i]]
    return cls


# ---------------------------------------------------------------------------------------------
# Decoding


cdef inline str _utf8(const unsigned char* p, Py_ssize_t n, int cls):
    """Decode string bytes already classified by ``_scan``, enforcing MQTT-1.5.3-1/2."""
    cdef str text
    try:
        text = PyUnicode_DecodeUTF8(<char*>p, n, NULL)
    except UnicodeDecodeError:
        raise _ProtocolError("ill-formed UTF-8 string", "MQTT-1.5.3-1") from None
    # Checked after decoding so ill-formed UTF-8 wins, as in the reference.
    if cls & CLS_NUL:
        raise _ProtocolError("U+0000 in a string", "MQTT-1.5.3-2")
    return text


cdef str _string(const unsigned char* body, Py_ssize_t n, Py_ssize_t* pos):
    cdef Py_ssize_t start = pos[0]
    if start + 2 > n:
        raise _ProtocolError("truncated string length", "MQTT-1.5.3")
    cdef Py_ssize_t length = (body[start] << 8) | body[start + 1]
    cdef Py_ssize_t end = start + 2 + length
    if end > n:
        raise _ProtocolError("string runs past the packet", "MQTT-1.5.3")
    cdef const unsigned char* p = body + start + 2
    cdef str text = _utf8(p, length, _scan(p, length))
    pos[0] = end
    return text


cdef bytes _binary(const unsigned char* body, Py_ssize_t n, Py_ssize_t* pos):
    cdef Py_ssize_t start = pos[0]
    if start + 2 > n:
        raise _ProtocolError("truncated binary length", "MQTT-1.5.3")
    cdef Py_ssize_t length = (body[start] << 8) | body[start + 1]
    cdef Py_ssize_t end = start + 2 + length
    if end > n:
        raise _ProtocolError("binary data runs past the packet", "MQTT-1.5.3")
    pos[0] = end
    return PyBytes_FromStringAndSize(<char*>body + start + 2, length)


cdef int _packet_id(const unsigned char* body, Py_ssize_t n, Py_ssize_t pos) except -1:
    if pos + 2 > n:
        raise _ProtocolError("truncated packet identifier", "MQTT-2.3.1")
    cdef int pid = (body[pos] << 8) | body[pos + 1]
    if pid == 0:
        raise _ProtocolError("packet identifier 0", "MQTT-2.3.1-1")
    return pid


cdef int check_header(int first_byte) except -1:
    """The checks of ``broker.mqtt.codec.check_fixed_header``, same errors; 0 when valid."""
    cdef int packet_type = first_byte >> 4
    cdef int flags = first_byte & 0x0F
    cdef int qos
    if packet_type == 3:
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise _ProtocolError("PUBLISH with QoS 3", "MQTT-3.3.1-4")
        if flags & 0x08 and qos == 0:
            raise _ProtocolError("DUP set on a QoS 0 PUBLISH", "MQTT-3.3.1-2")
        return 0
    if packet_type < 1 or packet_type > 14:
        raise _ProtocolError(f"reserved packet type {packet_type}", "MQTT-2.2.1")
    if flags != _REQUIRED_FLAGS[packet_type]:
        raise _ProtocolError(
            f"reserved flags {flags:#06b} on {_PACKET_NAMES[packet_type]}", "MQTT-2.2.2-2"
        )
    return 0


def check_fixed_header(int first_byte):
    """Refuse a fixed-header byte that no body can make valid (see the pure twin)."""
    check_header(first_byte)


cdef object _decode_publish(int flags, const unsigned char* body, Py_ssize_t n):
    # The hot path: one small QoS 0 PUBLISH per chunk from every device. QoS 3 and DUP on QoS 0
    # were refused by check_header.
    cdef int qos = (flags >> 1) & 0x03
    cdef bint dup = flags & 0x08
    if n < 2:
        raise _ProtocolError("truncated string length", "MQTT-1.5.3")
    cdef Py_ssize_t length = (body[0] << 8) | body[1]
    cdef Py_ssize_t pos = 2 + length
    if pos > n:
        raise _ProtocolError("string runs past the packet", "MQTT-1.5.3")
    cdef int cls = _scan(body + 2, length)
    cdef str topic = _utf8(body + 2, length, cls)
    if length == 0 or cls & CLS_WILD:
        _validate_topic_name(topic)  # raises the reference's exact error
    cdef int packet_id = 0
    if qos:
        packet_id = _packet_id(body, n, pos)
        pos += 2
    return _Publish(
        topic, PyBytes_FromStringAndSize(<char*>body + pos, n - pos), qos,
        <bint>(flags & 0x01), dup, packet_id,
    )


cdef object _decode_connect(const unsigned char* body, Py_ssize_t n):
    cdef Py_ssize_t pos = 0
    cdef str name = _string(body, n, &pos)
    if name == "MQIsdp":  # MQTT 3.1 clients get a readable refusal rather than a bare close
        raise _ProtocolError(
            "MQTT 3.1 is not supported", "MQTT-3.1.2-2", connack=_CONNACK_UNACCEPTABLE_PROTOCOL
        )
    if name != _PROTOCOL_NAME:
        raise _ProtocolError(f"protocol name {name!r} is not 'MQTT'", "MQTT-3.1.2-1")
    if pos + 4 > n:
        raise _ProtocolError("truncated CONNECT variable header", "MQTT-3.1.2")
    cdef int level = body[pos]
    cdef int cflags = body[pos + 1]
    cdef int keepalive = (body[pos + 2] << 8) | body[pos + 3]
    pos += 4
    if level != _PROTOCOL_LEVEL:
        raise _ProtocolError(
            f"unsupported protocol level {level}", "MQTT-3.1.2-2",
            connack=_CONNACK_UNACCEPTABLE_PROTOCOL,
        )
    if cflags & 0x01:
        raise _ProtocolError("reserved CONNECT flag set", "MQTT-3.1.2-3")
    cdef bint clean = cflags & 0x02
    cdef bint will = cflags & 0x04
    cdef int will_qos = (cflags >> 3) & 0x03
    cdef bint will_retain = cflags & 0x20
    cdef bint has_password = cflags & 0x40
    cdef bint has_username = cflags & 0x80
    if not will and will_qos:
        raise _ProtocolError("will QoS set without the will flag", "MQTT-3.1.2-13")
    if not will and will_retain:
        raise _ProtocolError("will retain set without the will flag", "MQTT-3.1.2-15")
    if will_qos == 3:
        raise _ProtocolError("will QoS 3", "MQTT-3.1.2-14")
    if has_password and not has_username:
        raise _ProtocolError("password flag without username flag", "MQTT-3.1.2-22")
    cdef str client_id = _string(body, n, &pos)
    will_topic = None
    will_payload = b""
    if will:
        will_topic = _string(body, n, &pos)
        _validate_topic_name(will_topic)
        will_payload = _binary(body, n, &pos)
    username = None
    password = None
    if has_username:
        username = _string(body, n, &pos)
    if has_password:
        password = _binary(body, n, &pos)
    if pos != n:
        raise _ProtocolError("trailing bytes after CONNECT payload", "MQTT-3.1.3")
    if not client_id and not clean:
        raise _ProtocolError(
            "zero-length client id needs clean session", "MQTT-3.1.3-8",
            connack=_CONNACK_IDENTIFIER_REJECTED,
        )
    return Connect(
        client_id, clean, keepalive, username, password, will_topic, will_payload, will_qos,
        will_retain, name, level,
    )


cdef object _decode_subscribe(const unsigned char* body, Py_ssize_t n):
    cdef int packet_id = _packet_id(body, n, 0)
    cdef Py_ssize_t pos = 2
    cdef list topics = []
    cdef str topic_filter
    cdef int qos
    while pos < n:
        topic_filter = _string(body, n, &pos)
        _validate_topic_filter(topic_filter)
        if pos >= n:
            raise _ProtocolError("SUBSCRIBE filter without requested QoS", "MQTT-3.8.3-1")
        qos = body[pos]
        pos += 1
        if qos > 2:
            raise _ProtocolError("SUBSCRIBE requested QoS byte invalid", "MQTT-3.8.3-4")
        topics.append((topic_filter, qos))
    if not topics:
        raise _ProtocolError("SUBSCRIBE without topic filters", "MQTT-3.8.3-3")
    return Subscribe(packet_id, topics)


cdef object _decode_suback(const unsigned char* body, Py_ssize_t n):
    cdef int packet_id = _packet_id(body, n, 0)
    cdef list codes = []
    cdef Py_ssize_t i
    cdef int code
    cdef bint valid = n > 2
    for i in range(2, n):
        code = body[i]
        if code > 2 and code != _SUBACK_FAILURE:
            valid = False
        codes.append(code)
    if not valid:
        raise _ProtocolError("invalid SUBACK return codes", "MQTT-3.9.3-2")
    return Suback(packet_id, codes)


cdef object _decode_unsubscribe(const unsigned char* body, Py_ssize_t n):
    cdef int packet_id = _packet_id(body, n, 0)
    cdef Py_ssize_t pos = 2
    cdef list topics = []
    cdef str topic_filter
    while pos < n:
        topic_filter = _string(body, n, &pos)
        _validate_topic_filter(topic_filter)
        topics.append(topic_filter)
    if not topics:
        raise _ProtocolError("UNSUBSCRIBE without topic filters", "MQTT-3.10.3-2")
    return Unsubscribe(packet_id, topics)


cdef object decode_body(int first_byte, const unsigned char* body, Py_ssize_t n):
    cdef int packet_type = first_byte >> 4
    cdef int flags = first_byte & 0x0F
    check_header(first_byte)
    if packet_type == 3:  # PUBLISH first: it is nearly all the traffic
        return _decode_publish(flags, body, n)
    cdef object cls = _ID_ONLY[packet_type]
    if cls is not None:
        if n != 2:
            raise _ProtocolError(
                f"{_PACKET_NAMES[packet_type]} remaining length is not 2", "MQTT-2.3.1"
            )
        return cls(_packet_id(body, n, 0))
    cls = _EMPTY[packet_type]
    if cls is not None:
        if n:
            raise _ProtocolError(f"{_PACKET_NAMES[packet_type]} with a payload", "MQTT-3.12.1")
        return cls()
    if packet_type == 1:
        return _decode_connect(body, n)
    if packet_type == 2:
        if n != 2 or body[0] & 0xFE:
            raise _ProtocolError("malformed CONNACK", "MQTT-3.2.2-1")
        return Connack(<bint>(body[0] & 1), body[1])
    if packet_type == 8:
        return _decode_subscribe(body, n)
    if packet_type == 9:
        return _decode_suback(body, n)
    return _decode_unsubscribe(body, n)  # 10, the only type left


def decode(int first_byte, body):
    """Decode one packet whose fixed header byte is ``first_byte`` and whose body is ``body``."""
    if PyBytes_CheckExact(body):
        return decode_body(
            first_byte, <const unsigned char*>PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body)
        )
    cdef Py_buffer view
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        return decode_body(first_byte, <const unsigned char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


# ---------------------------------------------------------------------------------------------
# Encoding


cdef inline Py_ssize_t _length_size(Py_ssize_t n) noexcept nogil:
    if n < 128:
        return 1
    if n < 16384:
        return 2
    if n < 2097152:
        return 3
    return 4


cdef inline Py_ssize_t _put_length(unsigned char* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    while True:
        if n < 128:
            out[i] = <unsigned char>n
            return i + 1
        out[i] = <unsigned char>((n & 0x7F) | 0x80)
        n >>= 7
        i += 1


def encode_remaining_length(n):
    if n < 0 or n > _MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {n} out of range")
    cdef unsigned char out[4]
    return PyBytes_FromStringAndSize(<char*>out, _put_length(out, n))


def encode_publish(
    str topic not None, payload, int qos=0, bint retain=False, bint dup=False, int packet_id=0
):
    cdef Py_ssize_t topic_len
    cdef const char* topic_p = PyUnicode_AsUTF8AndSize(topic, &topic_len)
    if topic_len > 0xFFFF:
        raise OverflowError("topic name longer than 65535 bytes")
    if qos and (packet_id < 0 or packet_id > 0xFFFF):
        raise OverflowError("packet identifier out of range")
    cdef Py_buffer view
    cdef bint release = False
    cdef const char* payload_p
    cdef Py_ssize_t payload_len
    if PyBytes_CheckExact(payload):
        payload_p = PyBytes_AS_STRING(payload)
        payload_len = PyBytes_GET_SIZE(payload)
    else:
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        release = True
        payload_p = <const char*>view.buf
        payload_len = view.len
    cdef Py_ssize_t body = 2 + topic_len + (2 if qos else 0) + payload_len
    cdef bytes out
    cdef unsigned char* p
    try:
        if body > _MAX_REMAINING_LENGTH:
            raise ValueError(f"remaining length {body} out of range")
        # One allocation, filled in place before anyone else can see the object.
        out = PyBytes_FromStringAndSize(NULL, 1 + _length_size(body) + body)
        p = <unsigned char*>PyBytes_AS_STRING(out)
        p[0] = <unsigned char>(0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0))
        p += 1 + _put_length(p + 1, body)
        p[0] = <unsigned char>(topic_len >> 8)
        p[1] = <unsigned char>(topic_len & 0xFF)
        memcpy(p + 2, topic_p, topic_len)
        p += 2 + topic_len
        if qos:
            p[0] = <unsigned char>(packet_id >> 8)
            p[1] = <unsigned char>(packet_id & 0xFF)
            p += 2
        memcpy(p, payload_p, payload_len)
        return out
    finally:
        if release:
            PyBuffer_Release(&view)


cdef inline bytes _four(int b0, int b1, int b2, int b3):
    # Same error as the reference's bytes((...)) for out-of-range values.
    if not (0 <= b2 <= 0xFF and 0 <= b3 <= 0xFF):
        raise ValueError("bytes must be in range(0, 256)")
    cdef unsigned char out[4]
    out[0] = <unsigned char>b0
    out[1] = <unsigned char>b1
    out[2] = <unsigned char>b2
    out[3] = <unsigned char>b3
    return PyBytes_FromStringAndSize(<char*>out, 4)


cdef inline bytes _ack(int first, int packet_id):
    return _four(first, 2, packet_id >> 8, packet_id & 0xFF)


def encode_connack(session_present, int return_code):
    return _four(0x20, 2, 1 if session_present else 0, return_code)


def encode_puback(int packet_id):
    return _ack(0x40, packet_id)


def encode_pubrec(int packet_id):
    return _ack(0x50, packet_id)


def encode_pubrel(int packet_id):
    return _ack(0x62, packet_id)


def encode_pubcomp(int packet_id):
    return _ack(0x70, packet_id)


def encode_unsuback(int packet_id):
    return _ack(0xB0, packet_id)


cdef bytes _str(str text):
    raw = text.encode("utf-8")
    return len(raw).to_bytes(2, "big") + raw


cdef bytes _bin(data):
    return len(data).to_bytes(2, "big") + data


cdef bytes _frame(int first_byte, bytes body):
    return bytes((first_byte,)) + encode_remaining_length(len(body)) + body


def encode_suback(packet_id, return_codes):
    return _frame(0x90, packet_id.to_bytes(2, "big") + bytes(return_codes))


def encode_connect(p):
    flags = 0x02 if p.clean_session else 0
    payload = _str(p.client_id)
    if p.will_topic is not None:
        flags |= 0x04 | (p.will_qos << 3) | (0x20 if p.will_retain else 0)
        payload += _str(p.will_topic) + _bin(p.will_payload)
    if p.username is not None:
        flags |= 0x80
        payload += _str(p.username)
    if p.password is not None:
        flags |= 0x40
        payload += _bin(p.password)
    header = (
        _str(p.protocol_name) + bytes((p.protocol_level, flags)) + p.keepalive.to_bytes(2, "big")
    )
    return _frame(0x10, header + payload)


def encode(packet):
    """Encode any packet object (used by tests, the bench client and rare paths)."""
    t = packet.type
    if t == 3:
        return encode_publish(
            packet.topic, packet.payload, packet.qos, packet.retain, packet.dup, packet.packet_id
        )
    if t == 1:
        return encode_connect(packet)
    if t == 2:
        return encode_connack(packet.session_present, packet.return_code)
    if t == 8:
        body = b"".join([_str(f) + bytes((q,)) for f, q in packet.topics])
        return _frame(0x82, packet.packet_id.to_bytes(2, "big") + body)
    if t == 9:
        return encode_suback(packet.packet_id, packet.return_codes)
    if t == 10:
        body = b"".join([_str(f) for f in packet.topics])
        return _frame(0xA2, packet.packet_id.to_bytes(2, "big") + body)
    if t in (12, 13, 14):
        return bytes((t << 4, 0))
    packet_id = packet.packet_id
    return bytes(((t << 4) | c.REQUIRED_FLAGS[t], 2, packet_id >> 8, packet_id & 0xFF))
