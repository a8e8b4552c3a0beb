"""What a service sees: the Service base class, ServiceError, the Message
an actor handles and the Context it acts through."""

from . import protocol as P


class ServiceError(Exception):
    """Raise from handle() to answer the request with ERROR code/msg.

    code: 1..32 of [a-z0-9_], a client protocol code (bad_request,
    not_found, forbidden, overloaded, ...) or the service's own. An
    invalid code is answered as `internal` instead (the gateway would drop
    the ERROR as malformed and the client would wait for a timeout)."""

    def __init__(self, code, msg=""):
        super().__init__("%s: %s" % (code, msg) if msg else code)
        self.code = code
        self.msg = msg


class Service:
    """Base class for services (subclassing is optional: the worker only
    calls the methods a class has). One instance per actor, i.e. per
    (service, key): keep the actor's state on self. Every method runs on
    the worker's single thread, one message at a time per actor, so no
    locking is needed, but no method may block (the worker's heartbeats
    wait for it)."""

    # True: the service is idempotent, and the gateway may send a request
    # again to another worker when the one holding it dies (HELLO flag
    # RETRY_SAFE). False: such requests are answered `unavailable`.
    retry_safe = False

    def start(self, ctx):
        """The actor is created, just before its first message."""

    def handle(self, ctx, msg):
        """A request. The return value is the reply (one msgpack value;
        None is nil); raise ServiceError(code, msg) to answer an error.
        Any other exception is answered `internal`. For rid 0 (raw
        endpoints, msg.expects_reply False) the return value is dropped."""
        raise ServiceError("bad_request", "this service takes no requests")

    def opened(self, ctx, msg):
        """OPEN: a raw-endpoint connection (or, with --conn-events, any /ws
        connection) opened. No answer."""

    def closed(self, ctx, msg):
        """CLOSED: that connection went away (msg.close_code). No answer.
        A per-connection actor is passivated right after it."""

    def stop(self, ctx):
        """The actor is passivated (idle, its connection closed, evicted
        under max_actors, or the worker exits). Its state is dropped."""


class Message:
    """A message for an actor.

    kind: "req", "open" or "closed"; rid: the gateway's request id (0: no
    reply expected); conn: the client connection (unique on its gateway
    only); svc, key: the actor; flags: RAW/TEXT/GW bits; user: the
    connection's authenticated user ("" when anonymous); data: the request
    data, decoded (raw endpoints: the client's bytes verbatim);
    close_code: for "closed"; link: the index of the gateway link it came
    on (pass it to ctx.send(..., link=) to push there later); gateway:
    that gateway's id (from WELCOME; None before the first one)."""

    __slots__ = ("kind", "rid", "conn", "svc", "key", "flags", "user", "data",
                 "close_code", "link", "gateway")

    def __init__(self, kind, link, conn, svc, key, flags, rid=0, user="", data=None,
                 close_code=None, gateway=None):
        self.kind, self.link, self.conn, self.svc, self.key = kind, link, conn, svc, key
        self.flags, self.rid, self.user, self.data = flags, rid, user, data
        self.close_code, self.gateway = close_code, gateway

    @property
    def raw(self):
        """From a raw endpoint: data is the client's bytes verbatim."""
        return bool(self.flags & P.F_RAW)

    @property
    def text(self):
        """Raw: the client sent a text frame (data is valid UTF-8 bytes)."""
        return bool(self.flags & P.F_TEXT)

    @property
    def gw(self):
        """Built by the gateway itself (auth, channels), not client data."""
        return bool(self.flags & P.F_GW)

    @property
    def private(self):
        """The key is the connection's own (c:<conn>): the client gave none."""
        return self.key == "c:%d" % self.conn

    @property
    def expects_reply(self):
        return self.kind == "req" and self.rid != 0

    def __repr__(self):
        return "Message(%s rid=%d conn=%d svc=%r key=%r flags=%d user=%r data=%r)" % (
            self.kind, self.rid, self.conn, self.svc, self.key, self.flags, self.user,
            self.data)


class Context:
    """An actor's handle on the worker. One per actor, passed to every
    method of its service instance.

    svc, key: the actor; worker_id; log: a logging.Logger; message: the
    message being handled (None in stop() after passivation)."""

    def __init__(self, core, actor):
        self._core = core
        self._actor = actor
        self.svc = actor.svc
        self.key = actor.key
        self.worker_id = core.worker_id
        self.log = core.log
        self.message = None
        self._link = None  # the link of the last message handled

    def _target_link(self, link):
        if link is not None:
            return link
        if self._link is None:
            raise ValueError("no gateway link: pass link=")
        return self._link

    def send(self, conns, data, link=None):
        """Pushes data (one msgpack value) to the connections conns (an int
        or a list of ints) of a gateway: by default the one the current
        message came from. /ws connections get {"op":"push","svc":SVC,
        "data":data}; raw connections get the msgpack bytes."""
        payload = P.pack_value(data)
        return self._core.send(self._target_link(link), conns, 0, self.svc, payload)

    def send_raw(self, conns, data, link=None):
        """Pushes bytes verbatim to raw-endpoint connections: a str goes as
        a text frame (UTF-8), bytes as a binary frame."""
        if isinstance(data, str):
            payload, flags = data.encode("utf-8"), P.F_RAW | P.F_TEXT
        else:
            payload, flags = bytes(data), P.F_RAW
        return self._core.send(self._target_link(link), conns, flags, self.svc, payload)

    def close(self, conn, code=1000, reason="", link=None):
        """Asks the gateway to close a connection (code 1000 or 3000..4999;
        the gateway turns anything else into 1000)."""
        return self._core.close(self._target_link(link), conn, code, reason)

    def publish(self, channel, data):
        """Publishes data (one msgpack value) on a channel, through the
        gateway the current message came from (else the first live one).
        Fire and forget: the outcome is counted (publish_ok, publish_err)
        and failures logged. Returns the PUBLISH ref, or None when it
        could not be sent. Raises ValueError for an invalid channel name."""
        return self._core.publish(self._link, channel, data)
