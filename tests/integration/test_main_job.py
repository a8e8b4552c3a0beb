"""The main job, as `make run` starts it: deploy/run-main.sh with its
gateway and two workers, on fresh ports (WSGATE_LISTEN, WSGATE_ADMIN,
WSGATE_BACKEND move it off 8080/9090/7001).

Covers what the README's try-it section promises: auth is required, a
token from the development issuer (POST /dev/token) opens the websocket
through the query parameter, echo and counter answer, room channels work,
the raw echo endpoint is anonymous, both workers are linked; and Ctrl-C
(SIGINT to the script) stops all three processes, exit status 0."""

import asyncio
import json
import os
import signal
import subprocess
import time
import unittest
import urllib.request

import msgpack  # noqa: F401  (harness needs it; keeps import errors early)

import harness
from harness import close_code, free_port, ws_connect

SCRIPT = os.path.join(harness.ROOT, "deploy", "run-main.sh")
BUILD = os.path.dirname(os.path.dirname(harness.GATEWAY_BIN))


class MainJobTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        ports = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.port, self.admin, self.backend = sorted(ports)
        env = dict(os.environ,
                   WSGATE_LISTEN="127.0.0.1:%d" % self.port,
                   WSGATE_ADMIN="127.0.0.1:%d" % self.admin,
                   WSGATE_BACKEND="tcp://127.0.0.1:%d" % self.backend)
        os.makedirs(harness.LOG_DIR, exist_ok=True)
        self.log_path = os.path.join(harness.LOG_DIR, "main_job.log")
        self.log = open(self.log_path, "wb")
        self.p = subprocess.Popen(["bash", SCRIPT, BUILD], env=env, stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 20 * harness.SLOW
        while time.monotonic() < deadline:
            if "wsgate is up" in self.text() and self.workers() == 2:
                return
            self.assertIsNone(self.p.poll(), "run-main.sh exited:\n" + self.text())
            await asyncio.sleep(0.1)
        self.fail("the main job did not come up:\n" + self.text())

    async def asyncTearDown(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(10)
        self.log.close()

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def workers(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin,
                                        timeout=2) as r:
                m = harness.Metrics(harness.parse_metrics(r.read().decode()), "")
            return m.get("wsgate_workers")
        except OSError:
            return None

    def dev_token(self, user):
        req = urllib.request.Request("http://127.0.0.1:%d/dev/token" % self.port,
                                     data=json.dumps({"user": user}).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())["token"]

    async def call(self, ws, obj):
        await ws.send(json.dumps(obj))
        return json.loads(await asyncio.wait_for(ws.recv(), 5 * harness.SLOW))

    async def test_try_it_and_stop(self):
        url = "ws://127.0.0.1:%d" % self.port
        # without a token, requests are refused
        ws = await ws_connect(url + "/ws")
        rep = await self.call(ws, {"id": 1, "svc": "echo", "data": "x"})
        self.assertEqual((rep["op"], rep["code"]), ("err", "unauthenticated"), rep)
        await ws.close()

        ws = await ws_connect(url + "/ws?token=" + self.dev_token("me"))
        # a query token is answered first, with the user (docs/protocol.md)
        rep = json.loads(await asyncio.wait_for(ws.recv(), 5 * harness.SLOW))
        self.assertEqual((rep["op"], rep["data"]["user"]), ("res", "me"), rep)
        rep = await self.call(ws, {"id": 1, "svc": "echo", "data": {"hello": "world"}})
        self.assertEqual(rep["data"], {"hello": "world"}, rep)
        self.assertEqual((await self.call(ws, {"id": 2, "svc": "counter", "key": "v"}))["data"], 1)
        rep = await self.call(ws, {"op": "sub", "id": 3, "channel": "room:1", "presence": True})
        self.assertEqual(rep["op"], "res", rep)
        await ws.send(json.dumps({"op": "pub", "id": 4, "channel": "room:1", "data": "hi"}))
        got = {}
        # the pub's answer, our own join (presence) and the publication, in any order
        while not {"res", "msg", "join"} <= set(got):
            m = json.loads(await asyncio.wait_for(ws.recv(), 5 * harness.SLOW))
            got[m["op"]] = m
        self.assertEqual(got["join"]["user"], "me", got)
        self.assertEqual(got["msg"]["data"], "hi", got)
        self.assertEqual(got["res"]["id"], 4, got)
        await ws.close()

        raw = await ws_connect(url + "/raw/echo")
        await raw.send(b"\x01\x02")
        self.assertEqual(await asyncio.wait_for(raw.recv(), 5), b"\x01\x02")
        await raw.close()

        # Ctrl-C: the script and all three children stop, status 0
        os.killpg(self.p.pid, signal.SIGINT)
        self.assertEqual(self.p.wait(30 * harness.SLOW), 0, self.text())
        self.assertIn("run-main: stopped", self.text())
        left = subprocess.run(["ps", "-o", "pid=,stat=,args=", "--sid", str(self.p.pid)],
                              capture_output=True, text=True)
        # zombies are dead already (under ASan, LeakSanitizer's tracer child can
        # linger a moment as one before init reaps it)
        alive = [ln for ln in left.stdout.splitlines() if ln.split()[1][0] != "Z"]
        self.assertEqual(alive, [], "processes left in the job's session")


if __name__ == "__main__":
    unittest.main()
