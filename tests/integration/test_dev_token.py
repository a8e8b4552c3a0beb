"""The development token issuer end to end: the gateway's POST /dev/token
(dev-token = devtoken) asks the worker's `devtoken` service, which signs an
HS256 token with a key of the auth key file; that token then authenticates
a websocket at the `auth` service and grants the configured channels.

Covers: a token for a user, accepted by auth, with room:* granted and other
channels refused; bad bodies and bad user names answered 400 and counted;
GET answered 405; the route absent without dev-token (404); no worker
offering the service answered 503; a websocket client calling `devtoken`
directly refused (forbidden); the worker refusing to start with a kid that
is not an HS256 key; the start-up warnings in both logs."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import harness
from authkit import AuthKit
from harness import GatewayTestCase


class DevTokenTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.kit = AuthKit()

    async def asyncTearDown(self):
        await super().asyncTearDown()
        self.kit.close()

    def start_dev(self, services="auth,devtoken,chan,echo", extra_worker=()):
        return self.start(
            gateway_args=["--auth", "required", "--dev-token", "devtoken"],
            workers=1,
            services=services,
            worker_args=self.kit.worker_args() + ["--dev-token-kid", "hs1",
                                                  "--dev-token-ttl-s", "120"] + list(extra_worker),
        )

    def post(self, path, body, method="POST"):
        url = "http://127.0.0.1:%d%s" % (self.cluster.port, path)
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw

    async def test_token_authenticates_and_grants_rooms(self):
        self.start_dev()
        status, body = self.post("/dev/token", {"user": "alice"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["user"], "alice")
        self.assertAlmostEqual(body["exp"], time.time() + 120, delta=5)
        c = await self.connect("msgpack")
        await c.send({"op": "auth", "id": 1, "token": body["token"]})
        rep = await c.recv()
        self.assertEqual((rep["op"], rep["data"]["user"]), ("res", "alice"), rep)
        await c.send({"op": "sub", "id": 2, "channel": "room:lobby"})
        rep = await c.recv()
        self.assertEqual(rep["op"], "res", rep)
        await c.send({"op": "sub", "id": 3, "channel": "private:x"})
        rep = await c.recv()
        self.assertEqual((rep["op"], rep["code"]), ("err", "forbidden"), rep)
        await self.wait_metric(lambda m: m.get("wsgate_dev_tokens_total", result="ok") == 1,
                               what="dev token counted")

    async def test_bad_requests(self):
        self.start_dev()
        for body in (b"not json", {"name": "x"}, {"user": ""}, {"user": 5}, {"user": "a b"},
                     {"user": "x" * 65}, {"user": "c:1"}, [1, 2]):
            status, rep = self.post("/dev/token", body)
            self.assertEqual(status, 400, (body, rep))
            self.assertEqual(rep["code"], "bad_request", (body, rep))
        status, rep = self.post("/dev/token", None, method="GET")
        self.assertEqual(status, 405, rep)
        await self.wait_metric(
            lambda m: m.get("wsgate_dev_tokens_total", result="bad_request") == 9,
            what="9 bad requests counted")
        # and the issuer still works
        status, rep = self.post("/dev/token", {"user": "bob"})
        self.assertEqual(status, 200, rep)

    async def test_websocket_clients_cannot_call_it(self):
        self.start_dev()
        status, body = self.post("/dev/token", {"user": "alice"})
        c = await self.connect("json")
        await c.send({"op": "auth", "id": 1, "token": body["token"]})
        self.assertEqual((await c.recv())["op"], "res")
        rep = await c.call("devtoken", {"user": "mallory"}, key="mallory", id=2)
        self.assertEqual((rep["op"], rep["code"]), ("err", "forbidden"), rep)

    async def test_off_by_default_and_unavailable_without_worker(self):
        self.start(gateway_args=["--auth", "required"], workers=1, services="auth,echo",
                   worker_args=self.kit.worker_args())
        status, _ = self.post("/dev/token", {"user": "alice"})
        self.assertEqual(status, 404)
        await self.cluster_restart_with_dev_but_no_service()

    async def cluster_restart_with_dev_but_no_service(self):
        self.cluster.gateway.terminate()
        self.cluster.start_gateway(["--auth", "required", "--dev-token", "devtoken"],
                                   wait_workers=None)
        status, rep = self.post("/dev/token", {"user": "alice"})
        self.assertEqual(status, 503, rep)
        self.assertEqual(rep["code"], "unavailable", rep)
        self.assertIn("no worker offers", rep["msg"])
        await self.wait_metric(lambda m: m.get("wsgate_dev_tokens_total", result="failed") == 1,
                               what="failure counted")
        with open(self.cluster.log_path("gateway")) as f:
            self.assertIn("DEVELOPMENT token issuer on", f.read())

    def test_worker_refuses_a_kid_that_is_not_hs256(self):
        for kid in ("rsa1", "nosuch"):
            p = subprocess.run([harness.WORKER_BIN, "--services", "devtoken", "--check-config"]
                               + self.kit.worker_args() + ["--dev-token-kid", kid],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("not an HS256-only key", p.stderr)
        p = subprocess.run([harness.WORKER_BIN, "--services", "devtoken", "--check-config"]
                           + self.kit.worker_args() + ["--dev-token-kid", "hs1"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("WARNING: the devtoken service is running", p.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
