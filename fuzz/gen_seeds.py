#!/usr/bin/env python3
"""Regenerates fuzz/keys.jwks.json and the token seeds in fuzz/seeds/token/.

Run from anywhere: python3 fuzz/gen_seeds.py (needs the `cryptography` package).
The public keys come from ../tests/fixtures/*.pem (the same keys the tests use);
one extra P-384 key is derived from a fixed scalar, because the fixtures have no
ES384 key. PS256 and ECDSA signatures are randomized, so a rerun changes those
seeds; fuzz_targets/token.rs reads the valid_*.jwt seeds at compile time.
"""
import base64
import json
import pathlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

FUZZ = pathlib.Path(__file__).resolve().parent
FIXTURES = FUZZ.parent / "tests" / "fixtures"
SEEDS = FUZZ / "seeds" / "token"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n: int, size: int | None = None) -> str:
    size = size or (n.bit_length() + 7) // 8
    return b64(n.to_bytes(size, "big"))


def load(name):
    return serialization.load_pem_private_key((FIXTURES / name).read_bytes(), password=None)


rsa_key = load("rsa.pem")
ec_key = load("ec.pem")
ed_key = load("ed25519.pem")
ec384_key = ec.derive_private_key(0x0F0F_1234_5678_9ABC_DEF0_1357_9BDF_2468_ACE0_1122_3344, ec.SECP384R1())

rn = rsa_key.public_key().public_numbers()
rsa_pub = {"kty": "RSA", "n": uint(rn.n), "e": uint(rn.e)}
ecn = ec_key.public_key().public_numbers()
ec_pub = {"kty": "EC", "crv": "P-256", "x": uint(ecn.x, 32), "y": uint(ecn.y, 32)}
e3n = ec384_key.public_key().public_numbers()
ec384_pub = {"kty": "EC", "crv": "P-384", "x": uint(e3n.x, 48), "y": uint(e3n.y, 48)}
ed_raw = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
ed_pub = {"kty": "OKP", "crv": "Ed25519", "x": b64(ed_raw)}

jwks = {
    "keys": [
        # As published by tests/fixtures/rsa.jwks.json and the test issuer.
        {**rsa_pub, "kid": "rsa-1", "alg": "RS256", "use": "sig"},
        # The same RSA key with no kid and no alg: fits every RS*/PS* token.
        dict(rsa_pub),
        # An encryption-only key: never a candidate (key_fits / may_verify).
        {**rsa_pub, "kid": "rsa-enc", "use": "enc"},
        {**ec_pub, "kid": "ec-1", "alg": "ES256", "use": "sig"},
        {**ec384_pub, "kid": "ec-384", "key_ops": ["verify"]},
        {**ed_pub, "kid": "ed-1", "alg": "EdDSA", "use": "sig"},
    ]
}
(FUZZ / "keys.jwks.json").write_text(json.dumps(jwks, indent=1) + "\n")

CLAIMS = {
    "iss": "https://issuer.example", "aud": "connect-monitor-gateway", "sub": "sup-1",
    "iat": 1700000000, "nbf": 1700000000, "exp": 1700000600,
    "groups": ["supervisors"], "connect_user_id": "user-1",
}


def signing_input(alg, kid):
    header = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return (b64(json.dumps(header, separators=(",", ":")).encode()) + "." +
            b64(json.dumps(CLAIMS, separators=(",", ":")).encode()))


def ecdsa_raw(der: bytes, size: int) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def sign(alg, msg: bytes) -> bytes:
    if alg == "RS256":
        return rsa_key.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    if alg in ("RS384", "RS512"):
        h = hashes.SHA384() if alg == "RS384" else hashes.SHA512()
        return rsa_key.sign(msg, padding.PKCS1v15(), h)
    if alg in ("PS256", "PS384", "PS512"):
        h = {"PS256": hashes.SHA256(), "PS384": hashes.SHA384(), "PS512": hashes.SHA512()}[alg]
        return rsa_key.sign(msg, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    if alg == "ES256":
        return ecdsa_raw(ec_key.sign(msg, ec.ECDSA(hashes.SHA256())), 32)
    if alg == "ES384":
        return ecdsa_raw(ec384_key.sign(msg, ec.ECDSA(hashes.SHA384())), 48)
    if alg == "EdDSA":
        return ed_key.sign(msg)
    raise ValueError(alg)


valid = [
    ("RS256", "rsa-1"), ("RS384", None), ("RS512", None), ("PS256", None), ("PS384", None), ("PS512", None),
    ("ES256", "ec-1"), ("ES384", "ec-384"), ("EdDSA", "ed-1"),
]
for alg, kid in valid:
    si = signing_input(alg, kid)
    sig = sign(alg, si.encode())
    (SEEDS / f"valid_{alg.lower()}.jwt").write_text(si + "." + b64(sig))
    # The structured form token.rs also reads: header JSON, NUL, payload, NUL,
    # raw signature; the harness base64url-encodes the three parts.
    header, payload = (base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)) for s in si.split("."))
    (SEEDS / f"struct_{alg.lower()}.bin").write_bytes(header + b"\0" + payload + b"\0" + sig)
(SEEDS / "struct_kid_array.bin").write_bytes(b'{"alg":"EdDSA","kid":["ed-1"]}\0{}\0' + bytes(64))
(SEEDS / "struct_b64_false.bin").write_bytes(b'{"alg":"RS256","b64":false}\0{}\0' + bytes(256))

# Near misses: each is refused at a different step.
si = signing_input("EdDSA", "ed-1")
good_sig = b64(sign("EdDSA", si.encode()))
bad = {
    "alg_none": b64(b'{"alg":"none"}') + "." + si.split(".")[1] + ".",
    "alg_hs256": b64(b'{"alg":"HS256","kid":"rsa-1"}') + "." + si.split(".")[1] + "." + good_sig,
    "crit": b64(b'{"alg":"EdDSA","crit":["b64"],"b64":false}') + "." + si.split(".")[1] + "." + good_sig,
    "dup_alg": b64(b'{"alg":"EdDSA","alg":"RS256","kid":"ed-1"}') + "." + si.split(".")[1] + "." + good_sig,
    "kid_unknown": signing_input("EdDSA", "nope") + "." + good_sig,
    "kid_number": b64(b'{"alg":"EdDSA","kid":7}') + "." + si.split(".")[1] + "." + good_sig,
    "padded_sig": si + "." + good_sig + "==",
    "flipped_sig": si + "." + ("B" if good_sig[0] == "A" else "A") + good_sig[1:],
    "four_segments": si + "." + good_sig + ".x",
    "empty_payload": si.split(".")[0] + ".." + good_sig,
    "es256_der_sig": signing_input("ES256", "ec-1") + "." + b64(ec_key.sign(signing_input("ES256", "ec-1").encode(), ec.ECDSA(hashes.SHA256()))),
}
for name, token in bad.items():
    (SEEDS / f"invalid_{name}.jwt").write_text(token)
print("wrote", FUZZ / "keys.jwks.json", "and", len(list(SEEDS.iterdir())), "token seeds")
