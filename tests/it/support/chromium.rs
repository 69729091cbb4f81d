//! Headless Chromium for the browser tests: found at `/usr/bin/chromium`,
//! installed by `.ci/install-chromium` when missing, and run on a page to
//! dump its DOM.

use std::path::Path;
use std::process::Command;

/// The path of Chromium, installing it first when missing.
pub fn chromium() -> String {
    let found = |p: &str| Path::new(p).exists().then(|| p.to_string());
    if let Some(p) = found("/usr/bin/chromium") {
        return p;
    }
    let script = format!("{}/.ci/install-chromium", env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("run .ci/install-chromium");
    assert!(
        status.success(),
        "chromium is missing and .ci/install-chromium could not install it"
    );
    found("/usr/bin/chromium").expect("chromium installed at /usr/bin/chromium")
}

/// Loads a page headless and returns its DOM once its scripts have had ten
/// seconds of virtual time (which does not pass while a fetch is pending);
/// Chromium gives up after twenty real seconds. The flags keep it off the
/// network beyond loopback (no background fetches, updates or sync).
pub fn dump_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
            "--timeout=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
