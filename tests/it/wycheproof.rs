//! The Wycheproof JOSE vectors (tests/fixtures/wycheproof), every one run
//! through the gateway's own key loading and JWS verification path.

use connect_monitor_gateway::test_util::parse_algorithm;
use connect_monitor_gateway::test_util::{parse_jwks, verify_jws};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

/// Every algorithm the gateway can be configured for: the vector, not the
/// config, decides which one a token uses.
fn all_algorithms() -> Vec<Algorithm> {
    [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ]
    .iter()
    .map(|a| parse_algorithm(a).unwrap())
    .collect()
}

fn load(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/wycheproof/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The key material a group gives: its public key (set) if any, else its private one.
fn group_keys(group: &Value) -> Value {
    let key = group.get("public").or_else(|| group.get("private")).expect("a key");
    if key.get("keys").is_some() {
        key.clone()
    } else {
        json!({ "keys": [key] })
    }
}

/// Accepted only if the key set loads and the signature verifies.
fn gateway_accepts(keys: &Value, jws: &str) -> bool {
    match parse_jwks(keys.to_string().as_bytes()) {
        Ok(set) => verify_jws(jws, &set, &all_algorithms()).is_ok(),
        Err(_) => false,
    }
}

/// Why the gateway's verdict on a `valid` vector is "reject", by design.
fn rejected_by_design(keys: &Value, jws: &str) -> Option<&'static str> {
    let keys = keys["keys"].as_array().unwrap();
    let header: Value = jws
        .split('.')
        .next()
        .and_then(|h| base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, h).ok())
        .and_then(|h| serde_json::from_slice(&h).ok())
        .unwrap_or(Value::Null);
    if keys.iter().all(|k| k.get("alg").is_some_and(|a| *a != header["alg"])) {
        return Some("the JWK's own alg differs from the token's (docs/security.md: honour the JWK's alg)");
    }
    if keys.iter().all(|k| k["kty"] == "oct") {
        return Some("symmetric keys are never trusted from a JWKS");
    }
    if keys.iter().all(|k| k["crv"] == "P-521") {
        return Some("ES512/P-521 is not supported");
    }
    None
}

fn run(file: &str, expected_total: usize) {
    let doc = load(file);
    let mut total = 0;
    let mut by_design = Vec::new();
    let mut wrong = Vec::new();
    for group in doc["testGroups"].as_array().unwrap() {
        let keys = group_keys(group);
        for test in group["tests"].as_array().unwrap() {
            total += 1;
            let id = test["tcId"].as_u64().unwrap();
            let jws = test["jws"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| test["jws"].to_string());
            let accepted = gateway_accepts(&keys, &jws);
            let result = test["result"].as_str().unwrap();
            let expected = match result {
                "valid" => match rejected_by_design(&keys, &jws) {
                    Some(why) => {
                        by_design.push(format!("tc {id}: {why}"));
                        false
                    }
                    None => true,
                },
                "invalid" => false,
                other => panic!("{file} tc {id}: verdict {other:?} is not documented"),
            };
            if accepted != expected {
                wrong.push(format!(
                    "tc {id} ({}, {}): expected {}, gateway {}",
                    group["comment"].as_str().unwrap_or(""),
                    test["comment"].as_str().unwrap_or(""),
                    if expected { "accept" } else { "reject" },
                    if accepted { "accepted" } else { "rejected" },
                ));
            }
        }
    }
    assert_eq!(total, expected_total, "{file}: vector count");
    assert!(
        wrong.is_empty(),
        "{file}: {} verdicts differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    println!(
        "{file}: {total} vectors, {} valid ones rejected by design: {by_design:?}",
        by_design.len()
    );
}

#[test]
fn every_wycheproof_jws_vector_gets_its_verdict() {
    run("json_web_signature_test.json", 401);
}

#[test]
fn every_wycheproof_jwk_vector_gets_its_verdict() {
    run("json_web_key_test.json", 26);
}
