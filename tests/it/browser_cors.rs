//! CORS proven in a real browser: headless Chromium loads a page from one
//! loopback origin whose script calls the gateway on another with `fetch`
//! and a bearer token. The allowed origin gets the JSON answer; a disallowed
//! origin's fetch is blocked by the browser. Chromium is installed by
//! `.ci/install-chromium` when missing.

use crate::support;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use support::chromium::{chromium, dump_dom as load_in_chromium};
use support::{Harness, Options, BODY};
use tokio::net::TcpListener;

/// Serves one HTML page whose script calls the gateway and writes the outcome into the DOM.
async fn page_server(listener: TcpListener, html: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(connect_monitor_gateway::test_util::serve(
        listener,
        connect_monitor_gateway::test_util::Listening::plain(std::time::Duration::from_secs(30)),
        std::future::pending(),
        move |_req: Request<Incoming>| {
            let html = html.clone();
            async move {
                let mut r = Response::new(Full::new(Bytes::from(html)));
                r.headers_mut().insert(
                    "content-type",
                    http::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                Ok::<_, std::convert::Infallible>(r)
            }
        },
    ))
}

fn page(gateway: &str, token: &str) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="out">PENDING</pre><script>
fetch("{gateway}/contact/monitor", {{
  method: "POST",
  headers: {{ "Authorization": "Bearer {token}", "Content-Type": "application/json" }},
  body: JSON.stringify({BODY})
}}).then(r => r.json().then(j => {{
  document.getElementById("out").textContent =
    "STATUS " + r.status + " RID " + r.headers.get("x-request-id") + " BODY " + JSON.stringify(j);
}})).catch(e => {{ document.getElementById("out").textContent = "BLOCKED " + e; }});
</script></body></html>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_allows_the_configured_origin_and_blocks_others() {
    let browser = chromium();
    let allowed_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_origin = format!("http://127.0.0.1:{}", allowed_listener.local_addr().unwrap().port());
    let other_origin = format!("http://127.0.0.1:{}", other_listener.local_addr().unwrap().port());
    let h = Harness::with(Options {
        config: &format!("[cors]\nallowed_origins = [\"{allowed_origin}\"]"),
        ..Default::default()
    })
    .await;
    let gateway = format!("http://127.0.0.1:{}", h.gateway().api_addr.port());
    let html = page(&gateway, &h.supervisor_token());
    let _allowed = page_server(allowed_listener, html.clone()).await;
    let _other = page_server(other_listener, html).await;

    let (allowed_dom, other_dom) = tokio::task::spawn_blocking({
        let browser = browser.clone();
        move || {
            (
                load_in_chromium(&browser, &format!("{allowed_origin}/")),
                load_in_chromium(&browser, &format!("{other_origin}/")),
            )
        }
    })
    .await
    .unwrap();

    assert!(allowed_dom.contains("STATUS 200"), "allowed origin: {allowed_dom}");
    assert!(
        allowed_dom.contains(r#""success":true"#),
        "the envelope reached page script: {allowed_dom}"
    );
    assert!(
        !allowed_dom.contains("RID null"),
        "x-request-id is exposed to script: {allowed_dom}"
    );
    assert!(other_dom.contains("BLOCKED"), "disallowed origin: {other_dom}");
    assert_eq!(
        h.connect.received().len(),
        1,
        "only the allowed origin's call reached Connect"
    );
}
