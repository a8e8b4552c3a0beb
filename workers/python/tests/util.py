"""Helpers for the SDK's unit tests: a fake clock, an output recorder and
builders for gateway -> worker frames."""

import logging
import os
import sys

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from wsgate_worker import protocol as P  # noqa: E402
from wsgate_worker.core import Core  # noqa: E402


def pack(v):
    return msgpack.packb(v, use_bin_type=True)


def unpack(b):
    return msgpack.unpackb(b, raw=False, strict_map_key=False)


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


class Out:
    """Records what the core sends: [(link, header, payload bytes or None)]."""

    def __init__(self):
        self.sent = []
        self.ok = True

    def __call__(self, link, frames):
        frames = [bytes(f) for f in frames]
        self.sent.append((link, unpack(frames[0]), frames[1] if len(frames) > 1 else None))
        return self.ok

    def take(self):
        out, self.sent = self.sent, []
        return out

    def of(self, mtype):
        return [(l, h, p) for (l, h, p) in self.sent if h[1] == mtype]


def req(rid, conn, svc, key, data=None, flags=0, user=None, payload=None):
    hdr = [1, P.REQ, rid, conn, svc, key, flags]
    if user is not None:
        hdr.append(user)
    return [pack(hdr), pack(data) if payload is None else payload]


def welcome(gid="gw-1"):
    return [pack([1, P.WELCOME, gid])]


def make_core(services, links=1, **kw):
    out, clock = Out(), Clock()
    core = Core("w-test", services, ["tcp://gw%d" % i for i in range(links)], out,
                clock=clock, **kw)
    return core, out, clock

# Log records the tests do not assert on stay quiet (assertLogs still sees them).
logging.getLogger("wsgate_worker").addHandler(logging.NullHandler())
