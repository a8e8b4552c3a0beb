"""The header codec against docs/backend-protocol.md: the worked example's
bytes, and what counts as malformed."""

import unittest

from util import P, pack


class DecodeTest(unittest.TestCase):
    def test_worked_example_req(self):
        hdr = bytes.fromhex("97 01 22 05 2a a7 63 6f 75 6e 74 65 72 a6 75 73 65 72 3a 31 00")
        m = P.decode([hdr, b"\xc0"])
        self.assertEqual(m.type, P.REQ)
        self.assertEqual(m.fields, {"rid": 5, "conn": 42, "svc": "counter", "key": "user:1",
                                    "flags": 0})
        self.assertEqual(P.unpack_value(m.payload), None)

    def test_raw_req_example(self):
        m = P.decode([bytes.fromhex("97 01 22 00 2a a4 65 63 68 6f a4 63 3a 34 32 03"), b"hi"])
        self.assertEqual((m.fields["rid"], m.fields["key"], m.fields["flags"]),
                         (0, "c:42", P.F_RAW | P.F_TEXT))
        self.assertEqual(m.payload, b"hi")

    def test_user_optional_and_trailing_fields_ignored(self):
        m = P.decode([pack([1, P.REQ, 1, 2, "s", "k", 0, "alice", "future", {"x": 1}]), b"\xc0"])
        self.assertEqual(m.fields["user"], "alice")
        m = P.decode([pack([1, P.REQ, 1, 2, "s", "k", 0, None]), b"\xc0"])
        self.assertNotIn("user", m.fields)
        m = P.decode([pack([1, P.WELCOME, "gw", 7, [1]])])
        self.assertEqual(m.fields, {"gateway_id": "gw"})

    def test_big_uints(self):
        m = P.decode([pack([1, P.REQ, 2**64 - 1, 2**40, "s", "k", 0]), b"\xc0"])
        self.assertEqual(m.fields["rid"], 2**64 - 1)

    def test_other_types(self):
        self.assertEqual(P.decode([pack([1, P.DRAINING])]).type, P.DRAINING)
        m = P.decode([pack([1, P.PUBLISHED, 3, "", "", 9, "0badf00d"])])
        self.assertEqual(m.fields["offset"], 9)
        m = P.decode([pack([1, P.CLOSED, 4, "echo", "c:4", 1006])])
        self.assertEqual(m.fields["close_code"], 1006)
        m = P.decode([pack([1, P.OPEN, 4, "echo", "c:4", 1])])
        self.assertEqual(m.fields["flags"], 1)

    def test_payload_frame_on_a_type_without_one_is_ignored(self):
        self.assertEqual(P.decode([pack([1, P.DRAINING]), b"\xc0"]).payload, None)

    def test_malformed(self):
        bad = {
            "no frames": [],
            "not msgpack": [b"\xc1"],
            "trailing bytes": [pack([1, P.DRAINING]) + b"\x00"],
            "not an array": [pack({"v": 1})],
            "too short": [pack([1])],
            "version 2": [pack([2, P.DRAINING])],
            "version as str": [pack(["1", P.DRAINING])],
            "unknown type": [pack([1, 99])],
            "worker type": [pack([1, P.HELLO, "w", ["s"]])],
            "type as bool": [pack([1, True])],
            "missing fields": [pack([1, P.REQ, 1, 2, "s"]), b"\xc0"],
            "rid as str": [pack([1, P.REQ, "1", 2, "s", "k", 0]), b"\xc0"],
            "negative conn": [pack([1, P.REQ, 1, -2, "s", "k", 0]), b"\xc0"],
            "flags as bool": [pack([1, P.REQ, 1, 2, "s", "k", True]), b"\xc0"],
            "flags as float": [pack([1, P.REQ, 1, 2, "s", "k", 0.0]), b"\xc0"],
            "svc as bin": [pack([1, P.REQ, 1, 2, b"s", "k", 0]), b"\xc0"],
            "user as int": [pack([1, P.REQ, 1, 2, "s", "k", 0, 5]), b"\xc0"],
            "str not UTF-8": [b"\x97\x01\x22\x01\x02\xa1s\xa1\xff\x00", b"\xc0"],
            "missing payload": [pack([1, P.REQ, 1, 2, "s", "k", 0])],
            "three frames": [pack([1, P.REQ, 1, 2, "s", "k", 0]), b"\xc0", b"\xc0"],
            "welcome id nil": [pack([1, P.WELCOME, None])],
            "published code nil": [pack([1, P.PUBLISHED, 1, None, "", 0, ""])],
        }
        for what, frames in bad.items():
            with self.subTest(what):
                with self.assertRaises(P.Malformed):
                    P.decode(frames)


class EncodeTest(unittest.TestCase):
    def test_doc_examples(self):
        self.assertEqual(P.encode_reply(5, P.pack_value(3)), [bytes.fromhex("93010205"), b"\x03"])
        self.assertEqual(P.encode_error(5, "overloaded", "mailbox full"), [bytes.fromhex(
            "95 01 03 05 aa 6f 76 65 72 6c 6f 61 64 65 64 ac 6d 61 69 6c 62 6f 78 20 66 75 6c 6c")])
        hello = P.encode_hello("worker-1", ["echo", "counter"], [0, 1])
        self.assertEqual(hello, [bytes.fromhex(
            "95 01 01 a8 77 6f 72 6b 65 72 2d 31 92 a4 65 63 68 6f a7 63 6f 75 6e 74 65 72"
            " 92 00 01")])

    def test_str_not_bin(self):
        self.assertEqual(P.pack_value("é"), b"\xa2\xc3\xa9")
        self.assertEqual(P.pack_value(b"\x00"), b"\xc4\x01\x00")

    def test_text_clipped_on_a_character_boundary(self):
        s = P.clip_utf8("é" * 600)
        self.assertEqual(len(s.encode()), 1024)
        s = P.clip_utf8("a" + "é" * 600)
        self.assertEqual(len(s.encode()), 1023)

    def test_others(self):
        self.assertEqual(P.encode_send([1, 2], P.F_RAW, "echo", b"x"),
                         [P._header(P.SEND, [1, 2], 1, "echo"), b"x"])
        self.assertEqual(P.encode_drain(), [b"\x92\x01\x06"])
        self.assertEqual(P.encode_bye(), [b"\x92\x01\x07"])
        self.assertEqual(P.encode_publish(7, "c", b"\xc0")[0], bytes.fromhex("94 01 09 07 a1 63"))


if __name__ == "__main__":
    unittest.main()
