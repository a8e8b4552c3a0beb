"""Worker: the ZeroMQ side. One DEALER per gateway, HELLO at connect and
every hello_ms, a single-threaded zmq.Poller loop that feeds the Core, and
the drain on SIGTERM/SIGINT."""

import logging
import os
import signal
import socket
import threading

import zmq
from zmq.utils.monitor import recv_monitor_message

from .core import Core

log = logging.getLogger("wsgate_worker")

READ_BATCH = 256  # messages read from one link per loop turn
RUN_BATCH = 1024  # messages handled per loop turn
HEARTBEAT_IVL_MS = 1000  # ZeroMQ heartbeats, as on the gateway: 1 s ...
HEARTBEAT_TIMEOUT_MS = 3000  # ... and 3 s without traffic drops the link
BYE_LINGER_MS = 1000  # how long closing a socket may wait to flush BYE


def load_key(text_or_path):
    """A Z85 CURVE key: 40 characters given directly, or read from a key
    file (one line, `secret: ` or `public: ` prefix accepted)."""
    s = text_or_path
    if not (isinstance(s, str) and len(s) == 40 and not os.path.exists(s)):
        with open(s) as f:
            s = f.read()
    s = s.strip()
    for prefix in ("secret:", "public:"):
        if s.startswith(prefix):
            s = s[len(prefix):].strip()
    if len(s) != 40:
        raise ValueError("a Z85 CURVE key is 40 characters")
    return s


class Worker:
    """A wsgate worker process.

    gateways: backend endpoints (one DEALER each); worker_id: the name in
    HELLO (stable across restarts: it seeds routing); services: {name:
    class}, one instance of the class per actor; hello_ms: HELLO interval;
    drain_ms: longest wait for the gateways' DRAINING on SIGTERM (0: do
    not wait); curve: None, or {"server_key": Z85, "secret_key": Z85 or key
    file} (optionally "public_key", else derived from the secret one);
    mailbox_max: messages queued per actor (more: `overloaded`);
    max_actors: live actors (more: the least recently used idle one is
    passivated, or `overloaded`); idle_ms: passivate actors idle this long.
    """

    def __init__(self, gateways, worker_id=None, services=None, hello_ms=1000,
                 drain_ms=10000, curve=None, mailbox_max=1024, max_actors=100000,
                 idle_ms=60000, logger=None):
        if isinstance(gateways, str):
            gateways = [gateways]
        gateways = list(gateways)
        if not gateways:
            raise ValueError("no gateway endpoints")
        if worker_id is None:
            worker_id = "%s-%d" % (socket.gethostname(), os.getpid())
        self.log = logger or log
        self.hello_ms = hello_ms
        self.drain_ms = drain_ms
        self.core = Core(worker_id, services or {}, gateways, self._out, hello_ms=hello_ms,
                         mailbox_max=mailbox_max, max_actors=max_actors, idle_ms=idle_ms,
                         logger=self.log)
        self.idle_ms = idle_ms
        self.curve = self._curve_keys(curve) if curve else None
        self._stop = 0  # stop requests: 1 drains, 2 stops waiting for DRAINING
        self._stop_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.ctx = None
        self.socks = []
        self.monitors = []

    @property
    def worker_id(self):
        return self.core.worker_id

    @property
    def stats(self):
        """Counters: requests, replies, errors, overloaded, malformed,
        publish_ok, publish_err, ..."""
        return self.core.stats

    @staticmethod
    def _curve_keys(curve):
        secret = load_key(curve["secret_key"])
        public = curve.get("public_key")
        public = load_key(public) if public else zmq.curve_public(secret.encode()).decode()
        return {"server": load_key(curve["server_key"]).encode(), "secret": secret.encode(),
                "public": public.encode()}

    # --------------------------------------------------------- control ---

    def stop(self):
        """Asks the worker to drain and exit, like SIGTERM. Thread-safe; a
        second call stops waiting for the gateways' DRAINING."""
        with self._stop_lock:
            self._stop += 1
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _on_signal(self, signum, frame):
        self.log.info("%s: draining", signal.Signals(signum).name)
        self.stop()

    # ---------------------------------------------------------- output ---

    def _out(self, link, frames):
        try:
            self.socks[link].send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:  # the link's queue is full (gateway gone or slow)
            return False
        except zmq.ZMQError as e:
            self.log.warning("send to %s failed: %s", self.core.links[link].endpoint, e)
            return False

    def _hello(self, link):
        self.core.emit(link, self.core.hello_frames())

    # ----------------------------------------------------------- setup ---

    def _open(self):
        self.ctx = zmq.Context()
        self.poller = zmq.Poller()
        for L in self.core.links:
            s = self.ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
            s.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
            if self.curve:
                s.curve_serverkey = self.curve["server"]
                s.curve_publickey = self.curve["public"]
                s.curve_secretkey = self.curve["secret"]
            mon = s.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED
                                       | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                                       | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                       | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
            s.connect(L.endpoint)
            self.socks.append(s)
            self.monitors.append(mon)
            self.poller.register(s, zmq.POLLIN)
            self.poller.register(mon, zmq.POLLIN)
        self.poller.register(self._wake_r.fileno(), zmq.POLLIN)
        self._sock_link = {s: i for i, s in enumerate(self.socks)}
        self._mon_link = {m: i for i, m in enumerate(self.monitors)}
        self._handshake_failed = [False] * len(self.socks)

    def _close(self, linger_ms):
        for s, mon, L in zip(self.socks, self.monitors, self.core.links):
            try:
                s.disable_monitor()
            except zmq.ZMQError:
                pass
            mon.close(0)
            # BYE is in the queue: give it a moment on links that are up.
            s.close(linger_ms if L.connected is not False else 0)
        self.ctx.term()
        self._wake_r.close()
        self._wake_w.close()

    # ------------------------------------------------------------ loop ---

    def _on_monitor(self, i):
        try:
            ev = recv_monitor_message(self.monitors[i], flags=zmq.NOBLOCK)
        except zmq.Again:
            return
        L = self.core.links[i]
        e = ev["event"]
        if e == zmq.EVENT_CONNECTED:
            reconnected = L.connected is False
            L.connected = True
            self._handshake_failed[i] = False
            self._hello(i)  # HELLO as soon as it connects
            if reconnected:  # maybe to a restarted gateway; DRAIN again after the HELLO
                self.log.info("reconnected to %s", L.endpoint)
                self.core.relink(i)
        elif e == zmq.EVENT_DISCONNECTED:
            if L.connected is not False:
                self.log.warning("link to %s lost; reconnecting", L.endpoint)
            L.connected = False
            self.core.link_lost(i)
        elif not self._handshake_failed[i]:
            self._handshake_failed[i] = True  # logged once until it connects
            self.log.error("handshake with %s failed (%s): CURVE keys?", L.endpoint,
                           "auth refused" if e == zmq.EVENT_HANDSHAKE_FAILED_AUTH else e)

    def _read(self, sock):
        i = self._sock_link[sock]
        for _ in range(READ_BATCH):
            try:
                frames = sock.recv_multipart(flags=zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            try:
                self.core.on_frames(i, frames)
            except Exception:  # a bug in the core must not end the worker
                self.core.stats["internal_errors"] += 1
                self.log.exception("dropped a message from %s", self.core.links[i].endpoint)

    def run(self, install_signals=True):
        """Serves until stop() or SIGTERM/SIGINT, then drains: DRAIN to
        every gateway, keeps serving until each live gateway has answered
        DRAINING (or drain_ms) and the mailboxes are empty, BYE. Returns 0
        (the exit status). install_signals: take SIGTERM and SIGINT (only
        possible on the main thread)."""
        old = {}
        old_wakeup = None
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                old[sig] = signal.signal(sig, self._on_signal)
            old_wakeup = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        try:
            self._open()
            self.log.info("worker %s: services %s, gateways %s", self.worker_id,
                          ",".join(self.core.svc_names),
                          " ".join(L.endpoint for L in self.core.links))
            self._loop()
        finally:
            if old:
                signal.set_wakeup_fd(old_wakeup)
                for sig, h in old.items():
                    signal.signal(sig, h)
        s = self.stats
        self.log.info(
            "worker %s: exit: requests=%d replies=%d errors=%d overloaded=%d malformed=%d "
            "bad_payload=%d publish_ok=%d publish_err=%d send_dropped=%d", self.worker_id,
            s["requests"], s["replies"], s["errors"], s["overloaded"], s["malformed"],
            s["bad_payload"], s["publish_ok"], s["publish_err"], s["send_dropped"])
        return 0

    def _loop(self):
        core = self.core
        clock = core.clock
        hello_s = self.hello_ms / 1000.0
        sweep_s = max(min(self.idle_ms / 4000.0, 1.0), 0.01)
        for i in range(len(self.socks)):
            self._hello(i)  # queued until the link is up
        next_hello = clock() + hello_s
        next_sweep = clock() + sweep_s
        while True:
            now = clock()
            if core.runq:
                timeout = 0
            else:
                timeout = max(0, min(next_hello, next_sweep) - now)
                timeout = int(min(timeout, 0.1) * 1000) + 1
            for sock, _ in self.poller.poll(timeout):
                if sock in self._sock_link:
                    self._read(sock)
                elif sock in self._mon_link:
                    self._on_monitor(self._mon_link[sock])
                else:  # the wake-up socket: a signal or stop()
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
            core.run(RUN_BATCH)
            now = clock()
            if now >= next_hello:
                for L in core.links:
                    if L.connected is not False:  # a lost link HELLOs when it reconnects
                        self._hello(L.index)
                next_hello += hello_s
                if next_hello <= now:  # late (a slow handler): no burst of HELLOs
                    next_hello = now + hello_s
            if now >= next_sweep:
                core.passivate_idle(now)
                next_sweep = now + sweep_s
            stop = self._stop
            if stop and not core.draining:
                core.begin_drain()
            if core.draining and core.drain_done(self.drain_ms, now, force=stop > 1):
                break
        core.passivate_all()  # stop() hooks may still send
        core.say_bye()
        self._close(BYE_LINGER_MS)
