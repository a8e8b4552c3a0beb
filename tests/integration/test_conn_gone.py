"""14. a reply for a connection that closed meanwhile is dropped and counted,
and the gateway carries on."""

import harness
from harness import GatewayTestCase


class ConnGoneTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(workers=1)

    async def test_reply_after_disconnect_dropped(self):
        c = await self.connect("json")
        await c.echo_ok(self)
        m0 = self.metrics()
        w = self.cluster.workers["worker-1"]
        w.sigstop()
        await c.send({"id": 1, "svc": "echo", "data": "orphan"})
        await c.send({"id": 2, "svc": "counter", "key": "orphan"})
        await c.close()
        await self.wait_metric(lambda m: m.get("wsgate_connections") == 0, what="0 connections")
        w.sigcont()
        dropped0 = m0.sum("wsgate_replies_dropped_total")
        await self.wait_metric(
            lambda m: m.sum("wsgate_replies_dropped_total") >= dropped0 + 2,
            what="wsgate_replies_dropped_total (any reason) to move by 2",
        )
        d = await self.connect("json")
        await d.echo_ok(self)
        rep = await d.call("counter", key="orphan")
        self.assertEqual(rep.get("data"), 2, "the orphaned request was still served")


if __name__ == "__main__":
    harness.main()
