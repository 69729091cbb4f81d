//! Every constraint of the MonitorContact model (REFERENCE.md), one named
//! test each: 400 VALIDATION_ERROR, and Connect never called.

mod support;

use support::Harness;

async fn refused(body: &str, must_mention: &str) {
    let h = Harness::start().await;
    let a = h.monitor(Some(&h.supervisor_token()), body).await;
    assert_eq!((a.status, a.code()), (400, "VALIDATION_ERROR"), "{body}: {:?}", a.body);
    assert!(
        a.message().contains(must_mention),
        "{body}: message {:?} should mention {must_mention:?}",
        a.message()
    );
    assert!(h.connect.received().is_empty(), "Connect must not be called for {body}");
}

async fn accepted(body: &str) {
    let h = Harness::start().await;
    let a = h.monitor(Some(&h.lead_token()), body).await;
    assert_eq!(a.status, 200, "{body}: {:?}", a.body);
}

#[tokio::test]
async fn body_must_be_json() {
    refused("{not json", "body is not valid JSON").await;
    refused("", "body must be a JSON object").await;
}

#[tokio::test]
async fn body_must_be_an_object() {
    refused(r#"["inst-1","c","user-1",null,null]"#, "body must be a JSON object").await;
    refused("\"inst-1\"", "body must be a JSON object").await;
}

#[tokio::test]
async fn instance_id_is_required() {
    refused(r#"{"ContactId":"c","UserId":"user-1"}"#, "InstanceId is required").await;
}

#[tokio::test]
async fn contact_id_is_required() {
    refused(r#"{"InstanceId":"inst-1","UserId":"user-1"}"#, "ContactId is required").await;
}

#[tokio::test]
async fn user_id_is_required() {
    refused(r#"{"InstanceId":"inst-1","ContactId":"c"}"#, "UserId is required").await;
}

#[tokio::test]
async fn instance_id_length_1_to_100() {
    refused(
        r#"{"InstanceId":"","ContactId":"c","UserId":"user-1"}"#,
        "InstanceId must be 1 to 100",
    )
    .await;
    let long = "i".repeat(101);
    refused(
        &format!(r#"{{"InstanceId":"{long}","ContactId":"c","UserId":"user-1"}}"#),
        "InstanceId must be 1 to 100",
    )
    .await;
    accepted(&format!(
        r#"{{"InstanceId":"{}","ContactId":"c","UserId":"lead-user-1"}}"#,
        "i".repeat(100)
    ))
    .await;
}

#[tokio::test]
async fn contact_id_length_1_to_256() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"","UserId":"user-1"}"#,
        "ContactId must be 1 to 256",
    )
    .await;
    let long = "c".repeat(257);
    refused(
        &format!(r#"{{"InstanceId":"inst-1","ContactId":"{long}","UserId":"user-1"}}"#),
        "ContactId must be 1 to 256",
    )
    .await;
    accepted(&format!(
        r#"{{"InstanceId":"inst-1","ContactId":"{}","UserId":"lead-user-1"}}"#,
        "c".repeat(256)
    ))
    .await;
}

#[tokio::test]
async fn user_id_length_1_to_256() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":""}"#,
        "UserId must be 1 to 256",
    )
    .await;
    let long = "u".repeat(257);
    refused(
        &format!(r#"{{"InstanceId":"inst-1","ContactId":"c","UserId":"{long}"}}"#),
        "UserId must be 1 to 256",
    )
    .await;
}

#[tokio::test]
async fn client_token_at_most_500() {
    let long = "t".repeat(501);
    refused(
        &format!(r#"{{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","ClientToken":"{long}"}}"#),
        "ClientToken must be 1 to 500",
    )
    .await;
    accepted(&format!(
        r#"{{"InstanceId":"inst-1","ContactId":"c","UserId":"lead-user-1","ClientToken":"{}"}}"#,
        "t".repeat(500)
    ))
    .await;
}

#[tokio::test]
async fn capabilities_at_most_two_items() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","AllowedMonitorCapabilities":["SILENT_MONITOR","BARGE","BARGE"]}"#,
        "at most 2 items",
    )
    .await;
}

#[tokio::test]
async fn capabilities_only_silent_monitor_or_barge() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","AllowedMonitorCapabilities":["WHISPER"]}"#,
        "must be SILENT_MONITOR or BARGE",
    )
    .await;
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","AllowedMonitorCapabilities":["silent_monitor"]}"#,
        "must be SILENT_MONITOR or BARGE",
    )
    .await;
}

#[tokio::test]
async fn capabilities_must_be_a_list_of_strings() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","AllowedMonitorCapabilities":"BARGE"}"#,
        "AllowedMonitorCapabilities must be an array of strings",
    )
    .await;
}

#[tokio::test]
async fn members_must_be_strings() {
    refused(
        r#"{"InstanceId":1,"ContactId":"c","UserId":"user-1"}"#,
        "InstanceId must be a string",
    )
    .await;
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":["user-1"]}"#,
        "UserId must be a string",
    )
    .await;
    refused(
        r#"{"InstanceId":"inst-1","ContactId":null,"UserId":"user-1"}"#,
        "ContactId must be a string",
    )
    .await;
}

#[tokio::test]
async fn unknown_member_is_refused() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","userId":"x"}"#,
        "body has a member that MonitorContact does not define",
    )
    .await;
}

#[tokio::test]
async fn duplicate_member_is_refused() {
    refused(
        r#"{"InstanceId":"inst-1","InstanceId":"inst-2","ContactId":"c","UserId":"user-1"}"#,
        "InstanceId is given more than once",
    )
    .await;
}

#[tokio::test]
async fn null_client_token_is_refused() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","ClientToken":null}"#,
        "ClientToken must be a string, or left out",
    )
    .await;
}

#[tokio::test]
async fn null_capabilities_are_refused() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","AllowedMonitorCapabilities":null}"#,
        "AllowedMonitorCapabilities must be an array of strings, or left out",
    )
    .await;
}

#[tokio::test]
async fn empty_capabilities_list_is_refused() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","AllowedMonitorCapabilities":[]}"#,
        "AllowedMonitorCapabilities must list at least one capability",
    )
    .await;
}

#[tokio::test]
async fn duplicate_capability_is_refused() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","AllowedMonitorCapabilities":["SILENT_MONITOR","SILENT_MONITOR"]}"#,
        "AllowedMonitorCapabilities must not list a capability twice",
    )
    .await;
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
async fn trailing_garbage_is_refused() {
    refused(
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1"} {}"#,
        "trailing",
    )
    .await;
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
