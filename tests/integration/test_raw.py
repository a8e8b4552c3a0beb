"""3. raw endpoint /raw/echo: text and binary round trips keep their type; a
fragmented message comes back as one message."""

import asyncio

import harness
from harness import GatewayTestCase, OP_BIN, OP_CONT, OP_TEXT


class RawEchoTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(workers=1)

    async def recv(self, ws):
        return await asyncio.wait_for(ws.recv(), 5 * harness.SLOW)

    async def test_text_and_binary_round_trip(self):
        ws = await self.connect_raw_endpoint()
        for msg in ("hello", "ünïcødé ✓", "{\"not\":\"an envelope\"}", "x" * 10000):
            await ws.send(msg)
            got = await self.recv(ws)
            self.assertIsInstance(got, str)
            self.assertEqual(got, msg)
        for msg in (b"\x00\x01\x02\xff", bytes(range(256)) * 40):
            await ws.send(msg)
            got = await self.recv(ws)
            self.assertIsInstance(got, bytes)
            self.assertEqual(got, msg)

    async def test_order_is_kept(self):
        ws = await self.connect_raw_endpoint()
        msgs = ["m%d" % i if i % 2 else b"b%d" % i for i in range(200)]
        for m in msgs:
            await ws.send(m)
        got = [await self.recv(ws) for _ in msgs]
        self.assertEqual(got, msgs)

    async def test_fragmented_message_comes_back_whole(self):
        ws = await self.connect_raw_endpoint()
        await ws.send(["frag-one|", "frag-two|", "frag-three"])
        self.assertEqual(await self.recv(ws), "frag-one|frag-two|frag-three")
        await ws.send([b"\x01" * 1000, b"\x02" * 1000, b"\x03"])
        self.assertEqual(await self.recv(ws), b"\x01" * 1000 + b"\x02" * 1000 + b"\x03")

    async def test_fragmented_utf8_split_inside_a_character(self):
        # a valid message whose fragments split a multi-byte character
        r = self.raw("/raw/echo")
        text = "añb✓c".encode()
        r.send_frame(OP_TEXT, text[:2], fin=False)  # 'a' + first byte of 'ñ'
        r.send_frame(OP_CONT, text[2:6], fin=False)
        r.send_frame(OP_CONT, text[6:], fin=True)
        op, payload = r.recv_message()
        self.assertEqual((op, payload), (OP_TEXT, text))
        r.send_frame(OP_BIN, b"whole")
        self.assertEqual(r.recv_message(), (OP_BIN, b"whole"))


if __name__ == "__main__":
    harness.main()
