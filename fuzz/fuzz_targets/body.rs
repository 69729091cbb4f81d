//! Fuzzes the MonitorContact body parser, `MonitorRequest::parse`.
//!
//! Invariants checked on every input:
//! - nothing panics;
//! - an accepted body is a JSON object (never an array or anything else);
//! - what is forwarded (`to_connect_body`) parses again to the same instance,
//!   contact, user and capabilities, with the client token it was given;
//! - the forwarded body is a duplicate-free JSON object holding exactly the
//!   five members Connect expects, so exactly one `UserId`.
#![no_main]

use connect_monitor_gateway::test_util::{parse_strict_object, MonitorRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const FORWARDED_MEMBERS: [&str; 5] = [
    "InstanceId",
    "ContactId",
    "UserId",
    "AllowedMonitorCapabilities",
    "ClientToken",
];

fuzz_target!(|data: &[u8]| {
    let Ok(request) = MonitorRequest::parse(data) else {
        return;
    };

    // Only the object form is a request.
    let as_value: Value = serde_json::from_slice(data).expect("accepted a body serde_json cannot read");
    assert!(as_value.is_object(), "accepted a body that is not a JSON object");
    assert!(!request.capabilities.is_empty() || as_value.get("AllowedMonitorCapabilities").is_some());

    for client_token in ["t", request.client_token.as_deref().unwrap_or("t")] {
        let forwarded = request.to_connect_body(client_token);
        std::str::from_utf8(&forwarded).expect("forwarded body is UTF-8");

        let again = MonitorRequest::parse(&forwarded).expect("the forwarded body does not parse again");
        assert_eq!(
            again.instance_id, request.instance_id,
            "InstanceId changed on the way through"
        );
        assert_eq!(
            again.contact_id, request.contact_id,
            "ContactId changed on the way through"
        );
        assert_eq!(again.user_id, request.user_id, "UserId changed on the way through");
        assert_eq!(
            again.capabilities, request.capabilities,
            "capabilities changed on the way through"
        );
        assert_eq!(again.client_token.as_deref(), Some(client_token));

        // Duplicate-free at every depth (parse_strict_object refuses a second
        // member of the same name), so the one "UserId" key is the only one.
        let members = parse_strict_object(&forwarded).expect("forwarded body has duplicate members");
        let mut names: Vec<&str> = members.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut expected = FORWARDED_MEMBERS;
        expected.sort_unstable();
        assert_eq!(names, expected, "forwarded body has other members than Connect's five");
        assert_eq!(members["UserId"].as_str(), Some(request.user_id.as_str()));

        // The raw bytes too: one `"UserId":` at the top level of the object.
        assert_eq!(
            top_level_keys(&forwarded)
                .iter()
                .filter(|k| k.as_str() == "UserId")
                .count(),
            1
        );
    }
});

/// The member names of a JSON object, in order and with repeats, read token
/// by token (so a `"UserId"` inside a string value does not count).
fn top_level_keys(json: &[u8]) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let keys = serde::Deserializer::deserialize_map(&mut de, Keys).expect("forwarded body is a JSON object");
    de.end().expect("nothing after the forwarded object");
    keys
}
