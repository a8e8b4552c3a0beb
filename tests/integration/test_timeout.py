"""10. --request-timeout-ms 500 with the worker stopped: the request gets
`timeout`; the worker's late reply is dropped and counted."""

import asyncio
import time

import harness
from harness import GatewayTestCase


class TimeoutTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(gateway_args=["--request-timeout-ms", "500"], workers=1)

    async def test_timeout_then_late_reply_dropped(self):
        c = await self.connect("json")
        await c.echo_ok(self)
        m0 = self.metrics()
        w = self.cluster.workers["worker-1"]
        w.sigstop()
        t0 = time.monotonic()
        await c.send({"id": "slow", "svc": "echo", "data": "late"})
        rep = await c.recv(3)
        dt = time.monotonic() - t0
        self.assertEqual((rep.get("op"), rep.get("id"), rep.get("code")), ("err", "slow", "timeout"), rep)
        self.assertGreater(dt, 0.4, "timeout came before --request-timeout-ms")
        self.assertLess(dt, 2.5 * harness.SLOW, "timeout came far after --request-timeout-ms")
        w.sigcont()
        await self.wait_metric(
            lambda m: m.get("wsgate_replies_dropped_total", reason="unknown_request")
            >= m0.get("wsgate_replies_dropped_total", reason="unknown_request") + 1,
            what='replies_dropped_total{reason="unknown_request"} to move',
        )
        self.assertGreaterEqual(
            self.metric("wsgate_errors_total", code="timeout"),
            m0.get("wsgate_errors_total", code="timeout") + 1,
        )
        # nothing extra reaches the client, and it still works
        with self.assertRaises(asyncio.TimeoutError):
            rep = await c.recv(0.7)
            self.fail("unexpected frame after the timeout: %r" % rep)
        rep = await c.call("echo", "fresh", id="next")
        self.assertEqual(rep.get("data"), "fresh")


if __name__ == "__main__":
    harness.main()
