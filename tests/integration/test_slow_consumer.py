"""11. slow consumer: a client that never reads is closed (4001) once its
send queue passes --sendq-msgs / --sendq-bytes, while others keep working."""

import asyncio
import json
import socket
import threading

import harness
from harness import GatewayTestCase

CHUNK = "s" * 16000  # each echo reply is ~16 KB
SEND_CAP = 64 << 20  # stop sending after 64 MB whatever happens


class SlowConsumerTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(gateway_args=["--sendq-msgs", "64", "--sendq-bytes", "65536"], workers=1)

    async def test_non_reader_closed_4001(self):
        bystander = await self.connect("json")
        await bystander.echo_ok(self)
        before = self.metric("wsgate_connections_closed_total", reason="slow_consumer")

        r = self.raw("/ws", subprotocol=harness.JSON_PROTO, rcvbuf=4096, timeout=2)
        stop = threading.Event()
        sent = [0, None]  # bytes, the error that ended sending

        def sender():
            i = 0
            while not stop.is_set() and sent[0] < SEND_CAP:
                i += 1
                msg = json.dumps({"id": i, "svc": "echo", "data": CHUNK}).encode()
                try:
                    r.send_frame(harness.OP_TEXT, msg)
                except socket.timeout:
                    continue  # the gateway is not reading right now; try again
                except OSError as e:
                    sent[1] = e
                    return
                sent[0] += len(msg)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        try:
            await self.wait_metric(
                lambda m: m.get("wsgate_connections_closed_total", reason="slow_consumer")
                >= before + 1,
                timeout=30,
                what='closed_total{reason="slow_consumer"} to move',
            )
            # the bystander was never affected
            await bystander.echo_ok(self, {"during": "slow consumer"})
        finally:
            stop.set()
            await asyncio.get_running_loop().run_in_executor(None, t.join, 10)
        # now read what is there: the stream must end, after a 4001 close
        # frame if the gateway could still send one
        kind, code, _ = await asyncio.get_running_loop().run_in_executor(None, r.wait_close, 15)
        if kind == "close":
            self.assertEqual(code, 4001)
        await bystander.echo_ok(self)
        m = self.metrics()
        self.assertEqual(m.get("wsgate_connections"), 1, "only the bystander is left")



class SlowReaderTest(GatewayTestCase):
    """A client that reads slowly, through a small receive buffer, gets
    every reply whole and in order: the gateway's partial writes (an
    io_uring send that wrote part of a frame, whose rest lws then sends)
    must never cut or interleave frames. Pings from the client meanwhile
    make lws write PONGs on the same socket. IO_URING = False runs the
    same with one send() per frame."""

    IO_URING = True

    async def test_slow_reader_gets_every_reply_intact(self):
        self.start(gateway_args=["--io-uring", "true" if self.IO_URING else "false",
                                 "--sendq-msgs", "4096", "--sendq-bytes", str(64 << 20),
                                 "--max-message", str(1 << 20)],
                   workers=1)
        r = self.raw("/ws", subprotocol=harness.JSON_PROTO, rcvbuf=4096, timeout=5)
        # 300 replies of 40 KB: 12 MB, past the kernel's largest send
        # buffer (4 MB), so writes must go partial while we dawdle
        # Sent 20 requests (and a ping) to one write, so the worker's
        # replies come back in bursts: several for this client in one write
        # batch share one send (a sendmsg), which the full socket cuts
        # anywhere, even between frames.
        n = 300
        for k in range(0, n, 20):
            wire = b"".join(r.frame(harness.OP_TEXT, json.dumps(
                {"id": i, "svc": "echo", "data": ("%05d" % i) * 8000}).encode())
                for i in range(k, k + 20))  # 40000 bytes of data, different for each
            r.sock.sendall(wire + r.frame(harness.OP_PING, b"p%d" % k))

        def read_all():
            got = []
            import time as _t
            while len(got) < n:
                op, payload = r.recv_message(timeout=20)
                self.assertEqual(op, harness.OP_TEXT)
                got.append(json.loads(payload))
                if len(got) % 10 == 0:
                    _t.sleep(0.02)  # slow: the socket fills, sends go partial
            return got

        got = await asyncio.get_running_loop().run_in_executor(None, read_all)
        self.assertEqual([g["id"] for g in got], list(range(n)))
        for g in got:
            self.assertEqual(g["data"], ("%05d" % g["id"]) * 8000)
        self.assertEqual(self.metric("wsgate_connections"), 1)
        # the paths this test is for ran: replies that joined an earlier
        # reply's send (one sendmsg), and sends that found the socket full
        if self.IO_URING:
            self.assertGreater(self.metric("wsgate_coalesced_frames_total"), 0)
            self.assertGreater(self.metric("wsgate_partial_sends_total"), 0)
        else:
            self.assertEqual(self.metric("wsgate_batched_sends_total"), 0)


class SlowReaderNoUringTest(SlowReaderTest):
    IO_URING = False


if __name__ == "__main__":
    harness.main()
