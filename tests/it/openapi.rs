//! deploy/openapi.yaml stays true: real responses of every status the API
//! answers, on each of its routes, are validated against the schema the spec
//! gives for that status, and their headers against the spec's headers.

use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use connect_monitor_gateway::test_util::Reply;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};
use support::{Answer, Harness, Options, BODY};

fn spec() -> Value {
    let text = std::fs::read_to_string(format!("{}/deploy/openapi.yaml", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_norway::from_str(&text).expect("openapi.yaml parses")
}

/// A JSON Schema for one component, with the spec's components as `$defs`.
fn schema_for(spec: &Value, reference: &str) -> jsonschema::Validator {
    let defs = spec["components"]["schemas"]
        .to_string()
        .replace("#/components/schemas/", "#/$defs/");
    let reference = reference.replace("#/components/schemas/", "#/$defs/");
    let schema = json!({"$defs": serde_json::from_str::<Value>(&defs).unwrap(), "$ref": reference});
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

/// Follows a `$ref` inside the spec.
fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => r.trim_start_matches("#/").split('/').fold(spec, |node, key| &node[key]),
        None => v,
    }
}

fn check(spec: &Value, status: u16, answer: &Answer) {
    check_at(spec, "/contact/monitor", status, answer)
}

/// Checks an answer of `POST path` against the schema its status has there.
fn check_at(spec: &Value, path: &str, status: u16, answer: &Answer) {
    check_operation(spec, path, "post", status, answer)
}

/// Checks an answer of `method path` against the schema its status has
/// there: the body, and each header the spec requires (its value too, when
/// the spec fixes it).
fn check_operation(spec: &Value, path: &str, method: &str, status: u16, answer: &Answer) {
    let operation = &spec["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not in the spec");
    let response = resolve(spec, &operation["responses"][status.to_string()]);
    assert!(response.is_object(), "status {status} is not in the spec");
    let reference = response["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    let validator = schema_for(spec, reference);
    let errors: Vec<String> = validator.iter_errors(&answer.body).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "status {status}: {} does not match {reference}: {errors:?}",
        answer.body
    );
    for (name, header) in response["headers"].as_object().unwrap() {
        let header = resolve(spec, header);
        if header["required"] == true {
            assert!(
                answer.headers.contains_key(name.as_str()),
                "status {status}: header {name} missing"
            );
        }
        if let Some(fixed) = header["schema"]["const"].as_str() {
            if let Some(got) = answer.headers.get(name.as_str()) {
                assert_eq!(got, fixed, "{method} {path} status {status}: header {name}");
            }
        }
    }
}

#[tokio::test]
async fn every_answer_matches_the_openapi_spec() {
    let spec = spec();
    let mut seen = BTreeSet::new();
    let mut answers: Vec<Answer> = Vec::new();

    let h = Harness::with(Options {
        config: r#"
            [server]
            request_timeout = "1s"
        "#,
        ..Default::default()
    })
    .await;
    let token = h.supervisor_token();
    answers.push(h.monitor(Some(&token), BODY).await); // 200
    answers.push(h.monitor(Some(&token), "{").await); // 400
    answers.push(h.monitor(None, BODY).await); // 401
    answers.push(
        h.monitor(Some(&token), r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"x"}"#)
            .await,
    ); // 403
    let get = Request::get(h.url("/contact/monitor"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    answers.push(h.send(get).await); // 405
    let big = format!(
        r#"{{"InstanceId":"inst-1","ContactId":"{}","UserId":"user-1"}}"#,
        "c".repeat(9000)
    );
    answers.push(h.monitor(Some(&token), &big).await); // 413
    let text = Request::post(h.url("/contact/monitor"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    answers.push(h.send(text).await); // 415
    for (status, error_type) in [
        (404, "ResourceNotFoundException"),
        (409, "IdempotencyException"),
        (402, "ServiceQuotaExceededException"),
        (500, "InternalServiceException"),
    ] {
        h.connect.set_default(Reply::error(status, error_type));
        answers.push(h.monitor(Some(&token), BODY).await); // 404, 409, 429, 502
    }
    h.connect
        .set_default(Reply::Delayed(Duration::from_secs(30), Box::new(Reply::Success)));
    answers.push(h.monitor(Some(&token), BODY).await); // 504

    let down = Harness::with(Options {
        issuer_down_at_start: true,
        ..Default::default()
    })
    .await;
    answers.push(down.monitor(Some(&down.supervisor_token()), BODY).await); // 503

    for answer in &answers {
        check(&spec, answer.status, answer);
        seen.insert(answer.status);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [200, 400, 401, 403, 404, 405, 409, 413, 415, 429, 502, 503, 504]
    );
}

#[test]
fn request_schema_agrees_with_the_gateway() {
    let spec = spec();
    let request = schema_for(&spec, "#/components/schemas/MonitorContactRequest");
    assert!(request.is_valid(&serde_json::from_str(BODY).unwrap()));
    assert!(!request.is_valid(&json!({"InstanceId": "i", "ContactId": "c", "UserId": "u", "Extra": 1})));
    assert!(
        !request.is_valid(&json!({"InstanceId": "i", "ContactId": "c", "UserId": "u",
        "AllowedMonitorCapabilities": ["SILENT_MONITOR", "BARGE", "BARGE"]}))
    );
    assert!(!request.is_valid(&json!({"InstanceId": "", "ContactId": "c", "UserId": "u"})));
}

#[test]
fn error_codes_in_the_spec_are_the_api_docs_error_table() {
    let spec = spec();
    let codes: BTreeSet<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let api = std::fs::read_to_string(format!("{}/docs/api.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    for code in &codes {
        assert!(
            api.lines()
                .any(|l| l.starts_with('|') && l.contains(&format!("`{code}`"))),
            "{code} is not in docs/api.md's error table"
        );
    }
    assert_eq!(codes.len(), 14);
}

#[tokio::test]
async fn every_dry_run_answer_matches_the_openapi_spec() {
    let spec = spec();
    let h = Harness::start().await;
    let token = h.supervisor_token();
    let check_url = h.url("/contact/monitor/check");
    let post = |token: Option<&str>, body: &str| {
        let mut req = Request::post(check_url.as_str()).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    };
    let other_user = r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"x"}"#;
    let mut seen = BTreeSet::new();
    for (token, body) in [
        (Some(token.as_str()), BODY),
        (Some(&token), "{"),
        (None, BODY),
        (Some(&token), other_user),
    ] {
        let answer = h.send(post(token, body)).await;
        check_at(&spec, "/contact/monitor/check", answer.status, &answer);
        seen.insert(answer.status);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [200, 400, 401, 403]);
    assert!(h.connect.received().is_empty(), "a dry run never reaches Connect here");
}

#[tokio::test]
async fn an_empty_or_malformed_request_id_is_replaced_not_refused_as_the_spec_says() {
    let spec = spec();
    let parameter = &spec["components"]["parameters"]["RequestId"];
    assert!(
        parameter["schema"].get("pattern").is_none(),
        "no pattern: a client validating against the spec must not refuse what the gateway accepts"
    );
    let said = parameter["description"].as_str().unwrap();
    assert!(said.contains("not refused but replaced"), "{said}");

    let h = Harness::start().await;
    let token = h.supervisor_token();
    for sent in ["", "a b", "ünïcode", &"x".repeat(129), "semi;colon"] {
        let req = Request::post(h.url("/contact/monitor"))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"))
            .header("x-request-id", sent)
            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
            .unwrap();
        let answer = h.send(req).await;
        assert_eq!(answer.status, 200, "{sent:?}: {:?}", answer.body);
        let id = answer.headers["x-request-id"].to_str().unwrap();
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "{sent:?} replaced by a UUID, not {id:?}"
        );
        assert_eq!(h.audit_lines().last().unwrap()["request_id"], id);
    }
    let kept = "req-01.A_b:c";
    let req = Request::post(h.url("/contact/monitor"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .header("x-request-id", kept)
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    assert_eq!(h.send(req).await.headers["x-request-id"], kept);
}

/// A GET of the listing with an optional bearer token.
fn listing(h: &Harness, token: Option<&str>, query: &str) -> Request<Full<Bytes>> {
    let mut req = Request::get(h.url(&format!("/contacts/monitorable?{query}")));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn every_listing_answer_matches_the_openapi_spec() {
    let spec = spec();
    let h = Harness::with(Options {
        config: r#"
            [server]
            request_timeout = "1s"

            [[connect.instances]]
            id = "inst-1"
        "#,
        ..Default::default()
    })
    .await;
    let token = h.supervisor_token();
    let mut answers: Vec<Answer> = Vec::new();
    answers.push(h.send(listing(&h, Some(&token), "instance_id=")).await); // 400
    answers.push(h.send(listing(&h, Some(&token), "instance_id=inst-1&page=2")).await); // 400
    answers.push(h.send(listing(&h, None, "instance_id=inst-1")).await); // 401
    answers.push(h.send(listing(&h, Some(&token), "instance_id=inst-9")).await); // 403
    let post = Request::post(h.url("/contacts/monitorable?instance_id=inst-1"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    answers.push(h.send(post).await); // 405
                                      // Failed lookups before any succeeds: nothing is kept yet that would spare them.
    for (status, error_type) in [
        (404, "ResourceNotFoundException"),
        (402, "ServiceQuotaExceededException"),
        (500, "InternalServiceException"),
    ] {
        h.connect.set_default(Reply::error(status, error_type));
        answers.push(h.send(listing(&h, Some(&token), "instance_id=inst-1")).await);
        // 404, 429, 502
    }
    h.connect
        .set_default(Reply::Delayed(Duration::from_secs(30), Box::new(Reply::Success)));
    answers.push(h.send(listing(&h, Some(&token), "instance_id=inst-1")).await); // 504

    // One agent on two live contacts, one of them on no queue; and one that
    // ended, which is not listed.
    h.connect.set_default(Reply::Success);
    h.connect
        .add_user(json!({"Id": "agent-1", "Username": "agent-1@example.com", "SecurityProfileIds": ["sp"]}));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    h.connect.add_agent_contact(
        "agent-1",
        json!({"ContactId": "c-voice", "Channel": "VOICE", "InitiationMethod": "INBOUND",
               "AgentContactState": "CONNECTED", "StateStartTimestamp": now - 60.0,
               "ConnectedToAgentTimestamp": now - 60.0,
               "Queue": {"Id": "q-1", "Arn": "arn:aws:connect:eu-west-2:123456789012:instance/inst-1/queue/q-1"}}),
    );
    h.connect.add_agent_contact(
        "agent-1",
        json!({"ContactId": "c-task", "Channel": "TASK", "InitiationMethod": "API",
               "AgentContactState": "CONNECTED_ONHOLD", "StateStartTimestamp": now - 30.0}),
    );
    h.connect.add_agent_contact(
        "agent-1",
        json!({"ContactId": "c-ended", "Channel": "CHAT", "InitiationMethod": "API",
               "AgentContactState": "ENDED", "StateStartTimestamp": now - 10.0,
               "ConnectedToAgentTimestamp": now - 90.0}),
    );
    let listed = h.send(listing(&h, Some(&token), "instance_id=inst-1")).await; // 200
    let ids: Vec<&str> = listed.body["data"]["contacts"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["contact_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["c-voice", "c-task"], "{:?}", listed.body);
    assert_eq!(listed.body["data"]["contacts"][1]["queue_id"], Value::Null);
    answers.push(listed);

    let mut seen = BTreeSet::new();
    for answer in &answers {
        check_operation(&spec, "/contacts/monitorable", "get", answer.status, answer);
        seen.insert(answer.status);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [200, 400, 401, 403, 404, 405, 429, 502, 504]
    );
}

#[test]
fn the_listing_schema_refuses_what_the_gateway_never_answers() {
    let spec = spec();
    let listing = schema_for(&spec, "#/components/schemas/ListingEnvelope");
    let contact = json!({"contact_id": "c", "agent_id": "a", "queue_id": null, "channel": "VOICE",
                         "state": "CONNECTED", "since": "2026-12-02T09:33:12Z",
                         "capabilities": ["SILENT_MONITOR"], "grant": "g", "reason_required": false});
    let answer = |contact: Value| {
        json!({"success": true, "data": {"instance_id": "i", "as_of": "2026-12-02T09:40:51Z",
                                         "complete": true, "contacts": [contact]}})
    };
    assert!(listing.is_valid(&answer(contact.clone())));
    for (member, value) in [
        ("state", json!("INCOMING")),
        ("capabilities", json!([])),
        ("capabilities", json!(["BARGE", "BARGE"])),
        ("contact_id", Value::Null),
    ] {
        let mut wrong = contact.clone();
        wrong[member] = value;
        assert!(!listing.is_valid(&answer(wrong.clone())), "{wrong}");
    }
    let parameter = &spec["paths"]["/contacts/monitorable"]["get"]["parameters"][0];
    assert_eq!(parameter["name"], "instance_id");
    assert_eq!(parameter["required"], true);
    assert_eq!(parameter["schema"]["maxLength"], 100);
}
