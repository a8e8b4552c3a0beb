"""browserkit.py - what the browser tests share: a headless Chromium steered
through driver.mjs (node + playwright-core from npm, Debian's
/usr/bin/chromium), and a cluster of real gateways and workers from the
integration harness.

The driver speaks one JSON line per command on its stdin/stdout; Browser
wraps that in call()/eval()/wait(). Functions to run in a page are given as
JavaScript source text taking one JSON argument, e.g.

    b.eval("alice", "(n) => demo.log.length > n", 3)

Environment (set by tests/browser/CMakeLists.txt): WSGATE_BROWSER_DEPS, the
directory where `npm ci` installed package.json's dependencies;
WSGATE_ARTIFACTS, where screenshots go; plus the harness' WSGATE_BIN etc.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import jwt

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402
from harness import Cluster, Proc, SLOW  # noqa: E402

ROOT = harness.ROOT
DEPS = os.environ.get("WSGATE_BROWSER_DEPS", HERE)
ARTIFACTS = os.environ.get("WSGATE_ARTIFACTS", os.path.join(HERE, "artifacts"))
WWW = os.environ.get("WSGATE_WWW", os.path.join(ROOT, "build", "www"))
CHROMIUM = os.environ.get("WSGATE_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node") or "/usr/bin/node"
MSGPACK_UMD = os.path.join(DEPS, "node_modules", "@msgpack", "msgpack", "dist.umd", "msgpack.min.js")

# What the test tokens grant: every room and public channel, as the
# development token issuer's tokens do.
CHANNELS = {"sub": ["room:*", "public:*"], "pub": ["room:*", "public:*"]}


class BrowserError(AssertionError):
    pass


class Browser:
    """One Chromium (one profile), any number of named pages."""

    def __init__(self, log_path):
        for what, path in (("node", NODE), ("chromium", CHROMIUM)):
            if not os.access(path, os.X_OK):
                raise AssertionError("%s not found at %s (make deps installs it)" % (what, path))
        if not os.path.isdir(os.path.join(DEPS, "node_modules", "playwright-core")):
            raise AssertionError("playwright-core missing in %s: run npm ci there "
                                 "(ctest's browser.deps does)" % DEPS)
        self.profile = tempfile.mkdtemp(prefix="wsgate-chromium-")
        self.log = open(log_path, "ab")
        env = dict(os.environ, WSGATE_BROWSER_DEPS=DEPS, WSGATE_CHROMIUM=CHROMIUM,
                   WSGATE_BROWSER_PROFILE=self.profile)
        self.p = subprocess.Popen(
            [NODE, os.path.join(HERE, "driver.mjs")], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self.log, env=env,
            preexec_fn=harness._die_with_parent)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.next_id = 0
        ready = self._reply(0, 30)
        self.version = ready.get("version")

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _reply(self, id, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("browser driver: no answer to command %d in %.0fs" % (id, timeout))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise BrowserError("browser driver exited (%s); see %s" % (self.p.poll(), self.log.name))
            m = json.loads(line)
            if m.get("id") != id:
                continue  # an answer to a command that timed out earlier
            if not m.get("ok"):
                raise BrowserError("browser: %s" % m.get("error"))
            return m.get("result")

    def call(self, cmd, timeout=30, **kw):
        self.next_id += 1
        kw.update(id=self.next_id, cmd=cmd)
        self.p.stdin.write((json.dumps(kw) + "\n").encode())
        self.p.stdin.flush()
        return self._reply(self.next_id, timeout)

    def open(self, page, url):
        return self.call("open", page=page, url=url)

    def eval(self, page, fn, arg=None, timeout=30):
        return self.call("eval", timeout=timeout, page=page, fn=fn, arg=arg)

    def wait(self, page, fn, arg=None, timeout=10.0, what=None):
        """Polls fn(arg) in the page every 50 ms until it is truthy (its value
        is returned); fails after timeout seconds (times SLOW) naming what."""
        t = timeout * SLOW
        try:
            return self.call("wait", timeout=t + 15, page=page, fn=fn, arg=arg,
                             wait_ms=int(t * 1000))
        except BrowserError as e:
            raise BrowserError("%s: %s not true within %.1fs (%s)" % (page, what or fn, t, e))

    def screenshot(self, page, name):
        path = os.path.join(ARTIFACTS, name)
        return self.call("screenshot", page=page, path=path)

    def close(self):
        try:
            if self.p.poll() is None:
                self.call("quit", timeout=10)
                self.p.wait(10)
        except Exception:
            self.p.kill()
            self.p.wait(10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


class BrowserTestCase(unittest.TestCase):
    """A Browser per test class; per test, a gateway serving <build>/www
    with --auth required and the development token issuer (POST
    /dev/token), and workers running auth, devtoken and chan with a fresh
    HS256 secret."""

    @classmethod
    def setUpClass(cls):
        os.makedirs(ARTIFACTS, exist_ok=True)
        os.makedirs(harness.LOG_DIR, exist_ok=True)
        if not os.path.isfile(os.path.join(WWW, "index.html")):
            raise AssertionError("no demo in %s (the build's www target copies it)" % WWW)
        cls.browser = Browser(os.path.join(harness.LOG_DIR, "%s.browser.log" % cls.__name__))

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="wsgate-browser-")
        self.secret = os.urandom(32)
        secret_file = os.path.join(self.dir.name, "dev.secret")
        with open(secret_file, "wb") as f:
            f.write(self.secret)
        self.keys_file = os.path.join(self.dir.name, "keys.ini")
        with open(self.keys_file, "w") as f:
            f.write("[key dev]\nalgs = HS256\nsecret_file = %s\n" % secret_file)
        for p in (secret_file, self.keys_file):
            os.chmod(p, 0o600)
        self.api_key = "browser-test-api-key-%s" % os.urandom(8).hex()
        self.api_key_file = os.path.join(self.dir.name, "api.key")
        with open(self.api_key_file, "w") as f:
            f.write(self.api_key + "\n")
        self.cluster = Cluster(self.id())
        self.extra_clusters = []
        self.pages = []
        self.raws = []

    def tearDown(self):
        for name in self.pages:
            try:
                self.browser.call("close_page", page=name, timeout=10)
            except Exception:
                pass
        for r in self.raws:
            r.close()
        for w in self.cluster.workers.values():
            if w.stopped:
                w.sigcont()
        failed = hasattr(self, "_outcome") and not _succeeded(self)
        for c in [self.cluster] + self.extra_clusters:
            if failed:
                sys.stderr.write("\n%s\n" % c.tails())
            c.stop()
        self.dir.cleanup()

    # -- cluster
    def gateway_args(self, extra=()):
        # as in make run: auth required, the development token issuer on
        # (POST /dev/token asks the workers' devtoken service)
        return ["--auth", "required", "--auth-service", "auth", "--dev-token", "devtoken",
                "--static", WWW, "--api-key-file", self.api_key_file] + list(extra)

    def worker_args(self, extra=(), dev_ttl_s=600):
        """For workers running auth (and devtoken: it signs with the same
        key, kid dev, tokens of dev_ttl_s seconds)."""
        return ["--auth-keys", self.keys_file, "--auth-leeway-s", "2",
                "--dev-token-kid", "dev", "--dev-token-ttl-s", str(dev_ttl_s)] + list(extra)

    def start_cluster(self, gateway_args=(), worker_args=(),
                      services="echo,counter,auth,chan,devtoken"):
        self.cluster.start_gateway(self.gateway_args(gateway_args))
        self.cluster.start_worker("worker-1", services=services, args=self.worker_args(worker_args))
        self.cluster.wait_workers(1)

    def restart_gateway(self, sig="term"):
        """Stops the gateway (SIGTERM: clients see 1001; kill: they see the
        connection drop) and returns a function that starts it again with
        the same argv, ports included."""
        gw = self.cluster.gateway
        if sig == "term":
            rc, killed = gw.terminate()
            self.assertFalse(killed, "gateway did not stop on SIGTERM")
        else:
            gw.kill()
        gw.close_log()

        def start_again():
            self.cluster.gateway = Proc("gateway", gw.argv, self.cluster.log_path("gateway"))
            deadline = time.monotonic() + 15 * SLOW
            while True:
                try:
                    self.cluster.metrics()
                    return self.cluster.gateway
                except OSError:
                    if not self.cluster.gateway.alive() or time.monotonic() > deadline:
                        raise AssertionError("gateway did not come back on its ports\n"
                                             + self.cluster.gateway.tail())
                    time.sleep(0.05)

        return start_again

    def second_gateway(self):
        """Another gateway (own ports, same flags) for the workers started
        after it to link to as well: a way in while the first is down."""
        gw2 = Cluster(self.id() + ".gw2")
        gw2.start_gateway(self.gateway_args())
        self.extra_clusters.append(gw2)
        return gw2

    # -- tokens and non-browser clients
    def token(self, user, ttl=300):
        now = int(time.time())
        return jwt.encode({"sub": user, "iat": now, "exp": now + ttl, "channels": CHANNELS},
                          self.secret, algorithm="HS256", headers={"kid": "dev"})

    def ws_client(self, cluster, user):
        """A plain websocket client (the harness' RawWS), authenticated."""
        ws = harness.RawWS("127.0.0.1", cluster.port, "/ws", harness.JSON_PROTO)
        self.raws.append(ws)
        rep = self.ws_call(ws, {"op": "auth", "token": self.token(user)})
        self.assertEqual(rep["op"], "res", rep)
        return ws

    def ws_call(self, ws, env, timeout=5.0):
        self.next_id = getattr(self, "next_id", 0) + 1
        env = dict(env, id=self.next_id)
        ws.send_text(json.dumps(env))
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            _, payload = ws.recv_message(timeout)
            m = json.loads(payload)
            if m.get("id") == self.next_id:
                return m
        raise AssertionError("no answer to %r" % env)

    def admin_publish(self, cluster, channel, data):
        req = urllib.request.Request(
            "http://127.0.0.1:%d/publish" % cluster.admin_port, method="POST",
            data=json.dumps({"channel": channel, "data": data}).encode(),
            headers={"Authorization": "Bearer " + self.api_key})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    # -- pages
    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.cluster.port, path)

    def open(self, name, path="/"):
        self.browser.open(name, self.url(path))
        self.pages.append(name)

    def page_errors(self, name):
        return self.browser.call("errors", page=name)["errors"]


def _succeeded(tc):
    outcome = tc._outcome
    result = getattr(outcome, "result", None)
    if result is None:
        return getattr(outcome, "success", True)
    for test, _ in list(getattr(result, "errors", [])) + list(getattr(result, "failures", [])):
        if test is tc:
            return False
    return True


def main():
    unittest.main(verbosity=2)
