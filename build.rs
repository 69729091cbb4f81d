//! Build script: in release builds, has the linker lay the functions the
//! gateway runs at start-up and per request out first and together
//! (`link/code-order.txt`), so the code pages it maps in hold code it runs.
//!
//! Why: the kernel maps a binary's code in 64 KiB windows around each page
//! touched. Left in the compiler's order, the ~2 MB the gateway runs is spread
//! over the 11 MB of its code, and about 7 MB of it ends up resident; laid
//! out together, about 1.5 MB at idle (measured with `benches/gateway.sh`).
//!
//! The list names symbols exactly as rustc mangles them, so it matches a
//! build with the same compiler and the same locked dependencies; names it
//! lists that a build lacks are skipped, and what they miss stays where the
//! compiler put it. `bash benches/gateway.sh --code-order link/code-order.txt`
//! rewrites it; `.ci/check-code-order` fails when it no longer matches.
//!
//! It is applied only where the linker is known to be LLD, the only one that
//! takes `--symbol-ordering-file`: rustc 1.90 or newer on
//! x86_64-unknown-linux-gnu with no linker chosen by the user. Everywhere else
//! the build is as it would be without this script. `CMG_CODE_ORDER=off`
//! turns it off.

use std::env;
use std::path::Path;
use std::process::Command;

const ORDER_FILE: &str = "link/code-order.txt";
const BINARY: &str = "connect-monitor-gateway";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    println!("cargo:rerun-if-env-changed=CMG_CODE_ORDER");
    if !linker_takes_an_order() {
        return;
    }
    let manifest = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = Path::new(&manifest).join(ORDER_FILE);
    if !order.is_file() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin={BINARY}=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    // A name the build does not have is expected after an edit; the check in
    // CI says when too many are missing.
    println!("cargo:rustc-link-arg-bin={BINARY}=-Wl,--no-warn-symbol-ordering");
}

/// A release build for x86_64 Linux (GNU) by rustc 1.90 or newer, which links
/// with its own LLD unless the user chose a linker.
fn linker_takes_an_order() -> bool {
    let var = |name: &str| env::var(name).unwrap_or_default();
    if var("CMG_CODE_ORDER") == "off" || var("PROFILE") != "release" {
        return false;
    }
    if var("TARGET") != "x86_64-unknown-linux-gnu" {
        return false;
    }
    // A linker from the user's config (`target.<triple>.linker`) or flags.
    if env::var_os("RUSTC_LINKER").is_some() {
        return false;
    }
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if ["linker", "link-self-contained", "fuse-ld"]
        .iter()
        .any(|f| flags.contains(f))
    {
        return false;
    }
    rustc_minor(&var("RUSTC")).is_some_and(|minor| minor >= 90)
}

/// The minor version of `rustc -vV`'s `release: 1.N.P` line.
fn rustc_minor(rustc: &str) -> Option<u32> {
    let rustc = if rustc.is_empty() { "rustc" } else { rustc };
    let out = Command::new(rustc).arg("-vV").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let release = text.lines().find_map(|l| l.strip_prefix("release: "))?;
    let mut parts = release.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}
