"""6. two workers: 200 counter keys, each requested 3 times, count 1, 2, 3
(every key sticks to one worker), and both workers get a fair share."""

import asyncio

import harness
from harness import GatewayTestCase

KEYS = ["user:%d" % i for i in range(200)]


class RoutingTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(gateway_args=["--max-inflight", "1000"], workers=2)

    async def round(self, c, r):
        for k in KEYS:
            await c.send({"id": "%s/%d" % (k, r), "svc": "counter", "key": k})
        got = {}
        for _ in KEYS:
            rep = await c.recv(10)
            self.assertEqual(rep.get("op"), "res", rep)
            self.assertNotIn(rep["id"], got, "duplicate reply %r" % rep)
            got[rep["id"]] = rep["data"]
        return got

    async def test_keys_stick_and_spread(self):
        before = self.metrics().series("wsgate_worker_requests_total")
        conns = [await self.connect("json"), await self.connect("msgpack")]
        counts = {k: [] for k in KEYS}
        for r in range(3):
            got = await self.round(conns[r % 2], r)  # alternate connections
            for k in KEYS:
                counts[k].append(got["%s/%d" % (k, r)])
        bad = {k: v for k, v in counts.items() if v != [1, 2, 3]}
        self.assertEqual(bad, {}, "keys whose counts are not 1,2,3 (not sticky)")

        m = self.metrics()
        per = {}
        for w in ("worker-1", "worker-2"):
            per[w] = m.get("wsgate_worker_requests_total", worker=w) - before.get(
                frozenset({("worker", w)}), 0
            )
        total = sum(per.values())
        self.assertGreaterEqual(total, 600, "wsgate_worker_requests_total: %r" % per)
        for w, n in per.items():
            self.assertGreater(n / total, 0.20, "share of %s: %r" % (w, per))
        self.assertGreaterEqual(m.get("wsgate_requests_total"), 600)


if __name__ == "__main__":
    harness.main()
