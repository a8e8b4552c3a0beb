"""
smoke.py - wsgate-load against the real binaries, small counts, a few
seconds each: every scenario runs and reports no failures. Not a
benchmark: it asserts counts, never speed.

One gateway (with --ping-ms 200 so that idle connections get pinged) and
one worker for the whole file, started with tests/integration/harness.py;
a bare echo server (wsgate-bare-echo) for the ceiling check; a second
gateway with --max-conns 5 to see refusals counted by cause.

AuthSmokeTest: a gateway with --auth required and a worker running the
auth and chan services with an HS256 key file (docs/security.md):
storms, echo and idle runs that authenticate every connection, with
minted tokens and with a token file, the failures counted by cause, and
a fanout whose channel permissions come from the tokens (--grant-all).

FanoutSmokeTest: a gateway with --auth none and a worker running chan
with --chan-public 'bench:*': publish phases (open and closed loop, over
two processes), bursts, and a channel outside the public patterns.

Binaries: $WSGATE_LOAD_BIN and $WSGATE_BARE_ECHO_BIN (set by
tests/load/CMakeLists.txt), the gateway and worker as harness.py finds them.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402

LOAD_BIN = os.environ.get("WSGATE_LOAD_BIN", os.path.join(ROOT, "build", "load", "wsgate-load"))
BARE_BIN = os.environ.get(
    "WSGATE_BARE_ECHO_BIN", os.path.join(ROOT, "build", "load", "wsgate-bare-echo")
)
SLOW = harness.SLOW


class LoadRunner:
    """Runs wsgate-load and checks its reports; the test class sets
    cls.tmp and cls.cluster."""

    n = 0

    def load(self, scenario, *args, port=None, timeout=60):
        """Runs wsgate-load; returns its JSON report."""
        LoadRunner.n += 1
        path = os.path.join(self.tmp.name, "report-%d.json" % LoadRunner.n)
        argv = [LOAD_BIN, scenario, "--target", "127.0.0.1:%d" % (port or self.cluster.port),
                "--json", path, "--timeout", str(timeout * SLOW)] + [str(a) for a in args]
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=(timeout + 30) * SLOW)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 0, "%s\n%s\n%s" % (" ".join(argv), out,
                                                           self.cluster.tails()))
        with open(path) as f:
            rep = json.load(f)
        rep["_out"] = out
        self.assertEqual(rep["procs_done"], rep["config"]["procs"], out)
        self.assertEqual(rep["hard_timeouts"], 0, out)
        return rep

    def assert_conns_ok(self, rep, n):
        c = rep["connections"]
        msg = rep["_out"]
        self.assertEqual(c["attempted"], n, msg)
        self.assertEqual(c["established"], n, msg)
        self.assertEqual(c["failed"], 0, msg)
        self.assertEqual(c["dropped"], 0, msg)
        self.assertEqual(c["closed_clean"], n, msg)
        self.assertEqual(rep["handshake_us"]["count"], n, msg)
        self.assertGreater(rep["handshake_us"]["p50"], 0, msg)
        self.assertGreaterEqual(rep["handshake_us"]["max"], rep["handshake_us"]["p99"], msg)

    def assert_requests_ok(self, rep, n=None):
        r = rep["requests"]
        msg = rep["_out"]
        if n is not None:
            self.assertEqual(r["sent"], n, msg)
        self.assertEqual(r["replies"], r["sent"], msg)
        self.assertEqual(r["errors"], 0, msg)
        self.assertEqual(r["missing"], 0, msg)
        self.assertEqual(r["bad_replies"], 0, msg)
        self.assertEqual(rep["latency_us"]["count"], r["sent"], msg)
        self.assertGreater(r["round_trips_per_s"], 0, msg)

    def assert_fanout_ok(self, rep, subs, pubs=1):
        """Every subscriber subscribed and got every publication answered
        res, once, in order; nothing failed."""
        f = rep["fanout"]
        msg = rep["_out"]
        self.assert_conns_ok(rep, subs + pubs)
        self.assertEqual(f["subscribed"], subs, msg)
        self.assertEqual(f["sub_failed"], 0, msg)
        self.assertEqual(rep["sub_us"]["count"], subs, msg)
        self.assertGreater(f["published"], 0, msg)
        self.assertEqual(f["published_ok"], f["published"], msg)
        self.assertEqual(f["publish_errors"], {}, msg)
        self.assertEqual(f["publish_unanswered"], 0, msg)
        self.assertEqual(f["expected"], subs * f["published_ok"], msg)
        self.assertEqual(f["deliveries"], f["expected"], msg)
        self.assertEqual(f["missing"], 0, msg)
        self.assertEqual(f["extra"], 0, msg)
        self.assertEqual(f["duplicates"], 0, msg)
        self.assertEqual(f["out_of_order"], 0, msg)
        self.assertEqual(f["foreign"], 0, msg)
        self.assertEqual(rep["delivery_us"]["count"], f["deliveries"], msg)
        self.assertGreater(f["deliveries_per_s"], 0, msg)
        self.assertEqual(rep["requests"]["bad_replies"], 0, msg)

    def assert_auth_ok(self, rep, n):
        """n connections, each authenticated before it counted."""
        self.assert_conns_ok(rep, n)
        self.assertTrue(rep["config"]["auth"])
        self.assertEqual(rep["auth_us"]["count"], n, rep["_out"])
        self.assertGreater(rep["auth_us"]["p50"], 0, rep["_out"])
        self.assertGreater(rep["connections"]["accepted_per_s"], 0, rep["_out"])


class LoadSmokeTest(LoadRunner, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for b in (LOAD_BIN, BARE_BIN):
            if not os.access(b, os.X_OK):
                raise AssertionError("binary not found: %s" % b)
        cls.tmp = tempfile.TemporaryDirectory(prefix="wsgate-load-smoke-")
        cls.cluster = harness.Cluster("load.smoke")
        cls.cluster.start(gateway_args=["--ping-ms", "200", "--max-conns", "5000"], workers=1)
        cls.bare_port = harness.free_port()
        cls.bare = harness.Proc(
            "bare-echo",
            [BARE_BIN, "--listen", "127.0.0.1:%d" % cls.bare_port],
            cls.cluster.log_path("bare-echo"),
        )
        cls.wait_listening(cls.bare, cls.bare_port)

    @staticmethod
    def wait_listening(proc, port, timeout=15.0):
        """Waits until proc accepts TCP connections on port: the first test
        must not race its start-up (under the sanitizers, next to other
        tests, it can take longer than wsgate-load's first connects)."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if not proc.alive() or time.monotonic() > deadline:
                    raise AssertionError("%s not listening on %d:\n%s"
                                         % (proc.name, port, proc.tail()))
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        res = cls.cluster.stop()
        cls.bare.terminate()
        cls.bare.close_log()
        cls.tmp.cleanup()
        rc, killed = res.get("gateway", (0, False))
        assert not killed and rc == 0, "gateway exit %s (killed %s)" % (rc, killed)

    def test_storm(self):
        rep = self.load("storm", "--conns", 200, "--hold", 1)
        self.assert_conns_ok(rep, 200)
        self.assertGreater(rep["connections"]["accepted_per_s"], 0)

    def test_storm_paced_two_procs(self):
        rep = self.load("storm", "--conns", 200, "--rate", 1000, "--procs", 2, "--hold", 0.5)
        self.assert_conns_ok(rep, 200)
        self.assertEqual(rep["config"]["procs"], 2)

    def test_echo_closed_loop(self):
        rep = self.load("echo", "--conns", 10, "--count", 2000)
        self.assert_conns_ok(rep, 10)
        self.assert_requests_ok(rep, 2000)

    def test_echo_msgpack_window_keys(self):
        rep = self.load("echo", "--conns", 10, "--count", 2000, "--enc", "msgpack",
                        "--window", 4, "--keys", 3, "--size", 1000)
        self.assert_conns_ok(rep, 10)
        self.assert_requests_ok(rep, 2000)

    def test_echo_open_loop(self):
        rep = self.load("echo", "--conns", 10, "--rate", 2000, "--duration", 2, "--window", 64)
        self.assert_conns_ok(rep, 10)
        self.assert_requests_ok(rep)
        # 2 s at 2000/s: events 0..3999 are due before the sending phase ends
        self.assertGreaterEqual(rep["requests"]["sent"], 3900, rep["_out"])
        self.assertLessEqual(rep["requests"]["sent"], 4001, rep["_out"])

    def test_echo_two_procs(self):
        rep = self.load("echo", "--conns", 10, "--count", 2000, "--procs", 2, "--window", 2)
        self.assert_conns_ok(rep, 10)
        self.assert_requests_ok(rep, 2000)

    def test_raw_echo(self):
        rep = self.load("echo", "--path", "/raw/echo", "--conns", 10, "--count", 2000,
                        "--size", 256, "--window", 4)
        self.assert_conns_ok(rep, 10)
        self.assert_requests_ok(rep, 2000)
        self.assertEqual(rep["requests"]["bytes_in"], 2000 * 256)

    def test_idle_pings_answered(self):
        rep = self.load("idle", "--conns", 100, "--hold", 2)
        self.assert_conns_ok(rep, 100)
        p = rep["pings"]
        # every connection is pinged every ~200 ms while held
        self.assertGreaterEqual(p["received"], 100, rep["_out"])
        self.assertEqual(p["answered"], p["received"], rep["_out"])

    def test_bare_echo_server(self):
        rep = self.load("echo", "--path", "/raw/echo", "--conns", 10, "--count", 2000,
                        "--window", 4, port=self.bare_port)
        self.assert_conns_ok(rep, 10)
        self.assert_requests_ok(rep, 2000)
        rep = self.load("echo", "--raw", "--path", "/any", "--enc", "msgpack", "--conns", 4,
                        "--count", 400, "--size", 100000, port=self.bare_port)
        self.assert_requests_ok(rep, 400)

    def test_failures_counted_by_cause(self):
        # nothing listens: refused
        rep = self.load("storm", "--conns", 20, "--hold", 0, port=harness.free_port())
        c = rep["connections"]
        self.assertEqual(c["established"], 0)
        self.assertEqual(c["failures"]["refused"], 20, rep["_out"])
        # a gateway that takes 5: the others get HTTP 503
        small = harness.Cluster("load.smoke.small")
        small.start_gateway(["--max-conns", "5"])
        try:
            rep = self.load("storm", "--conns", 12, "--hold", 0.5, "--handshakes", 1,
                            port=small.port)
        finally:
            small.stop()
        c = rep["connections"]
        self.assertEqual(c["established"], 5, rep["_out"])
        self.assertEqual(c["failures"]["http_status"], 7, rep["_out"])
        self.assertEqual(c["http_status"], {"503": 7}, rep["_out"])

    def test_hard_timeout(self):
        path = os.path.join(self.tmp.name, "timeout.json")
        p = subprocess.run([LOAD_BIN, "idle", "--target", "127.0.0.1:%d" % self.cluster.port,
                            "--conns", "10", "--hold", "60", "--timeout", "1.5", "--quiet",
                            "--json", path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30 * SLOW)
        # cut short: exit status 1, and the report says so
        self.assertEqual(p.returncode, 1, p.stderr)
        with open(path) as f:
            rep = json.load(f)
        self.assertEqual(rep["hard_timeouts"], 1)
        self.assertEqual(rep["connections"]["established"], 10)

    def test_refuses_non_loopback(self):
        p = subprocess.run([LOAD_BIN, "storm", "--target", "10.1.2.3:80"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"loopback", p.stderr)


class AuthSmokeTest(LoadRunner, unittest.TestCase):
    """Every connection authenticates with its first message."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="wsgate-load-auth-")
        d = cls.tmp.name
        cls.secret = os.path.join(d, "hs1.secret")
        with open(cls.secret, "wb") as f:
            f.write(os.urandom(32) + b"\n")  # every byte is the secret
        os.chmod(cls.secret, 0o600)
        cls.wrong_secret = os.path.join(d, "wrong.secret")
        with open(cls.wrong_secret, "wb") as f:
            f.write(os.urandom(40))
        keys = os.path.join(d, "keys.ini")
        with open(keys, "w") as f:
            f.write("[key hs1]\nalgs = HS256\nsecret_file = %s\n" % cls.secret)
        os.chmod(keys, 0o600)
        cls.cluster = harness.Cluster("load.smoke.auth")
        cls.cluster.start(gateway_args=["--auth", "required", "--ping-ms", "200",
                                        "--max-conns", "5000"],
                          workers=1, services=cls.SERVICES,
                          worker_args=["--auth-keys", keys, "--auth-iss", "wsgate-load",
                                       "--auth-aud", "bench", "--auth-leeway-s", "5"])

    SERVICES = "echo,auth,chan"

    @classmethod
    def tearDownClass(cls):
        res = cls.cluster.stop()
        cls.tmp.cleanup()
        rc, killed = res.get("gateway", (0, False))
        assert not killed and rc == 0, "gateway exit %s (killed %s)" % (rc, killed)

    def mint_args(self, secret=None, kid="hs1"):
        return ["--hs256-secret-file", secret or self.secret, "--kid", kid,
                "--iss", "wsgate-load", "--aud", "bench"]

    def test_auth_storm(self):
        rep = self.load("storm", "--conns", 300, "--hold", 0.5, "--procs", 2,
                        *self.mint_args())
        self.assert_auth_ok(rep, 300)
        self.assertEqual(rep["config"]["token_source"], "hs256")

    def test_auth_storm_paced_msgpack(self):
        rep = self.load("storm", "--conns", 100, "--rate", 500, "--hold", 0.2,
                        "--enc", "msgpack", *self.mint_args())
        self.assert_auth_ok(rep, 100)

    def test_auth_echo_token_file(self):
        # tokens from elsewhere (PyJWT), one per line, used round robin
        import jwt
        with open(self.secret, "rb") as f:
            secret = f.read()
        now = int(time.time())
        path = os.path.join(self.tmp.name, "tokens.txt")
        with open(path, "w") as f:
            for i in range(3):
                f.write(jwt.encode({"sub": "file-%d" % i, "iat": now, "exp": now + 300,
                                    "iss": "wsgate-load", "aud": "bench"},
                                   secret, algorithm="HS256", headers={"kid": "hs1"}) + "\n")
        rep = self.load("echo", "--conns", 10, "--count", 1000, "--window", 4,
                        "--token-file", path)
        self.assert_auth_ok(rep, 10)
        self.assert_requests_ok(rep, 1000)
        self.assertEqual(rep["config"]["token_source"], "file")

    def test_auth_idle_pinged(self):
        rep = self.load("idle", "--conns", 50, "--hold", 1, *self.mint_args())
        self.assert_auth_ok(rep, 50)
        self.assertGreaterEqual(rep["pings"]["received"], 50, rep["_out"])
        self.assertEqual(rep["pings"]["answered"], rep["pings"]["received"], rep["_out"])

    def test_auth_failures_by_cause(self):
        cases = [
            (self.mint_args(secret=self.wrong_secret), "auth_failed:bad_signature"),
            (self.mint_args(kid="nope"), "auth_failed:unknown_key"),
            # the worker wants iss wsgate-load: a token without it is refused
            (["--hs256-secret-file", self.secret, "--kid", "hs1", "--aud", "bench"],
             "auth_failed:bad_issuer"),
        ]
        for args, cause in cases:
            rep = self.load("storm", "--conns", 20, "--hold", 0, *args)
            c = rep["connections"]
            self.assertEqual(c["established"], 0, rep["_out"])
            self.assertEqual(c["failed"], 20, rep["_out"])
            self.assertEqual(c["failures"].get(cause), 20, (cause, rep["_out"]))
            self.assertEqual(c["dropped"], 0, rep["_out"])
            # they did open: the handshake is measured, the auth is not
            self.assertEqual(rep["handshake_us"]["count"], 20, rep["_out"])
            self.assertEqual(rep["auth_us"]["count"], 0, rep["_out"])

    def test_auth_fanout_granted_by_token(self):
        rep = self.load("fanout", "--conns", 100, "--publishers", 2, "--rate", 200,
                        "--duration", 1, "--channel", "room:1", "--grant-all",
                        *self.mint_args())
        self.assert_fanout_ok(rep, 100, pubs=2)
        self.assertEqual(rep["auth_us"]["count"], 102, rep["_out"])

    def test_auth_fanout_not_granted(self):
        # tokens without a channels claim, no public channels: forbidden
        rep = self.load("fanout", "--conns", 20, "--count", 5, "--channel", "room:2",
                        *self.mint_args())
        f = rep["fanout"]
        self.assertEqual(f["subscribed"], 0, rep["_out"])
        self.assertEqual(f["sub_errors"], {"forbidden": 20}, rep["_out"])
        self.assertEqual(f["publish_errors"], {"forbidden": 5}, rep["_out"])
        self.assertEqual(f["deliveries"], 0, rep["_out"])

    def test_unauthenticated_requests_refused(self):
        # without a token the gateway answers everything unauthenticated
        rep = self.load("echo", "--conns", 2, "--count", 10)
        r = rep["requests"]
        self.assertEqual(r["replies"], 0, rep["_out"])
        self.assertEqual(r["error_codes"], {"unauthenticated": 10}, rep["_out"])


class FanoutSmokeTest(LoadRunner, unittest.TestCase):
    """Channel permissions from the worker's --chan-public."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="wsgate-load-fanout-")
        cls.cluster = harness.Cluster("load.smoke.fanout")
        cls.cluster.start(gateway_args=["--max-conns", "5000"], workers=1,
                          services="echo,chan", worker_args=["--chan-public", "bench:*"])

    @classmethod
    def tearDownClass(cls):
        res = cls.cluster.stop()
        cls.tmp.cleanup()
        rc, killed = res.get("gateway", (0, False))
        assert not killed and rc == 0, "gateway exit %s (killed %s)" % (rc, killed)

    def test_fanout_open_loop_two_procs(self):
        # a window wide enough that the schedule is kept whatever the
        # acks' latency on a busy machine
        rep = self.load("fanout", "--conns", 200, "--publishers", 3, "--rate", 150,
                        "--window", 64, "--duration", 1.5, "--procs", 2,
                        "--channel", "bench:open")
        self.assert_fanout_ok(rep, 200, pubs=3)
        # 1.5 s at 150/s: about 225 publications (the processes' schedules
        # at 100/s and 50/s, each counting its event 0), to 200 subscribers
        self.assertGreaterEqual(rep["fanout"]["published"], 200, rep["_out"])
        self.assertLessEqual(rep["fanout"]["published"], 228, rep["_out"])

    def test_fanout_closed_loop_msgpack_padded(self):
        rep = self.load("fanout", "--conns", 200, "--publishers", 2, "--window", 2,
                        "--count", 300, "--enc", "msgpack", "--size", 200,
                        "--channel", "bench:closed")
        self.assert_fanout_ok(rep, 200, pubs=2)
        self.assertEqual(rep["fanout"]["published"], 300, rep["_out"])

    def test_fanout_burst(self):
        rep = self.load("fanout", "--conns", 300, "--burst", 3, "--burst-pause", 0.1,
                        "--procs", 2, "--channel", "bench:burst")
        self.assert_fanout_ok(rep, 300)
        bursts = rep["fanout"]["bursts"]
        self.assertEqual(len(bursts), 3, rep["_out"])
        for b in bursts:
            self.assertEqual(b["delivered"], 300, rep["_out"])
            self.assertEqual(b["expected"], 300, rep["_out"])
            self.assertIsNotNone(b["full_delivery_us"], rep["_out"])
            self.assertGreaterEqual(b["full_delivery_us"], b["first_delivery_us"], rep["_out"])
        self.assertIn("delivered to all 300 subscribers", rep["_out"])

    def test_fanout_burst_rx_timestamps(self):
        # deliveries dated by the kernel's receive time, publications by
        # CLOCK_REALTIME: the same accounting, and sane latencies
        rep = self.load("fanout", "--conns", 100, "--burst", 2, "--burst-pause", 0.05,
                        "--rx-timestamps", "--channel", "bench:rx")
        self.assert_fanout_ok(rep, 100)
        self.assertTrue(rep["config"]["rx_timestamps"])
        for b in rep["fanout"]["bursts"]:
            self.assertIsNotNone(b["full_delivery_us"], rep["_out"])
            self.assertGreater(b["first_delivery_us"], 0, rep["_out"])
            self.assertLess(b["full_delivery_us"], 10000000, rep["_out"])

    def test_fanout_forbidden_channel(self):
        # not under bench:*: every sub and every publication is refused,
        # and the run says so rather than failing
        rep = self.load("fanout", "--conns", 10, "--count", 4, "--channel", "private:1")
        f = rep["fanout"]
        self.assertEqual(f["subscribed"], 0, rep["_out"])
        self.assertEqual(f["sub_errors"], {"forbidden": 10}, rep["_out"])
        self.assertEqual(f["published"], 4, rep["_out"])
        self.assertEqual(f["publish_errors"], {"forbidden": 4}, rep["_out"])
        self.assertEqual(f["expected"], 0, rep["_out"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
