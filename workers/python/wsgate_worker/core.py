"""The worker's logic without sockets: gateway links, actors and their
mailboxes, dispatch, answers, publish bookkeeping and the drain decision.

The Worker (worker.py) owns the ZeroMQ sockets and the clock-driven loop;
it feeds every received message to Core.on_frames() and calls Core.run()
to let actors handle what is queued. Everything Core wants to send goes
through the out(link_index, frames) callback given to it, so the unit
tests drive it with plain lists."""

import collections
import logging
import time

from . import protocol as P
from .service import Context, Message, ServiceError

log = logging.getLogger("wsgate_worker")


class Link:
    """One gateway: the DEALER connected to endpoint, seen from the core."""

    __slots__ = ("index", "endpoint", "gateway_id", "last_welcome", "connected",
                 "drain_sent", "draining")

    def __init__(self, index, endpoint):
        self.index = index
        self.endpoint = endpoint
        self.gateway_id = None  # from WELCOME
        self.last_welcome = None  # monotonic time of the last WELCOME
        self.connected = None  # None: unknown; False: the socket said disconnected
        self.drain_sent = False
        self.draining = False  # the gateway answered DRAINING

    def alive(self, now, window):
        """Answers our HELLOs lately: a WELCOME within window seconds."""
        return (self.connected is not False and self.last_welcome is not None
                and now - self.last_welcome <= window)


class Actor:
    __slots__ = ("aid", "svc", "key", "cls", "instance", "ctx", "mailbox", "scheduled",
                 "last_active", "closing")

    def __init__(self, aid, svc, key, cls):
        self.aid, self.svc, self.key, self.cls = aid, svc, key, cls
        self.instance = None  # created (and start()ed) on the first message
        self.ctx = None
        self.mailbox = collections.deque()
        self.scheduled = False  # in the run queue
        self.last_active = 0.0
        self.closing = False  # per-connection actor whose connection closed


class _RateLimit:
    """At most n log lines per second."""

    def __init__(self, n=5):
        self.n, self.t, self.count, self.skipped = n, 0.0, 0, 0

    def ok(self, now):
        if now - self.t >= 1.0:
            self.t, self.count = now, 0
        self.count += 1
        if self.count > self.n:
            self.skipped += 1
            return False
        return True


class Core:
    def __init__(self, worker_id, services, endpoints, out, clock=time.monotonic,
                 hello_ms=1000, mailbox_max=1024, max_actors=100000, idle_ms=60000,
                 logger=None):
        if not isinstance(worker_id, str) or not 1 <= len(worker_id.encode()) <= P.MAX_ID_BYTES:
            raise ValueError("worker_id must be 1..128 bytes of UTF-8")
        if not services:
            raise ValueError("no services")
        if len(services) > P.MAX_SERVICES:
            raise ValueError("at most %d services" % P.MAX_SERVICES)
        for name in services:
            if not isinstance(name, str) or not P.SVC_RE.match(name):
                raise ValueError("bad service name %r: 1..64 of [a-z0-9_.-]" % (name,))
        if mailbox_max < 1 or max_actors < 1 or idle_ms < 0 or hello_ms < 1:
            raise ValueError("mailbox_max, max_actors, hello_ms must be >= 1, idle_ms >= 0")
        self.worker_id = worker_id
        self.services = dict(services)
        self.svc_names = list(self.services)
        self.svc_flags = [P.SVC_RETRY_SAFE if getattr(cls, "retry_safe", False) else 0
                          for cls in self.services.values()]
        self.links = [Link(i, ep) for i, ep in enumerate(endpoints)]
        self.out = out
        self.clock = clock
        self.hello_ms = hello_ms
        self.mailbox_max = mailbox_max
        self.max_actors = max_actors
        self.idle_s = idle_ms / 1000.0
        self.log = logger or log
        self.actors = collections.OrderedDict()  # aid -> Actor, least recently active first
        self.runq = collections.deque()  # actors with queued messages, round robin
        self.stats = collections.Counter()
        self.next_ref = 1
        self.publishing = collections.OrderedDict()  # ref -> (channel, link), awaiting PUBLISHED
        self.draining = False
        self.drain_started = None
        self._malformed_log = _RateLimit()
        self._publish_log = _RateLimit()

    # ---------------------------------------------------------- links ---

    def alive_window(self):
        """How recent a WELCOME must be for a gateway to count as alive: the
        gateway forgets a worker after about three missed HELLOs, so three
        HELLO intervals (at least one second)."""
        return max(3 * self.hello_ms, 1000) / 1000.0

    def hello_frames(self):
        return P.encode_hello(self.worker_id, self.svc_names, self.svc_flags)

    def emit(self, link, frames):
        if self.out(link, frames):
            return True
        self.stats["send_dropped"] += 1
        return False

    # -------------------------------------------------------- receive ---

    def on_frames(self, link, frames):
        """One message from gateway link. Returns its type, or None when it
        was malformed (dropped and counted). Never raises for bad input."""
        now = self.clock()
        try:
            m = P.decode(frames)
        except P.Malformed as e:
            self.stats["malformed"] += 1
            if self._malformed_log.ok(now):
                self.log.warning("malformed message from %s dropped: %s",
                                 self.links[link].endpoint, e)
            return None
        L = self.links[link]
        f = m.fields
        if m.type == P.WELCOME:
            if L.gateway_id != f["gateway_id"]:
                self.log.info("gateway %s at %s", f["gateway_id"], L.endpoint)
                if L.gateway_id is not None:  # another gateway: the old one's answers are void
                    self.relink(link)
            L.gateway_id = f["gateway_id"]
            L.last_welcome = now
            self.stats["welcomes"] += 1
        elif m.type == P.DRAINING:
            L.draining = True
            self.log.info("gateway %s at %s: draining acknowledged", L.gateway_id, L.endpoint)
        elif m.type == P.PUBLISHED:
            self._published(L, f)
        else:  # REQ, OPEN, CLOSED
            self._deliver(link, m, now)
        return m.type

    def link_lost(self, link):
        """The link dropped or now leads to another gateway: the PUBLISHED
        answers still owed on it will not come."""
        lost = [ref for ref, (_, l) in self.publishing.items() if l == link]
        for ref in lost:
            del self.publishing[ref]
        self.stats["publish_lost"] += len(lost)

    def relink(self, link):
        """The link is up again, maybe to a restarted gateway: what the old
        one owed is lost, and a drain under way must be announced again."""
        self.link_lost(link)
        L = self.links[link]
        if self.draining:
            L.draining = False
            self.emit(link, P.encode_drain())

    def _published(self, L, f):
        channel, _ = self.publishing.pop(f["ref"], (None, None))
        if f["code"] == "":
            self.stats["publish_ok"] += 1
        else:
            self.stats["publish_err"] += 1
            if self._publish_log.ok(self.clock()):
                self.log.warning("publish %d to %s via %s failed: %s %s", f["ref"],
                                 channel if channel is not None else "?", L.endpoint,
                                 f["code"], f["msg"])

    def _deliver(self, link, m, now):
        f = m.fields
        kind = {P.REQ: "req", P.OPEN: "open", P.CLOSED: "closed"}[m.type]
        rid = f.get("rid", 0)
        svc = f["svc"]
        cls = self.services.get(svc)
        if cls is None:
            self.stats["no_service"] += 1
            if kind == "req" and rid:
                self.error(link, rid, "no_service", "this worker does not offer %s" % svc)
            return
        data = None
        if kind == "req":
            if f["flags"] & P.F_RAW:
                data = m.payload
            else:
                try:
                    data = P.unpack_value(m.payload)
                except Exception as e:
                    self.stats["bad_payload"] += 1
                    if self._malformed_log.ok(now):
                        self.log.warning("REQ %d for %s: payload is not one msgpack value: %s",
                                         rid, svc, e)
                    if rid:
                        self.error(link, rid, "bad_request", "data is not one msgpack value")
                    return
        msg = Message(kind, link, f["conn"], svc, f["key"], f.get("flags", 0), rid=rid,
                      user=f.get("user", ""), data=data, close_code=f.get("close_code"),
                      gateway=self.links[link].gateway_id)
        # A per-connection key (c:<conn>) names a connection of one gateway
        # only: connection numbers are not unique across gateways.
        aid = (link if msg.private else None, svc, msg.key)
        actor = self.actors.get(aid)
        if actor is None:
            if len(self.actors) >= self.max_actors and not self._evict_one():
                self._refuse(msg, "too many actors")
                return
            actor = Actor(aid, svc, msg.key, cls)
            actor.ctx = Context(self, actor)
            self.actors[aid] = actor
        elif len(actor.mailbox) >= self.mailbox_max:
            self._refuse(msg, "mailbox full")
            return
        else:
            self.actors.move_to_end(aid)
        actor.mailbox.append(msg)
        actor.last_active = now
        if not actor.scheduled:
            actor.scheduled = True
            self.runq.append(actor)

    def _refuse(self, msg, why):
        self.stats["overloaded"] += 1
        if msg.expects_reply:
            self.error(msg.link, msg.rid, "overloaded", why)
        else:
            self.stats["dropped_" + msg.kind] += 1

    def _evict_one(self):
        """Passivates the least recently active idle actor, to make room."""
        for i, actor in enumerate(self.actors.values()):
            if i >= 64:
                break
            if not actor.scheduled:
                self.passivate(actor)
                self.stats["evicted"] += 1
                return True
        return False

    # ------------------------------------------------------------ run ---

    def pending(self):
        """Messages queued in mailboxes."""
        return sum(len(a.mailbox) for a in self.runq)

    def run(self, budget=1024):
        """Lets actors handle up to budget queued messages, one message per
        actor per turn (round robin). Returns how many were handled."""
        n = 0
        while self.runq and n < budget:
            actor = self.runq.popleft()
            msg = actor.mailbox.popleft()
            self._process(actor, msg)
            n += 1
            if actor.mailbox:
                self.runq.append(actor)
            else:
                actor.scheduled = False
                if actor.closing:
                    self.passivate(actor)
        return n

    def _process(self, actor, msg):
        ctx = actor.ctx
        ctx.message = msg
        ctx._link = msg.link
        answer = None  # ("reply", payload) or ("error", code, text)
        try:
            if actor.instance is None:
                inst = actor.cls()
                start = getattr(inst, "start", None)
                if start is not None:
                    start(ctx)
                actor.instance = inst
                self.stats["actors_started"] += 1
            if msg.kind == "req":
                self.stats["requests"] += 1
                result = actor.instance.handle(ctx, msg)
                if msg.rid:
                    try:
                        answer = ("reply", P.pack_value(result))
                    except Exception as e:
                        self.log.error("%s/%s: reply cannot be packed as msgpack: %s",
                                       actor.svc, actor.key, e)
                        answer = ("error", "internal", "the reply cannot be encoded")
            else:
                hook = getattr(actor.instance, "opened" if msg.kind == "open" else "closed", None)
                self.stats[msg.kind + "s"] += 1
                if hook is not None:
                    hook(ctx, msg)
                if msg.kind == "closed" and msg.private:
                    actor.closing = True
        except ServiceError as e:
            code = e.code
            if not isinstance(code, str) or not P.CODE_RE.match(code):
                self.log.error("%s/%s: invalid error code %r, answered internal",
                               actor.svc, actor.key, code)
                answer = ("error", "internal", "the service failed (invalid error code)")
            else:
                answer = ("error", code, e.msg or "")
        except Exception:
            self.log.exception("%s/%s: %s failed", actor.svc, actor.key,
                               "start" if actor.instance is None else msg.kind)
            answer = ("error", "internal", "the service failed")
        finally:
            ctx.message = None
            actor.last_active = self.clock()
            if msg.expects_reply:
                # Exactly one answer per rid, whatever happened above
                # (including a BaseException passing through).
                if answer is None:
                    answer = ("error", "internal", "the service did not answer")
                if answer[0] == "reply":
                    self.reply(msg.link, msg.rid, answer[1])
                else:
                    self.error(msg.link, msg.rid, answer[1], answer[2])

    # ------------------------------------------------------- passivate ---

    def passivate(self, actor):
        """Drops an actor (its mailbox must be empty), calling stop()."""
        self.actors.pop(actor.aid, None)
        if actor.instance is not None:
            stop = getattr(actor.instance, "stop", None)
            if stop is not None:
                try:
                    stop(actor.ctx)
                except Exception:
                    self.log.exception("%s/%s: stop failed", actor.svc, actor.key)
        actor.instance = None
        self.stats["passivated"] += 1

    def passivate_idle(self, now=None):
        """Passivates actors idle for idle_ms; returns how many."""
        now = self.clock() if now is None else now
        cutoff = now - self.idle_s
        idle = []
        for actor in self.actors.values():
            if actor.last_active > cutoff:
                break  # ordered by activity: the rest are more recent
            if not actor.scheduled:
                idle.append(actor)
        for actor in idle:
            self.passivate(actor)
        return len(idle)

    def passivate_all(self):
        for actor in list(self.actors.values()):
            if not actor.scheduled:
                self.passivate(actor)

    # --------------------------------------------------------- output ---

    def reply(self, link, rid, payload):
        self.stats["replies"] += 1
        return self.emit(link, P.encode_reply(rid, payload))

    def error(self, link, rid, code, text):
        self.stats["errors"] += 1
        if code == "internal":
            self.stats["internal"] += 1
        return self.emit(link, P.encode_error(rid, code, text))

    def send(self, link, conns, flags, svc, payload):
        if isinstance(conns, int):
            conns = [conns]
        conns = list(conns)
        if not conns or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                for c in conns):
            raise ValueError("conns must be connection numbers")
        self._check_link(link)
        self.stats["sends"] += 1
        return self.emit(link, P.encode_send(conns, flags, svc, payload))

    def close(self, link, conn, code, reason):
        if not isinstance(conn, int) or conn < 0 or not isinstance(code, int) or code < 0:
            raise ValueError("conn and code must be non-negative integers")
        self._check_link(link)
        self.stats["closes"] += 1
        return self.emit(link, P.encode_close(conn, code, reason))

    def publish(self, link, channel, data):
        if (not isinstance(channel, str) or not P.CHANNEL_RE.match(channel)
                or len(channel.encode()) > 255):
            raise ValueError("bad channel name %r" % (channel,))
        payload = P.pack_value(data)
        now = self.clock()
        if link is None or not self.links[link].alive(now, self.alive_window()):
            live = [L.index for L in self.links if L.alive(now, self.alive_window())]
            if live:
                link = live[0]
            elif link is None:
                self.stats["publish_unsent"] += 1
                return None
        ref = self.next_ref
        self.next_ref += 1
        self.publishing[ref] = (channel, link)
        while len(self.publishing) > 65536:  # outcomes that never came
            self.publishing.popitem(last=False)
        self.stats["publish_sent"] += 1
        if not self.emit(link, P.encode_publish(ref, channel, payload)):
            self.publishing.pop(ref, None)
            return None
        return ref

    def _check_link(self, link):
        if not isinstance(link, int) or not 0 <= link < len(self.links):
            raise ValueError("no gateway link %r" % (link,))

    # ---------------------------------------------------------- drain ---

    def begin_drain(self):
        """DRAIN to every gateway."""
        if self.draining:
            return
        self.draining = True
        self.drain_started = self.clock()
        for L in self.links:
            L.drain_sent = True
            self.emit(L.index, P.encode_drain())

    def drain_waiting(self, now=None):
        """The live gateways that have not answered DRAINING yet, or still
        owe a PUBLISHED.

        The PUBLISHED wait matters: a gateway that answers a PUBLISH after
        the worker said BYE and closed finds the link closing, takes the
        worker for dead and answers `unavailable` to the requests whose
        replies it has received but not read yet."""
        now = self.clock() if now is None else now
        owing = {link for _, link in self.publishing.values()}
        return [L for L in self.links if L.alive(now, self.alive_window())
                and (not L.draining or L.index in owing)]

    def drain_done(self, drain_ms, now=None, force=False):
        """True once the mailboxes are empty and every live gateway has
        answered DRAINING and every PUBLISH (or drain_ms passed, or
        force)."""
        if self.runq:
            return False
        now = self.clock() if now is None else now
        if force or (now - self.drain_started) * 1000.0 >= drain_ms:
            return True
        return not self.drain_waiting(now)

    def say_bye(self):
        for L in self.links:
            self.emit(L.index, P.encode_bye())
