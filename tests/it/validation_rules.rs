//! Every constraint of the MonitorContact model (docs/connect.md), by family:
//! each case named after its rule gets 400 VALIDATION_ERROR naming the member
//! and the rule, and Connect is never called.

use crate::support;

use support::Harness;

/// A rule, a body that breaks it, and what the 400's message must name.
type Case = (&'static str, String, &'static str);

/// The supervisor's valid body with `extra` members appended.
fn with(extra: &str) -> String {
    format!(r#"{{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1",{extra}}}"#)
}

/// The valid body with one member's value replaced (`None` leaves it out).
fn member(name: &str, value: Option<&str>) -> String {
    let members = [
        ("InstanceId", "\"inst-1\""),
        ("ContactId", "\"c\""),
        ("UserId", "\"user-1\""),
    ];
    let kept: Vec<String> = members
        .iter()
        .filter_map(|(n, v)| match (*n == name, value) {
            (false, _) => Some(format!("\"{n}\":{v}")),
            (true, Some(replaced)) => Some(format!("\"{n}\":{replaced}")),
            (true, None) => None,
        })
        .collect();
    format!("{{{}}}", kept.join(","))
}

/// Each case gets 400 VALIDATION_ERROR naming the rule, and Connect is never called.
async fn refused(cases: Vec<Case>) {
    let h = Harness::start().await;
    for (rule, body, must_mention) in &cases {
        let a = h.monitor(Some(&h.supervisor_token()), body).await;
        assert_eq!(
            (a.status, a.code()),
            (400, "VALIDATION_ERROR"),
            "{rule}: {body}: {:?}",
            a.body
        );
        assert!(
            a.message().contains(must_mention),
            "{rule}: message {:?} should mention {must_mention:?}",
            a.message()
        );
    }
    assert!(h.connect.received().is_empty(), "Connect must not be called");
}

/// Bodies at the limits, from a lead who may monitor as `lead-user-1`.
async fn accepted(bodies: &[String]) {
    let h = Harness::start().await;
    for body in bodies {
        let a = h.monitor(Some(&h.lead_token()), body).await;
        assert_eq!(a.status, 200, "{body}: {:?}", a.body);
    }
}

#[tokio::test]
async fn body_must_be_one_json_object_of_known_members() {
    refused(vec![
        ("body must be JSON", "{not json".into(), "body is not valid JSON"),
        ("body must not be empty", String::new(), "body must be a JSON object"),
        (
            "body must be an object, not an array",
            r#"["inst-1","c","user-1",null,null]"#.into(),
            "body must be a JSON object",
        ),
        (
            "body must be an object, not a string",
            "\"inst-1\"".into(),
            "body must be a JSON object",
        ),
        (
            "nothing may trail the object",
            format!("{} {{}}", member("", None)),
            "trailing",
        ),
        (
            "members are case-sensitive and known",
            with(r#""userId":"x""#),
            "body has a member that MonitorContact does not define",
        ),
        (
            "a member is given once",
            member("InstanceId", Some(r#""inst-1","InstanceId":"inst-2""#)),
            "InstanceId is given more than once",
        ),
    ])
    .await;
}

#[tokio::test]
async fn instance_contact_and_user_ids_are_required_strings_of_bounded_length() {
    refused(vec![
        (
            "InstanceId is required",
            member("InstanceId", None),
            "InstanceId is required",
        ),
        (
            "ContactId is required",
            member("ContactId", None),
            "ContactId is required",
        ),
        ("UserId is required", member("UserId", None), "UserId is required"),
        (
            "InstanceId is a string",
            member("InstanceId", Some("1")),
            "InstanceId must be a string",
        ),
        (
            "UserId is a string",
            member("UserId", Some(r#"["user-1"]"#)),
            "UserId must be a string",
        ),
        (
            "ContactId is not null",
            member("ContactId", Some("null")),
            "ContactId must be a string",
        ),
        (
            "InstanceId is 1 to 100 long",
            member("InstanceId", Some(r#""""#)),
            "InstanceId must be 1 to 100",
        ),
        (
            "InstanceId is 1 to 100 long",
            member("InstanceId", Some(&format!("{:?}", "i".repeat(101)))),
            "InstanceId must be 1 to 100",
        ),
        (
            "ContactId is 1 to 256 long",
            member("ContactId", Some(r#""""#)),
            "ContactId must be 1 to 256",
        ),
        (
            "ContactId is 1 to 256 long",
            member("ContactId", Some(&format!("{:?}", "c".repeat(257)))),
            "ContactId must be 1 to 256",
        ),
        (
            "UserId is 1 to 256 long",
            member("UserId", Some(r#""""#)),
            "UserId must be 1 to 256",
        ),
        (
            "UserId is 1 to 256 long",
            member("UserId", Some(&format!("{:?}", "u".repeat(257)))),
            "UserId must be 1 to 256",
        ),
    ])
    .await;
    let lead = |instance: &str, contact: &str| {
        format!(r#"{{"InstanceId":"{instance}","ContactId":"{contact}","UserId":"lead-user-1"}}"#)
    };
    accepted(&[lead(&"i".repeat(100), "c"), lead("inst-1", &"c".repeat(256))]).await;
}

#[tokio::test]
async fn capabilities_are_one_or_two_distinct_known_names_or_left_out() {
    let caps = |list: &str| with(&format!(r#""AllowedMonitorCapabilities":{list}"#));
    refused(vec![
        (
            "capabilities are SILENT_MONITOR or BARGE",
            caps(r#"["WHISPER"]"#),
            "must be SILENT_MONITOR or BARGE",
        ),
        (
            "capability names are case-sensitive",
            caps(r#"["silent_monitor"]"#),
            "must be SILENT_MONITOR or BARGE",
        ),
        (
            "capabilities are a list of strings",
            caps(r#""BARGE""#),
            "AllowedMonitorCapabilities must be an array of strings",
        ),
        (
            "capabilities are at most two",
            caps(r#"["SILENT_MONITOR","BARGE","BARGE"]"#),
            "at most 2 items",
        ),
        (
            "capabilities are not null",
            caps("null"),
            "AllowedMonitorCapabilities must be an array of strings, or left out",
        ),
        (
            "capabilities list at least one",
            caps("[]"),
            "AllowedMonitorCapabilities must list at least one capability",
        ),
        (
            "no capability twice",
            caps(r#"["SILENT_MONITOR","SILENT_MONITOR"]"#),
            "AllowedMonitorCapabilities must not list a capability twice",
        ),
    ])
    .await;
}

#[tokio::test]
async fn client_token_is_a_string_of_at_most_500_or_left_out() {
    refused(vec![
        (
            "ClientToken is at most 500 long",
            with(&format!(r#""ClientToken":"{}""#, "t".repeat(501))),
            "ClientToken must be 1 to 500",
        ),
        (
            "ClientToken is not null",
            with(r#""ClientToken":null"#),
            "ClientToken must be a string, or left out",
        ),
    ])
    .await;
    let token = format!(
        r#"{{"InstanceId":"inst-1","ContactId":"c","UserId":"lead-user-1","ClientToken":"{}"}}"#,
        "t".repeat(500)
    );
    accepted(&[token]).await;
}

#[tokio::test]
async fn messages_never_echo_the_callers_bytes() {
    let h = Harness::start().await;
    for body in [
        r#"{"<img src=x>":1,"InstanceId":"inst-1","ContactId":"c","UserId":"user-1"}"#,
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","<img src=x>":1,"<img src=x>":2}"#,
        r#"{"InstanceId":"<script>x</script>","ContactId":["<script>"],"UserId":"user-1"}"#,
        r#"{"InstanceId":{"<script>":"<img src=x>"},"ContactId":"c","UserId":"user-1"}"#,
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","AllowedMonitorCapabilities":["<script>x</script>"]}"#,
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","ClientToken":["<img src=x>"]}"#,
        r#"{"InstanceId":"<script>x</script>","ContactId":"c","UserId":"user-1"} <img src=x>"#,
        r#"{"InstanceId":"<script>"#,
    ] {
        let a = h.monitor(Some(&h.supervisor_token()), body).await;
        assert_eq!((a.status, a.code()), (400, "VALIDATION_ERROR"), "{body}: {:?}", a.body);
        assert!(
            !a.message().contains("<img") && !a.message().contains("<script"),
            "{body}: message {:?} echoes the caller's bytes",
            a.message()
        );
    }
    assert!(h.connect.received().is_empty());
}

#[tokio::test]
async fn both_capabilities_are_accepted_and_forwarded() {
    let h = Harness::start().await;
    let body = r#"{"InstanceId":"inst-9","ContactId":"c","UserId":"lead-user-1","AllowedMonitorCapabilities":["SILENT_MONITOR","BARGE"]}"#;
    let a = h.monitor(Some(&h.lead_token()), body).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        h.connect.received()[0].json()["AllowedMonitorCapabilities"],
        serde_json::json!(["SILENT_MONITOR", "BARGE"])
    );
}
