//! `--code-order FILE`: writes the list of functions the gateway runs, at
//! start-up and then per request, that `build.rs` has the linker lay out
//! first (`link/code-order.txt`); and `coverage`, how much of such a list a
//! binary still has.
//!
//! How: the release binary runs twice under `valgrind --tool=callgrind`, which
//! records every function that ran, however briefly (a sampling profiler
//! would miss the ones that run once). The first run only starts and answers
//! `/readyz`; the second also serves a few seconds of every gateway
//! configuration of the benchmark (c, d, e1, e2, f). The start-up functions
//! come first in the list, so idle the gateway maps in only those; each group
//! keeps the order the compiler gave it in the binary, so callers and callees
//! it placed together stay together.
//!
//! Under valgrind the CPU lacks some features (SHA extensions, AVX-512), so a
//! function chosen by CPU feature at run time may be missing; it is then
//! mapped in from where the compiler put it, which costs memory, not
//! correctness.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{
    fatal, sanity, setup, signal_pid, start_gateway, start_nginx, write_gateway_files, Bench, Gateway, Options, Server,
    Servers, Token, CONFIGS,
};

/// Seconds of light load per configuration under callgrind (about 50 times
/// slower than native: a few hundred requests each).
const LOAD_SECONDS: u64 = 2;

pub fn write(opts: Options, out: &Path) {
    for tool in ["valgrind", "nm"] {
        if Command::new(tool).arg("--version").output().is_err() {
            fatal(format!("--code-order needs {tool} (valgrind; nm is in binutils)"));
        }
    }
    let binary = opts
        .binary
        .canonicalize()
        .unwrap_or_else(|e| fatal(format!("{}: {e}", opts.binary.display())));
    let (dir, ticks, issuer, _forger, fixed) = setup(&opts);
    let upstream = start_nginx(&opts.nginx, &dir);
    let files = write_gateway_files(&dir, upstream.1);

    // The gateway under callgrind, writing what ran to `out` when it exits.
    let start = |config: &Path, log: &str, out: &Path| {
        start_gateway(
            &binary,
            config,
            &dir.join(log),
            &under_callgrind(out),
            Duration::from_secs(180),
        )
        .unwrap_or_else(|e| fatal(e))
    };

    println!("code order: start-up under callgrind");
    let startup_out = dir.join("callgrind-startup.out");
    stop(start(&files.ready_config, "gateway-startup.log", &startup_out));

    println!("code order: requests under callgrind ({LOAD_SECONDS} s of each gateway configuration)");
    let requests_out = dir.join("callgrind-requests.out");
    let g = start(&files.config, "gateway.log", &requests_out);
    let servers = Servers {
        upstream,
        passthrough: None,
        gateway: Some(g),
    };
    let mut bench = Bench::new(opts, &dir, ticks, servers, files.audit.clone(), fixed, issuer);
    let gateway_configs: Vec<usize> = (0..CONFIGS.len())
        .filter(|&i| CONFIGS[i].server == Server::Gateway)
        .collect();
    sanity(&mut bench, &gateway_configs);
    for &i in &gateway_configs {
        let cfg = CONFIGS[i];
        let tokens = if cfg.token == Token::Fresh {
            bench.pool.take(1500 * LOAD_SECONDS as usize)
        } else {
            vec![bench.fixed_token(cfg.token)]
        };
        let body = bench.body_file(&cfg);
        let (addr, _) = bench.target(&cfg);
        let r = bench
            .wrk
            .run(addr, &tokens, &body, LOAD_SECONDS, 4, 1)
            .unwrap_or_else(|e| fatal(e));
        println!("  {} ({}): {} requests", cfg.label, cfg.tag, r.requests);
    }
    stop(bench.gateway.take().expect("the gateway"));

    let addresses = code_symbols(&binary);
    let startup = ran_in(&startup_out, &binary);
    let requests = ran_in(&requests_out, &binary);
    let in_binary = |names: Vec<String>, skip: &HashSet<String>| {
        let mut kept: Vec<(u64, String)> = names
            .into_iter()
            .filter(|n| !skip.contains(n))
            .filter_map(|n| addresses.get(&n).map(|&a| (a, n)))
            .collect();
        kept.sort();
        kept.into_iter().map(|(_, n)| n).collect::<Vec<_>>()
    };
    let first = in_binary(startup, &HashSet::new());
    let seen: HashSet<String> = first.iter().cloned().collect();
    let then = in_binary(requests, &seen);

    let rustc = Command::new("rustc")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "rustc ?".into());
    let mut text = format!(
        "# The functions connect-monitor-gateway runs at start-up, then the ones\n\
         # its requests run besides, each group in the compiler's order. build.rs\n\
         # has the linker (LLD, --symbol-ordering-file) lay them out first in\n\
         # release builds, so the code pages the gateway maps in hold code it runs.\n\
         # Names are mangled by {rustc}, with the locked dependencies;\n\
         # another compiler or a dependency update changes them: rewrite this file\n\
         # with `bash benches/gateway.sh --code-order link/code-order.txt`.\n\
         # {} start-up functions, then {} run by requests.\n",
        first.len(),
        then.len()
    );
    for name in &first {
        text.push_str(name);
        text.push('\n');
    }
    text.push_str("# run by requests\n");
    for name in &then {
        text.push_str(name);
        text.push('\n');
    }
    fs::write(out, text).unwrap_or_else(|e| fatal(format!("{}: {e}", out.display())));
    println!(
        "code order: wrote {} ({} start-up functions, then {} run by requests)",
        out.display(),
        first.len(),
        then.len()
    );
}

/// How many of the names `list` gives `binary` has: (found, listed).
pub fn coverage(binary: &Path, list: &Path) -> Option<(usize, usize)> {
    let text = fs::read_to_string(list).ok()?;
    let names: HashSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let have = code_symbols(binary);
    let found = names.iter().filter(|n| have.contains_key(**n)).count();
    Some((found, names.len()))
}

fn under_callgrind(out: &Path) -> Vec<String> {
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        // The list needs the names the linker sees.
        "--demangle=no".into(),
        format!("--callgrind-out-file={}", out.display()),
    ]
}

/// SIGTERM, so callgrind writes its file as the gateway exits.
fn stop(mut g: Gateway) {
    signal_pid(g.proc.pid(), "TERM");
    if g.proc.wait_for(Duration::from_secs(120)).is_none() {
        fatal("the gateway under callgrind did not exit within 120 s of SIGTERM");
    }
}

/// Every code symbol of `binary` (`nm`), with its address.
fn code_symbols(binary: &Path) -> HashMap<String, u64> {
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(binary)
        .output()
        .unwrap_or_else(|e| fatal(format!("nm: {e}")));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (address, kind, name) = (f.next()?, f.next()?, f.next()?);
            matches!(kind, "t" | "T" | "w" | "W")
                .then(|| Some((name.to_owned(), u64::from_str_radix(address, 16).ok()?)))?
        })
        .collect()
}

/// The functions of `binary` that ran, from a callgrind output file.
///
/// The format names each object (`ob=`, `cob=`) and function (`fn=`, `cfn=`)
/// once as `(id) name`, then by `(id)` alone; a `fn=` line starts the costs
/// of a function that ran, in the object of the last `ob=` line.
fn ran_in(callgrind_out: &Path, binary: &Path) -> Vec<String> {
    let text = fs::read_to_string(callgrind_out)
        .unwrap_or_else(|e| fatal(format!("{}: {e} (did callgrind run?)", callgrind_out.display())));
    let mut objects: HashMap<&str, bool> = HashMap::new();
    let mut functions: HashMap<&str, &str> = HashMap::new();
    let mut in_binary = false;
    let mut seen = HashSet::new();
    let mut ran = Vec::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once('=') else {
            continue;
        };
        let Some((id, name)) = compressed(rest) else { continue };
        match key {
            "ob" | "cob" => {
                if let Some(name) = name {
                    let same = Path::new(name).canonicalize().is_ok_and(|p| p == binary);
                    objects.insert(id, same);
                }
                if key == "ob" {
                    in_binary = objects.get(id).copied().unwrap_or(false);
                }
            }
            "fn" | "cfn" => {
                if let Some(name) = name {
                    functions.insert(id, name);
                }
                if key == "fn" && in_binary {
                    if let Some(name) = functions.get(id) {
                        // callgrind marks recursion levels as name'2.
                        let name = name.split('\'').next().unwrap_or(name);
                        if seen.insert(name) {
                            ran.push(name.to_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    ran
}

/// `(12) name` or `(12)`: the id and, the first time, the name.
fn compressed(rest: &str) -> Option<(&str, Option<&str>)> {
    let rest = rest.strip_prefix('(')?;
    let (id, name) = rest.split_once(')')?;
    let name = name.strip_prefix(' ').filter(|n| !n.is_empty());
    Some((id, name))
}
