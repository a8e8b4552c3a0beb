"""12. idle timeout: with --ping-ms 200 --idle-ms 600 a client that never
answers pings is closed (4002); one that answers (websockets does) stays."""

import asyncio
import socket
import time

import harness
from harness import GatewayTestCase, OP_CLOSE, OP_PING, parse_close


class IdleTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(gateway_args=["--ping-ms", "200", "--idle-ms", "600"], workers=1)

    def watch_silent(self, r, limit):
        """Reads frames without ever answering; returns (pings seen, how the
        connection ended, close code, seconds until then)."""
        t0 = time.monotonic()
        pings = 0
        while True:
            left = limit - (time.monotonic() - t0)
            if left <= 0:
                return pings, "open", None, time.monotonic() - t0
            try:
                _, op, payload = r.recv_frame(left / harness.SLOW)
            except (socket.timeout, TimeoutError):
                continue
            except EOFError:
                return pings, "eof", None, time.monotonic() - t0
            except ConnectionResetError:
                return pings, "reset", None, time.monotonic() - t0
            if op == OP_PING:
                pings += 1
            elif op == OP_CLOSE:
                return pings, "close", parse_close(payload)[0], time.monotonic() - t0

    async def test_silent_client_closed_polite_client_stays(self):
        polite = await self.connect("json")  # pongs automatically, never pings
        before = self.metric("wsgate_connections_closed_total", reason="idle_timeout")
        t0 = time.monotonic()
        r = self.raw("/ws", subprotocol=harness.JSON_PROTO)
        loop = asyncio.get_running_loop()
        pings, how, code, dt = await loop.run_in_executor(
            None, self.watch_silent, r, 5.0 * harness.SLOW
        )
        self.assertNotEqual(how, "open", "silent client still open after 5s")
        self.assertGreaterEqual(pings, 1, "the gateway never pinged")
        if how == "close":
            self.assertEqual(code, 4002)
        self.assertGreater(dt, 0.4, "closed before --idle-ms")
        await self.wait_metric(
            lambda m: m.get("wsgate_connections_closed_total", reason="idle_timeout") >= before + 1,
            what='closed_total{reason="idle_timeout"} to move',
        )
        # the polite client has been up at least as long, several idle periods
        await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
        self.assertTrue(polite.ws.open, "a client answering pings was closed: %s"
                        % polite.ws.close_code)
        await polite.echo_ok(self)

    async def test_raw_endpoint_silent_client_closed(self):
        r = self.raw("/raw/echo")
        loop = asyncio.get_running_loop()
        pings, how, code, _ = await loop.run_in_executor(
            None, self.watch_silent, r, 5.0 * harness.SLOW
        )
        self.assertNotEqual(how, "open", "silent raw client still open after 5s")
        if how == "close":
            self.assertEqual(code, 4002)


if __name__ == "__main__":
    harness.main()
