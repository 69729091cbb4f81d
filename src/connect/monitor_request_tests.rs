//! Unit tests of MonitorContact body validation, one per rule.

use super::*;

fn parse(s: &str) -> Result<MonitorRequest, InvalidRequest> {
    MonitorRequest::parse(s.as_bytes())
}

/// The message of a refused body.
fn refusal(s: &str) -> String {
    match parse(s) {
        Ok(r) => panic!("{s} was accepted as {r:?}"),
        Err(InvalidRequest(message)) => message,
    }
}

const UNKNOWN: &str = "body has a member that MonitorContact does not define \
                       (allowed: InstanceId, ContactId, UserId, AllowedMonitorCapabilities, ClientToken)";

#[test]
fn missing_capabilities_means_silent_monitor() {
    let r = parse(r#"{"InstanceId":"i","ContactId":"c","UserId":"u"}"#).unwrap();
    assert_eq!(r.capabilities, vec![Capability::SilentMonitor]);
    assert_eq!(r.client_token, None);
}

#[test]
fn every_member_is_read() {
    let r = parse(
        r#" {"ClientToken":"t-1","AllowedMonitorCapabilities":["BARGE","SILENT_MONITOR"],
             "UserId":"u","ContactId":"c","InstanceId":"i"} "#,
    )
    .unwrap();
    assert_eq!(
        r,
        MonitorRequest {
            instance_id: "i".into(),
            contact_id: "c".into(),
            user_id: "u".into(),
            capabilities: vec![Capability::Barge, Capability::SilentMonitor],
            client_token: Some("t-1".into()),
        }
    );
}

#[test]
fn connect_body_is_rebuilt_with_token_and_capabilities() {
    let r = parse(r#"{"UserId":"u","InstanceId":"i","ContactId":"c"}"#).unwrap();
    let body = String::from_utf8(r.to_connect_body("t")).unwrap();
    assert_eq!(
        body,
        r#"{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":["SILENT_MONITOR"],"ClientToken":"t"}"#
    );
}

#[test]
fn connect_body_escapes_what_it_rebuilds() {
    let r = parse(r#"{"UserId":"u\"\u00e9<","InstanceId":"i","ContactId":"c","AllowedMonitorCapabilities":["BARGE"]}"#)
        .unwrap();
    assert_eq!(
        String::from_utf8(r.to_connect_body("t\"")).unwrap(),
        r#"{"InstanceId":"i","ContactId":"c","UserId":"u\"é<","AllowedMonitorCapabilities":["BARGE"],"ClientToken":"t\""}"#
    );
}

#[test]
fn array_form_of_the_struct_is_refused() {
    assert_eq!(
        parse(r#"["i","c","u",null,null]"#),
        Err(InvalidRequest("body must be a JSON object".into()))
    );
}

#[test]
fn body_must_be_a_json_object() {
    for body in ["", "   ", "\"i\"", "1", "null", "true", "\u{feff}{}"] {
        assert_eq!(refusal(body), "body must be a JSON object", "{body:?}");
    }
}

#[test]
fn body_that_is_not_json_is_refused() {
    assert_eq!(refusal("{not json"), "body is not valid JSON (line 1, column 2)");
    assert_eq!(
        refusal("{\n\"InstanceId\":\"i\",\n\"ContactId\":"),
        "body is not valid JSON (line 3, column 12)"
    );
    assert!(refusal("{\"InstanceId\":\"\\ud800\"}").starts_with("body is not valid JSON"));
    assert!(MonitorRequest::parse(b"{\"InstanceId\":\"\xff\"}")
        .unwrap_err()
        .0
        .starts_with("body is not valid JSON"));
}

#[test]
fn trailing_characters_are_refused() {
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":"u"} {}"#),
        "body has trailing characters after the JSON object"
    );
    assert!(parse("{\"InstanceId\":\"i\",\"ContactId\":\"c\",\"UserId\":\"u\"}\r\n\t ").is_ok());
}

#[test]
fn required_members_are_required() {
    assert_eq!(refusal(r#"{"ContactId":"c","UserId":"u"}"#), "InstanceId is required");
    assert_eq!(refusal(r#"{"InstanceId":"i","UserId":"u"}"#), "ContactId is required");
    assert_eq!(refusal(r#"{"InstanceId":"i","ContactId":"c"}"#), "UserId is required");
    assert_eq!(refusal("{}"), "InstanceId is required");
}

#[test]
fn unknown_member_is_refused() {
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":"u","Extra":1}"#),
        UNKNOWN
    );
}

#[test]
fn member_names_are_case_sensitive() {
    assert_eq!(refusal(r#"{"InstanceId":"i","ContactId":"c","userId":"u"}"#), UNKNOWN);
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":"u","clientToken":"t"}"#),
        UNKNOWN
    );
}

#[test]
fn duplicate_member_is_refused() {
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":"u","UserId":"victim"}"#),
        "UserId is given more than once"
    );
    // The same name, spelt with an escape, is the same member.
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":"u","User\u0049d":"victim"}"#),
        "UserId is given more than once"
    );
    assert_eq!(
        refusal(r#"{"ClientToken":"a","ClientToken":"a","InstanceId":"i","ContactId":"c","UserId":"u"}"#),
        "ClientToken is given more than once"
    );
    // A made-up name is not named back.
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":"u","X":1,"X":1}"#),
        "a member is given more than once"
    );
}

#[test]
fn duplicate_member_is_refused_at_any_depth() {
    for body in [
        r#"{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":[{"UserId":1,"UserId":2}]}"#,
        r#"{"InstanceId":{"a":{"UserId":1,"UserId":2}},"ContactId":"c","UserId":"u"}"#,
        r#"{"X":[[{"k":1,"k":2}]]}"#,
    ] {
        assert_eq!(refusal(body), "a member is given more than once", "{body}");
    }
}

#[test]
fn members_must_be_strings() {
    assert_eq!(
        refusal(r#"{"InstanceId":1,"ContactId":"c","UserId":"u"}"#),
        "InstanceId must be a string"
    );
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":true,"UserId":"u"}"#),
        "ContactId must be a string"
    );
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":["u"]}"#),
        "UserId must be a string"
    );
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":"u","ClientToken":7}"#),
        "ClientToken must be a string, or left out"
    );
}

#[test]
fn null_required_members_are_refused() {
    assert_eq!(
        refusal(r#"{"InstanceId":null,"ContactId":"c","UserId":"u"}"#),
        "InstanceId must be a string"
    );
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":null,"UserId":"u"}"#),
        "ContactId must be a string"
    );
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":null}"#),
        "UserId must be a string"
    );
}

#[test]
fn null_client_token_is_refused() {
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":"u","ClientToken":null}"#),
        "ClientToken must be a string, or left out"
    );
}

#[test]
fn null_capabilities_are_refused() {
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":null}"#),
        "AllowedMonitorCapabilities must be an array of strings, or left out"
    );
}

#[test]
fn capabilities_must_be_an_array_of_strings() {
    for caps in [
        r#""BARGE""#,
        r#"{"BARGE":1}"#,
        "[1]",
        r#"["BARGE",null]"#,
        r#"[["BARGE"]]"#,
    ] {
        assert_eq!(
            refusal(&format!(
                r#"{{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":{caps}}}"#
            )),
            "AllowedMonitorCapabilities must be an array of strings, or left out",
            "{caps}"
        );
    }
}

#[test]
fn empty_capabilities_list_is_refused() {
    assert_eq!(
        refusal(r#"{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":[]}"#),
        "AllowedMonitorCapabilities must list at least one capability"
    );
}

#[test]
fn duplicate_capability_is_refused() {
    for caps in [r#"["BARGE","BARGE"]"#, r#"["SILENT_MONITOR","SILENT_MONITOR"]"#] {
        assert_eq!(
            refusal(&format!(
                r#"{{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":{caps}}}"#
            )),
            "AllowedMonitorCapabilities must not list a capability twice",
            "{caps}"
        );
    }
}

#[test]
fn capabilities_at_most_two_items() {
    assert_eq!(
        refusal(
            r#"{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":["SILENT_MONITOR","BARGE","BARGE"]}"#
        ),
        "AllowedMonitorCapabilities may hold at most 2 items (got 3)"
    );
}

#[test]
fn capabilities_only_silent_monitor_or_barge() {
    for caps in [r#"["WHISPER"]"#, r#"["silent_monitor"]"#, r#"["BARGE",""]"#] {
        assert_eq!(
            refusal(&format!(
                r#"{{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":{caps}}}"#
            )),
            "AllowedMonitorCapabilities items must be SILENT_MONITOR or BARGE",
            "{caps}"
        );
    }
    let r = parse(r#"{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":["BARGE"]}"#).unwrap();
    assert_eq!(r.capabilities, vec![Capability::Barge]);
}

#[test]
fn lengths_count_characters_not_bytes() {
    let id = "é".repeat(100);
    assert!(parse(&format!(r#"{{"InstanceId":"{id}","ContactId":"c","UserId":"u"}}"#)).is_ok());
    let id = "é".repeat(101);
    assert_eq!(
        refusal(&format!(r#"{{"InstanceId":"{id}","ContactId":"c","UserId":"u"}}"#)),
        "InstanceId must be 1 to 100 characters long (got 101)"
    );
}

#[test]
fn lengths_are_checked() {
    let body = |i: &str, c: &str, u: &str, t: &str| {
        format!(r#"{{"InstanceId":"{i}","ContactId":"{c}","UserId":"{u}","ClientToken":"{t}"}}"#)
    };
    let (i100, s256, t500) = ("i".repeat(100), "s".repeat(256), "t".repeat(500));
    assert!(parse(&body(&i100, &s256, &s256, &t500)).is_ok());
    assert_eq!(
        refusal(&body("", "c", "u", "t")),
        "InstanceId must be 1 to 100 characters long (got 0)"
    );
    assert_eq!(
        refusal(&body("i", &"c".repeat(257), "u", "t")),
        "ContactId must be 1 to 256 characters long (got 257)"
    );
    assert_eq!(
        refusal(&body("i", "c", "", "t")),
        "UserId must be 1 to 256 characters long (got 0)"
    );
    assert_eq!(
        refusal(&body("i", "c", "u", "")),
        "ClientToken must be 1 to 500 characters long (got 0)"
    );
    assert_eq!(
        refusal(&body("i", "c", "u", &"t".repeat(501))),
        "ClientToken must be 1 to 500 characters long (got 501)"
    );
}

#[test]
fn messages_never_echo_the_callers_bytes() {
    let hostile = [
        r#"{"<img src=x>":1,"InstanceId":"i","ContactId":"c","UserId":"u"}"#,
        r#"{"<img src=x>":1,"<img src=x>":2}"#,
        r#"{"InstanceId":"i","ContactId":"c","UserId":"u","X":{"<img src=x>":1,"<img src=x>":2}}"#,
        r#"{"InstanceId":"<script>x</script>","ContactId":["<script>"],"UserId":"u"}"#,
        r#"{"InstanceId":{"<script>":"<img src=x>"},"ContactId":"c","UserId":"u"}"#,
        r#"{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":["<script>x</script>"]}"#,
        r#"{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":"<img src=x>"}"#,
        r#"{"InstanceId":"i","ContactId":"c","UserId":"u","ClientToken":["<script>"]}"#,
        r#"{"InstanceId":"<script>x</script>","ContactId":"c","UserId":"u"} <img src=x>"#,
        r#"{"InstanceId":"<script>"#,
        r#"{"InstanceId":<script>}"#,
        r#"{<img src=x>}"#,
        r#"<img src=x>"#,
        r#"{"InstanceId":"i","ContactId":"c","UserId":"u","ClientToken":"<script>x</script>","ClientToken":"t"}"#,
        r#"{"InstanceId":"i\u003cscript>","ContactId":1e99999,"UserId":"u"}"#,
    ];
    for body in hostile {
        let message = refusal(body);
        for bad in ["<img", "<script", "script>", "src=x"] {
            assert!(!message.contains(bad), "{body} → {message}");
        }
    }
}

#[test]
fn deeply_nested_bodies_are_refused_without_overflowing() {
    let body = format!(r#"{{"X":{}1{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
    assert!(refusal(&body).starts_with("body is not valid JSON"));
}

#[test]
fn forwarded_body_parses_back_to_the_same_request() {
    let r = parse(
        r#"{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":["BARGE","SILENT_MONITOR"],"ClientToken":"t"}"#,
    )
    .unwrap();
    assert_eq!(MonitorRequest::parse(&r.to_connect_body("t")), Ok(r));
}
