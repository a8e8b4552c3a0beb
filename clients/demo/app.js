// The wsgate chat room demo: the browser SDK (wsgate.js) in about a hundred
// lines. One channel per room (room:<room>) with presence and history; the
// SDK reconnects, re-authenticates and recovers missed messages by itself,
// this file only draws what it is told.
import { Client } from './wsgate.js';

const $ = (id) => document.getElementById(id);
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

// ---------------------------------------------------------------------------
// DEVELOPMENT ONLY. POST /dev/token is the gateway's development token
// issuer (`--dev-token`, on in `make run` only): it signs a token for any
// user name, without a password. A real application gets its token from its
// own login service; only this function would change.
async function devToken(user) {
  const r = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok || !body.token) throw new Error(body.message || `POST /dev/token: HTTP ${r.status}`);
  return body.token;
}
// ---------------------------------------------------------------------------

// What the page shows, and a log of what the SDK reported (window.demo, for
// the browser test and for a look in the console).
const messages = new Map(); // sort key (offset; notices between) -> entry
const present = new Map(); // user -> connections
const demo = { client: null, sub: null, log: [] };
let recoveredCount = 0;
window.demo = demo;

function render() {
  const ol = $('messages');
  const atBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
  ol.replaceChildren(
    ...[...messages.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([, m]) => {
        const li = document.createElement('li');
        if (m.notice) {
          li.className = 'notice';
          li.textContent = m.notice;
          return li;
        }
        li.dataset.offset = m.offset;
        if (m.user === demo.client?.user) li.className = 'mine';
        const who = document.createElement('span');
        who.className = 'who';
        who.textContent = m.user ?? 'server';
        const when = document.createElement('time');
        const ts = typeof m.data?.ts === 'number' ? new Date(m.data.ts) : null;
        when.textContent = ts ? ts.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
        const text = document.createElement('span');
        text.className = 'text';
        text.textContent = typeof m.data?.text === 'string' ? m.data.text : JSON.stringify(m.data);
        li.append(who, when, text);
        return li;
      }),
  );
  if (atBottom) ol.scrollTop = ol.scrollHeight;

  const ul = $('presence');
  ul.replaceChildren(
    ...[...present.keys()].sort().map((u) => {
      const li = document.createElement('li');
      li.dataset.user = u;
      li.textContent = u;
      if (u === demo.client?.user) li.className = 'me';
      return li;
    }),
  );
  $('count').textContent = present.size;
}

let noticeSeq = 0;
function notice(text, afterOffset) {
  // shown after the message at afterOffset: a sort key between two offsets
  noticeSeq += 1;
  messages.set((afterOffset ?? 0) + 0.5 + noticeSeq * 1e-6, { notice: text });
  render();
}

function showState(s) {
  const el = $('state');
  el.dataset.state = s.state;
  document.body.dataset.state = s.state; // the presence list greys out while offline
  if (s.state === 'connecting') el.textContent = s.attempt ? `reconnecting (attempt ${s.attempt + 1})` : 'connecting';
  else if (s.state === 'connected') el.textContent = `connected as ${s.user}`;
  else if (s.state === 'disconnected') el.textContent = `disconnected (${s.code}${s.reason ? ' ' + s.reason : ''}), retrying in ${(s.delayMs / 1000).toFixed(1)} s`;
  else if (s.state === 'closed') el.textContent = s.error ? `stopped: ${s.error.code}` : 'not connected';
}

async function loadHistory(channel) {
  const h = await demo.client.history(channel, { limit: 50 });
  for (const p of h.pubs) messages.set(p.offset, { ...p, epoch: h.epoch });
  render();
}

async function loadPresence(channel) {
  const p = await demo.client.presence(channel);
  present.clear();
  for (const u of Object.keys(p.users)) present.set(u, p.users[u]);
  render();
}

async function join(user, room) {
  const channel = `room:${room}`;
  const client = new Client('/ws', { token: () => devToken(user) });
  demo.client = client;
  client.on('state', (s) => {
    demo.log.push({ type: 'state', state: s.state, code: s.code, reason: s.reason });
    showState(s);
  });
  client.on('error', (e) => demo.log.push({ type: 'error', code: e.code, message: e.message }));
  client.on('token', (t) => demo.log.push({ type: 'token', exp: t.exp }));

  demo.sub = client.subscribe(channel, {
    presence: true,
    onMessage(m) {
      demo.log.push({ type: 'msg', offset: m.offset, epoch: m.epoch, recovered: m.recovered, data: m.data });
      if (m.recovered) recoveredCount += 1;
      messages.set(m.offset, m);
      render();
    },
    onJoin({ user: u }) {
      present.set(u, (present.get(u) || 0) + 1);
      render();
    },
    onLeave({ user: u }) {
      present.delete(u);
      render();
    },
    onSubscribed(s) {
      demo.log.push({ type: 'subscribed', ...s });
      // who is here now (joins and leaves while we were away were missed)
      loadPresence(channel).catch((e) => notice(`presence: ${e.message}`));
      if (s.first) loadHistory(channel).catch((e) => notice(`history: ${e.message}`));
      else if (s.recovered) {
        const n = recoveredCount;
        notice(n ? `reconnected; ${n} missed message${n === 1 ? '' : 's'} recovered` : 'reconnected; nothing was missed', s.offset);
      }
      recoveredCount = 0;
    },
    onRecoveryFailed(r) {
      demo.log.push({ type: 'recovery_failed', reason: r.reason });
      // the channel lost what we missed: start again from its history
      messages.clear();
      loadHistory(channel)
        .then(() => notice(`reconnected, but some messages could not be recovered (${r.reason}); showing the room's history`, r.offset))
        .catch((e) => notice(`history: ${e.message}`));
    },
    onError(e) {
      notice(`cannot join ${channel}: ${e.code}`);
    },
  });

  $('room-title').textContent = channel;
  $('join').hidden = true;
  $('room-view').hidden = false;
  $('text').focus();
  await client.connect();
}

$('join').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const user = $('user').value.trim();
  const room = $('room').value.trim();
  if (!NAME_RE.test(user) || !NAME_RE.test(room)) return;
  $('join-error').hidden = true;
  join(user, room).catch((e) => {
    $('join-error').textContent = `Could not connect: ${e.message}`;
    $('join-error').hidden = false;
    $('join').hidden = false;
    $('room-view').hidden = true;
  });
});

$('send').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $('text');
  const text = input.value.trim();
  if (!text || !demo.sub) return;
  input.value = '';
  demo.client.publish(demo.sub.channel, { text, ts: Date.now() }).catch((e) => notice(`not sent (${e.code}): ${text}`));
});

$('leave').addEventListener('click', async () => {
  await demo.sub?.unsubscribe().catch(() => {});
  demo.client?.close();
  messages.clear();
  present.clear();
  render();
  $('room-view').hidden = true;
  $('join').hidden = false;
});

// ?user=alice&room=lobby fills the form (and joins when both are given)
const q = new URLSearchParams(location.search);
if (q.get('room')) $('room').value = q.get('room');
if (q.get('user')) {
  $('user').value = q.get('user');
  if (q.get('room')) $('join').requestSubmit();
}
