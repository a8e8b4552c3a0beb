"""Structured logs (issue 4): with log-format = json every line either
process writes is one JSON object with ts, level, proc and msg; and one
request can be followed through the fleet by its "req" field, which the
gateway writes when it sends and answers the request and the worker when
it receives and answers it."""

import json

import harness
from harness import GatewayTestCase


def json_lines(proc):
    with open(proc.log_path, errors="replace") as f:
        lines = [l for l in f.read().splitlines() if l and not l.startswith("$ ")]
    return [json.loads(l) for l in lines]  # raises on any line that is not JSON


class LogsTest(GatewayTestCase):
    async def test_json_lines_and_request_ids(self):
        self.start(gateway_args=["--log-format", "json", "-v"], workers=1,
                   worker_args=["--log-format", "json", "-v"])
        c = await self.connect("json")
        rep = await c.call("counter", key="traced", id=77)
        self.assertEqual(rep["op"], "res", rep)
        bad = await c.call("nosuch", id=78)
        self.assertEqual(bad["code"], "no_service")
        await c.close()
        self.cluster.stop()
        gw = json_lines(self.cluster.gateway)
        wk = json_lines(self.cluster.workers["worker-1"])
        for rec in gw + wk:
            self.assertTrue({"ts", "level", "proc", "msg"} <= set(rec), rec)
            self.assertIn(rec["level"], ("error", "warn", "info", "debug"))
        self.assertEqual({r["proc"] for r in gw}, {"wsgate"})
        self.assertEqual({r["proc"] for r in wk}, {"wsgate-worker"})
        self.assertEqual({r.get("id") for r in gw}, {"gw-it"})
        # the counter request: sent and answered at the gateway, received
        # and answered at the worker, all under one id
        sent = [r for r in gw if r["msg"].startswith("sent:") and "svc counter" in r["msg"]]
        self.assertEqual(len(sent), 1, sent)
        req = sent[0]["req"]
        self.assertTrue(req.startswith("gw-it:"), req)
        self.assertEqual([r["msg"].split(" ")[0] for r in gw if r.get("req") == req],
                         ["sent:", "answered:"])
        self.assertEqual([r["msg"].split(":")[0] for r in wk if r.get("req") == req],
                         ["received", "answered"])
        self.assertIn("key traced", [r for r in wk if r.get("req") == req][0]["msg"])


if __name__ == "__main__":
    harness.main()
