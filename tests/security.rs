//! Every line of SECURITY.md as a named case: the hostile input, the exact
//! answer (status and envelope code), and proof that Connect saw nothing.
//! HTTP framing errors are refused by hyper before the gateway runs, so
//! those answers carry no envelope (`code: None`).

mod support;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use connect_monitor_gateway::demo::issuer_standin::{jwks_of, IssuerStandIn, SigningKey};
use http::Request;
use http_body_util::Full;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use support::{now, Harness, Options, BODY};

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// Signs any header and payload text with a key, as an attacker with that key would.
fn sign_raw(header: &Value, payload: &str, key: &SigningKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload.as_bytes()));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key.key, alg).unwrap();
    format!("{input}.{signature}")
}

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

/// What a case sends.
enum Send {
    /// `Authorization: Bearer <token>` with the standard body.
    Token(String),
    /// These Authorization header values (none, one, several).
    Authorization(Vec<String>),
    /// A valid token and these headers/body.
    Request {
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Bytes written on a fresh connection, in timed pieces.
    Raw(Vec<(Vec<u8>, Duration)>),
}

struct Case {
    name: &'static str,
    send: Send,
    status: u16,
    /// The envelope code; `None` when hyper answers before the gateway runs.
    code: Option<&'static str>,
}

fn case(name: &'static str, send: Send, status: u16, code: Option<&'static str>) -> Case {
    Case {
        name,
        send,
        status,
        code,
    }
}

async fn run(h: &Harness, case: Case) {
    let (status, code, text) = match case.send {
        Send::Raw(pieces) => {
            let pieces: Vec<(&[u8], Duration)> = pieces.iter().map(|(b, d)| (b.as_slice(), *d)).collect();
            let a = support::raw_exchange(h.gateway().api_addr, &pieces, Duration::from_secs(10)).await;
            (a.status.unwrap_or(0), a.code(), a.text)
        }
        send => {
            let mut req = Request::post(h.url("/contact/monitor")).header("content-type", "application/json");
            let body = match send {
                Send::Token(t) => {
                    req = req.header("authorization", format!("Bearer {t}"));
                    BODY.to_string()
                }
                Send::Authorization(values) => {
                    for v in values {
                        req = req.header("authorization", v);
                    }
                    BODY.to_string()
                }
                Send::Request { headers, body } => {
                    req = req.header("authorization", format!("Bearer {}", h.supervisor_token()));
                    for (k, v) in headers {
                        req = req.header(k, v);
                    }
                    body
                }
                Send::Raw(_) => unreachable!(),
            };
            let a = h.send(req.body(Full::new(Bytes::from(body))).unwrap()).await;
            if a.status == 401 {
                assert_eq!(a.headers["www-authenticate"], "Bearer", "{}", case.name);
            }
            (a.status, Some(a.code().to_string()), a.body.to_string())
        }
    };
    assert_eq!(status, case.status, "{}: got {text}", case.name);
    if let Some(want) = case.code {
        assert_eq!(code.as_deref(), Some(want), "{}: {text}", case.name);
    }
    assert!(
        h.connect.received().is_empty(),
        "{}: Connect must see nothing",
        case.name
    );
}

const UNAUTH: Option<&str> = Some("UNAUTHENTICATED");

#[tokio::test]
async fn tokens_are_refused_with_401() {
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
    let relabel = |token: &str, header: Value| {
        let p: Vec<&str> = token.split('.').collect();
        format!("{}.{}.{}", b64(header.to_string().as_bytes()), p[1], p[2])
    };
    let foreign_jwk = serde_json::to_value(h.keys.foreign.public_jwk()).unwrap();
    let embedded = |extra: Value| {
        let mut header = json!({"alg": "ES256", "kid": "attacker"});
        for (k, v) in extra.as_object().unwrap() {
            header[k] = v.clone();
        }
        sign_raw(&header, &payload, &h.keys.foreign, Algorithm::ES256)
    };
    let mut none_cases = Vec::new();
    for spelling in ["none", "None", "NONE", "nOnE"] {
        none_cases.push(format!(
            "{}.{}.",
            b64(json!({"alg": spelling}).to_string().as_bytes()),
            parts[1]
        ));
    }
    let rsa_pem = std::fs::read(format!("{}/tests/fixtures/rsa.pem", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let ps = SigningKey::from_pem(&rsa_pem, Algorithm::PS256, "rsa-1").unwrap();

    let cases = vec![
        case("missing token", Send::Authorization(vec![]), 401, UNAUTH),
        case(
            "scheme other than Bearer",
            Send::Authorization(vec![format!("Basic {good}")]),
            401,
            UNAUTH,
        ),
        case(
            "two Authorization headers",
            Send::Authorization(vec![format!("Bearer {good}"), format!("Bearer {good}")]),
            401,
            UNAUTH,
        ),
        case(
            "wrong number of segments",
            Send::Token(format!("{}.{}", parts[0], parts[1])),
            401,
            UNAUTH,
        ),
        case(
            "JWE-shaped (5 segments)",
            Send::Token(format!("{}.a.b.c.d", parts[0])),
            401,
            UNAUTH,
        ),
        case(
            "JSON serialization",
            Send::Token(json!({"protected": parts[0], "payload": parts[1], "signature": parts[2]}).to_string()),
            401,
            UNAUTH,
        ),
        case(
            "padding =",
            Send::Token(format!("{}=.{}.{}", parts[0], parts[1], parts[2])),
            401,
            UNAUTH,
        ),
        case(
            "standard-base64 +/ characters",
            Send::Token(format!("{}.{}.{}+/", parts[0], parts[1], parts[2])),
            401,
            UNAUTH,
        ),
        case(
            "header not a JSON object",
            Send::Token(format!("{}.{}.{}", b64(b"[\"EdDSA\"]"), parts[1], parts[2])),
            401,
            UNAUTH,
        ),
        case(
            "payload not a JSON object",
            Send::Token(sign_raw(
                &json!({"alg": "EdDSA", "kid": "ed-1"}),
                "[1]",
                &h.keys.ed,
                Algorithm::EdDSA,
            )),
            401,
            UNAUTH,
        ),
        case(
            "duplicate keys in header",
            Send::Token(format!(
                "{}.{}.{}",
                b64(br#"{"alg":"EdDSA","kid":"ed-1","kid":"ed-1"}"#),
                parts[1],
                parts[2]
            )),
            401,
            UNAUTH,
        ),
        case(
            "duplicate keys in payload",
            Send::Token(sign_raw(
                &json!({"alg": "EdDSA", "kid": "ed-1"}),
                &payload.replacen('{', r#"{"connect_user_id":"victim","#, 1),
                &h.keys.ed,
                Algorithm::EdDSA,
            )),
            401,
            UNAUTH,
        ),
        case(
            "alg missing",
            Send::Token(relabel(&good, json!({"kid": "ed-1"}))),
            401,
            UNAUTH,
        ),
        case("alg none", Send::Token(none_cases[0].clone()), 401, UNAUTH),
        case("alg None", Send::Token(none_cases[1].clone()), 401, UNAUTH),
        case("alg NONE", Send::Token(none_cases[2].clone()), 401, UNAUTH),
        case("alg nOnE", Send::Token(none_cases[3].clone()), 401, UNAUTH),
        case(
            "alg lower-case",
            Send::Token(relabel(&good, json!({"alg": "eddsa", "kid": "ed-1"}))),
            401,
            UNAUTH,
        ),
        case(
            "alg not in the allow-list (PS256)",
            Send::Token(ps.mint(&claims)),
            401,
            UNAUTH,
        ),
        case(
            "HS256 signed with the issuer's public key",
            Send::Token(hs(&public_jwk)),
            401,
            UNAUTH,
        ),
        case(
            "RS256 signature presented as PS256",
            Send::Token(format!(
                "{}.{}.{}",
                b64(br#"{"alg":"PS256","kid":"rsa-1"}"#),
                rs_parts[1],
                rs_parts[2]
            )),
            401,
            UNAUTH,
        ),
        case(
            "EdDSA signature presented as ES256",
            Send::Token(relabel(&good, json!({"alg": "ES256", "kid": "ed-1"}))),
            401,
            UNAUTH,
        ),
        case(
            "ES256 signature presented as EdDSA",
            Send::Token(relabel(&es, json!({"alg": "EdDSA", "kid": "ec-1"}))),
            401,
            UNAUTH,
        ),
        case(
            "alg that does not fit the key type (ES256 on the RSA kid)",
            Send::Token(relabel(&es, json!({"alg": "ES256", "kid": "rsa-1"}))),
            401,
            UNAUTH,
        ),
        case("HMAC with an empty secret", Send::Token(hs(b"")), 401, UNAUTH),
        case("HMAC with a common secret", Send::Token(hs(b"secret")), 401, UNAUTH),
        case(
            "null signature (h.p.)",
            Send::Token(format!("{}.{}.", parts[0], parts[1])),
            401,
            UNAUTH,
        ),
        case(
            "ECDSA r = s = 0 (CVE-2022-21449)",
            Send::Token(with_signature(&es, &[0u8; 64])),
            401,
            UNAUTH,
        ),
        case(
            "ECDSA r = s = n",
            Send::Token(with_signature(&es, &[hex(P256_N), hex(P256_N)].concat())),
            401,
            UNAUTH,
        ),
        case(
            "ECDSA DER-encoded signature",
            Send::Token(with_signature(&es, &der_signature(&es_sig))),
            401,
            UNAUTH,
        ),
        case(
            "ECDSA truncated signature",
            Send::Token(with_signature(&es, &es_sig[..63])),
            401,
            UNAUTH,
        ),
        case(
            "embedded jwk ignored",
            Send::Token(embedded(json!({"jwk": foreign_jwk}))),
            401,
            UNAUTH,
        ),
        case(
            "x5c ignored",
            Send::Token(embedded(json!({"x5c": ["MIIBszCCAVmgAwIBAgIUQ2+attacker"]}))),
            401,
            UNAUTH,
        ),
        case(
            "jku never fetched",
            Send::Token(embedded(json!({"jku": attacker.jwks_url()}))),
            401,
            UNAUTH,
        ),
        case(
            "x5u never fetched",
            Send::Token(embedded(json!({"x5u": attacker.jwks_url()}))),
            401,
            UNAUTH,
        ),
        case(
            "kid unknown",
            Send::Token(relabel(&good, json!({"alg": "EdDSA", "kid": "nope"}))),
            401,
            UNAUTH,
        ),
        case(
            "kid not a string",
            Send::Token(relabel(&good, json!({"alg": "EdDSA", "kid": 42}))),
            401,
            UNAUTH,
        ),
        case(
            "kid path traversal",
            Send::Token(relabel(&good, json!({"alg": "EdDSA", "kid": "../../../../etc/passwd"}))),
            401,
            UNAUTH,
        ),
        case(
            "kid with SQL characters",
            Send::Token(relabel(&good, json!({"alg": "EdDSA", "kid": "' OR '1'='1' --"}))),
            401,
            UNAUTH,
        ),
        case(
            "kid with shell characters",
            Send::Token(relabel(
                &good,
                json!({"alg": "EdDSA", "kid": "$(touch /tmp/cmg-pwned); `id`"}),
            )),
            401,
            UNAUTH,
        ),
        case(
            "crit with an entry we do not implement",
            Send::Token(sign_raw(
                &json!({"alg": "EdDSA", "kid": "ed-1", "crit": ["exp"], "exp": 1}),
                &payload,
                &h.keys.ed,
                Algorithm::EdDSA,
            )),
            401,
            UNAUTH,
        ),
        case(
            "b64 false",
            Send::Token(sign_raw(
                &json!({"alg": "EdDSA", "kid": "ed-1", "b64": false, "crit": ["b64"]}),
                &payload,
                &h.keys.ed,
                Algorithm::EdDSA,
            )),
            401,
            UNAUTH,
        ),
        case(
            "exp missing",
            Send::Token(h.keys.ed.mint(&h.claims_with(json!({"exp": null})))),
            401,
            UNAUTH,
        ),
        case(
            "exp past beyond leeway",
            Send::Token(h.keys.ed.mint(&h.claims_with(json!({"exp": now() - 61})))),
            401,
            UNAUTH,
        ),
        case(
            "exp a string",
            Send::Token(
                h.keys
                    .ed
                    .mint(&h.claims_with(json!({"exp": (now() + 600).to_string()}))),
            ),
            401,
            UNAUTH,
        ),
        case(
            "exp a float too large",
            Send::Token(h.keys.ed.mint(&h.claims_with(json!({"exp": 1e300})))),
            401,
            UNAUTH,
        ),
        case(
            "nbf in the future beyond leeway",
            Send::Token(h.keys.ed.mint(&h.claims_with(json!({"nbf": now() + 120})))),
            401,
            UNAUTH,
        ),
        case(
            "iat in the future beyond leeway",
            Send::Token(h.keys.ed.mint(&h.claims_with(json!({"iat": now() + 120})))),
            401,
            UNAUTH,
        ),
        case(
            "iss mismatch",
            Send::Token(h.keys.ed.mint(&h.claims_with(json!({"iss": "https://evil.example"})))),
            401,
            UNAUTH,
        ),
        case(
            "iss with a trailing slash",
            Send::Token(
                h.keys
                    .ed
                    .mint(&h.claims_with(json!({"iss": format!("{}/", h.issuer.issuer())}))),
            ),
            401,
            UNAUTH,
        ),
        case(
            "aud missing",
            Send::Token(h.keys.ed.mint(&h.claims_with(json!({"aud": null})))),
            401,
            UNAUTH,
        ),
        case(
            "aud empty",
            Send::Token(h.keys.ed.mint(&h.claims_with(json!({"aud": []})))),
            401,
            UNAUTH,
        ),
        case(
            "aud without ours",
            Send::Token(h.keys.ed.mint(&h.claims_with(json!({"aud": ["other-service"]})))),
            401,
            UNAUTH,
        ),
        case(
            "sub missing",
            Send::Token(h.keys.ed.mint(&h.claims_with(json!({"sub": null})))),
            401,
            UNAUTH,
        ),
        case(
            "signature valid under a key the JWKS does not hold",
            Send::Token(h.keys.foreign.mint(&claims)),
            401,
            UNAUTH,
        ),
    ];
    for c in cases {
        run(&h, c).await;
    }
    assert_eq!(attacker.fetches(), 0, "a URL named by a token was fetched");
    assert!(!std::path::Path::new("/tmp/cmg-pwned").exists());
}

#[tokio::test]
async fn authorization_is_refused_with_403() {
    let h = Harness::start().await;
    let forbidden = Some("FORBIDDEN");
    let body = |user: &str, instance: &str, caps: &str| {
        format!(r#"{{"InstanceId":"{instance}","ContactId":"c","UserId":"{user}"{caps}}}"#)
    };
    for c in [
        case(
            "UserId other than the caller's own where the grant says self",
            Send::Request {
                headers: vec![],
                body: body("someone-else", "inst-1", ""),
            },
            403,
            forbidden,
        ),
        case(
            "BARGE not granted",
            Send::Request {
                headers: vec![],
                body: body("user-1", "inst-1", r#","AllowedMonitorCapabilities":["BARGE"]"#),
            },
            403,
            forbidden,
        ),
        case(
            "instance not allowed",
            Send::Request {
                headers: vec![],
                body: body("user-1", "inst-9", ""),
            },
            403,
            forbidden,
        ),
    ] {
        run(&h, c).await;
    }
}

fn raw(text: &str) -> Send {
    Send::Raw(vec![(text.as_bytes().to_vec(), Duration::ZERO)])
}

#[tokio::test]
async fn http_edge_is_refused() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    let post = |extra: &str, body: &str| {
        format!(
            "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{extra}\r\n{body}"
        )
    };
    let long_header = "x".repeat(70 * 1024);
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_uri = format!("/contact/monitor?{}", "a".repeat(70 * 1024));
    let cases = vec![
        case(
            "Content-Length with Transfer-Encoding",
            raw(&post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")),
            400,
            None,
        ),
        case(
            "differing duplicate Content-Length",
            raw(&post("Content-Length: 5\r\nContent-Length: 6\r\n", "{}")),
            400,
            None,
        ),
        case("Content-Length +5", raw(&post("Content-Length: +5\r\n", "{}   ")), 400, None),
        case(
            "obfuscated Transfer-Encoding",
            raw(&post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n")),
            400,
            None,
        ),
        case(
            "invalid chunk size",
            raw(&post("Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n")),
            400,
            Some("VALIDATION_ERROR"),
        ),
        case("obs-fold", raw(&post("X-Folded: a\r\n b\r\nContent-Length: 2\r\n", "{}")), 400, None),
        case("NUL in a header value", raw(&post("X-Nul: a\0b\r\nContent-Length: 2\r\n", "{}")), 400, None),
        case("bare CR in a header value", raw(&post("X-Cr: a\rb\r\nContent-Length: 2\r\n", "{}")), 400, None),
        case(
            "missing Host",
            raw(&format!(
                "POST /contact/monitor HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
                BODY.len()
            )),
            400,
            Some("VALIDATION_ERROR"),
        ),
        case(
            "duplicate Host",
            raw(&post(&format!("Host: other\r\nContent-Length: {}\r\n", BODY.len()), BODY)),
            400,
            Some("VALIDATION_ERROR"),
        ),
        case(
            "body over max_body_bytes, refused before it is read",
            raw(&post("Content-Length: 100000\r\n", "")),
            413,
            Some("PAYLOAD_TOO_LARGE"),
        ),
        case(
            "oversized header",
            raw(&post(&format!("X-Big: {long_header}\r\nContent-Length: 2\r\n"), "{}")),
            431,
            None,
        ),
        case("too many headers", raw(&post(&format!("{many_headers}Content-Length: 2\r\n"), "{}")), 431, None),
        case(
            "very long URI",
            raw(&format!("POST {long_uri} HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n{{}}")),
            431,
            None,
        ),
        case(
            "Expect: 100-continue without a token",
            raw(&format!(
                "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                BODY.len()
            )),
            401,
            UNAUTH,
        ),
        case(
            "Upgrade: h2c is never honoured",
            raw(&format!(
                "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
                BODY.len()
            )),
            401,
            UNAUTH,
        ),
    ];
    for c in cases {
        run(&h, c).await;
    }
}

#[tokio::test]
async fn expect_continue_without_token_gets_no_100_continue() {
    let h = Harness::start().await;
    let request = format!(
        "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        BODY.len()
    );
    let a = support::raw_exchange(
        h.gateway().api_addr,
        &[(request.as_bytes(), Duration::ZERO)],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(a.status, Some(401), "{}", a.text);
    assert!(!a.text.contains("100 Continue"), "{}", a.text);
}

#[tokio::test]
async fn slow_header_client_is_cut_off_within_header_read_timeout() {
    let h = Harness::with(Options {
        server_extra: "header_read_timeout = \"1s\"".into(),
        ..Default::default()
    })
    .await;
    // One header line per second, forever.
    let mut pieces: Vec<(Vec<u8>, Duration)> = vec![(
        b"POST /contact/monitor HTTP/1.1\r\nHost: gw\r\n".to_vec(),
        Duration::from_secs(1),
    )];
    for i in 0..30 {
        pieces.push((format!("X-Slow-{i}: v\r\n").into_bytes(), Duration::from_secs(1)));
    }
    let pieces: Vec<(&[u8], Duration)> = pieces.iter().map(|(b, d)| (b.as_slice(), *d)).collect();
    let a = support::raw_exchange(h.gateway().api_addr, &pieces, Duration::from_secs(10)).await;
    assert!(
        a.elapsed < Duration::from_secs(2) + Duration::from_millis(500),
        "cut off after {:?}",
        a.elapsed
    );
    assert!(a.status.is_none() || a.status == Some(408), "{}", a.text);
    assert!(h.connect.received().is_empty());
}

#[tokio::test]
async fn slow_body_client_is_cut_off_within_request_timeout() {
    let h = Harness::with(Options {
        server_extra: "request_timeout = \"2s\"".into(),
        ..Default::default()
    })
    .await;
    let head = format!(
        "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        h.supervisor_token()
    );
    let mut pieces: Vec<(Vec<u8>, Duration)> = vec![(head.into_bytes(), Duration::from_millis(500))];
    for _ in 0..40 {
        pieces.push((b" ".to_vec(), Duration::from_millis(500)));
    }
    let pieces: Vec<(&[u8], Duration)> = pieces.iter().map(|(b, d)| (b.as_slice(), *d)).collect();
    let a = support::raw_exchange(h.gateway().api_addr, &pieces, Duration::from_secs(10)).await;
    assert_eq!(a.status, Some(408), "{}", a.text);
    assert_eq!(a.code().as_deref(), Some("REQUEST_TIMEOUT"));
    assert!(a.elapsed < Duration::from_secs(3), "cut off after {:?}", a.elapsed);
    assert!(h.connect.received().is_empty());
}

#[tokio::test]
async fn invalid_policy_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        "[[grant]]\nname = \"x\"\ninstances = \"*\"\n",
    )
    .unwrap();
    let keys = support::Keys::load();
    let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
    let connect =
        connect_monitor_gateway::demo::connect_standin::ConnectStandIn::start(support::test_credentials(None))
            .await
            .unwrap();
    let cfg = dir.path().join("g.toml");
    std::fs::write(&cfg, support::config_text(&issuer, &connect, &Options::default())).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_connect-monitor-gateway"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy.toml"));
}
