"""The chat room demo in a real headless Chromium, served by a real gateway.

Two pages (alice through the join form, bob through ?user=&room=) get their
tokens from POST /dev/token, join room:demo with presence and history,
see each other and exchange messages. Then the gateway is stopped; while
both pages are disconnected, carol (a plain websocket client on a second
gateway the same worker serves) and the server (admin POST /publish on
that gateway) publish into the room. The first gateway starts again on the
same ports; both pages reconnect by themselves, re-authenticate, and show
exactly the publications they missed, once each and in order, recovered
by offset from the channel actor that outlived the gateway. Screenshots
go to the build's artifacts/browser/."""

import browserkit
from browserkit import BrowserTestCase

ROOM = "demo"
CHANNEL = "room:" + ROOM

MESSAGES = """() => [...document.querySelectorAll('#messages li[data-offset]')].map(li => ({
  offset: Number(li.dataset.offset), who: li.querySelector('.who').textContent,
  text: li.querySelector('.text').textContent}))"""
NOTICES = "() => [...document.querySelectorAll('#messages li.notice')].map(li => li.textContent)"
PRESENT = "() => [...document.querySelectorAll('#presence li')].map(li => li.dataset.user)"
STATE = "() => document.querySelector('#state').dataset.state"
HAS_TEXTS = """(want) => {
  const got = [...document.querySelectorAll('#messages li[data-offset] .text')].map(e => e.textContent);
  return want.every(t => got.includes(t));
}"""
PRESENT_ARE = """(want) => {
  const got = [...document.querySelectorAll('#presence li')].map(li => li.dataset.user).sort();
  return JSON.stringify(got) === JSON.stringify(want);
}"""


class DemoTest(BrowserTestCase):
    def say(self, page, text):
        self.browser.call("fill", page=page, selector="#text", value=text)
        self.browser.call("press", page=page, selector="#text", key="Enter")

    def texts(self, page):
        return [m["text"] for m in self.browser.eval(page, MESSAGES)]

    def test_two_pages_chat_and_survive_a_gateway_restart(self):
        b = self.browser
        self.cluster.start_gateway(self.gateway_args())
        gw2 = self.second_gateway()
        self.cluster.start_worker("worker-1", services="echo,auth,chan,devtoken",
                                  args=self.worker_args(["--gateway", gw2.backend]))
        self.cluster.wait_workers(1)
        gw2.wait_workers(1)

        # alice uses the form, bob the link with ?user=&room=
        self.open("alice")
        self.assertIn("Development only", b.eval("alice", "() => document.querySelector('#devnote').textContent"))
        b.call("fill", page="alice", selector="#user", value="alice")
        b.call("fill", page="alice", selector="#room", value=ROOM)
        b.call("click", page="alice", selector="#join button[type=submit]")
        self.open("bob", "/?user=bob&room=" + ROOM)
        for p in ("alice", "bob"):
            b.wait(p, "() => document.querySelector('#state').dataset.state === 'connected'",
                   what="connected")
            b.wait(p, PRESENT_ARE, ["alice", "bob"], what="alice and bob present")
        self.assertEqual(b.eval("alice", "() => document.querySelector('#room-title').textContent"), CHANNEL)

        self.say("alice", "hello from alice")
        b.wait("bob", HAS_TEXTS, ["hello from alice"], what="alice's message")
        self.say("bob", "hi alice <b>not bold</b>")
        for p in ("alice", "bob"):
            b.wait(p, HAS_TEXTS, ["hello from alice", "hi alice <b>not bold</b>"], what="both messages")
            msgs = b.eval(p, MESSAGES)
            self.assertEqual([(m["who"], m["text"]) for m in msgs],
                             [("alice", "hello from alice"), ("bob", "hi alice <b>not bold</b>")])
        # markup in a message is text, not HTML
        self.assertEqual(b.eval("alice", "() => document.querySelectorAll('#messages b').length"), 0)
        b.screenshot("alice", "demo-chat.png")
        before = b.eval("alice", MESSAGES)[-1]["offset"]

        # the gateway goes away (SIGTERM: 1001 going away to every page)
        start_again = self.restart_gateway("term")
        for p in ("alice", "bob"):
            b.wait(p, "() => demo.log.some(e => e.type === 'state' && e.state === 'disconnected' && e.code === 1001)",
                   what="a disconnect with 1001")
            self.assertNotEqual(b.eval(p, STATE), "connected")

        # meanwhile, on the other gateway: carol and the server publish
        carol = self.ws_client(gw2, "carol")
        missed = []
        for i in range(2):
            rep = self.ws_call(carol, {"op": "pub", "channel": CHANNEL,
                                       "data": {"text": "while you were away %d" % i}})
            self.assertEqual(rep["op"], "res", rep)
            missed.append(rep["data"]["offset"])
        rep = self.admin_publish(gw2, CHANNEL, {"text": "from the server"})
        missed.append(rep["offset"])
        self.assertEqual(missed, [before + 1, before + 2, before + 3])
        b.screenshot("bob", "demo-disconnected.png")
        away = ["while you were away 0", "while you were away 1", "from the server"]
        for p in ("alice", "bob"):
            self.assertFalse(any(t in self.texts(p) for t in away), "published while away, seen before the restart")

        start_again()
        self.cluster.wait_workers(1)
        for p in ("alice", "bob"):
            b.wait(p, HAS_TEXTS, away, timeout=20, what="the missed messages")
            b.wait(p, "() => document.querySelector('#state').dataset.state === 'connected'",
                   what="connected again")
            msgs = b.eval(p, MESSAGES)
            self.assertEqual([m["text"] for m in msgs], ["hello from alice", "hi alice <b>not bold</b>"] + away)
            self.assertEqual([m["offset"] for m in msgs][-3:], missed)
            self.assertEqual([m["who"] for m in msgs][-3:], ["carol", "carol", "server"])
            # the SDK delivered each publication exactly once, the missed
            # ones flagged as recovered
            log = b.eval(p, "() => demo.log.filter(e => e.type === 'msg')")
            offsets = [e["offset"] for e in log]
            self.assertEqual(len(offsets), len(set(offsets)), "duplicate deliveries: %r" % offsets)
            self.assertEqual([e["offset"] for e in log if e["recovered"]], missed)
            self.assertEqual(b.eval(p, "() => demo.log.filter(e => e.type === 'recovery_failed').length"), 0)
            self.assertIn("reconnected; 3 missed messages recovered", b.eval(p, NOTICES))
            # it authenticated again: a second /dev/token fetch, a new connection
            self.assertGreaterEqual(b.call("frames", page=p)["sockets"], 2)
            b.wait(p, PRESENT_ARE, ["alice", "bob"], what="both present again")

        # and live again
        self.say("bob", "back")
        b.wait("alice", HAS_TEXTS, ["back"], what="a live message after the restart")
        b.screenshot("alice", "demo-after-restart.png")
        for p in ("alice", "bob"):
            self.assertEqual(self.page_errors(p), [])


if __name__ == "__main__":
    browserkit.main()
