//! Identifiers are printable: `InstanceId`, `ContactId` and `UserId`, and the
//! caller's own user id claim that `as_user = "self"` compares with `UserId`,
//! holding a control character (NUL, CR, LF, ESC, DEL, a C1 character) are
//! refused with 400 naming the member or claim — never the value — and never
//! reach the policy's comparisons, the audit's ids or Connect.

use crate::support;

use serde_json::json;
use support::{Harness, BODY};

/// One of each kind: C0 (NUL, LF, CR, ESC), DEL and C1 (NEL).
const CONTROL: [&str; 6] = ["\u{0}", "\n", "\r", "\u{1b}", "\u{7f}", "\u{85}"];

#[tokio::test]
async fn control_characters_in_identifiers_are_refused_naming_the_member() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    for member in ["InstanceId", "ContactId", "UserId"] {
        for control in CONTROL {
            let mut body = json!({"InstanceId": "inst-1", "ContactId": "contact-1", "UserId": "user-1"});
            let value = format!("{}{control}", body[member].as_str().unwrap());
            body[member] = json!(value);
            let answer = h.monitor(Some(&token), &body.to_string()).await;
            assert_eq!(
                (answer.status, answer.code()),
                (400, "VALIDATION_ERROR"),
                "{member} {control:?}"
            );
            assert_eq!(
                answer.message(),
                format!("{member} must not contain control characters"),
                "{member} {control:?}"
            );
        }
    }
    assert!(h.connect.received().is_empty(), "nothing reached Connect");
    // A NUL written as a JSON escape is a NUL too.
    let answer = h
        .monitor(
            Some(&token),
            r#"{"InstanceId":"inst-1","ContactId":"c\u0000","UserId":"user-1"}"#,
        )
        .await;
    assert_eq!(answer.status, 400);
    assert!(h.connect.received().is_empty());
    // Printable ids, non-ASCII ones included, still pass.
    let body = r#"{"InstanceId":"inst-1","ContactId":"contact-é-1","UserId":"user-1"}"#;
    assert_eq!(h.monitor(Some(&token), body).await.status, 200);
}

#[tokio::test]
async fn a_control_character_in_the_callers_user_id_claim_is_refused_naming_the_claim() {
    let h = Harness::start().await;
    for control in CONTROL {
        let claims = h.claims_with(json!({"connect_user_id": format!("user-1{control}")}));
        let answer = h.monitor(Some(&h.keys.ed.mint(&claims)), BODY).await;
        assert_eq!((answer.status, answer.code()), (400, "VALIDATION_ERROR"), "{control:?}");
        assert_eq!(
            answer.message(),
            "the token's claim connect_user_id must not contain control characters"
        );
    }
    let lines = h.audit_lines();
    assert!(lines
        .iter()
        .all(|l| l["status"] == 400 && l["reason"] == "validation_error"));
    assert!(h.connect.received().is_empty());
    assert_eq!(h.monitor(Some(&h.supervisor_token()), BODY).await.status, 200);
}
