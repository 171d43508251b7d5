#!/usr/bin/env bash
# Regenerates the fuzz targets' fixed RSA key set and the signed tokens their seeds start from:
# crates/doximity/src/fuzzing/{jwks.json,id-token.jwt} (the public key only, and a token it
# verifies) and the seeds fuzz/corpus/{jwt,jwks}/signed-*.
# The private key is thrown away: the targets only verify. Needs openssl and python3.
# Run from the repository root: bash fuzz/make-fixture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/key.pem" 2>/dev/null
openssl rsa -in "$tmp/key.pem" -noout -modulus | sed 's/^Modulus=//' >"$tmp/modulus"
mkdir -p crates/doximity/src/fuzzing
python3 - "$tmp" <<'PY'
import base64, hashlib, json, os, subprocess, sys
tmp = sys.argv[1]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
n = bytes.fromhex(open(f"{tmp}/modulus").read().strip())
jwks = {"keys": [{"kty": "RSA", "kid": "fuzz-1", "use": "sig", "alg": "RS256",
                  "n": b64(n), "e": "AQAB"}]}
with open("crates/doximity/src/fuzzing/jwks.json", "w") as f:
    json.dump(jwks, f, indent=1)
    f.write("\n")

def sign(claims, header):
    si = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + \
         b64(json.dumps(claims, separators=(",", ":")).encode())
    with open(f"{tmp}/si", "w") as f:
        f.write(si)
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", f"{tmp}/key.pem", f"{tmp}/si"],
                         check=True, capture_output=True).stdout
    return si + "." + b64(sig)

# Must match the constants in the `fuzzing` modules of doximity.
iss, cid, sub = "https://auth.doximity.com", "fuzz-client", "00000000-0000-4000-8000-000000000001"
at_hash = b64(hashlib.sha256(b"fuzz-access-token").digest()[:16])
id_token = {"iss": iss, "sub": sub, "aud": [cid, iss], "azp": cid, "exp": 4102444800,
            "iat": 1700000000, "auth_time": 1700000000, "nonce": "fuzz-nonce", "acr": 2,
            "at_hash": at_hash}
userinfo = {"iss": iss, "sub": sub, "aud": cid, "exp": 4102444800, "name": "Dr. Fuzz",
            "given_name": "Fuzz", "family_name": "Doctor", "specialty": "Testing"}
hdr = {"alg": "RS256", "kid": "fuzz-1", "typ": "JWT"}
for d in ["fuzz/corpus/jwt", "fuzz/corpus/jwks"]:
    os.makedirs(d, exist_ok=True)
seeds = {
    "fuzz/corpus/jwt/signed-id-token": sign(id_token, hdr),
    "fuzz/corpus/jwt/signed-userinfo": sign(userinfo, hdr),
    "fuzz/corpus/jwt/signed-no-kid": sign(id_token, {"alg": "RS256"}),
}
for path, text in seeds.items():
    with open(path, "w") as f:
        f.write(text)
with open("crates/doximity/src/fuzzing/id-token.jwt", "w") as f:
    f.write(seeds["fuzz/corpus/jwt/signed-id-token"])
PY
cp crates/doximity/src/fuzzing/jwks.json fuzz/corpus/jwks/signed-key-set
