"""The Python worker SDK (workers/python) beside a C worker, on a real
gateway: one wsgate-worker (echo, counter, chan with stock:* public) and
two Python inventory workers (workers/python/examples/inventory.py).

- 50 websocket clients buy random quantities of a few SKUs at once: every
  request gets exactly one answer (the remaining stock or out_of_stock),
  no SKU ever sells more than its stock, the successful buys of a SKU form
  one unbroken chain of remaining counts (its actor took them one at a
  time), the final get is the stock minus what was sold, and a subscriber
  of stock:<sku> sees every change, in order; echo through the C worker
  works all the while;
- SIGTERM drains one Python worker under load (exit 0, no request lost,
  its keys served by the other), then kill -9 of the other answers the
  requests it held `unavailable` (inventory is not retry-safe), never
  silence; a new Python worker serves again.
"""

import asyncio
import itertools
import os
import random
import sys
import time

import harness
from harness import SLOW, GatewayTestCase

INVENTORY = os.path.join(harness.ROOT, "workers", "python", "examples", "inventory.py")
GATEWAY_ARGS = ["--worker-timeout-ms", "3000", "--request-timeout-ms", "8000"]
# HELLOs four times a second: a worker starved of CPU on a busy machine is
# not taken for dead (see test_failover).
PY_ARGS = ["--hello-ms", "250"]
CLIENTS = 50
SKUS_PER_WORKER = 3

_ids = itertools.count(1)


class Ledger:
    """Every request sent (id -> (client, sku, op, qty, t)) and every reply
    (id -> [(reply, t)]): a request answered twice shows as two entries."""

    def __init__(self):
        self.sent = {}
        self.replies = {}
        self.waiters = {}

    async def call(self, c, sku, op, qty=None):
        i = next(_ids)
        data = {"op": op}
        if qty is not None:
            data["qty"] = qty
        fut = asyncio.get_running_loop().create_future()
        self.waiters[i] = fut
        self.sent[i] = (c, sku, op, qty, time.monotonic())
        await c.send({"id": i, "svc": "inventory", "key": sku, "data": data})
        return i, fut

    def on_reply(self, rep):
        i = rep.get("id")
        self.replies.setdefault(i, []).append((rep, time.monotonic()))
        fut = self.waiters.pop(i, None)
        if fut is not None and not fut.done():
            fut.set_result(rep)

    async def reader(self, c):
        while True:
            self.on_reply(c.decode(await c.ws.recv()))

    def outcome(self, i):
        rep = self.replies[i][0][0]
        return "res" if rep.get("op") == "res" else rep.get("code")

    def outcomes(self, ids=None):
        out = {}
        for i in (self.sent if ids is None else ids):
            if i in self.replies:
                k = self.outcome(i)
                out[k] = out.get(k, 0) + 1
        return out

    def check_exactly_once(self, tc):
        missing = [i for i in self.sent if i not in self.replies]
        twice = [(i, r) for i, r in self.replies.items() if len(r) > 1]
        stray = [i for i in self.replies if i not in self.sent]
        tc.assertEqual(missing[:10], [], "%d requests never answered" % len(missing))
        tc.assertEqual(twice[:3], [], "a request answered more than once")
        tc.assertEqual(stray[:3], [], "replies to ids never sent")

    async def settle(self, tc, timeout=15.0):
        deadline = time.monotonic() + timeout * SLOW
        while self.waiters and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.check_exactly_once(tc)


class PythonWorkerTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.readers = []
        # WSGATE_IT_SEED=N gives the same request mix again (the seed is printed)
        self.seed = int(os.environ.get("WSGATE_IT_SEED", time.time_ns() % 10**6))
        sys.stderr.write("\nseed %d\n" % self.seed)
        self.rng = random.Random(self.seed)
        self.cluster.start_gateway(GATEWAY_ARGS)
        self.cluster.start_worker("c-1", services="echo,counter,chan",
                                  args=["--chan-public", "stock:*"])
        for wid in ("py-1", "py-2"):
            self.start_py(wid)
        await self.wait_workers(3)
        self.ledger = Ledger()

    async def asyncTearDown(self):
        for t in self.readers:
            t.cancel()
        await super().asyncTearDown()

    def start_py(self, wid):
        path = self.cluster.log_path(wid)
        if os.path.exists(path):
            os.unlink(path)
        p = harness.Proc(wid, [sys.executable, "-B", INVENTORY, "--gateway", self.cluster.backend,
                               "--id", wid] + PY_ARGS, path)
        self.cluster.workers[wid] = p
        return p

    async def client(self, reader=True):
        c = await self.connect("json")
        if reader:
            self.readers.append(asyncio.ensure_future(self.ledger.reader(c)))
        return c

    async def call(self, c, sku, op, qty=None, timeout=5.0):
        _, fut = await self.ledger.call(c, sku, op, qty)
        return await asyncio.wait_for(fut, timeout * SLOW)

    async def requests_to(self, wid):
        return self.metric("wsgate_worker_requests_total", worker=wid)

    async def skus_by_worker(self, c):
        """SKUs whose actor lives on py-1 and on py-2, found by watching
        which worker's request counter moves for a get."""
        found = {"py-1": [], "py-2": []}
        for n in range(64):
            sku = "sku-%d" % n
            before = await self.requests_to("py-1"), await self.requests_to("py-2")
            rep = await self.call(c, sku, "get")
            self.assertEqual((rep["op"], rep["data"]), ("res", 0), rep)
            after = await self.requests_to("py-1"), await self.requests_to("py-2")
            moved = [w for w, b, a in zip(("py-1", "py-2"), before, after) if a > b]
            self.assertEqual(len(moved), 1, (sku, before, after))
            if len(found[moved[0]]) < SKUS_PER_WORKER:
                found[moved[0]].append(sku)
            if all(len(v) == SKUS_PER_WORKER for v in found.values()):
                return found
        self.fail("64 SKUs did not spread over both Python workers: %s" % found)

    def check_chain(self, sku, stock, ids):
        """The successful buys of sku, in the order the actor took them (by
        the remaining count they report), each take exactly their qty from
        what the previous one left: no lost update, no double sale."""
        buys = sorted(((self.ledger.replies[i][0][0]["data"], self.ledger.sent[i][3])
                       for i in ids if self.ledger.outcome(i) == "res"), reverse=True)
        left = stock
        chain = []
        for remaining, qty in buys:
            self.assertEqual(remaining, left - qty, "%s: a buy of %d after %d left reports %d"
                             % (sku, qty, left, remaining))
            self.assertGreaterEqual(remaining, 0)
            left = remaining
            chain.append(remaining)
        return chain

    # ---------------------------------------------------------------------

    async def test_concurrent_buys_never_oversell(self):
        STOCK = 400
        admin = await self.client()
        owners = await self.skus_by_worker(admin)
        skus = owners["py-1"] + owners["py-2"]

        # a subscriber of every SKU's channel (stock:* is public on chan)
        sub = await self.connect("json")
        events = {sku: [] for sku in skus}
        for n, sku in enumerate(skus):
            await sub.send({"op": "sub", "id": "s%d" % n, "channel": "stock:" + sku})
            rep = await sub.recv()
            self.assertEqual((rep["op"], rep["id"]), ("res", "s%d" % n), rep)

        async def listen():
            while True:
                ev = sub.decode(await sub.ws.recv())
                if ev.get("op") == "msg":
                    events[ev["channel"][len("stock:"):]].append(ev)
        self.readers.append(asyncio.ensure_future(listen()))

        for sku in skus:
            rep = await self.call(admin, sku, "stock", STOCK)
            self.assertEqual(rep["data"], STOCK, rep)

        shoppers = [await self.client() for _ in range(CLIENTS)]
        echoers = [await self.connect("json") for _ in range(5)]
        demand = {sku: 0 for sku in skus}

        async def shop(c, n=40, window=4):
            pending = set()
            for _ in range(n):
                sku, qty = self.rng.choice(skus), self.rng.randint(1, 4)
                demand[sku] += qty
                _, fut = await self.ledger.call(c, sku, "buy", qty)
                pending.add(fut)
                if len(pending) >= window:
                    _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if pending:
                await asyncio.wait(pending, timeout=15 * SLOW)

        async def echo(c, n=40):
            for k in range(n):
                data = {"k": k, "s": "é" * self.rng.randint(0, 50)}
                rep = await c.call("echo", data, timeout=10)
                self.assertEqual((rep["op"], rep["data"]), ("res", data), rep)
            return n

        t0 = time.monotonic()
        results = await asyncio.gather(*[shop(c) for c in shoppers],
                                       *[echo(c) for c in echoers])
        self.assertEqual(sum(r for r in results if r), 5 * 40, "every echo came back")
        await self.ledger.settle(self)
        buys = [i for i, s in self.ledger.sent.items() if s[2] == "buy"]
        self.assertEqual(len(buys), CLIENTS * 40)
        out = self.ledger.outcomes(buys)
        self.assertEqual(set(out), {"res", "out_of_stock"}, out)
        elapsed = time.monotonic() - t0

        for sku in skus:
            ids = [i for i in buys if self.ledger.sent[i][1] == sku]
            sold = sum(self.ledger.sent[i][3] for i in ids if self.ledger.outcome(i) == "res")
            self.assertLessEqual(sold, STOCK, "%s oversold" % sku)
            self.assertGreater(demand[sku], STOCK, "the test must ask for more than there is")
            self.assertIn("out_of_stock", self.ledger.outcomes(ids), sku)
            chain = self.check_chain(sku, STOCK, ids)
            final = (await self.call(admin, sku, "get"))["data"]
            self.assertEqual(final, STOCK - sold, sku)
            # every change was published, in order: the stock set, then each buy
            want = [STOCK] + chain
            deadline = time.monotonic() + 5 * SLOW
            while len(events[sku]) < len(want) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            got = [ev["data"] for ev in events[sku]]
            self.assertEqual([g["stock"] for g in got], want, "%s: publications" % sku)
            self.assertEqual({g["sku"] for g in got}, {sku})
            offsets = [ev["offset"] for ev in events[sku]]
            self.assertEqual(offsets, list(range(offsets[0], offsets[0] + len(offsets))))
            self.assertEqual(len({ev["epoch"] for ev in events[sku]}), 1)
        print("\n%d buys from %d clients in %.2fs: %s" % (len(buys), CLIENTS, elapsed, out))
        for wid in ("py-1", "py-2"):
            self.assertGreater(await self.requests_to(wid), 0)

    async def test_drain_then_kill9(self):
        STOCK = 10**6
        admin = await self.client()
        owners = await self.skus_by_worker(admin)
        skus = owners["py-1"] + owners["py-2"]
        for sku in skus:
            self.assertEqual((await self.call(admin, sku, "stock", STOCK))["data"], STOCK)
        shoppers = [await self.client() for _ in range(CLIENTS)]
        stop = asyncio.Event()

        async def shop(c, window=2):
            pending = set()
            while not stop.is_set():
                _, fut = await self.ledger.call(c, self.rng.choice(skus), "buy", 1)
                pending.add(fut)
                if len(pending) >= window:
                    _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if pending:
                await asyncio.wait(pending, timeout=15 * SLOW)

        # --- SIGTERM py-1 under load: it drains, nothing is lost
        load = [asyncio.ensure_future(shop(c)) for c in shoppers]
        await asyncio.sleep(1.5)
        n_before = len(self.ledger.sent)
        self.assertGreater(len(self.ledger.replies), 200, "the load is running")
        py1 = self.cluster.workers.pop("py-1")
        t_term = time.monotonic()
        rc, killed = await asyncio.get_running_loop().run_in_executor(None, py1.terminate)
        py1.close_log()
        self.assertEqual((rc, killed), (0, False), py1.tail())
        self.assertIn("draining acknowledged", py1.tail())
        self.assertLess(time.monotonic() - t_term, 5 * SLOW, "the drain took too long")
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*load)
        await self.ledger.settle(self)
        out = self.ledger.outcomes()
        self.assertEqual(set(out) - {"res", "out_of_stock"}, set(),
                         "a drain must lose nothing: %s" % out)
        self.assertGreater(len(self.ledger.sent), n_before + 100, "load went on during the drain")
        self.assertGreaterEqual(self.metric("wsgate_workers_drained_total"), 1)
        await self.wait_workers(2)
        # py-1's SKUs: its actor sold from STOCK without a break, and the
        # drained worker's keys are now py-2's (fresh actors: stock 0).
        for sku in skus:
            ids = [i for i, s in self.ledger.sent.items() if s[1] == sku and s[2] == "buy"]
            self.check_chain(sku, STOCK, ids)
        # (gets only: a PUBLISH also counts in the publishing worker's
        # wsgate_worker_requests_total)
        before = await self.requests_to("py-2")
        for sku in owners["py-1"]:
            self.assertEqual((await self.call(admin, sku, "get"))["data"], 0)
        self.assertEqual(await self.requests_to("py-2") - before, len(owners["py-1"]))
        for sku in owners["py-1"]:
            self.assertEqual((await self.call(admin, sku, "stock", 5))["data"], 5)
            self.assertEqual((await self.call(admin, sku, "buy", 2))["data"], 3)

        # --- kill -9 py-2 while it holds requests: they are answered
        # `unavailable`, not left to time out. SIGSTOP first, so that requests
        # are certainly waiting at the worker when it dies.
        clients = [await self.client() for _ in range(10)]
        py2 = self.cluster.workers.pop("py-2")
        py2.sigstop()
        held = []
        for k, c in enumerate(clients):
            for _ in range(3):
                i, _ = await self.ledger.call(c, skus[k % len(skus)], "buy", 1)
                held.append(i)
        await asyncio.sleep(0.3)
        self.assertEqual([i for i in held if i in self.ledger.replies], [],
                         "a stopped worker answers nothing")
        t_kill = time.monotonic()
        py2.kill()
        py2.close_log()
        await self.ledger.settle(self, timeout=10)
        self.assertEqual(self.ledger.outcomes(held), {"unavailable": len(held)},
                         "requests held by a killed worker: unavailable")
        t_last = max(self.ledger.replies[i][0][1] for i in held)
        self.assertLess(t_last - t_kill, 5 * SLOW,
                        "unavailable should come with the worker's death")
        await self.wait_workers(1)
        rep = await self.call(admin, skus[0], "get")
        self.assertEqual(rep.get("code"), "no_service", rep)

        # a new Python worker serves the keys again; echo was never affected
        self.start_py("py-3")
        await self.wait_workers(2)
        for sku in skus:
            self.assertEqual((await self.call(admin, sku, "get"))["data"], 0)
        await (await self.connect("json")).echo_ok(self)


if __name__ == "__main__":
    harness.main()
