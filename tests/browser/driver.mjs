// driver.mjs - a headless Chromium that the Python browser tests steer.
//
// Debian's /usr/bin/chromium driven by playwright-core (npm; no browser is
// ever downloaded). The Python side (browserkit.py) owns the processes
// under test and the assertions; this only runs pages. It reads one JSON
// command per line on stdin and answers one JSON line on stdout:
//   > {"id": 1, "cmd": "open", "page": "alice", "url": "http://..."}
//   < {"id": 1, "ok": true, "result": ...}   or   {"id": 1, "ok": false, "error": "..."}
// Commands: open, eval, wait, fill, click, press, screenshot, frames,
// errors, close_page, quit. Functions for eval/wait are sent as source text
// ("(arg) => ...") and run in the page with one JSON argument.
//
// Environment: WSGATE_BROWSER_DEPS (the directory where `npm ci` put
// node_modules), WSGATE_CHROMIUM (default /usr/bin/chromium),
// WSGATE_BROWSER_PROFILE (a fresh user-data-dir, removed at exit).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const deps = process.env.WSGATE_BROWSER_DEPS || path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(path.join(deps, 'package.json'));
const { chromium } = require('playwright-core');

const profile = process.env.WSGATE_BROWSER_PROFILE || fs.mkdtempSync(path.join(os.tmpdir(), 'wsgate-chromium-'));
// Without the background-networking flags Chromium tries to reach Google
// services at start, and on a closed network its own connections are
// refused; QUIC, sync and component updates likewise.
const args = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.WSGATE_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args,
  viewport: { width: 1000, height: 720 },
});
const pages = new Map(); // name -> {page, frames, errors}

async function open(name, url) {
  if (pages.has(name)) throw new Error(`page ${name} is open`);
  const page = await context.newPage();
  const rec = { page, frames: { sentText: 0, sentBinary: 0, recvText: 0, recvBinary: 0, sockets: 0 }, errors: [], console: [] };
  page.on('websocket', (ws) => {
    rec.frames.sockets += 1;
    ws.on('framesent', (f) => (typeof f.payload === 'string' ? rec.frames.sentText++ : rec.frames.sentBinary++));
    ws.on('framereceived', (f) => (typeof f.payload === 'string' ? rec.frames.recvText++ : rec.frames.recvBinary++));
  });
  page.on('pageerror', (e) => rec.errors.push(String(e && e.stack ? e.stack : e)));
  page.on('console', (m) => {
    rec.console.push(`${m.type()}: ${m.text()}`);
    if (rec.console.length > 500) rec.console.shift();
  });
  pages.set(name, rec);
  if (url) await page.goto(url, { waitUntil: 'load', timeout: 15000 });
  return true;
}

function rec(name) {
  const r = pages.get(name);
  if (!r) throw new Error(`no page ${name}`);
  return r;
}

async function handle(m) {
  switch (m.cmd) {
    case 'open':
      return open(m.page, m.url);
    case 'eval':
      return rec(m.page).page.evaluate(({ src, arg }) => new Function(`return (${src})`)()(arg), { src: m.fn, arg: m.arg ?? null });
    case 'wait': {
      const h = await rec(m.page).page.waitForFunction(
        ({ src, arg }) => new Function(`return (${src})`)()(arg),
        { src: m.fn, arg: m.arg ?? null },
        { polling: 50, timeout: m.wait_ms ?? 10000 },
      );
      return h.jsonValue();
    }
    case 'fill':
      return rec(m.page).page.fill(m.selector, m.value).then(() => true);
    case 'click':
      return rec(m.page).page.click(m.selector).then(() => true);
    case 'press':
      return rec(m.page).page.press(m.selector, m.key).then(() => true);
    case 'add_script':
      return rec(m.page).page.addScriptTag({ path: m.path }).then(() => true);
    case 'screenshot':
      fs.mkdirSync(path.dirname(m.path), { recursive: true });
      return rec(m.page).page.screenshot({ path: m.path, fullPage: true }).then(() => m.path);
    case 'frames':
      return rec(m.page).frames;
    case 'errors':
      return { errors: rec(m.page).errors, console: rec(m.page).console };
    case 'close_page': {
      const r = rec(m.page);
      pages.delete(m.page);
      await r.page.close();
      return true;
    }
    case 'quit':
      return 'bye';
    default:
      throw new Error(`unknown command ${m.cmd}`);
  }
}

async function quit(code) {
  try {
    await context.close();
  } catch {
    /* already gone */
  }
  if (!process.env.WSGATE_BROWSER_PROFILE) fs.rmSync(profile, { recursive: true, force: true });
  process.exit(code);
}

out({ id: 0, ok: true, result: { ready: true, version: context.browser()?.version() ?? null } });
const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    let m;
    try {
      m = JSON.parse(line);
    } catch (e) {
      out({ id: null, ok: false, error: `bad command line: ${e.message}` });
      return;
    }
    try {
      const result = await handle(m);
      out({ id: m.id, ok: true, result: result === undefined ? null : result });
      if (m.cmd === 'quit') await quit(0);
    } catch (e) {
      out({ id: m.id, ok: false, error: String(e && e.message ? e.message : e) });
    }
  });
});
rl.on('close', () => chain.then(() => quit(0)));
process.on('SIGTERM', () => quit(0));
