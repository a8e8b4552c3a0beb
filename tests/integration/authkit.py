"""Keys and tokens for the auth and channel tests: an HS256 secret, an RSA
and an EC key pair written to a temporary key file the worker's auth
service loads (--auth-keys), and PyJWT (Debian's python3-jwt) to mint
tokens, good and bad."""

import os
import tempfile
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISS = "wsgate-tests"
AUD = "wsgate"


class AuthKit:
    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="wsgate-auth-")
        d = self.dir.name
        self.hs_secret = os.urandom(32)
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa_pub_pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        ec_pub_pem = self.ec.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self._write("hs1.secret", self.hs_secret)
        self._write("rsa1.pem", self.rsa_pub_pem)
        self._write("ec1.pem", ec_pub_pem)
        self.keys_file = os.path.join(d, "keys.ini")
        with open(self.keys_file, "w") as f:
            f.write("[key hs1]\nalgs = HS256\nsecret_file = %s\n\n" % os.path.join(d, "hs1.secret"))
            f.write("[key rsa1]\nalgs = RS256\npem_file = %s\n\n" % os.path.join(d, "rsa1.pem"))
            f.write("[key ec1]\nalgs = ES256\npem_file = %s\n" % os.path.join(d, "ec1.pem"))
        os.chmod(self.keys_file, 0o600)

    def _write(self, name, data):
        path = os.path.join(self.dir.name, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
        return path

    def worker_args(self):
        # leeway 2 s: iat is minted as int(time.time()) here and checked
        # against the worker's clock, which may still read the second
        # before (a token "issued in the future" by a second was a flake)
        return ["--auth-keys", self.keys_file, "--auth-iss", ISS, "--auth-aud", AUD,
                "--auth-leeway-s", "2"]

    def token(self, sub="alice", ttl=300, alg="HS256", sub_channels=(), pub_channels=(),
              **claims):
        now = int(time.time())
        body = {"sub": sub, "iss": ISS, "aud": AUD, "iat": now, "exp": now + ttl}
        if sub_channels or pub_channels:
            body["channels"] = {"sub": list(sub_channels), "pub": list(pub_channels)}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        if alg == "HS256":
            return jwt.encode(body, self.hs_secret, algorithm="HS256", headers={"kid": "hs1"})
        if alg == "RS256":
            return jwt.encode(body, self.rsa, algorithm="RS256", headers={"kid": "rsa1"})
        if alg == "ES256":
            return jwt.encode(body, self.ec, algorithm="ES256", headers={"kid": "ec1"})
        raise ValueError(alg)

    def close(self):
        self.dir.cleanup()
