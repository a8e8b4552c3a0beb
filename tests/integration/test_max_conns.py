"""8. --max-conns 5: the 6th upgrade gets HTTP 503, the 5 others keep
working, and once one closes a new connection is admitted."""

import websockets.exceptions

import harness
from harness import GatewayTestCase


class MaxConnsTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(gateway_args=["--max-conns", "5"], workers=1)

    async def expect_503(self, path="/ws"):
        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
            await harness.ws_connect(self.cluster.url(path), [harness.JSON_PROTO])
        self.assertEqual(cm.exception.status_code, 503)

    async def test_sixth_rejected_then_admitted_after_a_close(self):
        before = self.metric("wsgate_connections_rejected_total", reason="max_conns")
        clients = [await self.connect("json") for _ in range(5)]
        await self.wait_metric(lambda m: m.get("wsgate_connections") == 5, what="5 connections")
        await self.expect_503()
        await self.expect_503("/raw/echo")  # raw endpoints count too
        for i, c in enumerate(clients):
            await c.echo_ok(self, {"conn": i})
        m = self.metrics()
        self.assertEqual(m.get("wsgate_connections_rejected_total", reason="max_conns"), before + 2)
        self.assertEqual(m.get("wsgate_connections"), 5)

        await clients[0].close()
        await self.wait_metric(lambda m: m.get("wsgate_connections") == 4, what="4 connections")
        c6 = await self.connect("json")
        await c6.echo_ok(self)
        for c in clients[1:]:
            await c.echo_ok(self)
        await self.expect_503()


if __name__ == "__main__":
    harness.main()
