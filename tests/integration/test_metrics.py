"""/metrics parses as Prometheus text, and its counters and histograms
move as traffic is driven (issue 4)."""

import asyncio
import urllib.error
import urllib.request

import harness
from harness import GatewayTestCase


class ReadyzTest(GatewayTestCase):
    """/readyz: 200 only when a live worker offers every service the
    configuration names (here the default raw endpoint's `echo`)."""

    def readyz(self):
        try:
            return self.cluster.http_get("/readyz")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    async def test_readyz_follows_configured_services(self):
        self.cluster.start_gateway()
        self.assertEqual(self.readyz(), (503, "no live workers\n"))
        self.cluster.start_worker("w-counter", services="counter")
        await self.wait_metric(lambda m: m.get("wsgate_workers") == 1, what="w-counter")
        self.assertEqual(self.readyz(), (503, "no live worker offers echo\n"))
        self.cluster.start_worker("w-echo", services="echo")
        await self.wait_metric(lambda m: m.get("wsgate_workers") == 2, what="w-echo")
        self.assertEqual(self.readyz(), (200, "ready\n"))
        self.assertEqual(self.cluster.http_get("/healthz"), (200, "ok\n"))

    async def test_admin_connections_that_send_nothing_or_garbage(self):
        """A port probe (connect, close: what run-main.sh and load
        balancers do), a half request and bytes that are not HTTP must not
        harm the admin listener (this once crashed the gateway)."""
        import socket
        self.cluster.start_gateway()
        for payload in (b"", b"GET /metr", b"\x00\xff\x16\x03\x01garbage\r\n\r\n",
                        b"POST /publish HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"):
            s = socket.create_connection(("127.0.0.1", self.cluster.admin_port), timeout=5)
            if payload:
                s.sendall(payload)
            s.close()
        self.assertEqual(self.cluster.http_get("/healthz"), (200, "ok\n"))
        self.assertTrue(self.cluster.gateway.alive())


class WorkerMetricsTest(GatewayTestCase):
    """A worker's own /metrics (--metrics HOST:PORT): actors, mailbox
    depth, messages handled by service and result."""

    def get(self, port, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    async def test_worker_metrics_move(self):
        import socket
        port = harness.free_port()
        self.cluster.start_gateway()
        self.cluster.start_worker("wm", services="echo,counter",
                                  args=["--metrics", "127.0.0.1:%d" % port])
        await self.wait_metric(lambda m: m.get("wsgate_workers") == 1, what="the worker")
        c = await self.connect("json")
        for i in range(7):
            self.assertEqual((await c.call("counter", key="k%d" % (i % 3)))["op"], "res")
        await c.echo_ok(self)
        # a port probe and a request that never ends do not block the worker
        s1 = socket.create_connection(("127.0.0.1", port))
        s1.close()
        s2 = socket.create_connection(("127.0.0.1", port))
        s2.sendall(b"GET /metr")
        await c.echo_ok(self)
        status, text = self.get(port, "/metrics")
        s2.close()
        self.assertEqual(status, 200)
        m = harness.Metrics(harness.parse_metrics(text), text)
        self.assertEqual(m.get("wsgate_worker_handled_total", service="counter", result="ok"), 7)
        self.assertEqual(m.get("wsgate_worker_handled_total", service="echo", result="ok"), 2)
        self.assertEqual(m.get("wsgate_worker_handled_total", service="counter", result="error"), 0)
        self.assertGreaterEqual(m.get("wsgate_worker_actors"), 4)  # k0..k2 and the echo actor
        self.assertEqual(m.get("wsgate_worker_mailbox_depth"), 0)
        self.assertGreaterEqual(m.get("wsgate_worker_messages_received_total"), 9)
        self.assertEqual(self.get(port, "/other")[0], 404)
        # every client slot (8) taken by a request that never ends, on an
        # otherwise idle worker: each is dropped after 2 s, then a scrape
        # is answered again
        stalled = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /metr")
            stalled.append(s)
        await asyncio.sleep(0.3)
        for s in stalled:
            s.settimeout(5 * harness.SLOW)
            self.assertEqual(s.recv(100), b"", "a stalled metrics client was not dropped")
            s.close()
        self.assertEqual(self.get(port, "/metrics")[0], 200)


class MetricsTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(workers=1)

    def hist(self, m, name):
        buckets = sorted(
            ((float(dict(labels)["le"]), v) for (n, labels), v in m.samples.items()
             if n == name + "_bucket"),
            key=lambda b: b[0])
        return buckets, m.get(name + "_count"), m.get(name + "_sum")

    async def test_counters_and_histograms_move(self):
        before = self.metrics()  # parse_metrics raises on any malformed line
        clients = [await self.connect("json") for _ in range(5)]
        for c in clients:
            for _ in range(4):
                await c.echo_ok(self, "x" * 10)
        after = await self.wait_metric(
            lambda m: m.get("wsgate_request_seconds_count")
            >= before.get("wsgate_request_seconds_count") + 20,
            what="20 requests in the request histogram")
        for name, at_least in [("wsgate_connections_opened_total", 5),
                               ("wsgate_messages_in_total", 20),
                               ("wsgate_messages_out_total", 20),
                               ("wsgate_requests_total", 20),
                               ("wsgate_replies_total", 20),
                               ("wsgate_bytes_in_total", 20 * 10)]:
            self.assertGreaterEqual(after.get(name) - before.get(name), at_least, name)
        self.assertEqual(after.get("wsgate_connections"), 5)
        for name, n in [("wsgate_handshake_seconds", 5), ("wsgate_request_seconds", 20)]:
            buckets, count, total = self.hist(after, name)
            _, count0, _ = self.hist(before, name)
            self.assertGreaterEqual(count - count0, n, name)
            self.assertEqual(buckets[-1], (float("inf"), count), name)
            values = [v for _, v in buckets]
            self.assertEqual(values, sorted(values), "%s buckets are not cumulative" % name)
            self.assertGreater(total, 0)
            self.assertLess(total / count, 1.0, "%s: mean over a second on loopback" % name)


if __name__ == "__main__":
    harness.main()
