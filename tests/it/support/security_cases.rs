//! The case runner of the security tests (tests/security*.rs): each case is
//! a hostile input, the exact answer (status and envelope code), and proof
//! that Connect saw nothing. HTTP framing errors are refused by hyper before
//! the gateway runs, so those answers carry no envelope (`code: None`).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use connect_monitor_gateway::test_util::SigningKey;
use http::Request;
use http_body_util::Full;
use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::{Harness, BODY};

pub const UNAUTH: Option<&str> = Some("UNAUTHENTICATED");

pub fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// Signs any header and payload text with a key, as an attacker with that key would.
pub fn sign_raw(header: &Value, payload: &str, key: &SigningKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload.as_bytes()));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key.key, alg).unwrap();
    format!("{input}.{signature}")
}

/// The token with its header replaced and its payload and signature kept.
pub fn relabel(token: &str, header: Value) -> String {
    let p: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", b64(header.to_string().as_bytes()), p[1], p[2])
}

/// What a case sends.
pub enum Send {
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

pub struct Case {
    pub name: &'static str,
    pub send: Send,
    pub status: u16,
    /// The envelope code; `None` when hyper answers before the gateway runs.
    pub code: Option<&'static str>,
}

pub fn case(name: &'static str, send: Send, status: u16, code: Option<&'static str>) -> Case {
    Case {
        name,
        send,
        status,
        code,
    }
}

/// A token that must be refused with 401 UNAUTHENTICATED.
pub fn token(name: &'static str, token: String) -> Case {
    case(name, Send::Token(token), 401, UNAUTH)
}

/// These bytes, written at once on a fresh connection.
pub fn raw(text: &str) -> Send {
    Send::Raw(vec![(text.as_bytes().to_vec(), Duration::ZERO)])
}

/// Sends every case in turn and checks its answer.
pub async fn run_all(h: &Harness, cases: impl IntoIterator<Item = Case>) {
    for c in cases {
        run(h, c).await;
    }
}

pub async fn run(h: &Harness, case: Case) {
    let (status, code, text) = match case.send {
        Send::Raw(pieces) => {
            let a = super::raw_exchange(h.gateway().api_addr, &pieces, Duration::from_secs(10)).await;
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
