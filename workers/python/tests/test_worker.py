"""The Worker over real ZeroMQ sockets, against a fake gateway (a ROUTER
in the test): HELLO at connect and on every interval, WELCOME, REQ/REPLY
through the sockets, heartbeat options, the drain (DRAIN, serve until
DRAINING, BYE, run() returns 0), drain_ms, reconnection, and SIGTERM /
SIGINT on the example as a process."""

import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import zmq

from util import P, pack, unpack
from wsgate_worker import ServiceError, Worker

HERE = os.path.dirname(os.path.abspath(__file__))
INVENTORY = os.path.join(HERE, "..", "examples", "inventory.py")


class FakeGateway:
    def __init__(self, port=None):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.setsockopt(zmq.LINGER, 0)
        if port is None:
            self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        else:
            self.port = port
            self.sock.bind("tcp://127.0.0.1:%d" % port)
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.peer = None

    def recv(self, timeout=5.0):
        """(header, payload or None) of the next message."""
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError("nothing from the worker within %.1fs" % timeout)
        frames = self.sock.recv_multipart()
        self.peer = frames[0]
        return unpack(frames[1]), (frames[2] if len(frames) > 2 else None)

    def expect(self, mtype, timeout=5.0, skip=(P.HELLO,)):
        deadline = time.monotonic() + timeout
        while True:
            hdr, payload = self.recv(max(0.01, deadline - time.monotonic()))
            if hdr[1] == mtype:
                return hdr, payload
            if hdr[1] not in skip:
                raise AssertionError("expected type %d, got %r" % (mtype, hdr))

    def send(self, hdr, payload=None):
        frames = [self.peer, pack(hdr)]
        if payload is not None:
            frames.append(payload)
        self.sock.send_multipart(frames)

    def close(self):
        self.sock.close(0)


class Echo:
    def handle(self, ctx, msg):
        if msg.data == "fail":
            raise ServiceError("nope", "asked to fail")
        return {"data": msg.data, "user": msg.user}


class Safe:
    retry_safe = True

    def handle(self, ctx, msg):
        return msg.data


class WorkerThreadTest(unittest.TestCase):
    def start(self, gw, **kw):
        opts = dict(worker_id="py-unit", services={"echo2": Echo, "safe": Safe}, hello_ms=200)
        opts.update(kw)
        self.worker = Worker([gw.endpoint], **opts)
        self.result = []
        self.thread = threading.Thread(target=lambda: self.result.append(self.worker.run()),
                                       daemon=True)
        self.thread.start()

    def tearDown(self):
        if getattr(self, "thread", None) and self.thread.is_alive():
            self.worker.stop()
            self.worker.stop()
            self.thread.join(5)

    def test_hello_req_reply_and_drain(self):
        gw = FakeGateway()
        self.addCleanup(gw.close)
        t0 = time.monotonic()
        self.start(gw)
        hdr, _ = gw.recv()
        self.assertLess(time.monotonic() - t0, 1.0, "HELLO as soon as it connects")
        self.assertEqual(hdr, [1, P.HELLO, "py-unit", ["echo2", "safe"], [0, P.SVC_RETRY_SAFE]])
        gw.send([1, P.WELCOME, "gw-unit"])
        gw.send([1, P.REQ, 5, 42, "echo2", "k", 0, "alice"], pack([1, "two"]))
        hdr, payload = gw.expect(P.REPLY)
        self.assertEqual((hdr, unpack(payload)), ([1, P.REPLY, 5], {"data": [1, "two"],
                                                                    "user": "alice"}))
        gw.send([1, P.REQ, 6, 42, "echo2", "k", 0], pack("fail"))
        hdr, _ = gw.expect(P.ERROR)
        self.assertEqual(hdr, [1, P.ERROR, 6, "nope", "asked to fail"])
        gw.send([1, P.REQ, 7, 42, "nosuch", "k", 0], pack(None))
        self.assertEqual(gw.expect(P.ERROR)[0][3], "no_service")
        gw.send([1, 99])  # malformed: dropped, counted
        s = self.worker.socks[0]
        self.assertEqual((s.getsockopt(zmq.HEARTBEAT_IVL), s.getsockopt(zmq.HEARTBEAT_TIMEOUT)),
                         (1000, 3000))

        self.worker.stop()
        gw.expect(P.DRAIN)
        # sent before DRAINING: still served
        gw.send([1, P.REQ, 8, 42, "echo2", "k", 0], pack("late"))
        hdr, payload = gw.expect(P.REPLY)
        self.assertEqual((hdr[2], unpack(payload)["data"]), (8, "late"))
        time.sleep(0.3)
        self.assertTrue(self.thread.is_alive(), "waits for DRAINING")
        gw.send([1, P.WELCOME, "gw-unit"])
        gw.send([1, P.DRAINING])
        gw.expect(P.BYE)
        self.thread.join(5)
        self.assertEqual(self.result, [0])
        self.assertEqual(self.worker.stats["malformed"], 1)
        self.assertEqual(self.worker.stats["replies"], 2)

    def test_hello_every_interval(self):
        gw = FakeGateway()
        self.addCleanup(gw.close)
        self.start(gw, hello_ms=100)
        n, t_end = 0, time.monotonic() + 0.75
        while time.monotonic() < t_end:
            if gw.sock.poll(50):
                hdr = unpack(gw.sock.recv_multipart()[1])
                n += hdr[1] == P.HELLO
        self.assertGreaterEqual(n, 5)
        self.assertLessEqual(n, 11)

    def test_drain_ms_bounds_the_wait(self):
        gw = FakeGateway()
        self.addCleanup(gw.close)
        self.start(gw, drain_ms=400)
        gw.recv()
        gw.send([1, P.WELCOME, "gw-unit"])
        time.sleep(0.1)
        t0 = time.monotonic()
        self.worker.stop()
        gw.expect(P.DRAIN)
        gw.expect(P.BYE, skip=(P.HELLO,))
        self.assertGreater(time.monotonic() - t0, 0.35)
        self.thread.join(5)
        self.assertEqual(self.result, [0])

    def test_gateway_never_seen_is_not_waited_for(self):
        gw = FakeGateway()
        self.addCleanup(gw.close)
        self.start(gw, drain_ms=10000)
        gw.recv()  # HELLO, never answered
        t0 = time.monotonic()
        self.worker.stop()
        self.thread.join(5)
        self.assertEqual(self.result, [0])
        self.assertLess(time.monotonic() - t0, 2.0)

    def test_hello_again_after_reconnect(self):
        gw = FakeGateway()
        port = gw.port
        self.start(gw, hello_ms=5000)
        gw.recv()
        gw.close()
        time.sleep(0.3)
        gw = FakeGateway(port)  # the gateway restarted
        self.addCleanup(gw.close)
        hdr, _ = gw.recv(timeout=3.0)
        self.assertEqual(hdr[1], P.HELLO, "HELLO at reconnect, not after hello_ms")


    def test_drain_announced_again_to_a_restarted_gateway(self):
        # A gateway that restarted behind the same endpoint (faster than the
        # link was seen down) shows as a WELCOME with another id.
        gw = FakeGateway()
        self.addCleanup(gw.close)
        self.start(gw, hello_ms=100)
        gw.recv()
        gw.send([1, P.WELCOME, "gw-unit"])
        time.sleep(0.1)
        self.worker.stop()
        gw.expect(P.DRAIN)
        gw.send([1, P.WELCOME, "gw-unit-restarted"])
        gw.expect(P.DRAIN)
        time.sleep(0.2)
        self.assertTrue(self.thread.is_alive(), "waits for the new gateway's DRAINING")
        gw.send([1, P.DRAINING])
        gw.expect(P.BYE)
        self.thread.join(5)
        self.assertEqual(self.result, [0])

    def test_gateway_gone_during_drain_not_waited_for(self):
        gw = FakeGateway()
        self.start(gw, hello_ms=100)
        gw.recv()
        gw.send([1, P.WELCOME, "gw-unit"])
        time.sleep(0.1)
        self.worker.stop()
        gw.expect(P.DRAIN)
        gw.close()
        self.thread.join(3)
        self.assertEqual(self.result, [0], "a gateway that is down is not waited for")

    def test_drain_waits_for_published(self):
        class Pub:
            def handle(self, ctx, msg):
                return ctx.publish("stock:x", msg.data)

        gw = FakeGateway()
        self.addCleanup(gw.close)
        self.start(gw, services={"pub": Pub})
        gw.recv()
        gw.send([1, P.WELCOME, "gw-unit"])
        gw.send([1, P.REQ, 1, 1, "pub", "x", 0], pack(5))
        hdr, _ = gw.expect(P.PUBLISH)
        ref = hdr[2]
        gw.expect(P.REPLY)
        self.worker.stop()
        gw.expect(P.DRAIN)
        gw.send([1, P.DRAINING])
        time.sleep(0.3)
        self.assertTrue(self.thread.is_alive(), "BYE waits for the PUBLISHED")
        gw.send([1, P.PUBLISHED, ref, "", "", 1, "e"])
        gw.expect(P.BYE)
        self.thread.join(5)
        self.assertEqual(self.worker.stats["publish_ok"], 1)


class CurveTest(unittest.TestCase):
    """CURVE: the worker is a CURVE client of the gateway's key; its own
    key pair comes from a wsgate-keygen style file (public key derived)."""

    def setUp(self):
        import tempfile
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.server_pub, self.server_sec = zmq.curve_keypair()
        self.client_pub, client_sec = zmq.curve_keypair()
        self.key_file = os.path.join(self.tmp.name, "worker.key")
        with open(self.key_file, "w") as f:
            f.write("secret: %s\n" % client_sec.decode())

    def gateway(self):
        gw = FakeGateway.__new__(FakeGateway)
        gw.ctx = zmq.Context.instance()
        gw.sock = gw.ctx.socket(zmq.ROUTER)
        gw.sock.setsockopt(zmq.LINGER, 0)
        gw.sock.curve_server = True
        gw.sock.curve_secretkey = self.server_sec
        gw.port = gw.sock.bind_to_random_port("tcp://127.0.0.1")
        gw.endpoint = "tcp://127.0.0.1:%d" % gw.port
        gw.peer = None
        self.addCleanup(gw.close)
        return gw

    def run_worker(self, gw, server_key):
        w = Worker([gw.endpoint], "py-curve", {"safe": Safe}, drain_ms=0,
                   curve={"server_key": server_key, "secret_key": self.key_file})
        t = threading.Thread(target=w.run, daemon=True)
        t.start()
        self.addCleanup(lambda: (w.stop(), t.join(5)))
        return w

    def test_curve_link(self):
        gw = self.gateway()
        w = self.run_worker(gw, self.server_pub.decode())
        self.assertEqual(w.curve["public"], self.client_pub)
        hdr, _ = gw.recv()
        self.assertEqual(hdr[:3], [1, P.HELLO, "py-curve"])
        gw.send([1, P.REQ, 1, 1, "safe", "k", 0], pack("over curve"))
        self.assertEqual(unpack(gw.expect(P.REPLY)[1]), "over curve")

    def test_wrong_server_key_never_connects(self):
        gw = self.gateway()
        other_pub, _ = zmq.curve_keypair()
        with self.assertLogs("wsgate_worker", "ERROR") as logs:
            self.run_worker(gw, other_pub.decode())
            self.assertFalse(gw.sock.poll(1000), "nothing gets through")
        self.assertIn("handshake", "\n".join(logs.output))


class SignalTest(unittest.TestCase):
    def run_example(self, sig):
        gw = FakeGateway()
        self.addCleanup(gw.close)
        p = subprocess.Popen([sys.executable, INVENTORY, "--gateway", gw.endpoint, "--id", "inv-1"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        hdr, _ = gw.recv(timeout=10)
        self.assertEqual(hdr, [1, P.HELLO, "inv-1", ["inventory"], [0]])
        gw.send([1, P.WELCOME, "gw-unit"])
        gw.send([1, P.REQ, 1, 3, "inventory", "sku-1", 0], pack({"op": "stock", "qty": 4}))
        self.assertEqual(unpack(gw.expect(P.PUBLISH)[1]), {"sku": "sku-1", "stock": 4})
        self.assertEqual(unpack(gw.expect(P.REPLY)[1]), 4)
        p.send_signal(sig)
        gw.expect(P.DRAIN)
        gw.send([1, P.REQ, 2, 3, "inventory", "sku-1", 0], pack({"op": "buy", "qty": 5}))
        self.assertEqual(gw.expect(P.ERROR, skip=(P.HELLO,))[0][3], "out_of_stock")
        gw.send([1, P.DRAINING])
        gw.expect(P.BYE)
        out, _ = p.communicate(timeout=10)
        self.assertEqual(p.returncode, 0, out.decode())
        self.assertIn(b"exit: requests=2", out)

    def test_sigterm(self):
        self.run_example(signal.SIGTERM)

    def test_sigint(self):
        self.run_example(signal.SIGINT)


if __name__ == "__main__":
    unittest.main()
