"""A cut link, made real: the whole test runs in a private network
namespace (ip netns), so routing changes on its loopback touch nothing
else on the machine. One worker reaches the gateway from its own source
address, 127.0.0.2; policy routing then blackholes every packet from and
to that address, with no FIN or RST: what a dead switch port or a
partitioned pod looks like. (tc would be the usual tool, but this
kernel has no tc action or classifier modules; policy rules need none.)

Under steady load from a real client: the gateway forgets the silent
worker after --worker-timeout-ms, every request gets exactly one reply
(result, `unavailable` or `timeout`), no client connection drops, the
other worker serves every key within a bounded time. Restore the link:
the worker's own ZeroMQ heartbeat has dropped the dead TCP connection, it
reconnects, says HELLO and takes its share again.

Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iproute2; CI runs as root."""

import asyncio
import ctypes
import os
import subprocess
import time

import harness
from harness import GatewayTestCase, Proc

CLONE_NEWNET = 0x40000000
NS = "wsgate-it-%d" % os.getpid()


def sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def enter_private_netns():
    sh("ip", "netns", "add", NS)
    fd = os.open("/var/run/netns/" + NS, os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)
    sh("ip", "link", "set", "lo", "up")
    # local delivery is looked up after our rules, so they can cut it
    sh("ip", "rule", "add", "pref", "100", "table", "local")
    sh("ip", "rule", "del", "pref", "0")
    # the name is only needed to enter; the namespace lives while we do
    sh("ip", "netns", "del", NS)


def cut(addr):
    sh("ip", "rule", "add", "pref", "10", "from", addr, "blackhole")
    sh("ip", "rule", "add", "pref", "11", "to", addr, "blackhole")


def restore():
    sh("ip", "rule", "del", "pref", "10")
    sh("ip", "rule", "del", "pref", "11")


class CutLinkTest(GatewayTestCase):
    expect_clean_exit = True

    async def asyncSetUp(self):
        await super().asyncSetUp()
        if os.geteuid() != 0:
            self.skipTest("network namespaces need root")
        enter_private_netns()

    def start_worker_from(self, wid, source):
        # ZeroMQ's "source;destination" endpoint: this worker's packets
        # carry its own address, so tc can single them out
        ep = "tcp://%s:0;127.0.0.1:%d" % (source, self.cluster.backend_port)
        w = Proc(wid, [harness.WORKER_BIN, "--gateway", ep, "--id", wid, "--services",
                       "echo,counter", "--hello-ms", "300"], self.cluster.log_path(wid))
        self.cluster.workers[wid] = w
        return w

    async def test_cut_link_is_detected_and_healed(self):
        self.cluster.start_gateway(["--worker-timeout-ms", "1500", "--request-timeout-ms", "3000"])
        self.start_worker_from("w-cut", "127.0.0.2")
        self.start_worker_from("w-ok", "127.0.0.1")
        self.cluster.wait_workers(2)

        clients = [await self.connect("json") for _ in range(4)]
        answers = {"res": 0, "unavailable": 0, "timeout": 0}
        keys = ["k%d" % i for i in range(64)]
        stop = asyncio.Event()

        async def load(c, n):
            i = n
            while not stop.is_set():
                rep = await c.call("counter", key=keys[i % len(keys)], timeout=10)
                if rep["op"] == "res":
                    answers["res"] += 1
                else:
                    self.assertIn(rep["code"], ("unavailable", "timeout"), rep)
                    answers[rep["code"]] += 1
                i += 7
                await asyncio.sleep(0.005)

        tasks = [asyncio.ensure_future(load(c, n)) for n, c in enumerate(clients)]
        await asyncio.sleep(1.0)
        before = self.metrics()
        self.assertGreater(before.get("wsgate_worker_requests_total", worker="w-cut"), 0)

        t0 = time.monotonic()
        cut("127.0.0.2")
        await self.wait_metric(lambda m: m.get("wsgate_workers") == 1, timeout=10,
                               what="the cut worker forgotten")
        detected = time.monotonic() - t0
        self.assertLess(detected, 1.5 + 1.5, "heartbeat detection took %.1f s" % detected)
        # every key served again by the survivor, from every client
        served = answers["res"]
        await asyncio.sleep(1.5)
        self.assertGreater(answers["res"], served + 50)

        restore()
        t1 = time.monotonic()
        await self.wait_metric(lambda m: m.get("wsgate_workers") == 2, timeout=15,
                               what="the worker back after the link healed")
        healed = time.monotonic() - t1
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)
        after = self.metrics()
        self.assertGreater(after.get("wsgate_worker_requests_total", worker="w-cut"), 0)
        # no client connection dropped, nothing left unanswered
        self.assertEqual(after.get("wsgate_connections"), len(clients))
        self.assertEqual(after.get("wsgate_inflight"), 0)
        for c in clients:
            await c.echo_ok(self)
        print("\ncut link: detected in %.2f s, rejoined %.2f s after the link healed; "
              "answers %s" % (detected, healed, answers))


if __name__ == "__main__":
    harness.main()
