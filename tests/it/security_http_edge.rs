//! docs/security.md, the HTTP edge: request smuggling and framing, header and
//! URI limits, `Expect` and `Upgrade`, and slow clients cut off at the
//! gateway's deadlines. HTTP framing errors are refused by hyper before the
//! gateway runs, so those answers carry no envelope (`code: None`).

use crate::support;

use std::time::Duration;

use support::security_cases::{case, raw, run_all, UNAUTH};
use support::{Harness, Options, BODY, DEADLINE_SLACK};

#[tokio::test]
async fn http_edge_is_refused() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    let post = |extra: &str, body: &str| {
        format!(
            "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{extra}\r\n{body}"
        )
    };
    let long_header = "x".repeat(70 * 1024);
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_uri = format!("/contact/monitor?{}", "a".repeat(70 * 1024));
    let cases = vec![
        case(
            "Content-Length with Transfer-Encoding",
            raw(&post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")),
            400,
            None,
        ),
        case(
            "differing duplicate Content-Length",
            raw(&post("Content-Length: 5\r\nContent-Length: 6\r\n", "{}")),
            400,
            None,
        ),
        case("Content-Length +5", raw(&post("Content-Length: +5\r\n", "{}   ")), 400, None),
        case(
            "obfuscated Transfer-Encoding",
            raw(&post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n")),
            400,
            None,
        ),
        case(
            "invalid chunk size",
            raw(&post("Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n")),
            400,
            Some("VALIDATION_ERROR"),
        ),
        case("obs-fold", raw(&post("X-Folded: a\r\n b\r\nContent-Length: 2\r\n", "{}")), 400, None),
        case("NUL in a header value", raw(&post("X-Nul: a\0b\r\nContent-Length: 2\r\n", "{}")), 400, None),
        case("bare CR in a header value", raw(&post("X-Cr: a\rb\r\nContent-Length: 2\r\n", "{}")), 400, None),
        case(
            "missing Host",
            raw(&format!(
                "POST /contact/monitor HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
                BODY.len()
            )),
            400,
            Some("VALIDATION_ERROR"),
        ),
        case(
            "duplicate Host",
            raw(&post(&format!("Host: other\r\nContent-Length: {}\r\n", BODY.len()), BODY)),
            400,
            Some("VALIDATION_ERROR"),
        ),
        case(
            "body over max_body_bytes, refused before it is read",
            raw(&post("Content-Length: 100000\r\n", "")),
            413,
            Some("PAYLOAD_TOO_LARGE"),
        ),
        case(
            "oversized header",
            raw(&post(&format!("X-Big: {long_header}\r\nContent-Length: 2\r\n"), "{}")),
            431,
            None,
        ),
        case("too many headers", raw(&post(&format!("{many_headers}Content-Length: 2\r\n"), "{}")), 431, None),
        case(
            "very long URI",
            raw(&format!("POST {long_uri} HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n{{}}")),
            431,
            None,
        ),
        case(
            "Expect: 100-continue without a token",
            raw(&format!(
                "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                BODY.len()
            )),
            401,
            UNAUTH,
        ),
        case(
            "Upgrade: h2c is never honoured",
            raw(&format!(
                "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
                BODY.len()
            )),
            401,
            UNAUTH,
        ),
    ];
    run_all(&h, cases).await;
}

#[tokio::test]
async fn expect_continue_without_token_gets_no_100_continue() {
    let h = Harness::start().await;
    let request = format!(
        "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        BODY.len()
    );
    let a = support::raw_exchange(
        h.gateway().api_addr,
        &[(request.as_bytes(), Duration::ZERO)],
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(a.status, Some(401), "{}", a.text);
    assert!(!a.text.contains("100 Continue"), "{}", a.text);
}

#[tokio::test]
async fn slow_header_client_is_cut_off_within_header_read_timeout() {
    let header_read_timeout = Duration::from_secs(1);
    let h = Harness::with(Options {
        config: r#"
            [server]
            header_read_timeout = "1s"
        "#,
        ..Default::default()
    })
    .await;
    // Four header lines a second, forever: each line comes well within the
    // timeout, so only a deadline on the whole head cuts the client off.
    let every = Duration::from_millis(250);
    let mut pieces = vec![(b"POST /contact/monitor HTTP/1.1\r\nHost: gw\r\n".to_vec(), every)];
    pieces.extend((0..40).map(|i| (format!("X-Slow-{i}: v\r\n").into_bytes(), every)));
    let a = support::raw_exchange(h.gateway().api_addr, &pieces, Duration::from_secs(10)).await;
    assert!(
        a.elapsed < header_read_timeout + DEADLINE_SLACK,
        "cut off after {:?} (header_read_timeout {header_read_timeout:?})",
        a.elapsed
    );
    assert!(a.status.is_none() || a.status == Some(408), "{}", a.text);
    assert!(h.connect.received().is_empty());
}

#[tokio::test]
async fn slow_body_client_is_cut_off_within_request_timeout() {
    let h = Harness::with(Options {
        config: r#"
            [server]
            request_timeout = "2s"
        "#,
        ..Default::default()
    })
    .await;
    let head = format!(
        "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        h.supervisor_token()
    );
    let every = Duration::from_millis(500);
    let mut pieces = vec![(head.into_bytes(), every)];
    pieces.extend((0..40).map(|_| (b" ".to_vec(), every)));
    let a = support::raw_exchange(h.gateway().api_addr, &pieces, Duration::from_secs(10)).await;
    assert_eq!(a.status, Some(408), "{}", a.text);
    assert_eq!(a.code().as_deref(), Some("REQUEST_TIMEOUT"));
    h.assert_answered_at_deadline(0, Duration::from_secs(2));
    assert!(h.connect.received().is_empty());
}
