"""The backend protocol as docs/backend-protocol.md describes it, driven by
a worker written here in Python (zmq + msgpack): HELLO/WELCOME, REQ with the
default key, REPLY, ERROR with a service's own code, SEND (push), CLOSE,
raw endpoints (OPEN, REQ rid 0, SEND verbatim, CLOSED), replies the client's
encoding cannot carry, trailing header elements, and malformed frames."""

import asyncio

import msgpack
import zmq
import zmq.asyncio

import harness
from harness import GatewayTestCase

HELLO, REPLY, ERROR, SEND, CLOSE = 1, 2, 3, 4, 5
WELCOME, OPEN, REQ, CLOSED = 32, 33, 34, 35
F_RAW, F_TEXT = 0x1, 0x2


def pack(v):
    return msgpack.packb(v, use_bin_type=True)


class PyWorker:
    """A scripted worker: every message from the gateway lands in a queue,
    the test answers by hand. HELLO goes out every 300 ms."""

    def __init__(self, endpoint, wid="py-1", services=("pyecho",)):
        self.ctx = zmq.asyncio.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.wid, self.services = wid, list(services)
        self.inbox = asyncio.Queue()
        self.welcomes = []
        self.tasks = [asyncio.ensure_future(self._hello()), asyncio.ensure_future(self._recv())]

    async def _hello(self):
        while True:
            await self.sock.send_multipart([pack([1, HELLO, self.wid, self.services])])
            await asyncio.sleep(0.3)

    async def _recv(self):
        while True:
            frames = await self.sock.recv_multipart()
            hdr = msgpack.unpackb(frames[0], raw=False)
            if hdr[1] == WELCOME:
                self.welcomes.append(hdr)
                continue
            await self.inbox.put((hdr, frames[1:]))

    async def next(self, timeout=5.0):
        return await asyncio.wait_for(self.inbox.get(), timeout * harness.SLOW)

    async def next_of(self, mtype, timeout=5.0):
        while True:
            hdr, rest = await self.next(timeout)
            if hdr[1] == mtype:
                return hdr, rest

    async def send(self, hdr, payload=None):
        frames = [hdr if isinstance(hdr, bytes) else pack(hdr)]
        if payload is not None:
            frames.append(payload)
        await self.sock.send_multipart(frames)

    def close(self):
        if self.sock.closed:
            return
        for t in self.tasks:
            t.cancel()
        self.sock.close(0)
        self.ctx.term()


class BackendTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(gateway_args=["--raw", "/raw/py=pyecho", "--raw", "/raw/echo=echo"], workers=0)
        self.w = PyWorker(self.cluster.backend)
        # async wait: the worker's HELLO task needs the loop to run
        await self.wait_workers(1)

    async def asyncTearDown(self):
        self.w.close()
        await super().asyncTearDown()

    async def test_hello_welcome_req_reply(self):
        self.assertTrue(self.w.welcomes, "no WELCOME for HELLO")
        self.assertEqual(self.w.welcomes[0][:3], [1, WELCOME, "gw-it"])
        c = await self.connect("json")
        await c.send({"id": 9, "svc": "pyecho", "data": {"x": [1, 2]}})
        hdr, rest = await self.w.next_of(REQ)
        self.assertEqual(len(hdr), 7, hdr)
        _, _, rid, conn, svc, key, flags = hdr
        self.assertNotEqual(rid, 0)
        self.assertEqual((svc, key, flags), ("pyecho", "c:%d" % conn, 0))
        self.assertEqual(msgpack.unpackb(rest[0], raw=False), {"x": [1, 2]})
        await self.w.send([1, REPLY, rid], pack({"y": "z"}))
        rep = await c.recv()
        self.assertEqual(rep, {"v": 1, "op": "res", "id": 9, "data": {"y": "z"}})
        m = self.metrics()
        self.assertGreaterEqual(m.get("wsgate_worker_requests_total", worker="py-1"), 1)

    async def test_every_hello_welcomed_and_service_list_updated(self):
        n = len(self.w.welcomes)
        await asyncio.sleep(1.0)
        self.assertGreaterEqual(len(self.w.welcomes) - n, 2, "WELCOME answers every HELLO")
        c = await self.connect("json")
        self.assertEqual((await c.call("other", id=1))["code"], "no_service")
        # the worker now offers another service: its next HELLO says so
        self.w.services = ["pyecho", "other"]
        await asyncio.sleep(0.7)
        await c.send({"id": 2, "svc": "other"})
        hdr, _ = await self.w.next_of(REQ)
        self.assertEqual(hdr[4], "other")
        await self.w.send([1, REPLY, hdr[2]], pack("ok"))
        self.assertEqual((await c.recv())["data"], "ok")
        self.w.services = ["other"]
        await asyncio.sleep(0.7)
        self.assertEqual((await c.call("pyecho", id=3))["code"], "no_service")

    async def test_key_and_msgpack_client(self):
        c = await self.connect("msgpack")
        await c.send({"id": "a", "svc": "pyecho", "key": "room:1", "data": b"\x00bin"})
        hdr, rest = await self.w.next_of(REQ)
        self.assertEqual(hdr[5], "room:1")
        self.assertEqual(msgpack.unpackb(rest[0], raw=False), b"\x00bin")
        await self.w.send([1, REPLY, hdr[2]], rest[0])
        self.assertEqual((await c.recv())["data"], b"\x00bin")

    async def test_fire_and_forget_reply_not_delivered(self):
        # The gateway may track an id-less request (rid != 0, to count its
        # errors) or not (rid 0); either way the client hears nothing.
        c = await self.connect("json")
        await c.send({"svc": "pyecho", "data": 1})
        hdr, _ = await self.w.next_of(REQ)
        if hdr[2] != 0:
            await self.w.send([1, REPLY, hdr[2]], pack("unwanted"))
        await c.send({"id": 2, "svc": "pyecho"})
        hdr2, _ = await self.w.next_of(REQ)
        await self.w.send([1, REPLY, hdr2[2]], pack("wanted"))
        rep = await c.recv()
        self.assertEqual((rep.get("id"), rep.get("data")), (2, "wanted"), rep)

    async def test_worker_error_with_own_code(self):
        c = await self.connect("json")
        await c.send({"id": 1, "svc": "pyecho"})
        hdr, _ = await self.w.next_of(REQ)
        await self.w.send([1, ERROR, hdr[2], "not_allowed", "no you don't"])
        rep = await c.recv()
        self.assertEqual(rep, {"v": 1, "op": "err", "id": 1, "code": "not_allowed",
                               "msg": "no you don't"})

    async def test_binary_reply_to_json_client_is_internal(self):
        before = self.metric("wsgate_errors_total", code="internal")
        c = await self.connect("json")
        await c.send({"id": 1, "svc": "pyecho"})
        hdr, _ = await self.w.next_of(REQ)
        await self.w.send([1, REPLY, hdr[2]], pack(b"\xff\x00"))
        rep = await c.recv()
        self.assertEqual((rep.get("op"), rep.get("id"), rep.get("code")), ("err", 1, "internal"), rep)
        self.assertEqual(self.metric("wsgate_errors_total", code="internal"), before + 1)

    async def test_send_push_and_close(self):
        c = await self.connect("json")
        await c.send({"id": 1, "svc": "pyecho"})
        hdr, _ = await self.w.next_of(REQ)
        conn = hdr[3]
        await self.w.send([1, REPLY, hdr[2]], pack(None))
        self.assertEqual((await c.recv())["op"], "res")
        await self.w.send([1, SEND, [conn, 999999], 0, "chat"], pack({"msg": "hi"}))
        push = await c.recv()
        self.assertEqual(push, {"v": 1, "op": "push", "svc": "chat", "data": {"msg": "hi"}})
        await self.w.send([1, CLOSE, conn, 4000, "bye"])
        e = await self.assert_closed_with(c.ws, 4000)
        self.assertEqual(e.rcvd.reason, "bye")

    async def test_raw_endpoint_open_req_send_closed(self):
        ws = await self.connect_raw_endpoint("/raw/py")
        hdr, _ = await self.w.next_of(OPEN)
        _, _, conn, svc, key, flags = hdr[:6]
        self.assertEqual(svc, "pyecho")
        self.assertEqual(key, "c:%d" % conn, "a raw connection's actor is keyed by it")
        self.assertTrue(flags & F_RAW, hdr)
        await ws.send("text ✓")
        req, rest = await self.w.next_of(REQ)
        self.assertEqual(req[2], 0, "raw messages carry rid 0")
        self.assertEqual(req[3], conn)
        self.assertEqual(req[5], key)
        self.assertEqual(req[6], F_RAW | F_TEXT)
        self.assertEqual(rest[0], "text ✓".encode())
        await ws.send(b"\x00\xff")
        req, rest = await self.w.next_of(REQ)
        self.assertEqual((req[6], rest[0]), (F_RAW, b"\x00\xff"))
        await self.w.send([1, SEND, [conn], F_RAW | F_TEXT, "pyecho"], "back ✓".encode())
        self.assertEqual(await asyncio.wait_for(ws.recv(), 5), "back ✓")
        await self.w.send([1, SEND, [conn], F_RAW, "pyecho"], b"\x01\x02")
        self.assertEqual(await asyncio.wait_for(ws.recv(), 5), b"\x01\x02")
        await ws.close(1000)
        closed, _ = await self.w.next_of(CLOSED)
        self.assertEqual(closed[:5], [1, CLOSED, conn, "pyecho", key])
        self.assertEqual(closed[5], 1000)

    async def test_trailing_header_elements_ignored(self):
        c = await self.connect("json")
        await c.send({"id": 1, "svc": "pyecho"})
        hdr, _ = await self.w.next_of(REQ)
        await self.w.send([1, REPLY, hdr[2], "future", {"field": 1}], pack("ok"))
        self.assertEqual((await c.recv())["data"], "ok")
        await self.w.send([1, HELLO, "py-1", ["pyecho"], "extra"])
        await asyncio.sleep(0.2)
        self.assertEqual(self.metric("wsgate_workers"), 1)

    async def test_malformed_frames_counted_not_fatal(self):
        before = self.metric("wsgate_backend_malformed_total")
        bad = [
            [b"\xc1"],                          # not msgpack
            [pack({"not": "an array"})],
            [pack([2, REPLY, 1]), pack(1)],     # unknown version
            [pack([1, 99, 1])],                 # unknown type
            [pack([1, REPLY])],                 # missing rid
            [pack([1, REPLY, "rid"]), pack(1)],  # wrong field type
            [pack([1, ERROR, 5, "BAD CODE", "x"])],
        ]
        for frames in bad:
            await self.w.sock.send_multipart(frames)
        await self.wait_metric(
            lambda m: m.get("wsgate_backend_malformed_total") >= before + 5,
            what="wsgate_backend_malformed_total to move",
        )
        c = await self.connect("json")
        await c.send({"id": 1, "svc": "pyecho"})
        hdr, _ = await self.w.next_of(REQ)
        await self.w.send([1, REPLY, hdr[2]], pack("still fine"))
        self.assertEqual((await c.recv())["data"], "still fine")

    async def test_reply_to_unknown_rid_dropped(self):
        before = self.metric("wsgate_replies_dropped_total", reason="unknown_request")
        await self.w.send([1, REPLY, 123456789], pack(1))
        await self.wait_metric(
            lambda m: m.get("wsgate_replies_dropped_total", reason="unknown_request") >= before + 1,
            what='replies_dropped_total{reason="unknown_request"} to move',
        )

    async def test_worker_forgotten_after_silence(self):
        for t in self.w.tasks[:1]:
            t.cancel()  # stop HELLOs
        await self.wait_metric(lambda m: m.get("wsgate_workers") == 0, timeout=8,
                               what="silent worker forgotten (3 missed HELLOs)")
        c = await self.connect("json")
        rep = await c.call("pyecho", id=1)
        self.assertEqual(rep.get("code"), "no_service", rep)


if __name__ == "__main__":
    harness.main()
