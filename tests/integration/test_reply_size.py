"""A worker reply larger than the client's whole send queue cannot be
delivered: the client gets `too_large` for that request and keeps its
connection (it did nothing wrong), and smaller replies still arrive."""

import harness
from harness import GatewayTestCase


class ReplySizeTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(gateway_args=["--sendq-bytes", "2048", "--max-message", "65536"], workers=1)

    async def test_reply_over_send_queue_is_too_large(self):
        c = await self.connect("json")
        before = self.metric("wsgate_errors_total", code="too_large")
        rep = await c.call("echo", "x" * 4000, id=1)
        self.assertEqual((rep.get("op"), rep.get("code"), rep.get("id")), ("err", "too_large", 1), rep)
        rep = await c.call("echo", "y" * 1000, id=2)
        self.assertEqual((rep.get("op"), rep.get("data")), ("res", "y" * 1000), rep)
        self.assertEqual(self.metric("wsgate_errors_total", code="too_large"), before + 1)
        self.assertEqual(self.metric("wsgate_connections_closed_total", reason="slow_consumer"), 0)


if __name__ == "__main__":
    harness.main()
