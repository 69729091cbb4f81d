//! docs/security.md, algorithms, signatures and where keys come from: `none`,
//! algorithm confusion, HMAC, malleable ECDSA signatures, keys embedded in
//! or linked from the token, a key the JWKS does not hold. Each is refused
//! with 401, Connect sees nothing, and no URL named by a token is fetched.

use crate::support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use connect_monitor_gateway::test_util::{jwks_of, IssuerStandIn, SigningKey};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use support::security_cases::{b64, relabel, run_all, sign_raw, token};
use support::Harness;

fn with_signature(token: &str, signature: &[u8]) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    let sig = b64(signature);
    parts[2] = &sig;
    parts.join(".")
}

/// A DER `SEQUENCE { INTEGER r, INTEGER s }` from a fixed-size ECDSA signature.
fn der_signature(raw: &[u8]) -> Vec<u8> {
    let int = |bytes: &[u8]| {
        let mut v: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        if v.first().is_some_and(|b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let mut body = int(&raw[..32]);
    body.extend(int(&raw[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// The order n of P-256.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn bad_algorithms_signatures_and_key_sources_are_refused_with_401() {
    let h = Harness::start().await;
    // An attacker's JWKS server: the gateway must never fetch from it.
    let attacker = IssuerStandIn::start(jwks_of(&[&h.keys.foreign])).await.unwrap();
    let claims = h.claims("sup-1", "supervisors", "user-1");
    let payload = claims.to_string();
    let good = h.keys.ed.mint(&claims);
    let parts: Vec<&str> = good.split('.').collect();
    let es = h.keys.ec.mint(&claims);
    let es_sig = URL_SAFE_NO_PAD.decode(es.split('.').nth(2).unwrap()).unwrap();
    let rs = h.keys.rsa.mint(&claims);
    let rs_parts: Vec<&str> = rs.split('.').collect();
    let hs = |secret: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let public_jwk = serde_json::to_vec(&h.keys.ec.public_jwk()).unwrap();
    let foreign_jwk = serde_json::to_value(h.keys.foreign.public_jwk()).unwrap();
    let embedded = |extra: Value| {
        let mut header = json!({"alg": "ES256", "kid": "attacker"});
        for (k, v) in extra.as_object().unwrap() {
            header[k] = v.clone();
        }
        sign_raw(&header, &payload, &h.keys.foreign, Algorithm::ES256)
    };
    let none = |spelling: &str| format!("{}.{}.", b64(json!({"alg": spelling}).to_string().as_bytes()), parts[1]);
    let rsa_pem = std::fs::read(format!("{}/tests/fixtures/rsa.pem", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let ps = SigningKey::from_pem(&rsa_pem, Algorithm::PS256, "rsa-1").unwrap();

    let cases = vec![
        token("alg missing", relabel(&good, json!({"kid": "ed-1"}))),
        token("alg none", none("none")),
        token("alg None", none("None")),
        token("alg NONE", none("NONE")),
        token("alg nOnE", none("nOnE")),
        token("alg lower-case", relabel(&good, json!({"alg": "eddsa", "kid": "ed-1"}))),
        token("alg not in the allow-list (PS256)", ps.mint(&claims)),
        token("HS256 signed with the issuer's public key", hs(&public_jwk)),
        token(
            "RS256 signature presented as PS256",
            format!(
                "{}.{}.{}",
                b64(br#"{"alg":"PS256","kid":"rsa-1"}"#),
                rs_parts[1],
                rs_parts[2]
            ),
        ),
        token(
            "EdDSA signature presented as ES256",
            relabel(&good, json!({"alg": "ES256", "kid": "ed-1"})),
        ),
        token(
            "ES256 signature presented as EdDSA",
            relabel(&es, json!({"alg": "EdDSA", "kid": "ec-1"})),
        ),
        token(
            "alg that does not fit the key type (ES256 on the RSA kid)",
            relabel(&es, json!({"alg": "ES256", "kid": "rsa-1"})),
        ),
        token("HMAC with an empty secret", hs(b"")),
        token("HMAC with a common secret", hs(b"secret")),
        token("null signature (h.p.)", format!("{}.{}.", parts[0], parts[1])),
        token("ECDSA r = s = 0 (CVE-2022-21449)", with_signature(&es, &[0u8; 64])),
        token(
            "ECDSA r = s = n",
            with_signature(&es, &[hex(P256_N), hex(P256_N)].concat()),
        ),
        token(
            "ECDSA DER-encoded signature",
            with_signature(&es, &der_signature(&es_sig)),
        ),
        token("ECDSA truncated signature", with_signature(&es, &es_sig[..63])),
        token("embedded jwk ignored", embedded(json!({"jwk": foreign_jwk}))),
        token(
            "x5c ignored",
            embedded(json!({"x5c": ["MIIBszCCAVmgAwIBAgIUQ2+attacker"]})),
        ),
        token("jku never fetched", embedded(json!({"jku": attacker.jwks_url()}))),
        token("x5u never fetched", embedded(json!({"x5u": attacker.jwks_url()}))),
        token(
            "signature valid under a key the JWKS does not hold",
            h.keys.foreign.mint(&claims),
        ),
    ];
    run_all(&h, cases).await;
    assert_eq!(attacker.fetches(), 0, "a URL named by a token was fetched");
}
