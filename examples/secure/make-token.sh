#!/bin/sh
# Makes this example's JWT material with openssl (run once; the results are committed):
#   jwt/key.pem        a 2048-bit RSA test key (kept if it exists: delete it for a new one)
#   jwt/alice.jwt      an RS256 token for issuer https://auth.mast.example, subject alice,
#                      expiring in 2100
#   jwt/forged.jwt     alice's token with its payload changed to subject mallory and the
#                      signature kept: a forgery the sidecar must reject
#   request-authentication.yaml, with the key's public half inlined as the JWKS.
# The key is a TEST key, public in this repository: never trust it anywhere else.
# Needs openssl, xxd and basenc (coreutils).
set -eu
cd "$(dirname "$0")"

ISS=https://auth.mast.example
SUB=alice
IAT=1764115200 # 2025-11-26
EXP=4102444800 # 2100-01-01

b64url() { basenc --base64url -w0 | tr -d '='; }

mkdir -p jwt
[ -f jwt/key.pem ] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out jwt/key.pem 2>/dev/null

n=$(openssl rsa -in jwt/key.pem -noout -modulus | cut -d= -f2 | xxd -r -p | b64url)
exponent=$(openssl rsa -in jwt/key.pem -noout -text 2>/dev/null | sed -n 's/^publicExponent: \([0-9]*\).*/\1/p')
[ "$exponent" = 65537 ] || { echo "unexpected RSA exponent $exponent" >&2; exit 1; }
e=AQAB
kid=$(printf %s "$n" | openssl dgst -sha256 -binary | b64url | cut -c1-16)

jwks="{\"keys\":[{\"kty\":\"RSA\",\"alg\":\"RS256\",\"use\":\"sig\",\"kid\":\"$kid\",\"n\":\"$n\",\"e\":\"$e\"}]}"

sign() { # sign HEADER_JSON PAYLOAD_JSON: a compact RS256 JWS
    input="$(printf %s "$1" | b64url).$(printf %s "$2" | b64url)"
    sig=$(printf %s "$input" | openssl dgst -sha256 -sign jwt/key.pem | b64url)
    printf '%s.%s\n' "$input" "$sig"
}

header="{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"$kid\"}"
payload="{\"iss\":\"$ISS\",\"sub\":\"$SUB\",\"iat\":$IAT,\"exp\":$EXP}"
sign "$header" "$payload" > jwt/alice.jwt

# The forgery: a new payload between alice's header and alice's signature.
forged_payload=$(printf %s "{\"iss\":\"$ISS\",\"sub\":\"mallory\",\"iat\":$IAT,\"exp\":$EXP}" | b64url)
awk -F. -v p="$forged_payload" '{ print $1 "." p "." $3 }' jwt/alice.jwt > jwt/forged.jwt

cat > request-authentication.yaml <<YAML
# Tokens from the test issuer $ISS are checked at httpbin's sidecar: a request
# carrying an invalid token (bad signature, expired, another issuer) gets 401; a request
# without a token passes this resource (AuthorizationPolicy require-jwt asks for one on
# /private).
# The JWKS is inline (the public half of jwt/key.pem); make-token.sh writes this file.
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: httpbin-jwt
  namespace: foo
spec:
  selector:
    matchLabels:
      app: httpbin
  jwtRules:
    - issuer: $ISS
      jwks: '$jwks'
YAML
echo "wrote jwt/alice.jwt, jwt/forged.jwt and request-authentication.yaml (kid $kid)"
