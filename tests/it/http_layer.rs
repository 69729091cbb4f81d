//! What the HTTP layer answers on its own, before the gateway sees a request:
//! a bare 400/431 with no `x-request-id`, no envelope and no audit line.
//! docs/api.md and the OpenAPI file say so, precisely, rather than promising
//! all three for every response.

use crate::support;

use std::time::Duration;

use support::{raw_exchange, Harness};

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test]
async fn a_request_hyper_refuses_gets_a_bare_answer_and_no_audit_line() {
    let h = Harness::start().await;
    let cases: [(&[u8], u16); 2] = [
        (
            b"POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nX-Bad: a\0b\r\n\r\n",
            400,
        ),
        (
            b"POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            400,
        ),
    ];
    for (bytes, status) in cases {
        let answer = raw_exchange(
            h.gateway().api_addr,
            &[(bytes, Duration::ZERO)],
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(answer.status, Some(status), "{}", answer.text);
        assert!(
            !answer.text.to_ascii_lowercase().contains("x-request-id"),
            "{}",
            answer.text
        );
        assert_eq!(answer.code(), None, "no envelope: {}", answer.text);
    }
    assert!(h.audit_lines().is_empty(), "the gateway never saw them");
}

#[tokio::test]
async fn a_request_the_gateway_refuses_gets_all_three() {
    let h = Harness::start().await;
    let two_hosts = b"POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nHost: other\r\nContent-Length: 0\r\n\r\n";
    let answer = raw_exchange(
        h.gateway().api_addr,
        &[(two_hosts, Duration::ZERO)],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(answer.status, Some(400), "{}", answer.text);
    assert!(answer.text.to_ascii_lowercase().contains("x-request-id"));
    assert_eq!(answer.code().as_deref(), Some("VALIDATION_ERROR"));
    assert_eq!(h.audit_lines().len(), 1);
}

#[test]
fn the_api_docs_and_openapi_say_which_answers_come_from_the_http_layer() {
    for (file, heading) in [
        ("docs/api.md", "**Answers from the HTTP layer.**"),
        ("deploy/openapi.yaml", "Answers from the HTTP layer:"),
    ] {
        let text = repo_file(file);
        let at = text.find(heading).unwrap_or_else(|| panic!("{file} lacks {heading:?}"));
        let section = &text[at..at + 1200.min(text.len() - at)];
        for named in ["400", "431", "header_read_timeout", "no audit line", "x-request-id"] {
            assert!(section.contains(named), "{file}: the HTTP-layer section names {named}");
        }
    }
}

#[tokio::test]
async fn an_empty_bearer_is_a_missing_token() {
    let h = Harness::start().await;
    // The HTTP layer trims the trailing space: the gateway sees `Bearer`.
    let request = b"POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \r\nContent-Length: 0\r\n\r\n";
    let answer = raw_exchange(
        h.gateway().api_addr,
        &[(request, Duration::ZERO)],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(answer.status, Some(401), "{}", answer.text);
    assert!(answer.text.contains("Missing bearer token"), "{}", answer.text);
}
