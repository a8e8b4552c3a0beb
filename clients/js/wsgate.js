// wsgate.js - browser SDK for the wsgate client protocol v1 (docs/protocol.md).
//
// One ES module, no build step, no dependencies. JSON on text frames by
// default; the binary subprotocol (wsgate.v1.msgpack) needs a codec with
// encode(value) -> Uint8Array and decode(Uint8Array) -> value, for example
// @msgpack/msgpack (npm), passed in as {protocol: 'msgpack', msgpack: codec}.
//
// What it does on its own (details in clients/js/README.md):
// - reconnects with exponential backoff and full jitter, so a gateway
//   restart does not bring every client back in the same instant;
// - authenticates each connection with the token option (a string, or a
//   function returning a fresh one, called again on every reconnect) and
//   refreshes it in-band before it expires;
// - resubscribes after a reconnect from the last (epoch, offset) it
//   delivered, hands over exactly the missed publications, and tells the
//   application (onRecoveryFailed) when the gateway could not recover them;
// - notices a skipped offset or a changed epoch on a live subscription and
//   resubscribes with recovery at once.

export const JSON_SUBPROTOCOL = 'wsgate.v1.json';
export const MSGPACK_SUBPROTOCOL = 'wsgate.v1.msgpack';

// Close codes after which reconnecting cannot help (docs/protocol.md,
// "Limits and close codes"): 4003, the token was refused. 4005 (the token
// expired without a refresh) is in this set only for a client whose token
// is a fixed string; with a token function it reconnects with a new token.
export const NO_RECONNECT_CODES = new Set([4003]);

// Error codes of an auth answer that say "the auth service could not
// answer now", not "your token is bad": the connection stays usable and
// may try again (docs/protocol.md, "Authentication").
const AUTH_RETRY_CODES = new Set(['overloaded', 'unavailable', 'timeout', 'internal', 'no_service']);

// The code the SDK puts on connections it drops itself (connect timeout,
// token function failure, auth service busy); always with local: true.
export const LOCAL_CLOSE_CODE = 4000;

const DEFAULTS = {
  token: null,
  protocol: 'json',
  msgpack: null,
  requestTimeoutMs: 15000, // above the gateway's own 10 s, whose answer is the better one
  connectTimeoutMs: 10000, // socket open + authentication
  refreshBeforeExpiryMs: 60000,
  refreshRetryMs: 5000,
  backoff: { minMs: 500, maxMs: 30000, factor: 2, jitter: 1 },
  WebSocket: null, // an implementation other than globalThis.WebSocket
};

/** An error answer from the gateway or a service (code as in
 * docs/protocol.md), or one the SDK made itself (local: true):
 * `timeout` (no answer in time), `disconnected` (the connection was lost
 * with the request sent: it may or may not have been carried out),
 * `closed` (close() was called, or the client stopped for good). */
export class WsgateError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = 'WsgateError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/** The delay before reconnect attempt `attempt` (0 for the first):
 * cap = min(maxMs, minMs * factor^attempt), then a uniformly random cut of
 * up to `jitter` of it (jitter 1 is "full jitter": anywhere in [0, cap]).
 * Exported for tests and for applications that want the same schedule. */
export function backoffDelay(attempt, backoff = {}, random = Math.random) {
  const b = { ...DEFAULTS.backoff, ...backoff };
  const cap = Math.min(b.maxMs, b.minMs * Math.pow(b.factor, Math.max(0, attempt)));
  const jitter = Math.min(1, Math.max(0, b.jitter));
  return Math.round(cap * (1 - jitter * random()));
}

/** The claims of a JWT (its payload, base64url JSON), or null when it is
 * not one. Nothing is verified: this only reads exp and iat for timing. */
export function decodeJwtClaims(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) b64 += '=';
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

function resolveUrl(url) {
  // '/ws' or 'ws' relative to the page: same host, ws: or wss: to match.
  if (/^wss?:\/\//i.test(url) || typeof location === 'undefined') return url;
  const u = new URL(url, location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

export class Client {
  /** url: 'ws://host:port/ws', or a path such as '/ws' resolved against the
   * page. Options: see DEFAULTS above and clients/js/README.md. Nothing
   * happens until connect(). */
  constructor(url, options = {}) {
    this.url = url;
    this.options = { ...DEFAULTS, ...options, backoff: { ...DEFAULTS.backoff, ...(options.backoff || {}) } };
    const o = this.options;
    if (o.protocol !== 'json' && o.protocol !== 'msgpack') throw new TypeError("protocol must be 'json' or 'msgpack'");
    if (o.protocol === 'msgpack' && !(o.msgpack && o.msgpack.encode && o.msgpack.decode)) {
      throw new TypeError("protocol 'msgpack' needs a codec: {msgpack: {encode, decode}}");
    }
    this.state = 'idle'; // idle | connecting | connected | disconnected | closed
    this.user = null; // from the last successful auth answer
    this.exp = null; // the token's expiry (unix seconds) the gateway acknowledged
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> {env, resolve, reject, timer, sent, sock}
    this._queue = []; // pending entries waiting for a connection
    this._subs = new Map(); // channel -> Subscription
    this._listeners = new Map();
    this._attempt = 0;
    this._reconnectTimer = null;
    this._openTimer = null;
    this._refreshTimer = null;
    this._waiters = [];
    this._authError = null;
    if (typeof window !== 'undefined' && window.addEventListener) {
      // back online: no need to sit out the rest of a long backoff
      window.addEventListener('online', () => {
        if (this.state === 'disconnected' && this._reconnectTimer) this._scheduleReconnect(backoffDelay(0, this.options.backoff));
      });
    }
  }

  // ---------------------------------------------------------------- events

  /** Listens to an event; returns a function that stops listening.
   * 'connecting' {attempt}; 'connected' {user, exp}; 'disconnected' {code,
   * reason, willReconnect, delayMs, error, local}; 'state' {state, ...the
   * same detail}; 'token' {user, exp} after an in-band refresh; 'push'
   * {svc, data}; 'error' (a WsgateError nobody else could be told of). */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
  }

  _emit(event, detail) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(detail);
      } catch (e) {
        console.error('wsgate: a listener of', event, 'threw', e);
      }
    }
  }

  _setState(state, detail = {}) {
    this.state = state;
    this._emit(state === 'closed' ? 'disconnected' : state, detail);
    this._emit('state', { state, ...detail });
  }

  // ------------------------------------------------------------ lifecycle

  /** Starts connecting (and keeps reconnecting). Resolves once connected
   * and authenticated; rejects if the client stops for good first (token
   * refused: 4003, or close()). */
  connect() {
    if (this.state === 'connected') return Promise.resolve();
    const p = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    if (this.state === 'idle' || this.state === 'closed') {
      this._closing = false;
      this._attempt = 0;
      this._open();
    }
    return p;
  }

  /** Closes the connection and stops reconnecting. Requests waiting for an
   * answer reject with code 'closed'. Subscriptions stay registered: a later
   * connect() resubscribes them and recovers what was missed meanwhile. */
  close(code = 1000, reason = 'client close') {
    this._closing = true;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    if (this._ws) {
      const ws = this._ws;
      this._detach(ws);
      try {
        ws.close(code, reason);
      } catch {
        /* already closing */
      }
      this._onClose(code, reason, true);
    } else if (this.state !== 'closed') {
      this._stop({ code, reason, local: true });
    }
  }

  _open() {
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this._authError = null;
    const o = this.options;
    const WS = o.WebSocket || globalThis.WebSocket;
    const proto = o.protocol === 'msgpack' ? MSGPACK_SUBPROTOCOL : JSON_SUBPROTOCOL;
    this._setState('connecting', { attempt: this._attempt });
    let ws;
    try {
      ws = new WS(resolveUrl(this.url), [proto]);
    } catch (e) {
      // a malformed URL will not get better by retrying
      this._stop({ code: LOCAL_CLOSE_CODE, reason: 'bad_url', local: true, error: e });
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    ws.onopen = () => this._ws === ws && this._onOpen(ws, proto);
    ws.onmessage = (ev) => this._ws === ws && this._onFrame(ev.data);
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._detach(ws);
      this._onClose(ev.code, ev.reason, false);
    };
    ws.onerror = () => {}; // a close event follows with the code
    this._openTimer = setTimeout(() => this._drop(ws, 'connect_timeout'), o.connectTimeoutMs);
  }

  _detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (this._ws === ws) this._ws = null;
  }

  /** Drops a connection the SDK gave up on; reconnects as after any loss. */
  _drop(ws, reason, error) {
    if (this._ws !== ws) return;
    this._detach(ws);
    try {
      ws.close(LOCAL_CLOSE_CODE, reason);
    } catch {
      /* not open yet: the browser aborts it */
    }
    this._onClose(LOCAL_CLOSE_CODE, reason, true, error);
  }

  async _onOpen(ws, proto) {
    if (ws.protocol && ws.protocol !== proto) {
      this._drop(ws, 'subprotocol', new WsgateError('subprotocol', `gateway chose ${ws.protocol}`, { local: true }));
      return;
    }
    if (!ws.protocol && proto === MSGPACK_SUBPROTOCOL) {
      // without the subprotocol the gateway speaks JSON: nothing would work
      this._drop(ws, 'subprotocol', new WsgateError('subprotocol', 'gateway did not accept wsgate.v1.msgpack', { local: true }));
      return;
    }
    let auth = { user: null, exp: null };
    let token = null;
    if (this.options.token != null) {
      try {
        token = await this._getToken();
      } catch (e) {
        if (this._ws === ws) this._drop(ws, 'token_error', e);
        return;
      }
      if (this._ws !== ws) return;
      try {
        auth = await this._call({ op: 'auth', token }, this.options.connectTimeoutMs, ws);
      } catch (e) {
        if (this._ws !== ws) return;
        if (e.local || AUTH_RETRY_CODES.has(e.code)) {
          this._drop(ws, 'auth_unavailable', e);
        } else {
          this._authError = e; // the gateway closes with 4003 next
        }
        return;
      }
      if (this._ws !== ws) return;
    }
    clearTimeout(this._openTimer);
    this._ready(ws, auth || {});
    if (token && this._ws === ws) this._scheduleRefresh(auth && auth.exp, token);
  }

  _ready(ws, auth) {
    this._attempt = 0;
    this.user = auth.user ?? null;
    this.exp = auth.exp ?? null;
    // Subscriptions and waiting requests go out before the 'connected'
    // listeners run: one that subscribes there sends its own sub, once.
    this.state = 'connected';
    for (const sub of [...this._subs.values()]) sub._send();
    const queue = this._queue;
    this._queue = [];
    for (const p of queue) this._sendPending(p, ws);
    this._setState('connected', { user: this.user, exp: this.exp });
    if (this._ws !== ws) return; // a listener closed it
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) w.resolve();
  }

  _onClose(code, reason, local, error) {
    clearTimeout(this._openTimer);
    clearTimeout(this._refreshTimer);
    // requests already on the lost connection: their fate is unknown
    for (const [id, p] of this._pending) {
      if (p.sent) {
        this._pending.delete(id);
        clearTimeout(p.timer);
        p.reject(new WsgateError('disconnected', 'connection lost before the answer', { local: true }));
      }
    }
    for (const sub of this._subs.values()) sub._onConnectionLost();
    const err = error || this._authError || undefined;
    const detail = { code, reason, local, error: err };
    if (this._closing) {
      this._stop(detail);
      return;
    }
    const tokenFixed = typeof this.options.token !== 'function';
    if (NO_RECONNECT_CODES.has(code) || (code === 4005 && tokenFixed)) {
      this._stop(detail);
      return;
    }
    const delayMs = backoffDelay(this._attempt++, this.options.backoff);
    this._setState('disconnected', { ...detail, willReconnect: true, delayMs });
    if (this.state === 'disconnected' && !this._closing) this._scheduleReconnect(delayMs);
  }

  _scheduleReconnect(delayMs) {
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => this._open(), delayMs);
  }

  _stop(detail) {
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._refreshTimer);
    this._reconnectTimer = null;
    const err = new WsgateError(
      detail.error && detail.error.code && !this._closing ? detail.error.code : 'closed',
      this._closing ? 'client closed' : `connection closed for good (${detail.code} ${detail.reason || ''})`,
      { local: true },
    );
    for (const [id, p] of this._pending) {
      this._pending.delete(id);
      clearTimeout(p.timer);
      p.reject(err);
    }
    this._queue = [];
    const waiters = this._waiters;
    this._waiters = [];
    for (const w of waiters) w.reject(err);
    this._setState('closed', { ...detail, willReconnect: false, delayMs: null });
  }

  async _getToken() {
    const t = this.options.token;
    const token = typeof t === 'function' ? await t() : t;
    if (typeof token !== 'string' || !token) throw new WsgateError('token_error', 'the token function gave no token', { local: true });
    return token;
  }

  // --------------------------------------------------------- token refresh

  _scheduleRefresh(exp, token) {
    clearTimeout(this._refreshTimer);
    if (typeof this.options.token !== 'function') return;
    const claims = decodeJwtClaims(token) || {};
    exp = exp ?? claims.exp;
    if (typeof exp !== 'number') return;
    // Time left by the local clock, but never more than the token's whole
    // lifetime (exp - iat): a browser clock running behind must not make
    // the SDK refresh after the gateway has already closed with 4005.
    let left = exp * 1000 - Date.now();
    if (typeof claims.iat === 'number' && claims.exp === exp) left = Math.min(left, (exp - claims.iat) * 1000);
    const lead = Math.min(this.options.refreshBeforeExpiryMs, left / 2);
    this._refreshTimer = setTimeout(() => this._refresh(exp), Math.max(0, left - lead));
  }

  async _refresh(oldExp) {
    const ws = this._ws;
    if (this.state !== 'connected' || !ws) return;
    let token;
    try {
      token = await this._getToken();
      if (this._ws !== ws) return;
      const ans = await this._call({ op: 'auth', token }, this.options.requestTimeoutMs, ws);
      if (this._ws !== ws) return;
      this.exp = ans.exp ?? decodeJwtClaims(token)?.exp ?? null;
      this._emit('token', { user: ans.user, exp: this.exp });
      this._scheduleRefresh(this.exp, token);
    } catch (e) {
      if (this._ws !== ws) return;
      // A refused refresh leaves the connection as it was, until the old
      // token expires (then 4005 and a reconnect with a new token): retry
      // a few times meanwhile.
      this._emit('error', e);
      const left = oldExp * 1000 - Date.now();
      if (left > 0) {
        clearTimeout(this._refreshTimer);
        this._refreshTimer = setTimeout(() => this._refresh(oldExp), Math.min(this.options.refreshRetryMs, left / 2));
      }
    }
  }

  // --------------------------------------------------------------- frames

  _encode(env) {
    return this.options.protocol === 'msgpack' ? this.options.msgpack.encode(env) : JSON.stringify(env);
  }

  _onFrame(data) {
    let m;
    try {
      if (this.options.protocol === 'msgpack') {
        if (typeof data === 'string') throw new Error('text frame on a msgpack connection');
        m = this.options.msgpack.decode(new Uint8Array(data));
      } else {
        if (typeof data !== 'string') throw new Error('binary frame on a JSON connection');
        m = JSON.parse(data);
      }
    } catch (e) {
      this._emit('error', new WsgateError('bad_frame', String(e.message || e), { local: true }));
      return;
    }
    if (!m || typeof m !== 'object') return;
    switch (m.op) {
      case 'res':
      case 'err': {
        const p = m.id != null ? this._pending.get(m.id) : undefined;
        if (!p) {
          // no id: an envelope the gateway could not parse (our bug), or
          // a late answer after our own timeout: dropped
          if (m.op === 'err' && m.id == null) this._emit('error', new WsgateError(m.code, m.msg));
          return;
        }
        this._pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.op === 'res') p.resolve(m.data === undefined ? null : m.data);
        else p.reject(new WsgateError(m.code, m.msg));
        return;
      }
      case 'msg':
      case 'join':
      case 'leave': {
        const sub = this._subs.get(m.channel);
        if (sub) sub._onEvent(m);
        return;
      }
      case 'push':
        this._emit('push', { svc: m.svc, data: m.data });
        return;
      default:
        return; // newer ops: ignored, as the protocol asks
    }
  }

  // ------------------------------------------------------------- requests

  /** Sends env with a fresh id; resolves with the answer's data or rejects
   * with a WsgateError. With sock given it goes on that socket now (auth,
   * subscriptions); otherwise it waits for a connection if there is none. */
  _call(env, timeoutMs, sock) {
    return new Promise((resolve, reject) => {
      if (this.state === 'closed' && !sock) {
        reject(new WsgateError('closed', 'client is closed', { local: true }));
        return;
      }
      const id = this._nextId++;
      const p = { env: { v: 1, ...env, id }, resolve, reject, sent: false };
      p.timer = setTimeout(() => {
        this._pending.delete(id);
        const i = this._queue.indexOf(p);
        if (i >= 0) this._queue.splice(i, 1);
        reject(new WsgateError('timeout', `no answer within ${timeoutMs} ms`, { local: true }));
      }, timeoutMs);
      this._pending.set(id, p);
      if (sock) this._sendPending(p, sock);
      else if (this.state === 'connected' && this._ws) this._sendPending(p, this._ws);
      else this._queue.push(p);
    });
  }

  _sendPending(p, ws) {
    try {
      ws.send(this._encode(p.env));
      p.sent = true;
    } catch (e) {
      this._pending.delete(p.env.id);
      clearTimeout(p.timer);
      p.reject(e instanceof WsgateError ? e : new WsgateError('bad_request', String(e.message || e), { local: true }));
    }
  }

  /** A request to service svc, actor key (null: this connection's own
   * actor). Resolves with the reply's data; rejects with a WsgateError
   * whose code is the protocol's (no_service, overloaded, timeout, ...) or
   * the SDK's (timeout, disconnected, closed). Sent when connected. */
  request(svc, key, data, { timeoutMs } = {}) {
    const env = { op: 'req', svc };
    if (key != null) env.key = key;
    if (data !== undefined) env.data = data;
    return this._call(env, timeoutMs ?? this.options.requestTimeoutMs);
  }

  /** Publishes data on channel; resolves with {epoch, offset}. */
  publish(channel, data, { timeoutMs } = {}) {
    return this._call({ op: 'pub', channel, data: data === undefined ? null : data }, timeoutMs ?? this.options.requestTimeoutMs);
  }

  /** Who is subscribed to channel: {users: {name: connections}, anonymous}. */
  presence(channel, { timeoutMs } = {}) {
    return this._call({ op: 'presence', channel }, timeoutMs ?? this.options.requestTimeoutMs);
  }

  /** The channel's kept publications: {epoch, offset, pubs: [{offset, user, data}]}
   * (the last `limit` of them; all kept when limit is 0 or absent; no user
   * on a publication made by the backend). */
  history(channel, { limit, timeoutMs } = {}) {
    const env = { op: 'history', channel };
    if (limit) env.limit = limit;
    return this._call(env, timeoutMs ?? this.options.requestTimeoutMs).then((h) => {
      // the channel actor writes "user": "" for a backend publication; a
      // live msg leaves it out: make both look the same (no user)
      for (const p of (h && h.pubs) || []) if (!p.user) delete p.user;
      return h;
    });
  }

  /** Subscribes to channel, now or as soon as connected, and after every
   * reconnect. Handlers (all optional):
   *   onMessage({channel, epoch, offset, user, data, recovered})
   *   onJoin({channel, user}), onLeave({channel, user})   (with presence: true)
   *   onSubscribed({channel, epoch, offset, resumed, recovered, first})
   *   onRecoveryFailed({channel, epoch, offset, previous: {epoch, offset}, reason})
   *     reason 'epoch_changed' or 'too_old': publications were lost; reload
   *   onError(WsgateError)   the subscription was refused (forbidden, ...)
   * Other options: presence (bool), data (passed to the channel actor),
   * since: {epoch, offset} (resume from a position saved earlier). */
  subscribe(channel, opts = {}) {
    if (this._subs.has(channel)) throw new WsgateError('already_subscribed', `already subscribed to ${channel}`, { local: true });
    const sub = new Subscription(this, channel, opts);
    this._subs.set(channel, sub);
    if (this.state === 'connected') sub._send();
    return sub;
  }
}

export class Subscription {
  constructor(client, channel, opts) {
    this.client = client;
    this.channel = channel;
    this.opts = opts;
    this.state = 'subscribing'; // subscribing | subscribed | unsubscribed | failed
    this.epoch = opts.since ? opts.since.epoch : null;
    this.offset = opts.since ? opts.since.offset : null;
    this._gen = 0; // which sub request the current answer belongs to
    this._waiting = false; // a sub request is out: live messages are covered by its answer
    this._subscribedOnce = false;
    this.ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this.ready.catch(() => {}); // onError reports it; no unhandled rejection
  }

  /** The last position delivered, to save and pass back as `since`. */
  get position() {
    return this.epoch == null ? null : { epoch: this.epoch, offset: this.offset };
  }

  _fire(name, arg) {
    const fn = this.opts[name];
    if (!fn) return;
    try {
      fn(arg);
    } catch (e) {
      console.error('wsgate: subscription handler', name, 'threw', e);
    }
  }

  _send() {
    const c = this.client;
    if (this.state === 'unsubscribed' || this.state === 'failed' || !c._ws) return;
    const env = { op: 'sub', channel: this.channel };
    if (this.opts.presence) env.presence = true;
    if (this.opts.data !== undefined) env.data = this.opts.data;
    const resumed = this.epoch != null && this.offset != null;
    if (resumed) {
      env.epoch = this.epoch;
      env.offset = this.offset;
    }
    const gen = ++this._gen;
    const ws = c._ws;
    this._waiting = true;
    this._inflight = c._call(env, c.options.requestTimeoutMs, ws).then(
      (ans) => gen === this._gen && this._onAnswer(ans, resumed),
      (err) => gen === this._gen && this._onRefused(err, ws),
    );
  }

  _onAnswer(ans, resumed) {
    if (this.state === 'unsubscribed') return;
    this._waiting = false;
    const prev = { epoch: this.epoch, offset: this.offset };
    let recovered = false;
    if (resumed && ans.recovered) {
      recovered = true;
      for (const p of ans.pubs || []) {
        if (p.offset <= this.offset) continue; // delivered before
        this.offset = p.offset;
        this._fire('onMessage', { channel: this.channel, epoch: ans.epoch, offset: p.offset, user: p.user || undefined, data: p.data, recovered: true });
      }
      if (ans.offset > this.offset) this.offset = ans.offset;
    } else {
      this.epoch = ans.epoch;
      this.offset = ans.offset;
    }
    this.epoch = ans.epoch;
    this.state = 'subscribed';
    const first = !this._subscribedOnce;
    this._subscribedOnce = true;
    this._fire('onSubscribed', { channel: this.channel, epoch: this.epoch, offset: this.offset, resumed, recovered, first });
    if (resumed && !recovered) {
      const reason = ans.epoch !== prev.epoch ? 'epoch_changed' : 'too_old';
      this._fire('onRecoveryFailed', { channel: this.channel, epoch: this.epoch, offset: this.offset, previous: prev, reason });
    }
    if (first) this._resolveReady({ epoch: this.epoch, offset: this.offset });
  }

  _onRefused(err, ws) {
    if (this.state === 'unsubscribed') return;
    if (err.code === 'disconnected' || err.code === 'closed' || this.client._ws !== ws) return; // resent on reconnect
    if (err.local || AUTH_RETRY_CODES.has(err.code) || err.code === 'overloaded') {
      // busy or slow: try again on this connection after a pause
      const delay = backoffDelay(1, this.client.options.backoff);
      setTimeout(() => this.client._ws === ws && this._send(), delay);
      return;
    }
    this._waiting = false;
    this.state = 'failed';
    this.client._subs.delete(this.channel);
    this._fire('onError', err);
    this._rejectReady(err);
  }

  _onConnectionLost() {
    if (this.state === 'subscribed' || this.state === 'subscribing') this.state = 'subscribing';
    this._waiting = false;
    this._gen++; // answers to the lost connection's requests are void
  }

  _onEvent(m) {
    if (this.state === 'unsubscribed' || this.state === 'failed') return;
    if (m.op === 'join') return this._fire('onJoin', { channel: this.channel, user: m.user });
    if (m.op === 'leave') return this._fire('onLeave', { channel: this.channel, user: m.user });
    // msg: publications made before our sub answer are either in it
    // (recovery) or older than its offset: both skipped here.
    if (this._waiting || this.epoch == null) return;
    if (m.epoch !== this.epoch || m.offset > this.offset + 1) {
      // a gap or a new incarnation of the channel: resubscribe from our
      // position; the answer brings the missing ones or says they are gone
      this._send();
      return;
    }
    if (m.offset <= this.offset) return; // duplicate
    this.offset = m.offset;
    this._fire('onMessage', { channel: this.channel, epoch: m.epoch, offset: m.offset, user: m.user, data: m.data, recovered: false });
  }

  /** Stops the subscription (here and, when connected, at the gateway). */
  async unsubscribe() {
    if (this.state === 'unsubscribed') return;
    const waiting = this._waiting && this._inflight;
    this.state = 'unsubscribed';
    this._gen++;
    const c = this.client;
    if (c._subs.get(this.channel) === this) c._subs.delete(this.channel);
    const ws = c._ws;
    // a sub still on its way would land after an unsub sent now, and leave
    // the gateway sending to nobody: let it arrive first
    if (waiting) await waiting;
    if (c.state !== 'connected' || c._ws !== ws) return;
    return c._call({ op: 'unsub', channel: this.channel }, c.options.requestTimeoutMs, ws).then(
      () => undefined,
      (e) => {
        if (e.code !== 'not_subscribed' && e.code !== 'disconnected') throw e;
      },
    );
  }
}
