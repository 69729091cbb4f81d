//! /metrics after a mix of allowed, denied, invalid and upstream-failed
//! requests: valid exposition text holding every family with the right counts,
//! and no caller, contact or user id anywhere in it.

use crate::support;

use std::collections::BTreeMap;

use connect_monitor_gateway::test_util::Reply;
use support::{Harness, BODY};

/// Parses the text format strictly: `# HELP`/`# TYPE`/`# EOF` comments and
/// `name{label="value",…} number` samples. Returns sample → value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut saw_eof = false;
    for line in text.lines() {
        assert!(!saw_eof, "nothing may follow # EOF");
        if line == "# EOF" {
            saw_eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE ") || rest.starts_with("UNIT "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            let labels = series[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .expect(line);
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label: {line}"));
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad label name: {line}"
                );
                assert!(!v.is_empty() || pair.ends_with('"'), "{line}");
            }
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "duplicate series: {line}"
        );
    }
    assert!(saw_eof, "the exposition ends with # EOF");
    samples
}

#[tokio::test]
async fn metrics_hold_every_family_with_the_right_counts() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    let other_user = r#"{"InstanceId":"inst-1","ContactId":"contact-1","UserId":"user-2"}"#;
    assert_eq!(h.monitor(Some(&token), other_user).await.status, 403);
    assert_eq!(h.monitor(Some(&token), "{").await.status, 400);
    assert_eq!(h.monitor(None, BODY).await.status, 401);
    h.connect.set_default(Reply::error(500, "InternalServiceException"));
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 502);

    let (status, text) = h.admin("/metrics").await;
    assert_eq!(status, 200);
    let m = parse(&text);
    let get = |series: &str| {
        *m.get(series)
            .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
    };
    assert_eq!(get("cmg_requests_total{code=\"OK\"}"), 2.0);
    assert_eq!(get("cmg_requests_total{code=\"FORBIDDEN\"}"), 1.0);
    assert_eq!(get("cmg_requests_total{code=\"VALIDATION_ERROR\"}"), 1.0);
    assert_eq!(get("cmg_requests_total{code=\"UNAUTHENTICATED\"}"), 1.0);
    assert_eq!(get("cmg_requests_total{code=\"UPSTREAM_ERROR\"}"), 1.0);
    assert_eq!(get("cmg_request_duration_seconds_count"), 6.0);
    assert_eq!(
        get("cmg_upstream_attempts_total{operation=\"MonitorContact\",outcome=\"success\"}"),
        2.0
    );
    assert_eq!(
        get("cmg_upstream_attempts_total{operation=\"MonitorContact\",outcome=\"server_error\"}"),
        3.0
    );
    assert_eq!(get("cmg_upstream_retries_total"), 2.0);
    assert_eq!(get("cmg_upstream_duration_seconds_count"), 5.0);
    assert_eq!(
        get(&format!(
            "cmg_jwks_refresh_total{{issuer=\"{}\",result=\"success\"}}",
            h.issuer.issuer()
        )),
        1.0
    );
    assert_eq!(get("cmg_in_flight"), 0.0);
    assert_eq!(get(&format!("cmg_jwks_keys{{issuer=\"{}\"}}", h.issuer.issuer())), 3.0);
    assert_eq!(
        get(&format!("cmg_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))),
        1.0
    );
    assert_eq!(get("cmg_load_shed_total"), 0.0);
    // Buckets resolve sub-millisecond gateway work and multi-second upstream calls.
    assert!(
        m.contains_key("cmg_request_duration_seconds_bucket{le=\"0.0001\"}"),
        "{text}"
    );
    assert!(
        m.contains_key("cmg_upstream_duration_seconds_bucket{le=\"32.768\"}"),
        "{text}"
    );
    // Bounded labels: no caller, contact or user id, no token.
    for id in ["sup-1", "user-1", "user-2", "contact-1", "inst-1", token.as_str()] {
        assert!(!text.contains(id), "{id} appears in /metrics");
    }
}
