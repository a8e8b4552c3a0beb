"""Workers find gateways by themselves (issue 4, Kubernetes): from a DNS
name with one address per gateway (a headless Service) or a file of
endpoints, both re-read every --resolve-ms. A gateway that appears gets a
link and a HELLO at once; one that is no longer listed has its link
closed, and it forgets the worker; a resolver failure closes nothing.

The DNS path is checked with `localhost` (the only name with local
addresses a test can rely on); adding and removing gateways with the
file, which goes through the same bookkeeping."""

import os
import tempfile

import harness
from harness import Cluster, GatewayTestCase, Proc


class DiscoveryTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.dir = tempfile.TemporaryDirectory(prefix="wsgate-disc-")
        self.file = os.path.join(self.dir.name, "gateways")
        self.gw2 = None

    async def asyncTearDown(self):
        await super().asyncTearDown()
        if self.gw2 is not None:
            self.gw2.stop()
        self.dir.cleanup()

    def write(self, *endpoints):
        tmp = self.file + ".tmp"
        with open(tmp, "w") as f:
            f.write("# gateways\n" + "".join(e + "\n" for e in endpoints))
        os.replace(tmp, self.file)  # atomic: the worker never reads half a file

    def worker(self, wid, *args):
        w = Proc(wid, [harness.WORKER_BIN, "--id", wid, "--services", "echo,counter",
                       "--resolve-ms", "200", "--hello-ms", "200"] + list(args),
                 self.cluster.log_path(wid))
        self.cluster.workers[wid] = w
        return w

    async def test_file_adds_and_removes_gateways(self):
        self.cluster.start_gateway(["--worker-timeout-ms", "1000"])
        self.gw2 = Cluster(self.id() + ".gw2")
        self.gw2.start_gateway(["--worker-timeout-ms", "1000"])
        self.write(self.cluster.backend)
        self.worker("wd", "--gateways-file", self.file)
        self.cluster.wait_workers(1)
        self.assertEqual(self.gw2.metric("wsgate_workers"), 0)
        # a second gateway appears in the listing
        self.write(self.cluster.backend, self.gw2.backend)
        self.gw2.wait_workers(1, timeout=5)
        c = await self.connect("json")
        await c.echo_ok(self)
        # the first one is no longer listed: its link closes, it forgets us
        self.write(self.gw2.backend)
        await self.wait_metric(lambda m: m.get("wsgate_workers") == 0, timeout=5,
                               what="gateway 1 forgetting the worker")
        self.gw2.wait_workers(1)
        # a broken listing (file gone) closes nothing
        os.unlink(self.file)
        import asyncio
        await asyncio.sleep(1.0)
        self.assertEqual(self.gw2.metric("wsgate_workers"), 1)
        self.write(self.cluster.backend, self.gw2.backend)
        self.cluster.wait_workers(1, timeout=5)
        await c.echo_ok(self)

    async def test_dns_name(self):
        self.cluster.start_gateway()
        self.worker("wdns", "--gateway-dns", "localhost:%d" % self.cluster.backend_port)
        self.cluster.wait_workers(1)
        c = await self.connect("json")
        await c.echo_ok(self)


    async def test_a_dead_dns_server_does_not_stall_the_worker(self):
        """--gateway-dns is re-resolved on glibc's resolver thread: with a
        DNS server that never answers (and a 30 s resolver timeout), the
        worker keeps heartbeating and answering. Resolving on its own
        thread, as before, it would go silent for 30 s and the gateway
        (worker-timeout-ms 2000) would forget it. The worker runs in its
        own mount namespace with a resolv.conf pointing at 127.0.0.1:53,
        where this test holds a UDP socket that reads and never replies."""
        import asyncio
        import socket
        import subprocess

        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind(("127.0.0.1", 53))
        except OSError as e:
            self.skipTest("127.0.0.1:53 is taken (%s)" % e)
        probe.close()
        resolv = os.path.join(self.dir.name, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:30 attempts:1\n")
        self.cluster.start_gateway(["--worker-timeout-ms", "2000"])
        # nothing listens on :53 yet, so the start-up lookup fails at once
        # (port unreachable); the static --gateway link carries the work
        cmd = ("mount --bind %s /etc/resolv.conf && exec %s --id wdns --services echo "
               "--hello-ms 200 --resolve-ms 300 --gateway %s --gateway-dns gw.wsgate.test:7001"
               % (resolv, harness.WORKER_BIN, self.cluster.backend))
        w = Proc("wdns", ["unshare", "-m", "--propagation", "private", "sh", "-c", cmd],
                 self.cluster.log_path("wdns"))
        self.cluster.workers["wdns"] = w
        self.cluster.wait_workers(1)
        dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dead.bind(("127.0.0.1", 53))
        dead.setblocking(False)
        try:
            c = await self.connect("json")
            queries = 0
            for _ in range(25):  # ~5 s: past two worker timeouts
                await c.echo_ok(self)
                await asyncio.sleep(0.2)
                try:
                    while dead.recv(512):
                        queries += 1
                except BlockingIOError:
                    pass
            self.assertGreater(queries, 0, "the worker never asked the dead DNS server")
            m = self.metrics()
            self.assertEqual(m.get("wsgate_workers"), 1)
            self.assertEqual(m.get("wsgate_workers_left_total"), 0, m.text)
            self.assertTrue(w.alive())
        finally:
            dead.close()
        self.assertEqual(w.terminate()[0], 0)


if __name__ == "__main__":
    harness.main()
