"""The chan service through wsgate-worker's real ZeroMQ links, with two
gateways played here by ROUTER sockets (no wsgate process): a REQ from one
gateway, and the channel's PUB reaches BOTH (one per gateway link, never
one per subscriber); JOIN goes out the same way; a REQ without the GW flag
is refused; the REQ's user reaches the service; PUBLISHED answers are
counted (the exit line) and failures logged; the worker exits cleanly
with pinned channel actors (the ASan build checks that nothing leaks)."""

import os
import time
import unittest

import msgpack
import zmq

import harness

REPLY, ERROR, PUB, HELLO = 2, 3, 8, 1
WELCOME, REQ, PUBLISHED = 32, 34, 37
F_GW = 0x4
PUB_MSG, PUB_JOIN = 0, 1


def pack(v):
    return msgpack.packb(v, use_bin_type=True)


class FakeGateway:
    """A ROUTER bound on a free port, as a gateway's backend endpoint."""

    def __init__(self, ctx, name):
        self.name = name
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.peer = None

    def recv(self, timeout=5.0):
        """Next message other than HELLO (answered with WELCOME):
        (header list, payload bytes or None)."""
        deadline = time.monotonic() + timeout * harness.SLOW
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: nothing received" % self.name)
            if not self.sock.poll(int(left * 1000)):
                continue
            frames = self.sock.recv_multipart()
            self.peer = frames[0]
            hdr = msgpack.unpackb(frames[1], raw=False)
            payload = frames[2] if len(frames) > 2 else None
            if hdr[1] == HELLO:
                self.send([1, WELCOME, self.name])
                continue
            return hdr, payload

    def recv_type(self, mtype, timeout=5.0):
        while True:
            hdr, payload = self.recv(timeout)
            if hdr[1] == mtype:
                return hdr, payload

    def wait_hello(self, timeout=10.0):
        deadline = time.monotonic() + timeout * harness.SLOW
        while self.peer is None:
            if time.monotonic() > deadline:
                raise AssertionError("%s: no HELLO from the worker" % self.name)
            if self.sock.poll(100):
                frames = self.sock.recv_multipart()
                self.peer = frames[0]
                if msgpack.unpackb(frames[1], raw=False)[1] == HELLO:
                    self.send([1, WELCOME, self.name])

    def send(self, hdr, payload=None):
        frames = [self.peer, pack(hdr)]
        if payload is not None:
            frames.append(payload)
        self.sock.send_multipart(frames)

    def req(self, rid, conn, key, payload, flags=F_GW, user=None):
        hdr = [1, REQ, rid, conn, "chan", key, flags]
        if user is not None:
            hdr.append(user)
        self.send(hdr, pack(payload))


class ChanLinkTest(unittest.TestCase):
    def setUp(self):
        self.ctx = zmq.Context()
        self.gw = [FakeGateway(self.ctx, "gw-a"), FakeGateway(self.ctx, "gw-b")]
        os.makedirs(harness.LOG_DIR, exist_ok=True)
        log = os.path.join(harness.LOG_DIR, "%s.worker.log" % self.id().replace("/", "_"))
        if os.path.exists(log):
            os.unlink(log)
        argv = [harness.WORKER_BIN, "--id", "chan-it", "--services", "chan", "--hello-ms", "200",
                "--drain-ms", "0", "--chan-public", "lobby"]
        for g in self.gw:
            argv += ["--gateway", g.endpoint]
        self.worker = harness.Proc("worker", argv, log)
        for g in self.gw:
            g.wait_hello()
        # The worker broadcasts PUBs only to gateways whose WELCOME it has
        # read. One answered request per link, sent after the WELCOME on the
        # same (ordered) link, proves that it has: without it, a JOIN could
        # be broadcast while gateway b's WELCOME still sat unread (a race
        # seen under a parallel ctest).
        for i, g in enumerate(self.gw):
            g.req(1 + i, 1, "lobby", {"op": "presence", "channel": "lobby", "info": None})
            hdr, _ = g.recv()
            self.assertIn(hdr[1], (REPLY, ERROR), hdr)

    def tearDown(self):
        if self.worker.alive():
            self.worker.kill()
        self.worker.close_log()
        for g in self.gw:
            g.sock.close(0)
        self.ctx.term()

    def test_pub_reaches_every_gateway(self):
        a, b = self.gw
        info = {"sub": ["room:*"], "pub": ["room:*"]}
        # Subscribers on both gateways, several per gateway.
        for i, (g, user) in enumerate([(a, "alice"), (a, "bob"), (b, "carol")]):
            g.req(10 + i, 100 + i, "room:1",
                  {"op": "sub", "channel": "room:1", "user": user, "info": info,
                   "presence": True}, user=user)
            hdr, payload = g.recv_type(REPLY)
            self.assertEqual(hdr[2], 10 + i)
            rep = msgpack.unpackb(payload, raw=False)
            self.assertEqual(rep["recovered"], False)
            self.assertEqual(rep["offset"], 0)
            epoch = rep["epoch"]
            # Each new user's JOIN reaches both gateways.
            for gg in self.gw:
                jh, jp = gg.recv_type(PUB)
                self.assertEqual(jh[:4], [1, PUB, "room:1", PUB_JOIN])
                self.assertEqual(jh[5:7], [epoch, user])
                self.assertEqual(jp, b"\xc0")

        # Three publications from gateway b: each is exactly one PUB on
        # each gateway, in order, with its fields.
        for n in range(1, 4):
            b.req(20 + n, 102, "room:1",
                  {"op": "pub", "channel": "room:1", "user": "carol", "info": info,
                   "data": {"n": n}}, user="carol")
        # On b, the publisher's gateway, replies and PUBs interleave.
        got = {a: [a.recv() for _ in range(3)], b: [b.recv() for _ in range(6)]}
        replies = [m for m in got[b] if m[0][1] == REPLY]
        self.assertEqual([h[2] for h, _ in replies], [21, 22, 23])
        for n, (_, payload) in enumerate(replies, 1):
            self.assertEqual(msgpack.unpackb(payload, raw=False), {"offset": n, "epoch": epoch})
        for g in self.gw:
            pubs = [m for m in got[g] if m[0][1] == PUB]
            self.assertEqual(len(pubs), 3)
            for n, (hdr, payload) in enumerate(pubs, 1):
                self.assertEqual(hdr, [1, PUB, "room:1", PUB_MSG, n, epoch, "carol"])
                self.assertEqual(msgpack.unpackb(payload, raw=False), {"n": n})
        for g in self.gw:
            with self.assertRaises(AssertionError):
                g.recv_type(PUB, timeout=0.3)  # nothing more: not one per subscriber

        # The REQ header's user is used when the payload has none.
        a.req(30, 200, "lobby", {"op": "sub", "presence": True}, user="from-header")
        a.recv_type(REPLY)
        hdr, _ = a.recv_type(PUB)
        self.assertEqual((hdr[2], hdr[3], hdr[6]), ("lobby", PUB_JOIN, "from-header"))

        # A client calling chan directly (no GW flag) is refused.
        a.req(31, 100, "room:1", {"op": "pub", "trusted": True, "data": 1}, flags=0)
        hdr, _ = a.recv_type(ERROR)
        self.assertEqual(hdr[2:4], [31, "forbidden"])

        # PUBLISHED outcomes are counted and failures logged, then a clean
        # exit with pinned channels (the sanitizer build checks leaks).
        a.send([1, PUBLISHED, 1, "", "", 4, epoch])
        a.send([1, PUBLISHED, 2, "forbidden", "not allowed", 0, ""])
        b.send([1, PUBLISHED, 3, "", "", 5, epoch])
        time.sleep(0.3 * harness.SLOW)
        rc, killed = self.worker.terminate()
        self.assertFalse(killed)
        self.assertEqual(rc, 0)
        with open(self.worker.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.assertIn("publish 2 failed: forbidden not allowed", log)
        # 4 JOINs and 3 publications, on 2 gateways each
        self.assertIn("pub 14 pub_dropped 0 publish_ok 2 publish_err 1", log)


if __name__ == "__main__":
    harness.main()
