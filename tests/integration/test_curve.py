"""CURVE on the gateway <-> worker links: a gateway with a secret key and an
allow-list lets in the workers whose public keys are listed, and refuses
the others (a key not on the list: the ZAP handler says 400 and counts it
in wsgate_backend_auth_refused_total; no CURVE at all: the handshake
fails). A refused worker never becomes live: requests get no_service."""

import asyncio
import os
import socket
import subprocess
import tempfile

import harness
from harness import GatewayTestCase

ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH = 0x11000002  # zmq.h

KEYGEN_BIN = os.environ.get(
    "WSGATE_KEYGEN_BIN", os.path.join(os.path.dirname(harness.GATEWAY_BIN), "wsgate-keygen"))


def keypair(d, name):
    """wsgate-keygen --out d/name: (public key, secret key file)."""
    prefix = os.path.join(d, name)
    out = subprocess.run([KEYGEN_BIN, "--out", prefix], check=True, capture_output=True,
                         text=True).stdout
    with open(prefix + ".pub") as f:
        public = f.read().strip()
    assert out.strip() == "public: " + public, out
    assert len(public) == 40
    assert os.stat(prefix + ".key").st_mode & 0o777 == 0o600
    return public, prefix + ".key"


class CurveTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.tmp = tempfile.TemporaryDirectory()
        d = self.tmp.name
        self.gw_pub, self.gw_key = keypair(d, "gateway")
        self.ok_pub, self.ok_key = keypair(d, "worker-ok")
        self.bad_pub, self.bad_key = keypair(d, "worker-bad")
        self.allow = os.path.join(d, "workers.allow")
        with open(self.allow, "w") as f:
            f.write("# workers allowed in\n\n%s  # worker-ok\n" % self.ok_pub)
        self.cluster.start_gateway(["--curve-secret-file", self.gw_key,
                                    "--curve-allow-file", self.allow])

    async def asyncTearDown(self):
        await super().asyncTearDown()
        self.tmp.cleanup()

    def curve_worker(self, wid, key_file, server_key=None):
        # --drain-ms 0: a refused worker would wait for a DRAINING that
        # never comes.
        return self.cluster.start_worker(wid, args=[
            "--curve-secret-file", key_file,
            "--curve-server-key", server_key or self.gw_pub, "--drain-ms", "0"])

    async def test_allowed_worker_serves(self):
        self.curve_worker("worker-ok", self.ok_key)
        await self.wait_workers(1)
        c = await self.connect("json")
        await c.echo_ok(self, {"over": "curve"})
        rep = await c.call("counter", 5, id=2, key="k")
        self.assertEqual(rep.get("data"), 5, rep)
        self.assertEqual(self.metric("wsgate_backend_auth_refused_total"), 0)
        self.assertEqual(self.metric("wsgate_backend_handshake_failed_total"), 0)

    async def test_unlisted_key_refused_and_counted(self):
        self.curve_worker("worker-bad", self.bad_key)
        await self.wait_metric(lambda m: m.get("wsgate_backend_auth_refused_total") >= 1,
                               what="a ZAP refusal")
        self.assertEqual(self.metric("wsgate_workers"), 0)
        c = await self.connect("json")
        rep = await c.call("echo", "x", id=1)
        self.assertEqual((rep.get("op"), rep.get("code")), ("err", "no_service"), rep)
        # the refusal is logged with the key's first 8 characters only
        with open(self.cluster.log_path("gateway")) as f:
            log = f.read()
        self.assertIn("refused a worker (CURVE key %s..." % self.bad_pub[:8], log)
        self.assertNotIn(self.bad_pub, log)
        # an allowed worker still gets in next to it
        self.curve_worker("worker-ok", self.ok_key)
        await self.wait_workers(1)
        await c.echo_ok(self)

    async def test_keyless_worker_refused(self):
        self.cluster.start_worker("worker-plain", args=["--drain-ms", "0"])
        c = await self.connect("json")
        for i in range(10):
            rep = await c.call("echo", "x", id=i)
            self.assertEqual(rep.get("code"), "no_service", rep)
            self.assertEqual(self.metric("wsgate_workers"), 0)
            await asyncio.sleep(0.2 * harness.SLOW)
        # its handshake fails before ZAP is asked: counted apart, and said
        # in the log. (Which side sees the mismatch first is a race: when
        # the worker hangs up first the gateway only sees the peer go.)
        await self.wait_metric(lambda m: m.get("wsgate_backend_handshake_failed_total") >= 1,
                               what="the failed handshake counted")
        self.assertEqual(self.metric("wsgate_backend_auth_refused_total"), 0)
        with open(self.cluster.log_path("gateway")) as f:
            self.assertIn("backend: a peer failed the handshake", f.read())

    async def test_null_mechanism_greeting_gets_the_hint(self):
        # A ZMTP 3.0 greeting that offers NULL and then waits: the gateway
        # sees the mechanism mismatch itself, and says what it likely is.
        greeting = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" +
                    b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31)
        self.assertEqual(len(greeting), 64)
        s = socket.create_connection(("127.0.0.1", self.cluster.backend_port))
        try:
            s.sendall(greeting)
            s.settimeout(5 * harness.SLOW)
            while s.recv(4096):  # the gateway's greeting, then its close
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        finally:
            s.close()
        await self.wait_metric(lambda m: m.get("wsgate_backend_handshake_failed_total") >= 1,
                               what="the failed handshake counted")
        with open(self.cluster.log_path("gateway")) as f:
            self.assertIn("(protocol error 0x%x): a worker without CURVE keys?"
                          % ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH, f.read())

    async def test_wrong_server_key_never_connects(self):
        # The worker expects another gateway's key: its handshake fails.
        other_pub, _ = keypair(self.tmp.name, "other-gateway")
        self.curve_worker("worker-ok", self.ok_key, server_key=other_pub)
        c = await self.connect("json")
        for i in range(5):
            rep = await c.call("echo", "x", id=i)
            self.assertEqual(rep.get("code"), "no_service", rep)
            await asyncio.sleep(0.2 * harness.SLOW)
        self.assertEqual(self.metric("wsgate_workers"), 0)


if __name__ == "__main__":
    harness.main()
