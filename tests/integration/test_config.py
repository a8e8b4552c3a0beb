"""Config files (--config, INI), environment overrides and --check-config
for both daemons: exit codes, the effective settings, errors with
file:line; a gateway and a worker started from one shared file."""

import os
import subprocess
import tempfile
import unittest

import harness
from harness import GatewayTestCase


def run(binary, args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([binary] + list(args), capture_output=True, text=True, env=e,
                          timeout=30 * harness.SLOW)


class CheckConfigTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_gateway_effective_settings_and_precedence(self):
        conf = self.write("wsgate.ini", "[gateway]\nmax-conns = 123\nmax-inflight = 5\n"
                          "raw = /raw/fromfile=echo\n\n[worker]\nservices = echo\n")
        r = run(harness.GATEWAY_BIN, ["--config", conf, "--check-config"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[gateway]\n", r.stdout)
        self.assertIn("max-conns = 123\n", r.stdout)
        self.assertIn("raw = /raw/fromfile=echo\n", r.stdout)
        self.assertIn("ping-ms = 25000\n", r.stdout)  # a default
        self.assertIn("configuration OK", r.stderr)
        r = run(harness.GATEWAY_BIN, ["--config", conf, "--check-config", "--max-inflight", "7"],
                env={"WSGATE_MAX_CONNS": "456", "WSGATE_MAX_INFLIGHT": "6"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("max-conns = 456\n", r.stdout)  # env over file
        self.assertIn("max-inflight = 7\n", r.stdout)  # flag over env

    def test_gateway_errors_exit_2(self):
        conf = self.write("bad.ini", "[gateway]\nlisten = 127.0.0.1:1\nmax-cons = 5\n")
        r = run(harness.GATEWAY_BIN, ["--config", conf, "--check-config"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s:3: unknown key 'max-cons'" % conf, r.stderr)
        conf = self.write("bad2.ini", "[gateway]\nidle-ms = 10\nping-ms = 100\n")
        r = run(harness.GATEWAY_BIN, ["--config", conf, "--check-config"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--idle-ms must be larger than --ping-ms", r.stderr)
        r = run(harness.GATEWAY_BIN, ["--check-config"], env={"WSGATE_LISTEN": "nowhere"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("WSGATE_LISTEN: expected HOST:PORT", r.stderr)
        r = run(harness.GATEWAY_BIN, ["--config", os.path.join(self.tmp.name, "gone.ini")])
        self.assertEqual(r.returncode, 2)
        self.assertIn("No such file", r.stderr)

    def test_gateway_curve_settings_checked(self):
        key = self.write("gw.key", "not a key\n")
        os.chmod(key, 0o600)
        allow = self.write("allow", "# nobody yet\n")
        # a secret key without an allow-list: refuse to start
        r = run(harness.GATEWAY_BIN, ["--curve-secret-file", key])
        self.assertEqual(r.returncode, 2)
        self.assertIn("curve-allow-file", r.stderr)
        r = run(harness.GATEWAY_BIN, ["--check-config", "--curve-secret-file", key,
                                      "--curve-allow-file", allow])
        self.assertEqual(r.returncode, 2)
        self.assertIn("expected one Z85 key", r.stderr)

    def test_worker(self):
        conf = self.write("w.ini", "[gateway]\nmax-conns = 1\n\n[worker]\n"
                          "gateway = tcp://127.0.0.1:1\ngateway = tcp://127.0.0.1:2\n"
                          "services = echo\nmax-actors = 10\n")
        r = run(harness.WORKER_BIN, ["--config", conf, "--check-config"],
                env={"WSGATE_WORKER_MAX_ACTORS": "11"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[worker]\ngateway = tcp://127.0.0.1:1\ngateway = tcp://127.0.0.1:2\n",
                      r.stdout)
        self.assertIn("services = echo\n", r.stdout)
        self.assertIn("max-actors = 11\n", r.stdout)
        r = run(harness.WORKER_BIN, ["--config", conf, "--check-config", "--gateway", "tcp://x:3"])
        self.assertIn("gateway = tcp://x:3\n", r.stdout)
        self.assertNotIn("tcp://127.0.0.1:1", r.stdout)
        conf = self.write("w2.ini", "[worker]\nservices = echo\nhello-ms = 0\n")
        r = run(harness.WORKER_BIN, ["--config", conf, "--check-config"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s:3: hello-ms: expected a number" % conf, r.stderr)
        r = run(harness.WORKER_BIN, ["--check-config"], env={"WSGATE_WORKER_SERVICES": "nope"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown service 'nope'", r.stderr)


class StartFromFileTest(GatewayTestCase):
    async def test_gateway_and_worker_from_one_file(self):
        with tempfile.TemporaryDirectory() as d:
            conf = os.path.join(d, "wsgate.ini")
            with open(conf, "w") as f:
                f.write("[gateway]\nraw = /raw/fromfile=echo\nmax-inflight = 3\n\n"
                        "[worker]\nservices = echo\n")
            # the harness gives ports and ids as flags; the rest is the file's
            self.cluster.start_gateway(["--config", conf])
            self.cluster.start_worker("worker-1", args=["--config", conf])
            await self.wait_workers(1)
            ws = await self.connect_raw_endpoint("/raw/fromfile")
            await ws.send("hello")
            self.assertEqual(await ws.recv(), "hello")
            c = await self.connect("json")
            await c.echo_ok(self)
            rep = await c.call("counter", id=2, key="k")  # not in the worker's services
            self.assertEqual(rep.get("code"), "no_service", rep)


if __name__ == "__main__":
    harness.main()
