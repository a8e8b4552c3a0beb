"""The C client (clients/c, libwsgate-client) end to end, through its
example program wsgate-sensor, against a real gateway and real workers.

Covers: readings published by the sensor reach a subscriber; a command
published by the backend (admin POST /publish) is printed by the sensor;
the gateway killed (-9) and started again on the same port: the sensor
reconnects by itself, resubscribes, and delivers the readings it made
while offline up to its queue bound, the oldest dropped and reported;
auth with a token (auth = required), a refresh from the token file
before expiry, a refused token (4003); a raw endpoint round trip; wss://
through a TLS-terminating proxy, with the certificate verified against a
CA file (and refused without it); requests answered and matched by id;
and a fake gateway sending malformed and oversized frames, which are
counted and harm nothing, and a push, which is delivered."""

import asyncio
import datetime
import ipaddress
import json
import os
import re
import ssl
import tempfile
import time
import urllib.error
import urllib.request

import msgpack
import websockets

import harness
from authkit import AuthKit
from harness import GatewayTestCase, Proc, SLOW, free_port

SENSOR_BIN = os.environ.get(
    "WSGATE_SENSOR_BIN", os.path.join(harness.ROOT, "build", "clients", "c", "wsgate-sensor"))

API_KEY = "test-api-key-0123456789abcdef"
CHAN_ARGS = ["--chan-public", "telemetry:*,cmd:*", "--chan-history", "1000"]

def parse_line(line):
    """'reading seq=3 id=4 state=connected' -> ('reading', {...}); a trailing
    data=, msg= or reason= takes the rest of the line (it may hold spaces)."""
    words = line.split(" ")
    kind, kv = words[0], {}
    for i, w in enumerate(words[1:], 1):
        k, _, v = w.partition("=")
        if k in ("data", "msg", "reason"):
            kv[k] = " ".join([v] + words[i + 1:])
            break
        kv[k] = v
    return kind, kv


class Sensor:
    """A wsgate-sensor process; its stdout (one event a line) in a log."""

    def __init__(self, tc, name, args):
        if not os.access(SENSOR_BIN, os.X_OK):
            raise AssertionError("sensor binary not found: %s (set WSGATE_SENSOR_BIN)" % SENSOR_BIN)
        path = tc.cluster.log_path(name)
        if os.path.exists(path):
            os.unlink(path)
        self.proc = Proc(name, [SENSOR_BIN] + list(args), path)
        self.path = path

    def events(self):
        with open(self.path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return [parse_line(l) for l in lines[1:] if l]  # line 0 is the command

    async def wait_for(self, pred, timeout=10.0, what="sensor event"):
        """Waits until pred(events) is true; returns its value."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            ev = self.events()
            got = pred(ev)
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s; sensor output:\n%s"
                                     % (what, self.proc.tail(60)))
            if not self.proc.alive() and not pred(self.events()):
                raise AssertionError("sensor exited (%s) before %s:\n%s"
                                     % (self.proc.p.returncode, what, self.proc.tail(60)))
            await asyncio.sleep(0.05)

    async def wait_exit(self, timeout=30.0):
        deadline = time.monotonic() + timeout * SLOW
        while self.proc.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.alive():
            self.proc.kill()
            raise AssertionError("sensor still running after %.0fs:\n%s" % (timeout, self.proc.tail(60)))
        return self.proc.p.returncode

    def stop(self):
        self.proc.terminate(5)
        self.proc.close_log()


def count(events, kind, **match):
    return sum(1 for k, kv in events if k == kind and all(kv.get(a) == b for a, b in match.items()))


def connected_count(events):
    return sum(1 for k, kv in events if k == "state" and "connected" in kv)


async def wait_offline_readings(s, n):
    """Until n readings were made after the sensor saw the connection go."""
    def offline(ev):
        connected, seen, out = False, False, 0
        for k, kv in ev:
            if k == "state" and "connected" in kv:
                connected = True
            elif k == "state" and "disconnected" in kv and connected:
                seen = True
            elif seen and k == "reading" and kv["state"] != "connected":
                out += 1
        return out >= n
    await s.wait_for(offline, timeout=15, what="%d readings made offline" % n)


def nested(depth):
    v = 1
    for _ in range(depth):
        v = [v]
    return v


def stats(events):
    for k, kv in reversed(events):
        if k == "stats":
            return {a: int(b) for a, b in kv.items()}
    return None


class CClientTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="wsgate-cclient-")
        self.api_key_file = os.path.join(self.tmp.name, "api.key")
        with open(self.api_key_file, "w") as f:
            f.write(API_KEY + "\n")
        self.sensors = []
        self.servers = []
        self.kit = None

    async def asyncTearDown(self):
        for s in self.sensors:
            s.stop()
        for srv in self.servers:
            srv.close()
        await super().asyncTearDown()
        if self.kit:
            self.kit.close()
        self.tmp.cleanup()

    def sensor(self, *args, name="sensor"):
        s = Sensor(self, "%s%d" % (name, len(self.sensors) + 1), args)
        self.sensors.append(s)
        return s

    def start_plain(self, gateway_args=()):
        self.start(gateway_args=["--api-key-file", self.api_key_file] + list(gateway_args),
                   workers=1, services="echo,chan", worker_args=CHAN_ARGS)

    def publish(self, channel, data):
        req = urllib.request.Request(
            "http://127.0.0.1:%d/publish" % self.cluster.admin_port,
            data=json.dumps({"channel": channel, "data": data}).encode(), method="POST")
        req.add_header("Authorization", "Bearer " + API_KEY)
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())

    async def history(self, channel):
        c = await self.connect("msgpack")
        await c.send({"op": "history", "id": 1, "channel": channel})
        rep = await c.recv()
        await c.close()
        self.assertEqual(rep["op"], "res", rep)
        return rep["data"]["pubs"]

    # ------------------------------------------------------------------

    async def test_readings_commands_and_a_gateway_restart(self):
        self.start_plain()
        Q = 5
        sub = await self.connect("msgpack")
        await sub.send({"op": "sub", "id": 1, "channel": "telemetry:d1"})
        self.assertEqual((await sub.recv())["op"], "res")

        s = self.sensor("--url", self.cluster.url(), "--device", "d1", "--rate", "20",
                        "--count", "0", "--queue", str(Q), "--backoff-ms", "100,400")
        await s.wait_for(lambda ev: connected_count(ev) >= 1, what="connected")

        # readings arrive at a subscriber, in order, as the sensor made them
        seqs = []
        while len(seqs) < 5:
            m = await sub.recv()
            if m.get("op") == "msg":
                self.assertEqual(m["channel"], "telemetry:d1")
                self.assertEqual(m["data"]["device"], "d1")
                seqs.append(m["data"]["seq"])
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + 5)))

        # a command from the backend is printed by the sensor
        loop = asyncio.get_running_loop()
        status, _ = await loop.run_in_executor(None, self.publish, "cmd:d1", {"cmd": "blink", "n": 1})
        self.assertEqual(status, 200)
        await s.wait_for(lambda ev: any(k == "command" and kv.get("data") == '{"cmd":"blink","n":1}'
                                        for k, kv in ev), what="the first command")

        # kill -9 the gateway; the sensor goes on producing while offline
        await sub.close()
        self.cluster.gateway.kill()
        await wait_offline_readings(s, Q + 8)
        self.start_gateway_again()
        await self.wait_workers(1)
        # it reconnects by itself (a second "state connected")
        await s.wait_for(lambda ev: connected_count(ev) >= 2, timeout=20, what="reconnected")
        # and is subscribed again: a command published now reaches it
        status, _ = await loop.run_in_executor(None, self.publish, "cmd:d1", {"cmd": "reboot"})
        self.assertEqual(status, 200)
        await s.wait_for(lambda ev: any(k == "command" and kv.get("data") == '{"cmd":"reboot"}'
                                        for k, kv in ev), what="the command after the restart")
        # let a few readings go through the new connection, then stop
        n_now = count(s.events(), "reading")
        await s.wait_for(lambda ev: count(ev, "reading") >= n_now + 5, what="more readings")
        s.proc.p.send_signal(2)  # SIGINT: prints stats, exits 0
        self.assertEqual(await s.wait_exit(), 0, s.proc.tail())
        ev = s.events()
        st = stats(ev)
        self.assertIsNotNone(st, s.proc.tail())

        # which readings were made offline (after the disconnect was seen,
        # before the session was back), and which were dropped
        readings, id_seq, offline, dropped_ids = [], {}, [], []
        phase = 0  # 0 before the kill was noticed, 1 offline, 2 back
        disconnects = []
        phase = 0
        seen_connected = 0
        for k, kv in ev:
            if k == "state":
                if "connected" in kv:
                    seen_connected += 1
                    if seen_connected == 2:
                        phase = 2
                elif "disconnected" in kv and seen_connected == 1 and phase == 0:
                    phase = 1
                    disconnects.append(kv)
            elif k == "reading":
                seq, rid = int(kv["seq"]), int(kv["id"])
                id_seq[rid] = seq
                readings.append(seq)
                if phase == 1:
                    self.assertNotEqual(kv["state"], "connected")
                    offline.append(seq)
            elif k == "error" and kv.get("code") == "dropped":
                dropped_ids.append(int(kv["id"]))
        self.assertEqual(disconnects[0].get("code"), "1006", disconnects)
        self.assertGreaterEqual(len(offline), Q + 8)
        dropped = sorted(id_seq[i] for i in dropped_ids)
        # the bound held: everything offline but the newest Q was dropped,
        # oldest first, and the counter says so
        self.assertEqual(st["dropped"], len(dropped))
        for seq in offline[:-Q]:
            self.assertIn(seq, dropped)
        self.assertTrue(all(d < offline[-Q] for d in dropped), (dropped, offline))
        self.assertGreaterEqual(st["connects"], 2)

        # what reached the channel: every reading but the dropped ones and
        # at most a few written into the dead connection before the kill
        # was noticed (those were answered "disconnected")
        pubs = await self.history("telemetry:d1")
        got = [p["data"]["seq"] for p in pubs]
        self.assertEqual(got, sorted(got))
        self.assertEqual(len(got), len(set(got)))
        for seq in offline[-Q:]:
            self.assertIn(seq, got, "an offline reading within the bound was not delivered")
        for seq in dropped:
            self.assertNotIn(seq, got)
        lost = [q for q in readings if q not in got and q not in dropped]
        disconnected = count(ev, "error", code="disconnected")
        self.assertLessEqual(len(lost), disconnected + 2, (lost, disconnected))
        after = [q for q in readings if q > offline[-1]]
        self.assertGreaterEqual(len(after), 5)
        for seq in after[:-2]:  # the last ones may have been cut by SIGINT
            self.assertIn(seq, got)

    def start_gateway_again(self):
        """The same command as the killed gateway: the same ports."""
        old = self.cluster.gateway
        old.close_log()
        deadline = time.monotonic() + 10 * SLOW
        while True:
            self.cluster.gateway = Proc("gateway", old.argv, old.log_path)
            while time.monotonic() < deadline and self.cluster.gateway.alive():
                try:
                    self.cluster.metrics()
                    return
                except OSError:
                    time.sleep(0.05)
            if time.monotonic() > deadline:
                raise AssertionError("gateway did not come back:\n" + self.cluster.gateway.tail())
            self.cluster.gateway.close_log()
            time.sleep(0.1)

    # ------------------------------------------------------------------

    def start_auth(self):
        self.kit = AuthKit()
        self.start(gateway_args=["--auth", "required", "--auth-grace-ms", "300",
                                 "--api-key-file", self.api_key_file],
                   workers=1, services="echo,auth,chan",
                   worker_args=self.kit.worker_args() + CHAN_ARGS)

    def token_file(self, token, name="token"):
        path = os.path.join(self.tmp.name, name)
        with open(path + ".new", "w") as f:
            f.write(token + "\n")
        os.replace(path + ".new", path)  # the sensor never reads half a file
        return path

    async def test_auth_with_a_token_and_a_refresh_before_expiry(self):
        self.start_auth()
        # a token that expires in 4 s; the sensor refreshes at 3/4 of its
        # life, re-reading the file, where a fresh token is by then
        path = self.token_file(self.kit.token(sub="dev-d2", ttl=4))
        s = self.sensor("--url", self.cluster.url(), "--device", "d2", "--rate", "10",
                        "--count", "0", "--token-file", path)
        await s.wait_for(lambda ev: connected_count(ev) >= 1, what="connected with the token")
        self.token_file(self.kit.token(sub="dev-d2", ttl=300))
        t0 = time.monotonic()
        # past the first token's expiry plus the gateway's grace
        while time.monotonic() - t0 < 5.5:
            self.assertEqual(count(s.events(), "state", disconnected=""), 0, s.proc.tail())
            await asyncio.sleep(0.1)
        self.assertGreaterEqual(self.metric("wsgate_auth_total", result="refreshed"), 1)
        n = count(s.events(), "reading")
        s.proc.p.send_signal(2)
        self.assertEqual(await s.wait_exit(), 0, s.proc.tail())
        ev = s.events()
        self.assertEqual(count(ev, "state", disconnected=""), 0, s.proc.tail())
        self.assertEqual(count(ev, "error"), 0, s.proc.tail())
        got = [p["data"]["seq"] for p in await self.history_auth("telemetry:d2")]
        self.assertGreaterEqual(len(got), n - 1)  # the last may be cut by SIGINT

    async def history_auth(self, channel):
        c = await self.connect("msgpack")
        await c.send({"op": "auth", "id": 0, "token": self.kit.token(sub="reader")})
        self.assertEqual((await c.recv())["op"], "res")
        await c.send({"op": "history", "id": 1, "channel": channel})
        rep = await c.recv()
        await c.close()
        self.assertEqual(rep["op"], "res", rep)
        return rep["data"]["pubs"]

    async def test_a_refused_token_is_closed_4003_and_nothing_gets_through(self):
        self.start_auth()
        path = self.token_file(self.kit.token(sub="dev-d3", ttl=-600))  # expired
        s = self.sensor("--url", self.cluster.url(), "--device", "d3", "--rate", "20",
                        "--count", "0", "--token-file", path, "--backoff-ms", "100,200")
        await s.wait_for(lambda ev: count(ev, "state", disconnected="", code="4003") >= 2,
                         what="two attempts closed with 4003")
        s.proc.p.send_signal(2)
        self.assertEqual(await s.wait_exit(), 0, s.proc.tail())
        ev = s.events()
        self.assertEqual(connected_count(ev), 0, s.proc.tail())
        self.assertEqual(await self.history_auth("telemetry:d3"), [])

    async def test_raw_endpoint_round_trip(self):
        self.start_plain()
        s = self.sensor("--url", self.cluster.url("/raw/echo"), "--device", "d4", "--rate", "50",
                        "--count", "5")
        self.assertEqual(await s.wait_exit(), 0, s.proc.tail())
        ev = s.events()
        raws = [kv for k, kv in ev if k == "raw"]
        self.assertEqual([json.loads(kv["data"])["seq"] for kv in raws], [1, 2, 3, 4, 5], s.proc.tail())
        self.assertTrue(all(kv["binary"] == "1" for kv in raws))
        self.assertEqual(json.loads(raws[0]["data"])["device"], "d4")
        self.assertEqual(stats(ev)["received"], 5)

    async def test_requests_get_their_own_replies(self):
        self.start_plain()
        s = self.sensor("--url", self.cluster.url(), "--device", "d9", "--rate", "50",
                        "--count", "20", "--request", "echo")
        self.assertEqual(await s.wait_exit(), 0, s.proc.tail())
        ev = s.events()
        id_seq = {kv["id"]: int(kv["seq"]) for k, kv in ev if k == "reading"}
        replies = [kv for k, kv in ev if k == "reply"]
        self.assertEqual(len(replies), 20, s.proc.tail())
        for r in replies:  # each reply matched to its request by id
            self.assertEqual(json.loads(r["data"])["seq"], id_seq[r["id"]])
        self.assertEqual(stats(ev)["acked"], 20)
        self.assertEqual(await self.history("telemetry:d9"), [])  # nothing published

    # ------------------------------------------------------------------

    def make_cert(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                    critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        cert_path = os.path.join(self.tmp.name, "cert.pem")
        key_path = os.path.join(self.tmp.name, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return cert_path, key_path

    async def tls_proxy(self, cert_path, key_path):
        """A TLS-terminating TCP proxy to the gateway, on this event loop."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
        self.tls_sessions = 0

        async def pump(r, w):
            try:
                while True:
                    b = await r.read(65536)
                    if not b:
                        break
                    w.write(b)
                    await w.drain()
            except (ConnectionError, ssl.SSLError, OSError):
                pass
            finally:
                try:
                    w.close()
                except Exception:
                    pass

        async def handle(cr, cw):
            self.tls_sessions += 1
            try:
                gr, gw = await asyncio.open_connection("127.0.0.1", self.cluster.port)
            except OSError:
                cw.close()
                return
            await asyncio.gather(pump(cr, gw), pump(gr, cw))

        port = free_port()
        srv = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
        self.servers.append(srv)
        return port

    async def test_wss_through_a_tls_proxy_verifies_the_certificate(self):
        self.start_plain()
        cert, key = self.make_cert()
        port = await self.tls_proxy(cert, key)
        url = "wss://127.0.0.1:%d/ws" % port
        # the certificate checked against the CA file: works
        s = self.sensor("--url", url, "--device", "d5", "--rate", "20", "--count", "5",
                        "--ca-file", cert)
        self.assertEqual(await s.wait_exit(), 0, s.proc.tail())
        ev = s.events()
        self.assertEqual(connected_count(ev), 1, s.proc.tail())
        self.assertEqual(stats(ev)["acked"], 5, s.proc.tail())
        self.assertGreaterEqual(self.tls_sessions, 1)
        got = [p["data"]["seq"] for p in await self.history("telemetry:d5")]
        self.assertEqual(got, [1, 2, 3, 4, 5])
        # without the CA file the self-signed certificate is refused
        s = self.sensor("--url", url, "--device", "d6", "--rate", "20", "--count", "0",
                        "--backoff-ms", "100,200")
        await s.wait_for(lambda ev: count(ev, "state", disconnected="") >= 2,
                         what="two refused TLS attempts")
        s.proc.p.send_signal(2)
        self.assertEqual(await s.wait_exit(), 0, s.proc.tail())
        self.assertEqual(connected_count(s.events()), 0, s.proc.tail())
        # --insecure (tests only) accepts it
        s = self.sensor("--url", url, "--device", "d7", "--rate", "20", "--count", "2", "--insecure")
        self.assertEqual(await s.wait_exit(), 0, s.proc.tail())
        self.assertEqual(stats(s.events())["acked"], 2, s.proc.tail())

    # ------------------------------------------------------------------

    async def test_bad_frames_from_a_fake_gateway_are_counted_and_harmless(self):
        """A websocket server that speaks wsgate.v1.msgpack badly: frames
        that are not maps, lie about their lengths, nest too deep, come as
        text, are over the client's size bound, or answer nothing. The
        sensor counts each, and still gets the command sent after them."""
        pk = lambda o: msgpack.packb(o, use_bin_type=True)
        bad = [
            b"\xc1",                                   # reserved byte
            pk([1, 2, 3]),                             # not a map
            b"\xdf\xff\xff\xff\xff\xa2op",            # 4 billion pairs, 8 bytes
            pk({"op": "res", "id": 1})[:-1] + b"\xdb\xff\xff\xff\xff",  # str32 of 4 GB
            pk({"op": "msg", "channel": "cmd:d8"}),    # no epoch, no offset
            pk({"op": "res", "id": 999999, "data": 1}),  # answers nothing sent
            pk({"op": "res", "data": nested(40)}),    # deeper than the bound
            pk({"op": "msg", "channel": "cmd:d8", "epoch": "e", "offset": 1,
                "data": b"x" * 70000}),                # over --max-message 65536
            "text frame",                              # text on the msgpack subprotocol
        ]
        done = asyncio.Event()

        async def fake(ws):
            async for frame in ws:
                m = msgpack.unpackb(frame)
                if m.get("op") == "sub":
                    await ws.send(pk({"v": 1, "op": "res", "id": m["id"],
                                      "data": {"epoch": "e", "offset": 0, "recovered": False,
                                               "pubs": []}}))
                    for b in bad:
                        await ws.send(b)
                    await ws.send(pk({"v": 1, "op": "push", "svc": "chat", "data": {"hi": 1}}))
                    await ws.send(pk({"v": 1, "op": "msg", "channel": "cmd:d8", "epoch": "e",
                                      "offset": 1, "data": {"cmd": "still-alive"}}))
                elif m.get("op") == "pub":
                    await ws.send(pk({"v": 1, "op": "res", "id": m["id"],
                                      "data": {"epoch": "t", "offset": 1}}))
            done.set()

        port = free_port()
        srv = await websockets.serve(fake, "127.0.0.1", port, subprotocols=["wsgate.v1.msgpack"],
                                     compression=None, max_size=None)
        self.servers.append(srv)
        s = self.sensor("--url", "ws://127.0.0.1:%d/ws" % port, "--device", "d8", "--rate", "20",
                        "--count", "0", "--max-message", "65536")
        await s.wait_for(lambda ev: any(k == "command" for k, kv in ev), what="the good command")
        await s.wait_for(lambda ev: count(ev, "reading") >= 3, what="readings")
        s.proc.p.send_signal(2)
        self.assertEqual(await s.wait_exit(), 0, s.proc.tail())
        ev = s.events()
        cmds = [kv for k, kv in ev if k == "command"]
        self.assertEqual([json.loads(c["data"]) for c in cmds], [{"cmd": "still-alive"}])
        pushes = [kv for k, kv in ev if k == "push"]
        self.assertEqual([(p["svc"], json.loads(p["data"])) for p in pushes], [("chat", {"hi": 1})])
        self.assertEqual(stats(ev)["bad_frames"], len(bad), s.proc.tail())
        self.assertEqual(connected_count(ev), 1)
        self.assertEqual(count(ev, "state", disconnected=""), 0, s.proc.tail())


if __name__ == "__main__":
    harness.main()
