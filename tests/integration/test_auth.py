"""Authentication end to end: a real gateway with auth = required, a real
worker running the `auth` service on a key file, PyJWT tokens.

Covers: messages before auth refused (`unauthenticated`, counted); HS256,
RS256 and ES256 tokens accepted in the first message; a bad token answered
with its code and closed 4003; no auth in time closes 4004; an in-band
refresh extends the connection past the first token's expiry; an expired
token without refresh closes 4005; the `token` query parameter; a refresh
may not change the user; the Origin allow-list; and no token text in any
log of the run."""

import asyncio
import os
import time

import websockets.exceptions

import harness
from authkit import AuthKit
from harness import GatewayTestCase, HandshakeError, close_code


class AuthTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.kit = AuthKit()
        self.tokens = []  # every token handed out, to look for in the logs

    async def asyncTearDown(self):
        await super().asyncTearDown()
        self.kit.close()

    def start_auth(self, gateway_args=()):
        args = ["--auth", "required", "--auth-timeout-ms", "1500", "--auth-grace-ms", "300"]
        return self.start(
            gateway_args=args + list(gateway_args),
            workers=1,
            services="echo,auth",
            worker_args=self.kit.worker_args(),
        )

    def token(self, **kw):
        t = self.kit.token(**kw)
        self.tokens.append(t)
        return t

    async def auth(self, c, token, id=1):
        await c.send({"op": "auth", "id": id, "token": token})
        return await c.recv()

    async def expect_close(self, c, code, timeout=5.0):
        try:
            while True:
                await c.recv(timeout)
        except websockets.exceptions.ConnectionClosed as e:
            self.assertEqual(close_code(e), code, e)
            return e

    async def test_unauthenticated_messages_are_refused(self):
        self.start_auth()
        c = await self.connect("json")
        rep = await c.call("echo", "x", id=5)
        self.assertEqual((rep["op"], rep["code"]), ("err", "unauthenticated"), rep)
        await self.wait_metric(lambda m: m.get("wsgate_unauthenticated_total") >= 1,
                               what="unauthenticated counted")
        # the connection stays and can still authenticate
        rep = await self.auth(c, self.token(sub="alice"))
        self.assertEqual(rep["op"], "res", rep)
        self.assertEqual(rep["data"]["user"], "alice")
        self.assertGreater(rep["data"]["exp"], time.time())
        await c.echo_ok(self)

    async def test_each_algorithm_in_both_encodings(self):
        self.start_auth()
        for enc in ("json", "msgpack"):
            for alg in ("HS256", "RS256", "ES256"):
                c = await self.connect(enc)
                rep = await self.auth(c, self.token(sub="u-" + alg, alg=alg))
                self.assertEqual((rep["op"], rep["data"]["user"]), ("res", "u-" + alg), rep)
                await c.echo_ok(self)
                await c.close()
        await self.wait_metric(lambda m: m.get("wsgate_auth_total", result="ok") == 6,
                               what="six successful auths")

    async def test_bad_tokens_get_their_code_and_close_4003(self):
        self.start_auth()
        now = int(time.time())
        cases = [
            (self.token(exp=now - 60, iat=now - 120), "token_expired"),
            (self.token(nbf=now + 600), "token_not_yet_valid"),
            (self.token(iss="someone-else"), "bad_issuer"),
            (self.token(aud="another-app"), "bad_audience"),
            (self.token()[:-4] + ("AAAA" if not self.token().endswith("AAAA") else "BBBB"),
             "bad_signature"),
            ("not-a-jwt", "malformed_token"),
            ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.", None),  # alg none
        ]
        self.tokens.extend(t for t, _ in cases)
        for tok, code in cases:
            c = await self.connect("json")
            rep = await self.auth(c, tok, id=9)
            self.assertEqual((rep["op"], rep["id"]), ("err", 9), rep)
            if code:
                self.assertEqual(rep["code"], code, rep)
            else:
                self.assertIn(rep["code"], ("alg_not_allowed", "unknown_key"), rep)
            e = await self.expect_close(c, 4003)
            self.assertEqual(e.rcvd.reason, "auth_failed")
        await self.wait_metric(
            lambda m: m.get("wsgate_auth_total", result="failed") == len(cases)
            and m.get("wsgate_connections_closed_total", reason="auth_failed") == len(cases),
            what="failed auths counted")

    async def test_no_auth_in_time_closes_4004(self):
        self.start_auth()
        c = await self.connect("json")
        t0 = time.monotonic()
        await self.expect_close(c, 4004, timeout=10)
        self.assertGreaterEqual(time.monotonic() - t0, 1.2)
        # an authenticated connection opened at the same time is not touched
        d = await self.connect("json")
        await self.auth(d, self.token())
        await asyncio.sleep(2.0)
        await d.echo_ok(self)

    async def test_expiry_closes_4005_and_refresh_extends(self):
        self.start_auth()
        short = await self.connect("json")
        kept = await self.connect("json")
        rep = await self.auth(short, self.token(sub="s", ttl=1))
        self.assertEqual(rep["op"], "res", rep)
        rep = await self.auth(kept, self.token(sub="k", ttl=1))
        self.assertEqual(rep["op"], "res", rep)
        # refresh before exp: same user, a longer token
        rep = await self.auth(kept, self.token(sub="k", ttl=600), id=2)
        self.assertEqual((rep["op"], rep["id"]), ("res", 2), rep)
        await self.expect_close(short, 4005, timeout=6)
        await kept.echo_ok(self)
        await self.wait_metric(
            lambda m: m.get("wsgate_auth_total", result="refreshed") == 1
            and m.get("wsgate_connections_closed_total", reason="token_expired") == 1,
            what="one refresh and one expiry counted")

    async def test_refresh_cannot_change_the_user(self):
        self.start_auth()
        c = await self.connect("json")
        await self.auth(c, self.token(sub="alice"))
        rep = await self.auth(c, self.token(sub="mallory"), id=3)
        self.assertEqual((rep["op"], rep["code"]), ("err", "user_changed"), rep)
        await c.echo_ok(self)  # still alice, still open

    async def test_token_query_parameter(self):
        self.start_auth()
        tok = self.token(sub="qp")
        ws = await harness.ws_connect(self.cluster.url("/ws?token=" + tok), [harness.JSON_PROTO])
        c = harness.Client(ws, "json")
        self.clients.append(c)
        rep = await c.recv()
        self.assertEqual(rep["op"], "res", rep)
        self.assertNotIn("id", rep)
        self.assertEqual(rep["data"]["user"], "qp")
        await c.echo_ok(self)
        # a bad one closes 4003 like the in-band kind
        ws = await harness.ws_connect(self.cluster.url("/ws?token=garbage"), [harness.JSON_PROTO])
        c = harness.Client(ws, "json")
        self.clients.append(c)
        rep = await c.recv()
        self.assertEqual((rep["op"], rep["code"]), ("err", "malformed_token"), rep)
        await self.expect_close(c, 4003)

    async def test_origin_allow_list(self):
        self.start_auth(["--origin", "https://app.example.com", "--origin",
                         "https://*.example.org", "--allow-no-origin", "false"])
        for origin in ("https://app.example.com", "https://eu.example.org", "HTTPS://APP.EXAMPLE.COM"):
            r = self.raw(headers={"Origin": origin})
            r.close()
        for origin in ("https://evil.example.net", "https://example.org", "https://a.b.example.org",
                       "http://app.example.com", "https://app.example.com.evil.net", "null"):
            with self.assertRaises(HandshakeError) as cm:
                self.raw(headers={"Origin": origin})
            self.assertEqual(cm.exception.status, 403, origin)
        with self.assertRaises(HandshakeError) as cm:
            self.raw()  # no Origin: refused by allow-no-origin false
        self.assertEqual(cm.exception.status, 403)
        m = self.metrics()
        self.assertEqual(m.get("wsgate_connections_rejected_total", reason="origin"), 7)

    async def test_zz_no_token_in_any_log(self):
        # runs a query-token and an in-band auth with verbose logging on both
        # sides, then reads every log file of this test class's runs so far
        self.start(gateway_args=["--auth", "required", "-v", "-v"], workers=1,
                   services="echo,auth", worker_args=self.kit.worker_args() + ["-v"])
        tok = self.token(sub="logcheck")
        c = await self.connect("json")
        await self.auth(c, tok)
        ws = await harness.ws_connect(self.cluster.url("/ws?token=" + tok), [harness.JSON_PROTO])
        await ws.recv()
        await ws.close()
        c2 = await self.connect("json")
        await self.auth(c2, tok[:-3] + "xyz")
        await asyncio.sleep(0.3)
        self.cluster.stop()
        secrets = [t.split(".")[2] for t in self.tokens if t.count(".") == 2 and t.split(".")[2]]
        secrets += [t.split(".")[1] for t in self.tokens if t.count(".") == 2]
        for name in os.listdir(harness.LOG_DIR):
            if not name.startswith("test_auth.") and "AuthTest" not in name:
                continue
            with open(os.path.join(harness.LOG_DIR, name), errors="replace") as f:
                text = f.read()
            for s in secrets:
                self.assertNotIn(s, text, "token text in %s" % name)


if __name__ == "__main__":
    harness.main()
