"""
harness.py - runs the real wsgate and wsgate-worker binaries for the
integration tests, on loopback only.

Each test gets its own gateway and workers on fresh ports (asyncSetUp /
asyncTearDown in GatewayTestCase), their stderr in a log file per test
under $WSGATE_IT_LOGDIR (the build dir when run by ctest), and helpers to
talk to them: a websockets-based client that speaks the v1 envelope in JSON
or msgpack, a hand-rolled websocket client (RawWS) for what a well-behaved
client library refuses to do (invalid UTF-8, never answering pings, never
reading), and metric lookups on the admin /metrics endpoint.

Binaries come from $WSGATE_BIN and $WSGATE_WORKER_BIN (set by
tests/integration/CMakeLists.txt), falling back to build/gateway/wsgate
and build/workers/wsgate-worker of the source tree.
"""

import asyncio
import base64
import ctypes
import hashlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest
import urllib.request

import msgpack
import websockets
import websockets.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

GATEWAY_BIN = os.environ.get("WSGATE_BIN", os.path.join(ROOT, "build", "gateway", "wsgate"))
WORKER_BIN = os.environ.get(
    "WSGATE_WORKER_BIN", os.path.join(ROOT, "build", "workers", "wsgate-worker")
)
LOG_DIR = os.environ.get("WSGATE_IT_LOGDIR", os.path.join(HERE, "artifacts"))

# Sanitizer builds are several times slower; tests scale their waits by this.
SLOW = float(os.environ.get("WSGATE_IT_SLOW", "1"))

JSON_PROTO = "wsgate.v1.json"
MSGPACK_PROTO = "wsgate.v1.msgpack"


# ---------------------------------------------------------------- ports ---


def free_port():
    """A loopback TCP port that was free a moment ago (bind 0, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    # Children die with the test runner even if it is SIGKILLed (ctest
    # timeout), so no stray gateway keeps a port. PR_SET_PDEATHSIG = 1.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


# -------------------------------------------------------------- metrics ---

_METRIC_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$")
_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def parse_metrics(text):
    """Prometheus text format -> {(name, frozenset(labels.items())): float}."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _METRIC_RE.match(line)
        if not m:
            raise ValueError("unparsable metrics line: %r" % line)
        name, _, labels_s, value = m.group(1), m.group(2), m.group(3), m.group(4)
        labels = {}
        if labels_s:
            pos = 0
            while pos < len(labels_s):
                lm = _LABEL_RE.match(labels_s, pos)
                if not lm or lm.end() == pos:
                    raise ValueError("unparsable labels: %r" % line)
                labels[lm.group(1)] = (
                    lm.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                )
                pos = lm.end()
        out[(name, frozenset(labels.items()))] = float(value)
    return out


class Metrics:
    """A snapshot of /metrics with lookups."""

    def __init__(self, samples, text):
        self.samples = samples
        self.text = text

    def get(self, name, **labels):
        """The sample with exactly these labels; 0 when absent (a counter
        that never moved need not be exported)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def sum(self, name, **labels):
        """Sum over every sample of name whose labels include these."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= set(ls))

    def series(self, name):
        """{frozenset(labels): value} for every sample of name."""
        return {ls: v for (n, ls), v in self.samples.items() if n == name}

    def has(self, name):
        return any(n == name for (n, _) in self.samples)


# -------------------------------------------------------------- cluster ---


class Proc:
    def __init__(self, name, argv, log_path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.log.write(("$ %s\n" % " ".join(argv)).encode())
        self.log.flush()
        self.p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            preexec_fn=_die_with_parent,
        )
        self.stopped = False  # SIGSTOPped by the test

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def sigstop(self):
        self.p.send_signal(signal.SIGSTOP)
        self.stopped = True

    def sigcont(self):
        if self.alive():
            self.p.send_signal(signal.SIGCONT)
        self.stopped = False

    def terminate(self, timeout=10.0):
        """SIGTERM, wait, then SIGKILL. Returns (exit code, killed?)."""
        if self.alive():
            if self.stopped:
                self.sigcont()
            self.p.send_signal(signal.SIGTERM)
            try:
                return self.p.wait(timeout * SLOW), False
            except subprocess.TimeoutExpired:
                self.p.kill()
                return self.p.wait(10), True
        return self.p.returncode, False

    def kill(self):
        if self.alive():
            self.p.kill()
        self.p.wait(10)

    def close_log(self):
        try:
            self.log.close()
        except Exception:
            pass

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError as e:
            return "(no log: %s)" % e


class Cluster:
    """One gateway and its workers, on fresh loopback ports."""

    def __init__(self, tag):
        os.makedirs(LOG_DIR, exist_ok=True)
        self.tag = re.sub(r"[^A-Za-z0-9_.-]", "_", tag)
        self.gateway = None
        self.workers = {}
        self.host = "127.0.0.1"
        self.port = self.admin_port = self.backend_port = None
        self.gateway_args = []

    # -- paths
    def log_path(self, who):
        return os.path.join(LOG_DIR, "%s.%s.log" % (self.tag, who))

    @property
    def backend(self):
        return "tcp://127.0.0.1:%d" % self.backend_port

    def url(self, path="/ws"):
        return "ws://%s:%d%s" % (self.host, self.port, path)

    # -- processes
    def start_gateway(self, args=(), wait_workers=None):
        if not os.access(GATEWAY_BIN, os.X_OK):
            raise AssertionError("gateway binary not found: %s (set WSGATE_BIN)" % GATEWAY_BIN)
        self.gateway_args = list(args)
        for path in (self.log_path("gateway"),):
            if os.path.exists(path):
                os.unlink(path)
        last = None
        for attempt in range(3):
            self.port, self.admin_port, self.backend_port = free_port(), free_port(), free_port()
            while len({self.port, self.admin_port, self.backend_port}) < 3:
                self.admin_port, self.backend_port = free_port(), free_port()
            argv = [
                GATEWAY_BIN,
                "--listen", "127.0.0.1:%d" % self.port,
                "--admin", "127.0.0.1:%d" % self.admin_port,
                "--backend", self.backend,
                "--id", "gw-it",
            ] + list(args)
            self.gateway = Proc("gateway", argv, self.log_path("gateway"))
            deadline = time.monotonic() + 15 * SLOW
            while time.monotonic() < deadline:
                if not self.gateway.alive():
                    break
                try:
                    self.metrics()
                    break
                except OSError:
                    time.sleep(0.05)
            if self.gateway.alive():
                try:
                    self.metrics()
                except OSError as e:
                    last = "admin endpoint never answered: %s" % e
                    self.gateway.kill()
                    break
                if wait_workers is not None:
                    self.wait_workers(wait_workers)
                return self
            # exited early: maybe a port was taken in between; try new ones
            last = "gateway exited with %s during startup" % self.gateway.p.returncode
        raise AssertionError("%s\n--- gateway log ---\n%s" % (last, self.gateway.tail()))

    def restart_gateway(self, kill=True, timeout=15.0):
        """Stops the gateway (kill -9, or SIGTERM with kill=False) and starts
        it again with the same arguments on the same ports: what a crash
        and a supervisor's restart look like to clients and workers."""
        if kill:
            self.gateway.kill()
        else:
            self.gateway.terminate()
        self.gateway.close_log()
        argv = self.gateway.argv
        deadline = time.monotonic() + timeout * SLOW
        while True:
            self.gateway = Proc("gateway", argv, self.log_path("gateway"))
            while time.monotonic() < deadline and self.gateway.alive():
                try:
                    self.metrics()
                    return self
                except OSError:
                    time.sleep(0.05)
            if time.monotonic() >= deadline:
                raise AssertionError("gateway did not come back\n" + self.gateway.tail())
            time.sleep(0.2)  # exited: a port still held by the old one; again

    def start_worker(self, wid, services=None, args=()):
        if not os.access(WORKER_BIN, os.X_OK):
            raise AssertionError("worker binary not found: %s (set WSGATE_WORKER_BIN)" % WORKER_BIN)
        argv = [WORKER_BIN, "--gateway", self.backend, "--id", wid]
        if services is not None:
            argv += ["--services", services]
        argv += list(args)
        path = self.log_path(wid)
        if os.path.exists(path):
            os.unlink(path)
        w = Proc(wid, argv, path)
        self.workers[wid] = w
        return w

    def start(self, gateway_args=(), workers=1, worker_args=(), services=None):
        """Gateway plus workers worker-1..worker-N; waits for wsgate_workers N."""
        self.start_gateway(gateway_args)
        for i in range(1, workers + 1):
            self.start_worker("worker-%d" % i, services=services, args=worker_args)
        self.wait_workers(workers)
        return self

    # -- admin endpoint
    def http_get(self, path, timeout=5.0):
        url = "http://127.0.0.1:%d%s" % (self.admin_port, path)
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")

    def metrics(self):
        status, text = self.http_get("/metrics")
        if status != 200:
            raise OSError("GET /metrics: HTTP %d" % status)
        return Metrics(parse_metrics(text), text)

    def metric(self, name, **labels):
        return self.metrics().get(name, **labels)

    def wait_metric(self, pred, timeout=10.0, what="metric condition"):
        """Polls /metrics until pred(Metrics) is true; returns the snapshot."""
        deadline = time.monotonic() + timeout * SLOW
        m = None
        while True:
            try:
                m = self.metrics()
                if pred(m):
                    return m
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    "timed out waiting for %s; last /metrics:\n%s"
                    % (what, m.text if m else "(unreachable)")
                )
            time.sleep(0.05)

    def wait_workers(self, n, timeout=15.0):
        def ok(m):
            for w in self.workers.values():
                if not w.alive():
                    raise AssertionError(
                        "%s exited with %s\n%s" % (w.name, w.p.returncode, w.tail())
                    )
            return m.get("wsgate_workers") == n

        return self.wait_metric(ok, timeout, "wsgate_workers %d" % n)

    # -- teardown
    def stop(self):
        """Stops everything. Returns {name: (exit code, killed)}; the workers
        go first (each drains: DRAIN, the gateway's DRAINING, BYE), then the
        gateway (clients see 1001)."""
        res = {}
        for name, w in self.workers.items():
            res[name] = w.terminate()
        if self.gateway is not None:
            res["gateway"] = self.gateway.terminate()
        for p in [self.gateway] + list(self.workers.values()):
            if p is not None:
                p.close_log()
        return res

    def tails(self):
        out = []
        for p in [self.gateway] + list(self.workers.values()):
            if p is not None:
                out.append("--- %s (%s) ---\n%s" % (p.name, p.log_path, p.tail()))
        return "\n".join(out)


# -------------------------------------------------------- envelope client ---


class Client:
    """A websockets connection speaking the v1 envelope in JSON or msgpack."""

    def __init__(self, ws, enc):
        self.ws = ws
        self.enc = enc  # "json" | "msgpack"

    def encode(self, obj):
        if self.enc == "msgpack":
            return msgpack.packb(obj, use_bin_type=True)
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)

    def decode(self, frame):
        if self.enc == "msgpack":
            if not isinstance(frame, bytes):
                raise AssertionError("msgpack client got a text frame: %r" % frame)
            return msgpack.unpackb(frame, raw=False, strict_map_key=False)
        if not isinstance(frame, str):
            raise AssertionError("JSON client got a binary frame: %r" % frame[:80])
        return json.loads(frame)

    async def send(self, obj):
        await self.ws.send(self.encode(obj))

    async def send_raw(self, frame):
        await self.ws.send(frame)

    async def recv(self, timeout=5.0):
        frame = await asyncio.wait_for(self.ws.recv(), timeout * SLOW)
        return self.decode(frame)

    async def call(self, svc, data=None, id=None, key=None, timeout=5.0, **extra):
        """Sends one request and returns the reply (res or err) with its id."""
        if id is None:
            Client._next_id += 1
            id = Client._next_id
        env = {"v": 1, "op": "req", "id": id, "svc": svc}
        if key is not None:
            env["key"] = key
        if data is not None:
            env["data"] = data
        env.update(extra)
        await self.send(env)
        rep = await self.recv(timeout)
        if rep.get("id") != id:
            raise AssertionError("expected the reply to id %r, got %r" % (id, rep))
        return rep

    async def echo_ok(self, tc, data="ping"):
        """A successful echo round trip, asserted on tc."""
        rep = await self.call("echo", data)
        tc.assertEqual(rep.get("op"), "res", rep)
        tc.assertEqual(rep.get("data"), data, rep)

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 3)
        except Exception:
            pass

    _next_id = 1000


async def ws_connect(url, subprotocols=None, **kw):
    opts = dict(
        subprotocols=subprotocols,
        compression=None,  # plain frames: sizes and fragments as sent
        ping_interval=None,  # only the gateway pings (the client still pongs)
        max_size=None,
        max_queue=None,
        open_timeout=10 * SLOW,
        close_timeout=3,
    )
    opts.update(kw)
    return await websockets.connect(url, **opts)


def close_code(exc):
    """The close code the peer sent, from a ConnectionClosed (None if none)."""
    return exc.rcvd.code if exc.rcvd is not None else None


# ---------------------------------------------------------- raw websocket ---

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class HandshakeError(Exception):
    def __init__(self, status, head):
        super().__init__("handshake failed: HTTP %s" % status)
        self.status = status
        self.head = head


class RawWS:
    """A minimal blocking websocket client over a plain socket. It does only
    what it is told: it never answers pings and never reads unless asked,
    and it sends any frame, valid or not."""

    def __init__(self, host, port, path="/ws", subprotocol=None, rcvbuf=None, timeout=5.0,
                 headers=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout * SLOW)
        self.sock.connect((host, port))
        key = base64.b64encode(os.urandom(16))
        req = (
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, host, port, key.decode())
        )
        if subprotocol:
            req += "Sec-WebSocket-Protocol: %s\r\n" % subprotocol
        for k, v in (headers or {}).items():
            req += "%s: %s\r\n" % (k, v)
        req += "\r\n"
        try:
            self._handshake(req, key)
        except BaseException:
            self.sock.close()
            raise

    def _handshake(self, req, key):
        self.sock.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise HandshakeError(None, self.buf)
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        if status != 101:
            raise HandshakeError(status, head)
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        if hdrs.get("sec-websocket-accept") != want:
            raise HandshakeError(status, head)
        self.headers = hdrs

    # -- sending
    @staticmethod
    def frame(opcode, payload, fin=True, mask=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return hdr + payload
        mk = os.urandom(4)
        if n:
            full = (mk * (n // 4 + 1))[:n]
            masked = (int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")).to_bytes(n, "big")
        else:
            masked = b""
        return hdr + mk + masked

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(self.frame(opcode, payload, fin))

    def send_text(self, payload):
        if isinstance(payload, str):
            payload = payload.encode()
        self.send_frame(OP_TEXT, payload)

    def send_binary(self, payload):
        self.send_frame(OP_BIN, payload)

    # -- receiving
    def _read(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("raw websocket read timed out")
            self.sock.settimeout(left)
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise EOFError("connection closed by peer")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=5.0):
        """(fin, opcode, payload). Raises EOFError at the end of the stream,
        socket.timeout when nothing whole arrived in time."""
        deadline = time.monotonic() + timeout * SLOW
        b0, b1 = self._read(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read(2, deadline))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read(8, deadline))
        mk = self._read(4, deadline) if b1 & 0x80 else None
        payload = self._read(n, deadline)
        if mk:
            payload = bytes(c ^ mk[i % 4] for i, c in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self, timeout=5.0):
        """One whole data message (opcode, payload), skipping control frames."""
        deadline = time.monotonic() + timeout * SLOW
        op0, parts = None, []
        while True:
            fin, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()) / SLOW)
            if op >= 8:
                if op == OP_CLOSE:
                    raise EOFError("close frame %r" % (parse_close(payload),))
                continue
            if op0 is None:
                op0 = op
            parts.append(payload)
            if fin:
                return op0, b"".join(parts)

    def wait_close(self, timeout=5.0):
        """Reads (and drops) frames until the peer's close frame or the end of
        the stream. Returns ("close", code, reason), ("eof", None, None) or
        ("reset", None, None); raises socket.timeout if the connection is
        still open after timeout seconds."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            try:
                _, op, payload = self.recv_frame(max(0.0, deadline - time.monotonic()) / SLOW)
            except EOFError:
                return ("eof", None, None)
            except ConnectionResetError:
                return ("reset", None, None)
            if op == OP_CLOSE:
                code, reason = parse_close(payload)
                return ("close", code, reason)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse_close(payload):
    if len(payload) >= 2:
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
    return None, ""


# ------------------------------------------------------------ test case ---


class GatewayTestCase(unittest.IsolatedAsyncioTestCase):
    """Each test starts its own cluster with self.start(...). Teardown closes
    clients, sends SIGCONT to stopped workers, stops the gateway (asserting
    exit status 0 unless the test cleared expect_clean_exit) and the
    workers, and prints the logs' tails when the test failed."""

    expect_clean_exit = True

    async def asyncSetUp(self):
        # unittest runs the loop in debug mode: slow, and noisy about the
        # (deliberately) blocking process management here.
        loop = asyncio.get_running_loop()
        loop.set_debug(False)
        loop.slow_callback_duration = 60.0
        self.cluster = Cluster(self.id())
        self.clients = []
        self.raws = []

    def start(self, gateway_args=(), workers=1, worker_args=(), services=None):
        return self.cluster.start(gateway_args, workers, worker_args, services)

    async def connect(self, enc="json", path="/ws", subprotocol="default", **kw):
        """A Client. enc json: subprotocol wsgate.v1.json (or none when
        subprotocol=None); msgpack: wsgate.v1.msgpack."""
        if subprotocol == "default":
            subprotocol = MSGPACK_PROTO if enc == "msgpack" else JSON_PROTO
        ws = await ws_connect(self.cluster.url(path), [subprotocol] if subprotocol else None, **kw)
        c = Client(ws, enc)
        self.clients.append(c)
        if subprotocol:
            self.assertEqual(ws.subprotocol, subprotocol, "gateway did not select the subprotocol")
        return c

    async def connect_raw_endpoint(self, path="/raw/echo", **kw):
        ws = await ws_connect(self.cluster.url(path), None, **kw)
        self.clients.append(Client(ws, "raw"))
        return ws

    def raw(self, path="/ws", subprotocol=None, rcvbuf=None, timeout=5.0, headers=None):
        r = RawWS("127.0.0.1", self.cluster.port, path, subprotocol, rcvbuf, timeout, headers)
        self.raws.append(r)
        return r

    def metric(self, name, **labels):
        return self.cluster.metric(name, **labels)

    def metrics(self):
        return self.cluster.metrics()

    async def wait_metric(self, pred, timeout=10.0, what="metric condition"):
        """Async poll (keeps the event loop running for open clients)."""
        deadline = time.monotonic() + timeout * SLOW
        m = None
        while True:
            try:
                m = self.cluster.metrics()
                if pred(m):
                    return m
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    "timed out waiting for %s; last /metrics:\n%s"
                    % (what, m.text if m else "(unreachable)")
                )
            await asyncio.sleep(0.05)

    async def wait_workers(self, n, timeout=15.0):
        return await self.wait_metric(lambda m: m.get("wsgate_workers") == n, timeout,
                                      "wsgate_workers %d" % n)

    async def assert_closed_with(self, ws, code, timeout=5.0, send=None):
        """Asserts the websockets connection ends with the peer's close code."""
        try:
            if send is not None:
                await ws.send(send)
            while True:
                await asyncio.wait_for(ws.recv(), timeout * SLOW)
        except websockets.exceptions.ConnectionClosed as e:
            self.assertEqual(close_code(e), code, "closed with %s, want %d" % (e, code))
            return e
        except asyncio.TimeoutError:
            self.fail("connection still open after %.1fs, want close %d" % (timeout, code))

    async def asyncTearDown(self):
        for c in self.clients:
            await c.close()
        for r in self.raws:
            r.close()
        for w in self.cluster.workers.values():
            if w.stopped:
                w.sigcont()
        gateway_was_alive = self.cluster.gateway is not None and self.cluster.gateway.alive()
        workers_alive = [n for n, w in self.cluster.workers.items() if w.alive()]
        res = self.cluster.stop()
        failed = not getattr(self._outcome, "success", True)
        if failed:
            sys.stderr.write("\n%s\n" % self.cluster.tails())
        if self.expect_clean_exit and gateway_was_alive and "gateway" in res:
            rc, killed = res["gateway"]
            if not failed:
                self.assertFalse(killed, "gateway did not exit within 10s of SIGTERM\n"
                                 + self.cluster.tails())
                self.assertEqual(rc, 0, "gateway exit status on SIGTERM\n" + self.cluster.tails())
        if self.expect_clean_exit and not failed:
            for name in workers_alive:
                rc, killed = res[name]
                self.assertFalse(killed, "%s did not exit within 10s of SIGTERM" % name)
                self.assertEqual(rc, 0, "%s exit status on SIGTERM\n%s" % (name, self.cluster.tails()))


def main():
    unittest.main(verbosity=2)
