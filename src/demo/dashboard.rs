//! The demo's dashboard (README.md, "The demo"): one self-contained page that
//! lists the live contacts a team lead may monitor, greying out the Monitor
//! and Barge buttons the gateway would refuse. The demo serves it on a
//! loopback origin of its own, so the page's calls to the gateway are
//! cross-origin and work only through the gateway's CORS (docs/api.md).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::http::server::{serve, Listening};

const PAGE: &str = include_str!("dashboard.html");

/// What the page is filled in with each time it is served.
pub(crate) struct Page {
    /// The gateway's API, as the browser reaches it: `http://127.0.0.1:8080`.
    pub(crate) gateway: String,
    pub(crate) instance_id: String,
    /// The caller's own Connect user id: the `UserId` of its dry runs.
    pub(crate) user_id: String,
    /// Who the page says is signed in.
    pub(crate) caller: String,
    /// A fresh bearer token for the caller, so a page loaded hours after the
    /// demo started still works.
    pub(crate) token: Box<dyn Fn() -> String + Send + Sync>,
}

impl Page {
    /// The page's HTML, with a token minted now.
    pub(crate) fn render(&self) -> String {
        PAGE.replace("{GATEWAY}", &attribute(&self.gateway))
            .replace("{INSTANCE_ID}", &attribute(&self.instance_id))
            .replace("{USER_ID}", &attribute(&self.user_id))
            .replace("{CALLER}", &attribute(&self.caller))
            .replace("{TOKEN}", &attribute(&(self.token)()))
    }
}

/// Escapes a value for a double-quoted HTML attribute.
fn attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Serves the page at `/` (anything else is 404) until the task is aborted.
pub(crate) fn start(listener: TcpListener, page: Page) -> JoinHandle<()> {
    let page = Arc::new(page);
    tokio::spawn(serve(
        listener,
        Listening::plain(Duration::from_secs(10)),
        std::future::pending(),
        move |req: Request<Incoming>| {
            let page = page.clone();
            async move { Ok::<_, Infallible>(answer(&page, &req)) }
        },
    ))
}

fn answer(page: &Page, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method().as_str(), req.uri().path()) {
        ("GET" | "HEAD", "/") => (StatusCode::OK, "text/html; charset=utf-8", page.render()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page holds a bearer token: keep it out of caches.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(token: &'static str) -> Page {
        Page {
            gateway: "http://127.0.0.1:8080".into(),
            instance_id: "inst-1".into(),
            user_id: "carol-connect-user".into(),
            caller: "carol <team-leads>".into(),
            token: Box::new(move || token.to_owned()),
        }
    }

    #[test]
    fn every_placeholder_is_filled_and_escaped() {
        let html = page("t.o.k").render();
        assert!(!html.contains("{GATEWAY}") && !html.contains("{TOKEN}"), "{html}");
        assert!(html.contains(r#"data-gateway="http://127.0.0.1:8080""#));
        assert!(html.contains(r#"data-token="t.o.k""#));
        assert!(html.contains(r#"data-caller="carol &lt;team-leads&gt;""#));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let html = page("t").render();
        for external in ["src=", "href=", "@import", "url("] {
            assert!(!html.contains(external), "{external} in the page");
        }
    }
}
