"""Two gateway processes on one public port (--reuseport), each with its own
backend endpoint and admin port, one worker connected to both: the kernel
spreads connections over both processes and requests work through each.
Also: --static serves a directory at /."""

import asyncio
import json
import os
import tempfile
import time
import urllib.error
import urllib.request

import harness
from harness import GATEWAY_BIN, SLOW, WORKER_BIN, Proc, free_port, parse_metrics, ws_connect


def metrics(admin_port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port, timeout=5) as r:
        samples = parse_metrics(r.read().decode())
    return samples


def value(samples, name):
    return samples[(name, frozenset())]


class ReuseportTest(harness.unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.procs = []

    async def asyncTearDown(self):
        for p in reversed(self.procs):
            if p.alive():
                rc, killed = p.terminate()
                self.assertEqual((rc, killed), (0, False), "%s did not exit cleanly:\n%s" % (p.name, p.tail()))
            p.close_log()

    def start_gateway(self, name, port, extra=()):
        admin, backend = free_port(), free_port()
        argv = [GATEWAY_BIN, "--reuseport", "--listen", "127.0.0.1:%d" % port,
                "--admin", "127.0.0.1:%d" % admin, "--backend", "tcp://127.0.0.1:%d" % backend,
                "--id", name] + list(extra)
        p = Proc(name, argv, os.path.join(harness.LOG_DIR, "reuseport.%s.log" % name))
        self.procs.append(p)
        return p, admin, backend

    async def wait_workers(self, admin, n):
        deadline = time.monotonic() + 15 * SLOW
        while time.monotonic() < deadline:
            try:
                if value(metrics(admin), "wsgate_workers") == n:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.05)
        self.fail("gateway on admin port %d never saw %d workers" % (admin, n))

    async def test_two_gateways_share_a_port(self):
        os.makedirs(harness.LOG_DIR, exist_ok=True)
        port = free_port()
        _, admin1, backend1 = self.start_gateway("gw-a", port)
        _, admin2, backend2 = self.start_gateway("gw-b", port)
        w = Proc("worker", [WORKER_BIN, "--id", "w-both",
                            "--gateway", "tcp://127.0.0.1:%d" % backend1,
                            "--gateway", "tcp://127.0.0.1:%d" % backend2],
                 os.path.join(harness.LOG_DIR, "reuseport.worker.log"))
        self.procs.insert(0, w)
        await self.wait_workers(admin1, 1)
        await self.wait_workers(admin2, 1)

        clients = []
        for i in range(60):
            ws = await ws_connect("ws://127.0.0.1:%d/ws" % port)
            clients.append(ws)
        for i, ws in enumerate(clients):
            await ws.send(json.dumps({"id": i, "svc": "counter", "key": "shared"}))
        counts = []
        for i, ws in enumerate(clients):
            rep = json.loads(await asyncio.wait_for(ws.recv(), 10 * SLOW))
            self.assertEqual((rep["op"], rep["id"]), ("res", i), rep)
            counts.append(rep["data"])
        # One worker holds the key's actor whichever gateway the request
        # came through: every increment lands on the same state.
        self.assertEqual(sorted(counts), list(range(1, 61)))
        a = value(metrics(admin1), "wsgate_connections")
        b = value(metrics(admin2), "wsgate_connections")
        self.assertEqual(a + b, 60)
        self.assertGreater(a, 0, "the kernel gave gw-a no connection")
        self.assertGreater(b, 0, "the kernel gave gw-b no connection")
        for ws in clients:
            await ws.close()

    async def test_static_files(self):
        os.makedirs(harness.LOG_DIR, exist_ok=True)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "index.html"), "w") as f:
                f.write("<h1>wsgate static</h1>\n")
            port = free_port()
            p, admin, _ = self.start_gateway("gw-static", port, ["--static", d])
            deadline = time.monotonic() + 15 * SLOW
            body = None
            while time.monotonic() < deadline and body is None:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
                        self.assertEqual(r.status, 200)
                        body = r.read().decode()
                except OSError:
                    await asyncio.sleep(0.05)
            self.assertEqual(body, "<h1>wsgate static</h1>\n")
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen("http://127.0.0.1:%d/missing.html" % port, timeout=5)
            self.assertEqual(cm.exception.code, 404)
            # the websocket endpoint still works beside the files
            ws = await ws_connect("ws://127.0.0.1:%d/ws" % port)
            await ws.send(json.dumps({"id": 1, "svc": "echo", "data": 1}))
            rep = json.loads(await asyncio.wait_for(ws.recv(), 10 * SLOW))
            self.assertEqual(rep["code"], "no_service")
            await ws.close()


if __name__ == "__main__":
    harness.main()
