"""The wire format of docs/backend-protocol.md: message types, flags, and
the header codec. Pure functions, no sockets.

Every message is one ZeroMQ multipart message: a header frame (a msgpack
array ``[version, type, fields...]``) and, for some types, a payload frame.
``decode`` turns the frames of a gateway -> worker message into an
``Incoming`` or raises ``Malformed``; the ``encode_*`` functions build the
frames of worker -> gateway messages."""

import re
from collections import namedtuple

import msgpack

VERSION = 1

# worker -> gateway
HELLO, REPLY, ERROR, SEND, CLOSE, DRAIN, BYE, PUB, PUBLISH = 1, 2, 3, 4, 5, 6, 7, 8, 9
# gateway -> worker
WELCOME, OPEN, REQ, CLOSED, DRAINING, PUBLISHED = 32, 33, 34, 35, 36, 37

# REQ / OPEN / SEND flags
F_RAW, F_TEXT, F_GW = 0x1, 0x2, 0x4
# per-service flags in HELLO
SVC_RETRY_SAFE = 0x1

SVC_RE = re.compile(r"[a-z0-9_.-]{1,64}\Z")
CODE_RE = re.compile(r"[a-z0-9_]{1,32}\Z")
CHANNEL_RE = re.compile(r"[A-Za-z0-9_.:@/=+-]{1,255}\Z")
MAX_SERVICES = 64
MAX_ID_BYTES = 128
MAX_TEXT_BYTES = 1024  # msg, reason

UINT, STR = "uint", "str"

# Fields of each gateway -> worker type, in order, and whether it carries a
# payload frame. OPTIONAL: trailing fields that may be left out.
_SCHEMA = {
    WELCOME: ((("gateway_id", STR),), (), False),
    OPEN: ((("conn", UINT), ("svc", STR), ("key", STR), ("flags", UINT)), (), False),
    REQ: (
        (("rid", UINT), ("conn", UINT), ("svc", STR), ("key", STR), ("flags", UINT)),
        (("user", STR),),
        True,
    ),
    CLOSED: ((("conn", UINT), ("svc", STR), ("key", STR), ("close_code", UINT)), (), False),
    DRAINING: ((), (), False),
    PUBLISHED: (
        (("ref", UINT), ("code", STR), ("msg", STR), ("offset", UINT), ("epoch", STR)),
        (),
        False,
    ),
}

TYPE_NAMES = {
    HELLO: "HELLO", REPLY: "REPLY", ERROR: "ERROR", SEND: "SEND", CLOSE: "CLOSE",
    DRAIN: "DRAIN", BYE: "BYE", PUB: "PUB", PUBLISH: "PUBLISH", WELCOME: "WELCOME",
    OPEN: "OPEN", REQ: "REQ", CLOSED: "CLOSED", DRAINING: "DRAINING",
    PUBLISHED: "PUBLISHED",
}


class Malformed(ValueError):
    """A message the protocol says to drop (and count)."""


# Incoming.type: int; .fields: dict of the known fields; .payload: bytes or None
Incoming = namedtuple("Incoming", "type fields payload")


def _is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def decode(frames):
    """Frames of one gateway -> worker message -> Incoming. Raises Malformed
    for another version, an unknown type, a field of the wrong type, a
    missing payload frame or more than two frames. Header elements after
    the known fields are ignored (forward compatibility), and so is a
    payload frame on a type that has none."""
    if not frames:
        raise Malformed("no frames")
    if len(frames) > 2:
        raise Malformed("%d frames" % len(frames))
    try:
        hdr = msgpack.unpackb(bytes(frames[0]), raw=False, strict_map_key=False,
                              use_list=True)
    except Exception as e:  # not msgpack, trailing bytes, bad UTF-8 in a str
        raise Malformed("header is not one msgpack value: %s" % e) from None
    if not isinstance(hdr, list) or len(hdr) < 2:
        raise Malformed("header is not an array [version, type, ...]")
    if not _is_uint(hdr[0]) or hdr[0] != VERSION:
        raise Malformed("version %r" % (hdr[0],))
    mtype = hdr[1]
    if not _is_uint(mtype) or mtype not in _SCHEMA:
        raise Malformed("unknown type %r" % (mtype,))
    required, optional, has_payload = _SCHEMA[mtype]
    name = TYPE_NAMES[mtype]
    if len(hdr) < 2 + len(required):
        raise Malformed("%s: %d fields, want %d" % (name, len(hdr) - 2, len(required)))
    fields = {}
    for i, (fname, ftype) in enumerate(required + optional):
        pos = 2 + i
        if pos >= len(hdr):
            break  # an optional field left out
        v = hdr[pos]
        if i >= len(required) and v is None:
            continue  # nil counts as absent for an optional field
        if ftype == UINT and not _is_uint(v):
            raise Malformed("%s: %s is not a uint: %r" % (name, fname, v))
        if ftype == STR and not isinstance(v, str):
            raise Malformed("%s: %s is not a str: %r" % (name, fname, v))
        fields[fname] = v
    payload = None
    if has_payload:
        if len(frames) < 2:
            raise Malformed("%s without its payload frame" % name)
        payload = bytes(frames[1])
    return Incoming(mtype, fields, payload)


def unpack_value(payload):
    """A payload frame that holds one msgpack value -> the value. An empty
    frame is nil. Raises ValueError when it is not exactly one value."""
    if not payload:
        return None
    return msgpack.unpackb(payload, raw=False, strict_map_key=False)


def pack_value(value):
    """One value -> msgpack bytes (str as str, bytes as bin). Raises
    TypeError/ValueError/OverflowError for what msgpack cannot carry."""
    return msgpack.packb(value, use_bin_type=True)


def _header(*elems):
    return msgpack.packb([VERSION] + list(elems), use_bin_type=True)


def clip_utf8(s, limit=MAX_TEXT_BYTES):
    """s cut to at most limit bytes of UTF-8, on a character boundary."""
    if not isinstance(s, str):
        s = str(s)
    b = s.encode("utf-8", "replace")
    if len(b) <= limit:
        return b.decode("utf-8")
    return b[:limit].decode("utf-8", "ignore")


def encode_hello(worker_id, services, svc_flags):
    return [_header(HELLO, worker_id, list(services), list(svc_flags))]


def encode_reply(rid, payload):
    return [_header(REPLY, rid), payload]


def encode_error(rid, code, msg):
    return [_header(ERROR, rid, code, clip_utf8(msg))]


def encode_send(conns, flags, svc, payload):
    return [_header(SEND, list(conns), flags, svc), payload]


def encode_close(conn, close_code, reason):
    return [_header(CLOSE, conn, close_code, clip_utf8(reason))]


def encode_drain():
    return [_header(DRAIN)]


def encode_bye():
    return [_header(BYE)]


def encode_publish(ref, channel, payload):
    return [_header(PUBLISH, ref, channel), payload]
