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


if __name__ == "__main__":
    harness.main()
