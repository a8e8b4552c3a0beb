"""5. no worker running: a request gets no_service at once; a message on a
raw endpoint closes that connection with 1013."""

import time

import harness
from harness import GatewayTestCase


class NoWorkerTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(workers=0)

    async def test_request_gets_no_service_at_once(self):
        before = self.metric("wsgate_errors_total", code="no_service")
        c = await self.connect("json")
        t0 = time.monotonic()
        rep = await c.call("echo", "x", id=1, timeout=5)
        dt = time.monotonic() - t0
        self.assertEqual(rep.get("op"), "err", rep)
        self.assertEqual(rep.get("code"), "no_service", rep)
        self.assertEqual(rep.get("id"), 1)
        self.assertLess(dt, 1.0 * harness.SLOW, "no_service must be answered at once")
        m = await self.connect("msgpack")
        rep = await m.call("counter", id="k", key="k")
        self.assertEqual((rep.get("op"), rep.get("code")), ("err", "no_service"), rep)
        self.assertGreaterEqual(self.metric("wsgate_errors_total", code="no_service"), before + 2)

    async def test_raw_message_closes_1013(self):
        ws = await self.connect_raw_endpoint()
        e = await self.assert_closed_with(ws, 1013, send="anyone?")
        self.assertEqual(e.rcvd.reason, "no_service")

    async def test_worker_arrives_later(self):
        c = await self.connect("json")
        rep = await c.call("echo", 1, id=1)
        self.assertEqual(rep.get("code"), "no_service", rep)
        self.cluster.start_worker("worker-late")
        await self.wait_workers(1)
        await c.echo_ok(self)


if __name__ == "__main__":
    harness.main()
