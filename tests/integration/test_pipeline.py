"""7. missed-wakeup regression: with no timers at all (--ping-ms 0
--request-timeout-ms 0, and HELLOs 10 minutes apart) only the clients' and
the worker's traffic wakes the gateway. Thousands of pipelined
requests must all be answered; a gateway that misses a ZMQ_FD edge (the fd
signals only on a change of state, so events left unread after a wakeup
are never signalled again) stalls here."""

import asyncio
import time

import harness
from harness import GatewayTestCase

N = 5000
DEADLINE = 60.0


class PipelineTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(
            gateway_args=[
                "--ping-ms", "0",
                "--request-timeout-ms", "0",
                "--max-inflight", str(N * 2),   # the limit is not under test here
                "--sendq-msgs", str(N * 4),
                "--sendq-bytes", str(64 << 20),
                # the worker's HELLOs must not wake the gateway either
                "--worker-timeout-ms", "600000",
            ],
            workers=1,
            worker_args=["--mailbox-max", str(N * 4), "--hello-ms", "600000"],
        )

    async def pipeline(self, c, tag, n, deadline):
        """Sends n requests without waiting while a reader collects replies;
        returns the reply ids seen, asserting each data matches."""
        seen = {}
        problems = []

        async def reader():
            while len(seen) < n:
                frame = await c.ws.recv()
                rep = c.decode(frame)
                rid = rep.get("id")
                if rep.get("op") != "res":
                    problems.append(rep)
                elif rep.get("data") != {"i": rid}:
                    problems.append(("wrong data", rep))
                seen[rid] = seen.get(rid, 0) + 1

        task = asyncio.ensure_future(reader())
        for i in range(n):
            # integer ids, unique per connection; keys spread over 50 actors
            await c.send({"id": i, "svc": "echo", "key": "k%d" % (i % 50), "data": {"i": i}})
        try:
            await asyncio.wait_for(task, max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            self.fail(
                "%s: only %d of %d replies within %.0fs (stalled gateway?)"
                % (tag, len(seen), n, DEADLINE)
            )
        self.assertEqual(problems[:5], [], "%s: error replies" % tag)
        self.assertEqual(sorted(seen), list(range(n)), tag)
        dup = {k: v for k, v in seen.items() if v != 1}
        self.assertEqual(dup, {}, "%s: ids answered more than once" % tag)

    async def test_one_client_5000(self):
        c = await self.connect("json")
        deadline = time.monotonic() + DEADLINE * harness.SLOW
        await self.pipeline(c, "client-0", N, deadline)
        # and the gateway still answers afterwards
        await c.echo_ok(self)

    async def test_twenty_clients_5000_each(self):
        clients = [await self.connect("msgpack" if i % 2 else "json") for i in range(20)]
        deadline = time.monotonic() + DEADLINE * harness.SLOW
        await asyncio.gather(
            *(self.pipeline(c, "client-%d" % i, N, deadline) for i, c in enumerate(clients))
        )
        m = self.metrics()
        self.assertGreaterEqual(m.get("wsgate_requests_total"), 20 * N)


if __name__ == "__main__":
    harness.main()
