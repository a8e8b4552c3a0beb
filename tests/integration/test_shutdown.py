"""13. clean shutdown: SIGTERM/SIGINT to the gateway closes clients with
1001 and exits 0; SIGTERM to a worker exits 0. Also the ready line."""

import asyncio
import re
import signal

import websockets.exceptions

import harness
from harness import GatewayTestCase, close_code


class ShutdownTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(workers=1)

    async def shutdown_with(self, sig):
        j = await self.connect("json")
        m = await self.connect("msgpack")
        raw = await self.connect_raw_endpoint()
        await j.echo_ok(self)
        await m.echo_ok(self)
        gw = self.cluster.gateway
        gw.p.send_signal(sig)
        for ws in (j.ws, m.ws, raw):
            with self.assertRaises(websockets.exceptions.ConnectionClosed) as cm:
                await asyncio.wait_for(ws.recv(), 5 * harness.SLOW)
            self.assertEqual(close_code(cm.exception), 1001, str(cm.exception))
        rc = await asyncio.get_running_loop().run_in_executor(None, gw.p.wait, 10 * harness.SLOW)
        self.assertEqual(rc, 0, "gateway exit status after %s" % sig.name)

    async def test_sigterm_gateway(self):
        await self.shutdown_with(signal.SIGTERM)

    async def test_sigint_gateway(self):
        await self.shutdown_with(signal.SIGINT)

    async def test_drain_spreads_closes(self):
        """--drain-ms: the 1001 closes come spread over the period, and a
        client not closed yet is still served meanwhile."""
        await self.cluster_restart_with_drain(1500)
        clients = [await self.connect("json") for _ in range(30)]
        loop = asyncio.get_running_loop()
        closed_at = {}

        async def watch(i, c):
            try:
                await c.ws.recv()
            except websockets.exceptions.ConnectionClosed as e:
                closed_at[i] = (loop.time(), close_code(e))

        tasks = [asyncio.ensure_future(watch(i, c)) for i, c in enumerate(clients)]
        t0 = loop.time()
        self.cluster.gateway.p.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        still = [c for i, c in enumerate(clients) if i not in closed_at]
        self.assertTrue(still, "every client was closed at once")
        await asyncio.wait_for(asyncio.gather(*tasks), 10 * harness.SLOW)
        self.assertEqual({code for _, code in closed_at.values()}, {1001})
        times = sorted(t - t0 for t, _ in closed_at.values())
        self.assertGreater(times[-1] - times[0], 0.8, "closes not spread: %s" % times)
        self.assertLess(times[-1], 4.0 * harness.SLOW)
        rc = await loop.run_in_executor(None, self.cluster.gateway.p.wait, 10 * harness.SLOW)
        self.assertEqual(rc, 0)

    async def cluster_restart_with_drain(self, ms):
        self.cluster.stop()
        self.cluster = harness.Cluster(self.id())
        self.start(gateway_args=["--drain-ms", str(ms)], workers=1)

    async def test_sigterm_worker(self):
        w = self.cluster.workers["worker-1"]
        rc, killed = w.terminate()
        self.assertFalse(killed, "worker ignored SIGTERM for 10s")
        self.assertEqual(rc, 0, "worker exit status on SIGTERM")
        # The gateway forgets the silent worker after ~3 missed HELLOs, with
        # or without traffic: first the gauge alone (no request may nudge
        # it), then a request.
        gauge_failure = None
        try:
            await self.wait_metric(lambda m: m.get("wsgate_workers") == 0, timeout=8,
                                   what="wsgate_workers 0 without any traffic")
        except AssertionError as e:
            gauge_failure = e
        c = await self.connect("json")
        rep = await c.call("echo", 1, id=1)
        self.assertEqual(rep.get("code"), "no_service", rep)
        if gauge_failure:
            raise gauge_failure

    async def test_ready_line_and_healthz(self):
        with open(self.cluster.gateway.log_path, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        want = "wsgate: info: listening on ws://127.0.0.1:%d/ws, admin http://127.0.0.1:%d, backend %s" % (
            self.cluster.port, self.cluster.admin_port, self.cluster.backend)
        self.assertIn(want, log)
        status, _ = self.cluster.http_get("/healthz")
        self.assertEqual(status, 200)
        m = self.metrics()
        for name in ("wsgate_connections", "wsgate_workers", "wsgate_requests_total",
                     "wsgate_connections_opened_total"):
            self.assertTrue(m.has(name), "metric %s missing from /metrics" % name)
        self.assertIn("# TYPE wsgate_connections gauge", m.text)


if __name__ == "__main__":
    harness.main()
