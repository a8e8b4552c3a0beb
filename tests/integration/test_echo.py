"""1. echo over JSON and msgpack: integer and string ids, nested data both
ways, each client answered in its own encoding."""

import harness
from harness import GatewayTestCase

NESTED = {
    "s": "héllo ✓ \"quoted\" \\ \n",
    "i": -5,
    "big": 2**62,
    "f": 1.5,
    "t": True,
    "f0": False,
    "n": None,
    "list": [1, "two", [3, [4, {"five": 5}]], {}, []],
    "obj": {"a": {"b": {"c": {"d": [None, 0, ""]}}}},
}


class EchoTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(workers=1)

    async def test_json_integer_and_string_ids(self):
        c = await self.connect("json")
        for rid in (0, 7, 2**63 - 1, "a", "req-42", "x" * 64):
            rep = await c.call("echo", {"n": 1}, id=rid)
            self.assertEqual(rep, {"v": 1, "op": "res", "id": rid, "data": {"n": 1}})

    async def test_json_nested_data(self):
        c = await self.connect("json")
        rep = await c.call("echo", NESTED, id=1)
        self.assertEqual(rep["op"], "res", rep)
        self.assertEqual(rep["data"], NESTED)

    async def test_json_without_subprotocol(self):
        c = await self.connect("json", subprotocol=None)
        rep = await c.call("echo", [1, 2, 3], id="no-subprotocol")
        self.assertEqual(rep["data"], [1, 2, 3])

    async def test_json_minimal_envelope_and_unknown_fields(self):
        c = await self.connect("json")
        # v and op are optional, data absent echoes null, unknown fields ignored
        await c.send_raw('{"id":5,"svc":"echo","whatever":{"x":1}}')
        rep = await c.recv()
        self.assertEqual(rep.get("op"), "res", rep)
        self.assertEqual(rep.get("id"), 5)
        self.assertIn("data", rep)
        self.assertIsNone(rep["data"])

    async def test_msgpack_ids_and_nested_data(self):
        c = await self.connect("msgpack")
        data = dict(NESTED, bin=b"\x00\x01\xfe\xff", neg=-(2**40))
        for rid in (1, 2**63 - 1, "m-1"):
            rep = await c.call("echo", data, id=rid)  # decode asserts a binary frame
            self.assertEqual(rep, {"v": 1, "op": "res", "id": rid, "data": data})

    async def test_fire_and_forget_gets_no_reply(self):
        c = await self.connect("json")
        await c.send({"svc": "echo", "data": "no id"})
        rep = await c.call("echo", "after", id=99)
        self.assertEqual(rep["data"], "after", "a request without id must not be answered")

    async def test_json_and_msgpack_clients_side_by_side(self):
        j = await self.connect("json")
        m = await self.connect("msgpack")
        rj = await j.call("echo", {"k": [1, {"x": "y"}]}, id="j")
        rm = await m.call("echo", {"k": [1, {"x": "y"}]}, id="m")
        self.assertEqual(rj["data"], rm["data"])
        frame_j = await self._raw_frame(j, {"id": 3, "svc": "echo", "data": 1})
        frame_m = await self._raw_frame(m, {"id": 3, "svc": "echo", "data": 1})
        self.assertIsInstance(frame_j, str)
        self.assertIsInstance(frame_m, bytes)

    async def _raw_frame(self, c, env):
        import asyncio
        await c.send(env)
        return await asyncio.wait_for(c.ws.recv(), 5 * harness.SLOW)


if __name__ == "__main__":
    harness.main()
