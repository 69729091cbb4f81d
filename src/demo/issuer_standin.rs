//! An in-process identity provider for demo mode and tests: serves a JWKS
//! over HTTP on loopback, can rotate its keys or play dead, and mints tokens.
// The demo uses part of a stand-in; the tests (feature `test-util`) use the rest.
#![cfg_attr(not(feature = "test-util"), allow(dead_code))]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::http::server::{serve, Listening};

/// The path the JWKS is served at.
pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The path of the OIDC discovery document.
pub(crate) const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// A private signing key with its algorithm and key id.
#[derive(Clone)]
pub struct SigningKey {
    pub key: EncodingKey,
    pub alg: Algorithm,
    pub kid: String,
    public: Jwk,
}

impl SigningKey {
    /// Loads a PEM private key (PKCS#8) for `alg`.
    pub fn from_pem(pem: &[u8], alg: Algorithm, kid: &str) -> Result<SigningKey, String> {
        let key = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            _ => return Err("only asymmetric algorithms".into()),
        }
        .map_err(|e| e.to_string())?;
        let mut public = match alg {
            // jsonwebtoken cannot derive an Ed25519 public JWK; aws-lc-rs can.
            Algorithm::EdDSA => ed25519_public_jwk(pem)?,
            _ => Jwk::from_encoding_key(&key, alg).map_err(|e| e.to_string())?,
        };
        public.common.key_id = Some(kid.to_owned());
        public.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        // The JWS and JWK algorithm names are the same strings ("ES256", "EdDSA").
        public.common.key_algorithm = serde_json::to_value(alg)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok());
        Ok(SigningKey {
            key,
            alg,
            kid: kid.to_owned(),
            public,
        })
    }

    /// The public half as a JWK, with `kid`, `alg` and `use`.
    pub fn public_jwk(&self) -> Jwk {
        self.public.clone()
    }

    /// Signs a token with these claims.
    pub fn mint(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("signing with a loaded key")
    }
}

/// The public JWK of a PKCS#8 Ed25519 private key in PEM.
fn ed25519_public_jwk(pem: &[u8]) -> Result<Jwk, String> {
    use aws_lc_rs::signature::KeyPair;
    use base64::Engine;
    let text = std::str::from_utf8(pem).map_err(|_| "PEM is not text")?;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| "PEM body is not base64")?;
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| e.to_string())?;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    serde_json::from_value(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x})).map_err(|e| e.to_string())
}

/// A JWKS document of these keys' public halves.
pub fn jwks_of(keys: &[&SigningKey]) -> Value {
    serde_json::to_value(JwkSet {
        keys: keys.iter().map(|k| k.public_jwk()).collect(),
    })
    .expect("JWKS serializes")
}

struct State {
    jwks: Mutex<Value>,
    /// The discovery document; `None` serves the truthful one.
    discovery: Mutex<Option<Value>>,
    /// The stand-in's own issuer and JWKS URL, for the truthful document.
    issuer: String,
    up: AtomicBool,
    fetches: AtomicUsize,
}

/// The running issuer; stops when dropped.
pub struct IssuerStandIn {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for IssuerStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl IssuerStandIn {
    pub async fn start(jwks: Value) -> std::io::Result<IssuerStandIn> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            jwks: Mutex::new(jwks),
            discovery: Mutex::new(None),
            issuer: format!("http://{addr}"),
            up: AtomicBool::new(true),
            fetches: AtomicUsize::new(0),
        });
        let s = state.clone();
        let task = tokio::spawn(serve(
            listener,
            Listening::plain(Duration::from_secs(30)),
            std::future::pending(),
            move |req| {
                let s = s.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&s, req)) }
            },
        ));
        Ok(IssuerStandIn { addr, state, task })
    }

    /// The issuer identifier (`iss`) tokens of this stand-in carry.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}{JWKS_PATH}", self.addr)
    }

    /// Publishes a new key set (rotation).
    pub fn publish(&self, jwks: Value) {
        *self.state.jwks.lock().expect("jwks lock") = jwks;
    }

    /// Serves this discovery document instead of the truthful one
    /// (`{"issuer": issuer(), "jwks_uri": jwks_url()}`); `None` restores it.
    pub fn set_discovery(&self, document: Option<Value>) {
        *self.state.discovery.lock().expect("discovery lock") = document;
    }

    /// While down, every fetch gets a 503.
    pub fn set_up(&self, up: bool) {
        self.state.up.store(up, Ordering::SeqCst);
    }

    /// How many JWKS fetches arrived.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }
}

fn answer(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path();
    let (status, body) = if path != JWKS_PATH && path != DISCOVERY_PATH {
        (StatusCode::NOT_FOUND, "{}".to_string())
    } else if !state.up.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "{}".to_string())
    } else if path == DISCOVERY_PATH {
        let document = state.discovery.lock().expect("discovery lock").clone();
        let document = document.unwrap_or_else(|| {
            serde_json::json!({
                "issuer": state.issuer,
                "jwks_uri": format!("{}{JWKS_PATH}", state.issuer),
                "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            })
        });
        (StatusCode::OK, document.to_string())
    } else {
        (StatusCode::OK, state.jwks.lock().expect("jwks lock").to_string())
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
