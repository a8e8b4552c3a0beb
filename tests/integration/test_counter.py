"""2. counter: per-key state across messages and connections; keys are
independent; data as a positive integer increments by that much."""

import harness
from harness import GatewayTestCase


class CounterTest(GatewayTestCase):
    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(workers=1)

    async def count(self, c, key, data=None):
        rep = await c.call("counter", data, key=key)
        self.assertEqual(rep.get("op"), "res", rep)
        return rep["data"]

    async def test_state_across_messages_and_connections(self):
        a = await self.connect("json")
        b = await self.connect("msgpack")
        self.assertEqual([await self.count(a, "k1") for _ in range(3)], [1, 2, 3])
        # another connection, another encoding, same key: same actor
        self.assertEqual(await self.count(b, "k1"), 4)
        self.assertEqual(await self.count(a, "k1"), 5)
        # a new connection after the others
        c = await self.connect("json")
        self.assertEqual(await self.count(c, "k1"), 6)

    async def test_keys_are_independent(self):
        a = await self.connect("json")
        b = await self.connect("json")
        self.assertEqual(await self.count(a, "k1"), 1)
        self.assertEqual(await self.count(a, "k2"), 1)
        self.assertEqual(await self.count(b, "k2"), 2)
        self.assertEqual(await self.count(b, "k3"), 1)
        self.assertEqual(await self.count(a, "k1"), 2)
        self.assertEqual(await self.count(a, "ключ ✓"), 1)

    async def test_increment_by_data(self):
        a = await self.connect("json")
        self.assertEqual(await self.count(a, "n", 5), 5)
        self.assertEqual(await self.count(a, "n"), 6)
        self.assertEqual(await self.count(a, "n", 10), 16)

    async def test_default_key_is_the_connection(self):
        a = await self.connect("json")
        b = await self.connect("json")
        self.assertEqual(await self.count(a, None), 1)
        self.assertEqual(await self.count(a, None), 2)
        self.assertEqual(await self.count(b, None), 1, "no key: a per-connection actor")


if __name__ == "__main__":
    harness.main()
