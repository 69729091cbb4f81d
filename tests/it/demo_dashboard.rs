//! The demo's dashboard page in a real browser: the demo starts in process
//! (issuer, Connect stand-in with its live directory, gateway, page server),
//! headless Chromium loads the page from the demo's own origin, the page's
//! script lists carol's live contacts through the gateway (so through its
//! CORS), and the DOM Chromium dumps shows exactly her team's live contacts,
//! oldest first, with Monitor enabled and Barge greyed out on each.
//! Chromium is installed by `.ci/install-chromium` when missing.

use std::collections::BTreeMap;
use std::time::Duration;

use connect_monitor_gateway::test_util::RunningDemo;

use crate::support::chromium::{chromium, dump_dom};

/// Carol's team's live contacts, oldest first: dave's call, grace's chat (in
/// the sub-group team-north-nights) and heidi's call on hold. Not grace's
/// ringing chat, not dave's ended one, nothing of team-south.
const CAROLS_TEAM: [&str; 3] = ["demo-contact-0002", "demo-contact-0004", "demo-contact-0005"];
const GRANT: &str = "demo team leads: their own agents' calls";

/// A start tag as Chromium serializes it: its name and attributes (a bare
/// attribute such as `hidden` comes out as `hidden=""`).
#[derive(Debug)]
struct Tag {
    name: String,
    attributes: BTreeMap<String, String>,
    /// Where the tag starts in the DOM text.
    at: usize,
}

impl Tag {
    fn has(&self, attribute: &str) -> bool {
        self.attributes.contains_key(attribute)
    }

    fn get(&self, attribute: &str) -> Option<&str> {
        self.attributes.get(attribute).map(String::as_str)
    }
}

/// Every start tag of a serialized DOM, in document order. Enough for what
/// Chromium writes: attribute values double-quoted, `"` and `>` escaped.
fn start_tags(dom: &str) -> Vec<Tag> {
    let mut tags = Vec::new();
    let mut rest = dom;
    let mut offset = 0;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else { break };
        let inner = &after[..close];
        if inner.starts_with(|c: char| c.is_ascii_alphabetic()) {
            let name_end = inner.find(|c: char| c.is_whitespace()).unwrap_or(inner.len());
            let mut attributes = BTreeMap::new();
            let mut attrs = inner[name_end..].trim();
            while !attrs.is_empty() {
                let name_end = attrs.find(['=', ' ']).unwrap_or(attrs.len());
                let name = attrs[..name_end].to_owned();
                attrs = attrs[name_end..].trim_start();
                let mut value = String::new();
                if let Some(quoted) = attrs.strip_prefix("=\"") {
                    let end = quoted.find('"').expect("a closed attribute value");
                    value = quoted[..end].to_owned();
                    attrs = quoted[end + 1..].trim_start();
                }
                attributes.insert(name, value);
            }
            tags.push(Tag {
                name: inner[..name_end].to_ascii_lowercase(),
                attributes,
                at: offset + open,
            });
        }
        offset += open + 1 + close + 1;
        rest = &after[close + 1..];
    }
    tags
}

/// A rendered row: its contact id, its buttons, and its HTML.
struct Row<'a> {
    contact_id: String,
    buttons: Vec<&'a Tag>,
    html: &'a str,
}

fn rows<'a>(dom: &'a str, tags: &'a [Tag]) -> Vec<Row<'a>> {
    let mut rows: Vec<Row<'a>> = Vec::new();
    for tag in tags {
        match (tag.name.as_str(), tag.get("data-contact-id")) {
            ("tr", Some(id)) => {
                let end = dom[tag.at..].find("</tr>").expect("a closed row") + tag.at;
                rows.push(Row {
                    contact_id: id.to_owned(),
                    buttons: Vec::new(),
                    html: &dom[tag.at..end],
                });
            }
            ("button", _) => rows.last_mut().expect("buttons only inside rows").buttons.push(tag),
            _ => {}
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_carols_team_with_monitor_enabled_and_barge_greyed_out() {
    let browser = chromium();
    let demo = RunningDemo::start_on_free_ports().await.expect("the demo starts");
    let url = demo.dashboard_url();
    assert_ne!(
        origin_of(&url),
        origin_of(&demo.gateway_url()),
        "the page is cross-origin to the gateway"
    );

    let load = tokio::task::spawn_blocking(move || dump_dom(&browser, &url));
    let dom = tokio::time::timeout(Duration::from_secs(60), load)
        .await
        .expect("chromium finished within its own timeout")
        .unwrap();
    let tags = start_tags(&dom);
    let by_id = |id: &str| {
        tags.iter()
            .find(|t| t.get("id") == Some(id))
            .unwrap_or_else(|| panic!("no #{id} in:\n{dom}"))
    };

    let body = tags.iter().find(|t| t.name == "body").expect("a body");
    assert_eq!(body.get("data-state"), Some("loaded"), "{dom}");
    assert!(by_id("error").has("hidden"), "no error shown: {dom}");
    assert!(by_id("incomplete").has("hidden"), "the list is complete: {dom}");
    assert!(by_id("as-of-time").get("datetime").is_some_and(|t| t.ends_with('Z')));

    let rows = rows(&dom, &tags);
    let listed: Vec<&str> = rows.iter().map(|r| r.contact_id.as_str()).collect();
    assert_eq!(listed, CAROLS_TEAM, "{dom}");
    for row in &rows {
        assert!(row.html.contains(GRANT), "{}: {}", row.contact_id, row.html);
        let button = |capability: &str| {
            let found: Vec<&&Tag> = row
                .buttons
                .iter()
                .filter(|b| b.get("data-capability") == Some(capability))
                .collect();
            assert_eq!(found.len(), 1, "{}: one {capability} button", row.contact_id);
            found[0]
        };
        assert!(
            !button("SILENT_MONITOR").has("disabled"),
            "{}: carol may listen in: {}",
            row.contact_id,
            row.html
        );
        assert!(
            button("BARGE").has("disabled"),
            "{}: carol's profile lacks ManagerBargeIn: {}",
            row.contact_id,
            row.html
        );
    }

    let connect = demo.connect();
    assert!(
        connect.calls("GetCurrentUserData") >= 1,
        "the page's listing reached Connect"
    );
    assert!(connect.bad_signatures().is_empty());
    demo.stop().await;
}

/// A URL's origin, `scheme://host:port`, as the browser compares them.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("an absolute URL");
    let authority = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}")
}

#[test]
fn start_tags_read_chromium_serializations() {
    let dom = r#"<tr data-contact-id="c-1" data-capabilities="SILENT_MONITOR"><td class="grant">g's</td><td><button type="button" class="monitor" data-capability="SILENT_MONITOR" title="Allowed by “g”">Monitor</button><button type="button" class="barge" data-capability="BARGE" disabled="" title="No grant allows you BARGE on this contact">Barge</button></td></tr><p id="x" hidden="">"#;
    let tags = start_tags(dom);
    let rows = rows(dom, &tags);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].contact_id, "c-1");
    assert!(!rows[0].buttons[0].has("disabled"));
    assert!(rows[0].buttons[1].has("disabled"));
    assert_eq!(rows[0].buttons[1].get("data-capability"), Some("BARGE"));
    assert!(tags.last().unwrap().has("hidden"));
}
