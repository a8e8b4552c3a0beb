"""The `auth` service in the real wsgate-worker, driven by a Python stand-in
for the gateway (a ZeroMQ ROUTER speaking the backend protocol), with
tokens minted by PyJWT (Debian's python3-jwt), so the worker's verifier is
checked against an independent implementation: HS256, RS256, ES256 (PyJWT
writes r||s), a JWKS written by PyJWT, iss/aud from the flags, the GW flag,
and that the worker's log never holds a token. Also the start-up checks:
no --auth-keys, a bad key file, --check-config."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time
import unittest

import jwt
import msgpack
import zmq
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import harness

HELLO, REPLY, ERROR, WELCOME, REQ = 1, 2, 3, 32, 34
F_GW = 0x4
NOW = int(time.time())


def pack(v):
    return msgpack.packb(v, use_bin_type=True)


def pub_pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class AuthWorkerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="wsgate-auth-it-")
        d = cls.tmp.name
        cls.secret = os.urandom(32)
        cls.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cls.ec = ec.generate_private_key(ec.SECP256R1())
        cls.rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cls.write(d, "hs1.secret", cls.secret, 0o600)
        cls.write(d, "rsa1.pub.pem", pub_pem(cls.rsa), 0o644)
        cls.write(d, "ec1.pub.pem", pub_pem(cls.ec), 0o644)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(cls.rsa2.public_key()))
        jwk.update({"kid": "jwks-rsa", "alg": "RS256", "use": "sig"})
        cls.write(d, "jwks.json", json.dumps({"keys": [jwk]}).encode(), 0o644)
        cls.keys = os.path.join(d, "keys.ini")
        cls.write(
            d,
            "keys.ini",
            (
                "[key hs1]\nalgs = HS256\nsecret_file = {d}/hs1.secret\n"
                "[key rsa1]\nalgs = RS256\npem_file = {d}/rsa1.pub.pem\n"
                "[key ec1]\nalgs = ES256\npem_file = {d}/ec1.pub.pem\n"
                "[jwks]\nfile = {d}/jwks.json\n"
            )
            .format(d=d)
            .encode(),
            0o644,
        )

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @staticmethod
    def write(d, name, data, mode):
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def claims(self, **kw):
        c = {"sub": "alice", "iss": "https://id.example", "aud": ["wsgate"], "exp": NOW + 600}
        c.update(kw)
        return {k: v for k, v in c.items() if v is not None}

    # -- the stand-in gateway

    def start(self, extra=()):
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        port = self.router.bind_to_random_port("tcp://127.0.0.1")
        log = os.path.join(harness.LOG_DIR, "auth_worker.%s.log" % self._testMethodName)
        os.makedirs(harness.LOG_DIR, exist_ok=True)
        if os.path.exists(log):
            os.unlink(log)
        self.worker = harness.Proc(
            "worker",
            [
                harness.WORKER_BIN,
                "--gateway", "tcp://127.0.0.1:%d" % port,
                "--id", "w-auth",
                "--services", "auth,echo",
                "--auth-keys", self.keys,
                "--auth-iss", "https://id.example",
                "--auth-aud", "wsgate",
                "--drain-ms", "0",
            ]
            + list(extra),
            log,
        )
        hdr, self.ident = self.recv_type(HELLO)
        self.hello = hdr
        self.router.send_multipart([self.ident, pack([1, WELCOME, "gw-py"])])
        self.rid = 0

    def stop(self):
        code, killed = self.worker.terminate()
        self.worker.close_log()
        self.router.close(0)
        self.ctx.term()
        return code, killed

    def recv_type(self, want, timeout=10.0):
        deadline = time.monotonic() + timeout * harness.SLOW
        while time.monotonic() < deadline:
            if not self.router.poll(100):
                if not self.worker.alive():
                    self.fail("worker exited:\n" + self.worker.tail())
                continue
            frames = self.router.recv_multipart()
            hdr = msgpack.unpackb(frames[1], raw=False)
            if hdr[1] == want or (want == REPLY and hdr[1] == ERROR):
                self.last_frames = frames
                return hdr, frames[0]
        self.fail("no message of type %d:\n%s" % (want, self.worker.tail()))

    def auth(self, token, flags=F_GW, payload=None):
        """REQ to auth; returns ("reply", map) or ("error", code, msg)."""
        self.rid += 1
        rid, conn = self.rid, 5000 + self.rid
        body = pack({"token": token}) if payload is None else payload
        self.router.send_multipart(
            [self.ident, pack([1, REQ, rid, conn, "auth", "c:%d" % conn, flags]), body]
        )
        while True:
            hdr, _ = self.recv_type(REPLY)
            if hdr[2] == rid:
                break
        if hdr[1] == ERROR:
            return ("error", hdr[3], hdr[4])
        return ("reply", msgpack.unpackb(self.last_frames[2], raw=False))

    # -- tests

    def test_tokens(self):
        self.start()
        try:
            names = self.hello[3]
            self.assertIn("auth", names)
            flags = self.hello[4] if len(self.hello) > 4 else [0] * len(names)
            self.assertEqual(flags[names.index("auth")] & 1, 1, "auth is retry-safe")

            tokens = []
            chans = {"sub": ["room.*"], "pub": ["room.1", "room.2"]}
            good = [
                jwt.encode(self.claims(channels=chans), self.secret, "HS256", {"kid": "hs1"}),
                jwt.encode(self.claims(channels=chans), self.secret, "HS256"),
                jwt.encode(self.claims(channels=chans), self.rsa, "RS256", {"kid": "rsa1"}),
                jwt.encode(self.claims(channels=chans), self.ec, "ES256", {"kid": "ec1"}),
                jwt.encode(self.claims(channels=chans), self.ec, "ES256"),
                jwt.encode(self.claims(channels=chans), self.rsa2, "RS256", {"kid": "jwks-rsa"}),
            ]
            for tok in good:
                tokens.append(tok)
                res = self.auth(tok)
                self.assertEqual(res[0], "reply", res)
                self.assertEqual(
                    res[1], {"user": "alice", "exp": NOW + 600, "info": chans}
                )

            # no exp, no channels
            tok = jwt.encode(self.claims(exp=None, sub="bob"), self.secret, "HS256")
            tokens.append(tok)
            self.assertEqual(
                self.auth(tok), ("reply", {"user": "bob", "exp": 0, "info": {"sub": [], "pub": []}})
            )

            pem = pub_pem(self.rsa)
            bad = [
                (jwt.encode(self.claims(exp=NOW - 3600), self.secret, "HS256"), "token_expired"),
                (jwt.encode(self.claims(nbf=NOW + 3600), self.secret, "HS256"),
                 "token_not_yet_valid"),
                (jwt.encode(self.claims(aud="other"), self.secret, "HS256"), "bad_audience"),
                (jwt.encode(self.claims(iss="https://evil.example"), self.secret, "HS256"),
                 "bad_issuer"),
                (jwt.encode(self.claims(), None, "none"), "alg_not_allowed"),
                (jwt.encode(self.claims(), self.secret, "HS512"), "alg_not_allowed"),
                (jwt.encode(self.claims(), self.rsa, "RS256", {"kid": "ec1"}), "alg_not_allowed"),
                (jwt.encode(self.claims(), self.rsa2, "RS256", {"kid": "rsa1"}), "bad_signature"),
                (jwt.encode(self.claims(), self.secret, "HS256", {"kid": "nope"}), "unknown_key"),
                (jwt.encode(self.claims(sub=""), self.secret, "HS256"), "malformed_token"),
                ("x" * 9000, "token_too_large"),
            ]
            # HS/RS confusion: HS256 keyed with the RSA public key's PEM. PyJWT
            # refuses to do this itself, so the MAC is computed by hand.
            def b64(b):
                return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

            signing = b64(b'{"alg":"HS256","kid":"rsa1"}') + "." + b64(
                json.dumps(self.claims()).encode()
            )
            forged = signing + "." + b64(hmac.new(pem, signing.encode(), hashlib.sha256).digest())
            bad.append((forged, "alg_not_allowed"))
            for tok, code in bad:
                tokens.append(tok)
                res = self.auth(tok)
                self.assertEqual(res[:2], ("error", code), tok[:20])
                for part in tok.split("."):
                    if len(part) >= 4:
                        self.assertNotIn(part, res[2])

            # a client cannot call auth itself
            res = self.auth(good[0], flags=0)
            self.assertEqual(res[:2], ("error", "forbidden"))
            res = self.auth(None, payload=pack(["not", "a", "map"]))
            self.assertEqual(res[:2], ("error", "bad_request"))
        finally:
            code, killed = self.stop()
        self.assertEqual((code, killed), (0, False), self.worker.tail())
        with open(self.worker.log_path, "r", errors="replace") as f:
            log = f.read()
        for tok in tokens:
            for part in tok.split("."):
                if len(part) >= 4:
                    self.assertNotIn(part, log)
        # hs1.secret is 0600 and the JWKS holds no secret: no warning
        self.assertNotIn("readable by others", log)

    def run_worker(self, *args):
        return subprocess.run(
            [harness.WORKER_BIN] + list(args), capture_output=True, text=True, timeout=60
        )

    def test_startup_checks(self):
        r = self.run_worker("--services", "auth", "--check-config")
        self.assertEqual(r.returncode, 2)
        self.assertIn("needs --auth-keys", r.stderr)

        r = self.run_worker("--services", "echo,auth", "--auth-keys", self.keys, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("auth-keys = " + self.keys, r.stdout)
        self.assertIn("auth-leeway-s = 30", r.stdout)

        d = self.tmp.name
        bad = self.write(
            d, "bad.ini",
            ("[key mixed]\nalgs = HS256, RS256\nsecret_file = %s/hs1.secret\n" % d).encode(),
            0o600,
        )
        r = self.run_worker("--services", "auth", "--auth-keys", bad, "--check-config")
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.ini: [key mixed]: algs mixes HS256", r.stderr)

        # the daemon itself refuses to start, before connecting anywhere
        r = self.run_worker("--services", "auth", "--auth-keys", bad)
        self.assertEqual(r.returncode, 2)
        r = self.run_worker("--services", "auth", "--auth-keys", os.path.join(d, "none.ini"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("none.ini: No such file", r.stderr)

        # a world-readable secret is loaded, with a warning
        self.write(d, "open.secret", self.secret, 0o644)
        op = self.write(
            d, "open.ini",
            ("[key o]\nalgs = HS256\nsecret_file = %s/open.secret\n" % d).encode(), 0o644,
        )
        r = self.run_worker("--services", "auth", "--auth-keys", op, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("open.secret holds a JWT secret and is readable by others", r.stderr)

        # the settings come from the file and the environment as well
        conf = self.write(
            d, "worker.ini",
            ("[worker]\nservices = auth\nauth-keys = %s\nauth-leeway-s = 5\n" % self.keys).encode(),
            0o644,
        )
        env = dict(os.environ, WSGATE_WORKER_AUTH_AUD="wsgate")
        r = subprocess.run(
            [harness.WORKER_BIN, "--config", conf, "--check-config"],
            capture_output=True, text=True, timeout=60, env=env,
        )
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("auth-leeway-s = 5", r.stdout)
        self.assertIn("auth-aud = wsgate", r.stdout)
        r = self.run_worker("--services", "auth", "--auth-keys", self.keys, "--auth-leeway-s",
                            "3601", "--check-config")
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main()
