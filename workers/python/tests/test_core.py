"""The actor runtime without sockets: per-actor order and private state,
exactly one answer per request, malformed input, bounds, passivation,
per-connection keys, publish bookkeeping and the drain decision."""

import unittest

from util import P, make_core, pack, req, unpack, welcome
from wsgate_worker import ServiceError


class Recorder:
    """Appends every message to a shared journal and answers (key, n, data)."""

    journal = []

    def start(self, ctx):
        self.n = 0
        Recorder.journal.append(("start", ctx.key))

    def handle(self, ctx, msg):
        self.n += 1
        Recorder.journal.append((msg.key, msg.data))
        return [msg.key, self.n, msg.data]

    def stop(self, ctx):
        Recorder.journal.append(("stop", ctx.key))


def answers(out):
    """rid -> list of answers (("res", value) or ("err", code)) in order."""
    res = {}
    for link, hdr, payload in out.sent:
        if hdr[1] == P.REPLY:
            res.setdefault(hdr[2], []).append(("res", unpack(payload)))
        elif hdr[1] == P.ERROR:
            res.setdefault(hdr[2], []).append(("err", hdr[3]))
    return res


class OrderTest(unittest.TestCase):
    def setUp(self):
        Recorder.journal = []

    def test_per_actor_order_and_private_state(self):
        core, out, _ = make_core({"rec": Recorder})
        rid = 0
        expected = {"a": [], "b": [], "c": []}
        for i in range(30):
            key = "abc"[i % 3] if i % 5 else "a"
            rid += 1
            core.on_frames(0, req(rid, 1, "rec", key, data=i))
            expected[key].append(i)
        self.assertEqual(out.sent, [], "nothing is handled before run()")
        core.run()
        seen = {}
        for entry in Recorder.journal:
            if entry[0] not in ("start", "stop"):
                seen.setdefault(entry[0], []).append(entry[1])
        self.assertEqual(seen, expected, "each actor sees its messages in arrival order")
        # each actor counts only its own messages, and every rid got its answer
        res = answers(out)
        self.assertEqual(sorted(res), list(range(1, 31)))
        for key, datas in expected.items():
            ns = [v[1] for r in sorted(res) for (_, v) in res[r] if v[0] == key]
            self.assertEqual(ns, list(range(1, len(datas) + 1)))
        self.assertEqual([e for e in Recorder.journal if e[0] == "start"],
                         [("start", "a"), ("start", "b"), ("start", "c")])

    def test_round_robin_one_message_per_turn(self):
        core, out, _ = make_core({"rec": Recorder})
        for i in range(4):
            core.on_frames(0, req(1 + i, 1, "rec", "hot", data=i))
        core.on_frames(0, req(10, 1, "rec", "cold", data="x"))
        core.run(budget=2)
        self.assertEqual(sorted(answers(out)), [1, 10], "cold is not stuck behind hot")
        self.assertEqual(core.pending(), 3)
        core.run()
        self.assertEqual(core.pending(), 0)

    def test_messages_queued_while_actor_runs_keep_order(self):
        class Reentrant:
            def handle(self, ctx, msg):
                if msg.data == 0:  # a message arrives while this one is handled
                    core.on_frames(0, req(99, 1, "re", "k", data=1))
                return msg.data

        core, out, _ = make_core({"re": Reentrant})
        core.on_frames(0, req(98, 1, "re", "k", data=0))
        core.run()
        self.assertEqual([h[2] for _, h, _ in out.of(P.REPLY)], [98, 99])


class ExactlyOneAnswerTest(unittest.TestCase):
    def run_one(self, handle, data=None, rid=7, start=None):
        attrs = {"handle": handle}
        if start:
            attrs["start"] = start
        svc = type("Svc", (), attrs)
        core, out, _ = make_core({"s": svc})
        core.on_frames(0, req(rid, 1, "s", "k", data=data))
        core.run()
        return core, out

    def assertOne(self, out, rid, kind, value):
        got = answers(out)
        self.assertEqual(list(got), [rid], got)
        self.assertEqual(got[rid], [(kind, value)])

    def test_return_value_is_the_reply(self):
        _, out = self.run_one(lambda s, ctx, msg: {"ok": msg.data}, data=[1, "x"])
        self.assertOne(out, 7, "res", {"ok": [1, "x"]})

    def test_none_is_nil(self):
        _, out = self.run_one(lambda s, ctx, msg: None)
        self.assertOne(out, 7, "res", None)

    def test_service_error(self):
        def h(s, ctx, msg):
            raise ServiceError("not_found", "no such thing")
        _, out = self.run_one(h)
        self.assertOne(out, 7, "err", "not_found")
        self.assertEqual(out.sent[0][1][4], "no such thing")

    def test_exception_is_internal(self):
        def h(s, ctx, msg):
            raise KeyError("boom")
        with self.assertLogs("wsgate_worker", "ERROR"):
            core, out = self.run_one(h)
        self.assertOne(out, 7, "err", "internal")
        self.assertEqual(core.stats["internal"], 1)

    def test_unpackable_reply_is_internal(self):
        with self.assertLogs("wsgate_worker", "ERROR"):
            _, out = self.run_one(lambda s, ctx, msg: {1, 2})
        self.assertOne(out, 7, "err", "internal")
        with self.assertLogs("wsgate_worker", "ERROR"):
            _, out = self.run_one(lambda s, ctx, msg: 2**70)
        self.assertOne(out, 7, "err", "internal")

    def test_invalid_error_code_is_internal(self):
        def h(s, ctx, msg):
            raise ServiceError("Not Found", "x")
        with self.assertLogs("wsgate_worker", "ERROR"):
            _, out = self.run_one(h)
        self.assertOne(out, 7, "err", "internal")

    def test_base_exception_still_answered(self):
        def h(s, ctx, msg):
            raise SystemExit(3)
        with self.assertRaises(SystemExit):
            self.run_one(h)
        # run_one did not return: check with a core of our own
        svc = type("Svc", (), {"handle": h})
        core, out, _ = make_core({"s": svc})
        core.on_frames(0, req(8, 1, "s", "k"))
        with self.assertRaises(SystemExit):
            core.run()
        self.assertOne(out, 8, "err", "internal")

    def test_start_failure_answers_and_retries(self):
        calls = []

        def start(s, ctx):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("first start fails")
            s.ok = True

        svc = type("Svc", (), {"start": start, "handle": lambda s, ctx, msg: s.ok})
        core, out, _ = make_core({"s": svc})
        core.on_frames(0, req(1, 1, "s", "k"))
        core.on_frames(0, req(2, 1, "s", "k"))
        with self.assertLogs("wsgate_worker", "ERROR"):
            core.run()
        self.assertEqual(answers(out), {1: [("err", "internal")], 2: [("res", True)]})

    def test_rid_zero_gets_no_answer(self):
        def h(s, ctx, msg):
            ctx.send_raw(msg.conn, msg.data)
            return "dropped"
        _, out = self.run_one(h, rid=0, data=b"x")
        self.assertEqual(answers(out), {})
        self.assertEqual(len(out.of(P.SEND)), 1)

    def test_raw_payload_verbatim(self):
        got = []
        svc = type("Svc", (), {"handle": lambda s, ctx, msg: got.append(
            (msg.data, msg.raw, msg.text, msg.private))})
        core, out, _ = make_core({"s": svc})
        core.on_frames(0, req(0, 4, "s", "c:4", flags=P.F_RAW | P.F_TEXT, payload=b"\xc1hi"))
        core.run()
        self.assertEqual(got, [(b"\xc1hi", True, True, True)])

    def test_user_field(self):
        users = []
        svc = type("Svc", (), {"handle": lambda s, ctx, msg: users.append(msg.user)})
        core, out, _ = make_core({"s": svc})
        core.on_frames(0, req(1, 1, "s", "k", user="alice"))
        core.on_frames(0, req(2, 1, "s", "k"))
        core.run()
        self.assertEqual(users, ["alice", ""])


class BadInputTest(unittest.TestCase):
    def test_malformed_dropped_counted_then_still_serving(self):
        core, out, _ = make_core({"rec": Recorder})
        bad = [[b"\xc1"], [pack([2, P.REQ, 1, 1, "rec", "k", 0]), b"\xc0"], [pack([1, 77])],
               [pack([1, P.REQ, "1", 1, "rec", "k", 0]), b"\xc0"], [pack([1, P.REQ, 1, 1, "rec"])],
               [pack([1, P.REQ, 1, 1, "rec", "k", 0])], [], [b"", b"", b""]]
        with self.assertLogs("wsgate_worker", "WARNING"):
            for frames in bad:
                self.assertIsNone(core.on_frames(0, frames))
        core.run()
        self.assertEqual(out.sent, [], "nothing answers a malformed message")
        self.assertEqual(core.stats["malformed"], len(bad))
        core.on_frames(0, req(5, 1, "rec", "k", data="fine"))
        core.run()
        self.assertEqual(answers(out), {5: [("res", ["k", 1, "fine"])]})

    def test_bad_payload_is_bad_request(self):
        core, out, _ = make_core({"rec": Recorder})
        with self.assertLogs("wsgate_worker", "WARNING"):
            core.on_frames(0, req(3, 1, "rec", "k", payload=b"\xc1"))
            core.on_frames(0, req(4, 1, "rec", "k", payload=b"\x01\x02"))
            core.on_frames(0, req(0, 1, "rec", "k", payload=b"\xc1"))
        self.assertEqual(answers(out), {3: [("err", "bad_request")], 4: [("err", "bad_request")]})
        self.assertEqual(core.stats["bad_payload"], 3)

    def test_unknown_service(self):
        core, out, _ = make_core({"rec": Recorder})
        core.on_frames(0, req(3, 1, "nope", "k"))
        core.on_frames(0, req(0, 1, "nope", "k"))
        core.on_frames(0, [pack([1, P.OPEN, 1, "nope", "c:1", 1])])
        self.assertEqual(answers(out), {3: [("err", "no_service")]})
        self.assertEqual(core.stats["no_service"], 3)

    def test_published_for_unknown_ref_and_draining_are_fine(self):
        core, out, _ = make_core({"rec": Recorder})
        self.assertEqual(core.on_frames(0, [pack([1, P.PUBLISHED, 99, "", "", 1, "e"])]),
                         P.PUBLISHED)
        self.assertEqual(core.stats["publish_ok"], 1)


class BoundsTest(unittest.TestCase):
    def setUp(self):
        Recorder.journal = []

    def test_mailbox_bound(self):
        core, out, _ = make_core({"rec": Recorder}, mailbox_max=3)
        for rid in range(1, 6):
            core.on_frames(0, req(rid, 1, "rec", "k", data=rid))
        core.on_frames(0, req(0, 1, "rec", "k"))  # no rid: dropped, counted
        self.assertEqual(answers(out), {4: [("err", "overloaded")], 5: [("err", "overloaded")]})
        core.run()
        res = answers(out)
        self.assertEqual(sorted(res), [1, 2, 3, 4, 5])
        self.assertTrue(all(len(v) == 1 for v in res.values()))
        self.assertEqual(core.stats["overloaded"], 3)
        self.assertEqual(core.stats["dropped_req"], 1)
        core.on_frames(0, req(6, 1, "rec", "k", data=6))
        core.run()
        self.assertEqual(answers(out)[6], [("res", ["k", 4, 6])])

    def test_actor_bound_evicts_idle_or_refuses(self):
        core, out, _ = make_core({"rec": Recorder}, max_actors=2)
        core.on_frames(0, req(1, 1, "rec", "a"))
        core.on_frames(0, req(2, 1, "rec", "b"))
        core.on_frames(0, req(3, 1, "rec", "c"))  # a and b are busy
        self.assertEqual(answers(out), {3: [("err", "overloaded")]})
        core.run()
        core.on_frames(0, req(4, 1, "rec", "c"))  # a is idle now: evicted
        core.run()
        self.assertEqual(answers(out)[4], [("res", ["c", 1, None])])
        self.assertIn(("stop", "a"), Recorder.journal)
        self.assertEqual(set(k[2] for k in core.actors), {"b", "c"})


class PassivationTest(unittest.TestCase):
    def setUp(self):
        Recorder.journal = []

    def test_idle_actors_passivated_and_restarted_fresh(self):
        core, out, clock = make_core({"rec": Recorder}, idle_ms=1000)
        core.on_frames(0, req(1, 1, "rec", "a"))
        core.run()
        clock.t += 0.6
        core.on_frames(0, req(2, 1, "rec", "b"))
        core.run()
        clock.t += 0.6
        self.assertEqual(core.passivate_idle(), 1)
        self.assertEqual([k[2] for k in core.actors], ["b"])
        core.on_frames(0, req(3, 1, "rec", "a"))
        core.run()
        self.assertEqual(answers(out)[3], [("res", ["a", 1, None])], "state starts again")
        self.assertEqual(Recorder.journal.count(("start", "a")), 2)
        self.assertEqual(Recorder.journal.count(("stop", "a")), 1)

    def test_busy_actor_not_passivated(self):
        core, out, clock = make_core({"rec": Recorder}, idle_ms=1000)
        core.on_frames(0, req(1, 1, "rec", "a"))
        clock.t += 5
        self.assertEqual(core.passivate_idle(), 0)
        core.run()
        self.assertEqual(answers(out), {1: [("res", ["a", 1, None])]})

    def test_closed_passivates_the_connection_actor(self):
        events = []

        class Conn:
            def opened(self, ctx, msg):
                events.append(("open", msg.conn, msg.raw))

            def handle(self, ctx, msg):
                ctx.send_raw(msg.conn, msg.data)

            def closed(self, ctx, msg):
                events.append(("closed", msg.conn, msg.close_code))

            def stop(self, ctx):
                events.append(("stop", ctx.key))

        core, out, _ = make_core({"raw": Conn})
        core.on_frames(0, [pack([1, P.OPEN, 4, "raw", "c:4", P.F_RAW])])
        core.on_frames(0, req(0, 4, "raw", "c:4", flags=P.F_RAW, payload=b"x"))
        core.on_frames(0, [pack([1, P.CLOSED, 4, "raw", "c:4", 1000])])
        core.run()
        self.assertEqual(events, [("open", 4, True), ("closed", 4, 1000), ("stop", "c:4")])
        self.assertEqual(core.actors, {})
        self.assertEqual(out.of(P.SEND)[0][1], [1, P.SEND, [4], P.F_RAW, "raw"])


class KeysTest(unittest.TestCase):
    def setUp(self):
        Recorder.journal = []

    def test_connection_keys_are_per_gateway(self):
        core, out, _ = make_core({"rec": Recorder}, links=2)
        core.on_frames(0, req(1, 7, "rec", "c:7"))
        core.on_frames(1, req(1, 7, "rec", "c:7"))  # conn 7 of another gateway
        core.on_frames(0, req(2, 3, "rec", "c:7"))  # a client naming that key: not private
        core.on_frames(0, req(3, 1, "rec", "shared"))
        core.on_frames(1, req(3, 1, "rec", "shared"))
        core.run()
        self.assertEqual(len(core.actors), 4)
        res = [(l, h[2], unpack(p)) for l, h, p in out.of(P.REPLY)]
        self.assertEqual(sorted(res), [
            (0, 1, ["c:7", 1, None]), (0, 2, ["c:7", 1, None]), (0, 3, ["shared", 1, None]),
            (1, 1, ["c:7", 1, None]), (1, 3, ["shared", 2, None])])

    def test_answers_go_to_the_link_the_request_came_on(self):
        core, out, _ = make_core({"rec": Recorder}, links=3)
        for link in (2, 0, 1):
            core.on_frames(link, req(10 + link, 1, "rec", "k"))
        core.run()
        self.assertEqual(sorted((l, h[2]) for l, h, _ in out.of(P.REPLY)),
                         [(0, 10), (1, 11), (2, 12)])


class PublishTest(unittest.TestCase):
    def test_publish_via_the_request_gateway_and_outcomes_counted(self):
        class Pub:
            def handle(self, ctx, msg):
                return ctx.publish("stock:" + msg.key, {"n": msg.data})

        core, out, _ = make_core({"p": Pub}, links=2)
        core.on_frames(0, welcome("gw-a"))
        core.on_frames(1, welcome("gw-b"))
        core.on_frames(1, req(1, 1, "p", "x", data=3))
        core.on_frames(0, req(2, 1, "p", "y", data=4))
        core.run()
        pubs = out.of(P.PUBLISH)
        self.assertEqual([(l, h[3], unpack(p)) for l, h, p in pubs],
                         [(1, "stock:x", {"n": 3}), (0, "stock:y", {"n": 4})])
        refs = [h[2] for _, h, _ in pubs]
        self.assertEqual(len(set(refs)), 2)
        self.assertEqual([unpack(p) for _, _, p in out.of(P.REPLY)], refs)
        core.on_frames(1, [pack([1, P.PUBLISHED, refs[0], "", "", 1, "e"])])
        with self.assertLogs("wsgate_worker", "WARNING"):
            core.on_frames(0, [pack([1, P.PUBLISHED, refs[1], "forbidden", "no", 0, ""])])
        self.assertEqual((core.stats["publish_ok"], core.stats["publish_err"]), (1, 1))
        self.assertEqual(core.publishing, {})

    def test_bad_channel_raises_in_the_service(self):
        class Pub:
            def handle(self, ctx, msg):
                ctx.publish("bad channel", 1)

        core, out, _ = make_core({"p": Pub})
        with self.assertLogs("wsgate_worker", "ERROR"):
            core.on_frames(0, req(1, 1, "p", "x"))
            core.run()
        self.assertEqual(answers(out), {1: [("err", "internal")]})


class DrainTest(unittest.TestCase):
    def test_waits_for_live_gateways_and_mailboxes(self):
        core, out, clock = make_core({"rec": Recorder}, links=3, hello_ms=1000)
        core.on_frames(0, welcome("a"))
        core.on_frames(1, welcome("b"))  # link 2 never answered: not waited for
        core.on_frames(0, req(1, 1, "rec", "k"))
        core.begin_drain()
        self.assertEqual([l for l, h, _ in out.of(P.DRAIN)], [0, 1, 2])
        self.assertFalse(core.drain_done(10000), "a request is queued")
        core.run()
        self.assertEqual(sorted(L.index for L in core.drain_waiting()), [0, 1])
        core.on_frames(0, [pack([1, P.DRAINING])])
        self.assertFalse(core.drain_done(10000))
        core.on_frames(1, [pack([1, P.DRAINING])])
        self.assertTrue(core.drain_done(10000))

    def test_drain_ms_bounds_the_wait_and_dead_links_are_not_waited_for(self):
        core, out, clock = make_core({"rec": Recorder}, links=2, hello_ms=1000)
        core.on_frames(0, welcome("a"))
        core.on_frames(1, welcome("b"))
        clock.t += 1
        core.begin_drain()
        clock.t += 1.5
        core.on_frames(0, welcome("a"))  # a still answers HELLOs; b went quiet 2.5 s ago
        self.assertEqual([L.index for L in core.drain_waiting()], [0, 1])
        clock.t += 1
        self.assertEqual([L.index for L in core.drain_waiting()], [0], "b is not alive")
        self.assertFalse(core.drain_done(10000))
        clock.t += 7
        self.assertTrue(core.drain_done(10000), "drain_ms passed")
        self.assertTrue(core.drain_done(0))

    def test_waits_for_outstanding_published(self):
        class Pub:
            def handle(self, ctx, msg):
                return ctx.publish("stock:" + msg.key, 1)

        core, out, clock = make_core({"p": Pub}, links=2)
        core.on_frames(0, welcome("a"))
        core.on_frames(1, welcome("b"))
        core.on_frames(1, req(1, 1, "p", "x"))
        core.run()
        ref = unpack(out.of(P.REPLY)[0][2])
        core.begin_drain()
        core.on_frames(0, [pack([1, P.DRAINING])])
        core.on_frames(1, [pack([1, P.DRAINING])])
        self.assertEqual([L.index for L in core.drain_waiting()], [1], "b owes a PUBLISHED")
        self.assertFalse(core.drain_done(10000))
        core.on_frames(1, [pack([1, P.PUBLISHED, ref, "", "", 1, "e"])])
        self.assertTrue(core.drain_done(10000))

    def test_published_owed_by_a_lost_or_restarted_gateway_not_waited_for(self):
        class Pub:
            def handle(self, ctx, msg):
                return ctx.publish("c", 1)

        core, out, clock = make_core({"p": Pub}, links=2)
        core.on_frames(0, welcome("a"))
        core.on_frames(1, welcome("b"))
        core.on_frames(0, req(1, 1, "p", "x"))
        core.on_frames(1, req(1, 1, "p", "x"))
        core.run()
        core.begin_drain()
        core.on_frames(0, [pack([1, P.DRAINING])])
        core.on_frames(1, [pack([1, P.DRAINING])])
        self.assertEqual(len(core.drain_waiting()), 2)
        core.link_lost(0)
        out.take()
        core.on_frames(1, welcome("b-restarted"))
        self.assertEqual([(l, h) for l, h, _ in out.take()], [(1, [1, P.DRAIN])],
                         "the new gateway is told about the drain")
        self.assertFalse(core.drain_done(10000))
        core.on_frames(1, [pack([1, P.DRAINING])])
        self.assertTrue(core.drain_done(10000))
        self.assertEqual(core.stats["publish_lost"], 2)

    def test_disconnected_link_not_waited_for(self):
        core, out, clock = make_core({"rec": Recorder}, links=1)
        core.on_frames(0, welcome("a"))
        core.begin_drain()
        self.assertFalse(core.drain_done(10000))
        core.links[0].connected = False
        self.assertTrue(core.drain_done(10000))


class ConfigTest(unittest.TestCase):
    def test_hello_lists_services_and_flags(self):
        class Safe:
            retry_safe = True
        core, out, _ = make_core({"a": Recorder, "b.safe": Safe})
        hdr = unpack(core.hello_frames()[0])
        self.assertEqual(hdr, [1, P.HELLO, "w-test", ["a", "b.safe"], [0, P.SVC_RETRY_SAFE]])

    def test_bad_names_refused(self):
        for services in ({}, {"Bad": Recorder}, {"x" * 65: Recorder},
                         {"s%d" % i: Recorder for i in range(65)}):
            with self.assertRaises(ValueError):
                make_core(services)


if __name__ == "__main__":
    unittest.main()
