"""9. --max-inflight 4 with the worker stopped (SIGSTOP): the 5th request
gets `overloaded` at once; after SIGCONT the first 4 are answered."""

import asyncio

import harness
from harness import GatewayTestCase


class InflightTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(gateway_args=["--max-inflight", "4"], workers=1)

    async def test_fifth_request_overloaded(self):
        c = await self.connect("json")
        await c.echo_ok(self)
        before = self.metric("wsgate_errors_total", code="overloaded")
        w = self.cluster.workers["worker-1"]
        w.sigstop()
        # the gateway forgets a silent worker after ~3 s: all of this is quick
        for i in range(1, 5):
            await c.send({"id": i, "svc": "echo", "data": i})
        await c.send({"id": 5, "svc": "echo", "data": 5})
        rep = await c.recv(2)
        self.assertEqual(rep, {"v": 1, "op": "err", "id": 5, "code": "overloaded",
                               "msg": rep.get("msg")}, rep)
        self.assertEqual(self.metric("wsgate_errors_total", code="overloaded"), before + 1)
        w.sigcont()
        got = sorted([(await c.recv(5))["id"] for _ in range(4)])
        self.assertEqual(got, [1, 2, 3, 4])
        # the slots are free again
        for i in range(6, 10):
            await c.send({"id": i, "svc": "echo", "data": i})
        got = sorted([(await c.recv(5))["id"] for _ in range(4)])
        self.assertEqual(got, [6, 7, 8, 9])
        with self.assertRaises(asyncio.TimeoutError):
            await c.recv(0.5)

    async def test_limit_is_per_connection(self):
        a = await self.connect("json")
        b = await self.connect("json")
        await a.echo_ok(self)
        w = self.cluster.workers["worker-1"]
        w.sigstop()
        for i in range(1, 5):
            await a.send({"id": i, "svc": "echo", "data": i})
        for i in range(1, 5):
            await b.send({"id": i, "svc": "echo", "data": i})
        await asyncio.sleep(0.2)
        w.sigcont()
        for c in (a, b):
            reps = [await c.recv(5) for _ in range(4)]
            self.assertEqual(sorted(r["id"] for r in reps), [1, 2, 3, 4])
            self.assertTrue(all(r["op"] == "res" for r in reps), reps)


if __name__ == "__main__":
    harness.main()
