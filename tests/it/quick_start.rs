//! The README's "Quick start for a real deployment", run as written: its
//! command block is split into words (shlex; `$VARS` expanded here) and every
//! command is carried out against the in-process stand-ins, with the real
//! binary for `check` and `serve`.
//!
//! What the test changes, and nothing else:
//! - `/` is a temporary folder (`/etc/connect-monitor-gateway` lands in it) and
//!   relative paths are the checkout's; `sudo` is dropped; `cargo install` is
//!   the binary under test.
//! - The README's edits (its `gateway.toml` and `policy.toml` blocks) are
//!   applied as it says: keys are set, a `[[list]]` replaces the example's
//!   list. Then the issuer and its `jwks_url` become the identity-provider
//!   stand-in's, and the listeners ephemeral ports (the curl commands are sent
//!   to the ports the gateway logs instead of the configured ones).
//! - The AWS profile the README names is written into a temporary
//!   `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE` with static test keys
//!   that the Connect stand-in verifies (`AWS_ENDPOINT_URL_CONNECT` points at
//!   it; instance metadata is off). The environment is otherwise empty.
//! - `TOKEN` is a token the issuer stand-in signs, with the claims the README
//!   shows.
//!
//! Then the answer and the audit line must be what the README says they are.

use crate::support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use bytes::Bytes;
use connect_monitor_gateway::test_util::ConnectStandIn;
use connect_monitor_gateway::test_util::HttpClient;
use connect_monitor_gateway::test_util::{IssuerStandIn, SigningKey};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use support::{Keys, ACCESS_KEY, SECRET_KEY};

const BIN: &str = env!("CARGO_BIN_EXE_connect-monitor-gateway");

/// How long the gateway may take to log its addresses, and then to be ready.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long one request may take.
const ANSWER_LIMIT: Duration = Duration::from_secs(20);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

// --- the README ---------------------------------------------------------------

/// The fenced block right after `<!-- marker -->`: its language and its text.
fn block_after(readme: &str, marker: &str) -> (String, String) {
    let tag = format!("<!-- {marker} -->");
    assert_eq!(readme.matches(&tag).count(), 1, "README.md has {tag} exactly once");
    let after = &readme[readme.find(&tag).unwrap() + tag.len()..];
    let mut lines = after.lines().skip_while(|l| l.trim().is_empty());
    let fence = lines.next().unwrap_or_default();
    let lang = fence
        .strip_prefix("```")
        .unwrap_or_else(|| panic!("{tag} is followed by a fenced block, not {fence:?}"));
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    (lang.trim().to_string(), body.join("\n") + "\n")
}

fn toml_block(readme: &str, marker: &str) -> toml::Value {
    let (lang, text) = block_after(readme, marker);
    assert_eq!(lang, "toml", "{marker}");
    toml::from_str(&text).unwrap_or_else(|e| panic!("{marker}: {e}"))
}

fn json_block(readme: &str, marker: &str) -> Value {
    let (lang, text) = block_after(readme, marker);
    assert_eq!(lang, "json", "{marker}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{marker}: {e}"))
}

/// Every key a TOML document sets, dotted, list items as `[]`.
fn keys_set(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(_) => keys_set(v, &key, out),
                    toml::Value::Array(items) if items.iter().all(toml::Value::is_table) && !items.is_empty() => {
                        for item in items {
                            keys_set(item, &format!("{key}[]"), out);
                        }
                    }
                    _ => {
                        out.insert(key);
                    }
                }
            }
        }
        _ => unreachable!("a document is a table"),
    }
}

/// The README's rule: its keys are set, tables merge, and a `[[list]]`
/// replaces the example's list whole.
fn apply_edits(example: &mut toml::Value, edits: &toml::Value) {
    let (Some(example), Some(edits)) = (example.as_table_mut(), edits.as_table()) else {
        unreachable!("documents are tables")
    };
    for (key, edit) in edits {
        match (example.get_mut(key), edit) {
            (Some(target @ toml::Value::Table(_)), toml::Value::Table(_)) => apply_edits(target, edit),
            _ => {
                example.insert(key.clone(), edit.clone());
            }
        }
    }
}

fn at<'a>(doc: &'a toml::Value, path: &[&str]) -> &'a toml::Value {
    path.iter().fold(doc, |v, k| {
        v.get(k)
            .unwrap_or_else(|| panic!("no {} in the config", path.join(".")))
    })
}

// --- the block's commands -------------------------------------------------------

/// The block's commands, one a line: a `\`-continued line joined to the next,
/// blank and comment lines dropped.
fn commands(block: &str) -> Vec<String> {
    assert!(
        !block.trim_end().ends_with('\\'),
        "the block ends inside a continued line"
    );
    block
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// One command's words as `sh` splits them (quotes, backslashes, a trailing
/// `#` comment: shlex), then `$NAME` and `${NAME}` replaced within each word.
/// Unlike `sh`, that also expands inside single quotes and never splits a
/// value: the quick start has no `$` in single quotes and only unquoted
/// values without blanks.
fn shell_words(line: &str, vars: &HashMap<String, String>) -> Vec<String> {
    let words = shlex::split(line).unwrap_or_else(|| panic!("unclosed quote or trailing \\ in {line:?}"));
    assert!(
        !words
            .iter()
            .any(|w| matches!(w.as_str(), "|" | "||" | "&" | "&&" | ";" | "<" | ">" | ">>")),
        "one simple command per line in the quick start: {line:?}"
    );
    words.iter().map(|word| expand(word, vars)).collect()
}

/// `word` with `$NAME` and `${NAME}` replaced by the values the quick start set.
fn expand(word: &str, vars: &HashMap<String, String>) -> String {
    let mut expanded = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        expanded.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(braced) => braced
                .split_once('}')
                .unwrap_or_else(|| panic!("unclosed ${{ in {word:?}")),
            None => after.split_at(
                after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len()),
            ),
        };
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("${name} is used before the quick start sets it: {word:?}"));
        expanded.push_str(value);
        rest = tail;
    }
    expanded + rest
}

/// `NAME=value` words at the start of a command.
fn assignment(word: &str) -> Option<(String, String)> {
    let (name, value) = word.split_once('=')?;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then(|| (name.to_string(), value.to_string()))
}

/// A curl command, as far as the quick start uses curl.
#[derive(Debug)]
struct Curl {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

fn curl(args: &[String]) -> Curl {
    let mut method = None;
    let mut url = None;
    let mut headers = Vec::new();
    let mut body = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("curl {arg} needs a value"))
                .clone()
        };
        match arg.as_str() {
            // Output only: show headers, quiet, errors.
            "-i" | "--include" | "-s" | "--silent" | "-S" | "--show-error" | "-sS" => {}
            "-X" | "--request" => method = Some(value()),
            "-H" | "--header" => {
                let header = value();
                let (name, v) = header
                    .split_once(':')
                    .unwrap_or_else(|| panic!("header {header:?} is not Name: value"));
                headers.push((name.trim().to_string(), v.trim().to_string()));
            }
            "-d" | "--data" | "--data-raw" => body = Some(value()),
            a if a.starts_with('-') => panic!("curl option {a} is not one this test knows"),
            a => {
                assert!(url.is_none(), "one URL per curl");
                url = Some(a.to_string());
            }
        }
    }
    let method = method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.to_string());
    Curl {
        method,
        url: url.expect("curl has a URL"),
        headers,
        body,
    }
}

/// `http://host:port/path` → the address and the path.
fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url}: the quick start calls the gateway on loopback, over http"));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = authority
        .parse()
        .unwrap_or_else(|_| panic!("{url}: host:port is an address"));
    (addr, if path.is_empty() { "/".into() } else { path.into() })
}

// --- the gateway as a process ---------------------------------------------------

/// `serve`, its stdout (audit) and stderr (logs) read into memory as they come.
struct Served {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn spawn(mut command: Command) -> Served {
        #[allow(clippy::zombie_processes)] // reaped by Served's Drop
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let collect = |stream: Box<dyn std::io::Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let sink = text.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut t = sink.lock().unwrap();
                    t.push_str(&line);
                    t.push('\n');
                }
            });
            text
        };
        let stdout = collect(Box::new(child.stdout.take().unwrap()));
        let stderr = collect(Box::new(child.stderr.take().unwrap()));
        Served { child, stdout, stderr }
    }

    fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn audit_lines(&self) -> Vec<Value> {
        let text = self.stdout.lock().unwrap().clone();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout holds audit lines only: {l:?}: {e}")))
            .collect()
    }

    /// The API and admin addresses from the start-up log line (bounded wait).
    async fn addresses(&mut self) -> (SocketAddr, SocketAddr) {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let logs = self.logs();
            if let Some(line) = logs.lines().find(|l| l.contains("connect-monitor-gateway serving")) {
                let v: Value = serde_json::from_str(line).unwrap();
                let addr = |k: &str| v["fields"][k].as_str().unwrap().parse().unwrap();
                return (addr("listen"), addr("admin"));
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("serve exited ({status}) before serving:\n{logs}");
            }
            assert!(
                Instant::now() < deadline,
                "serve did not start within {START_LIMIT:?}:\n{logs}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends one request; the status, headers and body.
async fn send(client: &HttpClient, request: &Curl, to: SocketAddr) -> (u16, http::HeaderMap, String) {
    let (_, path) = split_url(&request.url);
    let mut builder = http::Request::builder()
        .method(request.method.as_str())
        .uri(format!("http://{to}{path}"));
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let body = Full::new(Bytes::from(request.body.clone().unwrap_or_default()));
    let response = tokio::time::timeout(ANSWER_LIMIT, client.request(builder.body(body).unwrap()))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no answer to {} {} within {ANSWER_LIMIT:?}",
                request.method, request.url
            )
        })
        .expect("the gateway answered");
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (status, parts.headers, String::from_utf8_lossy(&body).into_owned())
}

/// The key that signs tokens with the first algorithm the README's issuer lists.
fn signing_key<'a>(keys: &'a Keys, algorithm: &str) -> &'a SigningKey {
    match algorithm {
        "RS256" => &keys.rsa,
        "ES256" => &keys.ec,
        "EdDSA" => &keys.ed,
        other => panic!("the test keys sign RS256, ES256 or EdDSA, not {other}"),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

// --- the test -------------------------------------------------------------------

/// What the README says besides its commands.
struct Readme {
    commands: String,
    gateway_edits: toml::Value,
    policy_edits: toml::Value,
    claims: Value,
    audit: Value,
}

impl Readme {
    fn read() -> Readme {
        let text = std::fs::read_to_string(repo("README.md")).unwrap();
        let (lang, commands) = block_after(&text, "quick-start");
        assert_eq!(lang, "sh", "the quick start is a sh block");
        Readme {
            commands,
            gateway_edits: toml_block(&text, "quick-start-gateway-toml"),
            policy_edits: toml_block(&text, "quick-start-policy-toml"),
            claims: json_block(&text, "quick-start-claims"),
            audit: json_block(&text, "quick-start-audit"),
        }
    }

    /// The issuer the README configures (its first, and only, one).
    fn issuer(&self, key: &str) -> &toml::Value {
        &at(&self.gateway_edits, &["auth", "issuers"])[0][key]
    }
}

/// The gateway `serve` started: the addresses the README's config gives, and
/// the ones it got.
struct Serving {
    process: Served,
    configured_api: SocketAddr,
    configured_admin: SocketAddr,
    api: SocketAddr,
    admin: SocketAddr,
}

/// The quick start being carried out: the stand-ins, the folder that plays
/// `/`, the shell variables, and what has been done so far.
struct Run {
    readme: Readme,
    keys: Keys,
    issuer: IssuerStandIn,
    connect: ConnectStandIn,
    root: tempfile::TempDir,
    client: HttpClient,
    vars: HashMap<String, String>,
    /// The claims of the token `TOKEN` was set to.
    token_claims: Option<Value>,
    installed: bool,
    copied: BTreeMap<String, PathBuf>,
    edited: BTreeSet<String>,
    checked: bool,
    serving: Option<Serving>,
    ready: bool,
    monitored: bool,
}

impl Run {
    async fn start(readme: Readme) -> Run {
        let keys = Keys::load();
        let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
        // The static keys of the profile the README names; no session token.
        let profile_keys = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "quick-start profile");
        let connect = ConnectStandIn::start(profile_keys).await.unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("home/.aws")).unwrap();
        Run {
            readme,
            keys,
            issuer,
            connect,
            root,
            client: connect_monitor_gateway::test_util::http_client(),
            vars: HashMap::new(),
            token_claims: None,
            installed: false,
            copied: BTreeMap::new(),
            edited: BTreeSet::new(),
            checked: false,
            serving: None,
            ready: false,
            monitored: false,
        }
    }

    /// Absolute paths inside the folder that plays `/`; relative ones in the checkout.
    fn on_disk(&self, path: &str) -> PathBuf {
        match path.strip_prefix('/') {
            Some(inside) => self.root.path().join(inside),
            None => repo(path),
        }
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    /// The binary with `args`, in the only environment the commands get, plus `env`.
    fn gateway_command(&self, args: &[String], env: &[(String, String)]) -> Command {
        let home = self.home();
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("HOME", &home)
            .env("AWS_CONFIG_FILE", home.join(".aws/config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_CONNECT", self.connect.url())
            .envs(env.iter().cloned());
        c
    }

    /// Carries out one line of the block.
    async fn line(&mut self, line: &str) {
        let words = shell_words(line, &self.vars);
        let mut env = Vec::new();
        let mut rest = words.as_slice();
        while let Some((name, value)) = rest.first().and_then(|w| assignment(w)) {
            env.push((name, value));
            rest = &rest[1..];
        }
        if rest.first().is_some_and(|w| w == "sudo") {
            assert!(
                matches!(rest.get(1).map(String::as_str), Some("mkdir" | "cp")),
                "sudo is for mkdir and cp under /etc only: {line}"
            );
            rest = &rest[1..];
        }
        let Some((program, args)) = rest.split_first() else {
            for (name, value) in env {
                self.set_variable(name, value);
            }
            return;
        };
        match program.as_str() {
            "cargo" => self.install(args, line),
            "mkdir" => self.mkdir(args, line),
            "cp" => self.copy(args, line),
            "sudoedit" => self.edit(args),
            "connect-monitor-gateway" => match args.first().map(String::as_str) {
                Some("check") => self.check(args, &env, line),
                Some("serve") => self.serve(args, &env).await,
                other => panic!("the quick start runs check and serve, not {other:?}: {line}"),
            },
            "curl" => {
                let request = curl(args);
                let serving = self.serving.as_ref().expect("curl after serve");
                if split_url(&request.url).0 == serving.configured_admin {
                    self.wait_ready(&request, line).await
                } else {
                    self.monitor(&request, line).await
                }
            }
            other => panic!("the quick start runs {other:?}, which this test does not know: {line}"),
        }
    }

    /// A shell variable. `TOKEN` is a placeholder in the README: here it is a
    /// token the issuer stand-in signs, with the claims the README shows.
    fn set_variable(&mut self, name: String, value: String) {
        let value = if name == "TOKEN" {
            let algorithm = self.readme.issuer("algorithms")[0].as_str().unwrap();
            let mut claims = self.readme.claims.clone();
            claims["iss"] = self.issuer.issuer().into();
            claims["exp"] = (support::now() + 600).into();
            let token = signing_key(&self.keys, algorithm).mint(&claims);
            self.token_claims = Some(claims);
            token
        } else {
            value
        };
        self.vars.insert(name, value);
    }

    /// `cargo install --path .`: the binary under test is this checkout's.
    fn install(&mut self, args: &[String], line: &str) {
        assert_eq!(
            args[..3],
            ["install", "--path", "."].map(String::from),
            "the install step installs this checkout: {line}"
        );
        self.installed = true;
    }

    fn mkdir(&mut self, args: &[String], line: &str) {
        assert_eq!(args[0], "-p", "{line}");
        for dir in &args[1..] {
            assert!(
                dir.starts_with('/'),
                "the quick start writes outside the checkout: {dir}"
            );
            std::fs::create_dir_all(self.on_disk(dir)).unwrap();
        }
    }

    fn copy(&mut self, args: &[String], line: &str) {
        let [from, to] = args else { panic!("cp FROM TO: {line}") };
        assert!(from.starts_with("config/"), "copies the checkout's examples: {from}");
        assert!(to.starts_with('/'), "the quick start writes outside the checkout: {to}");
        let target = self.on_disk(to);
        std::fs::copy(self.on_disk(from), &target).unwrap_or_else(|e| panic!("{line}: {e}"));
        let name = Path::new(to).file_name().unwrap().to_string_lossy().into_owned();
        self.copied.insert(name, target);
    }

    /// The README's edits, applied as it says; then the stand-in as the issuer.
    fn edit(&mut self, files: &[String]) {
        for file in files {
            let path = self.on_disk(file);
            let name = Path::new(file).file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(self.copied.get(&name), Some(&path), "edits a copied file: {file}");
            let mut doc: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            match name.as_str() {
                "gateway.toml" => {
                    apply_edits(&mut doc, &self.readme.gateway_edits);
                    let issuer = &mut doc["auth"]["issuers"][0];
                    issuer["issuer"] = self.issuer.issuer().into();
                    issuer["jwks_url"] = self.issuer.jwks_url().into();
                }
                "policy.toml" => apply_edits(&mut doc, &self.readme.policy_edits),
                other => panic!("the README has no edits for {other}"),
            }
            std::fs::write(&path, toml::to_string(&doc).unwrap()).unwrap();
            assert!(self.edited.insert(name), "{file} edited twice");
        }
    }

    /// `args` with the `--config` path on disk.
    fn with_config(&self, args: &[String]) -> (Vec<String>, PathBuf) {
        assert_eq!(
            self.edited,
            ["gateway.toml", "policy.toml"].map(String::from).into(),
            "both files are edited before the gateway runs"
        );
        let at = args
            .iter()
            .position(|a| a == "--config")
            .expect("the quick start names its config")
            + 1;
        let config = self.on_disk(&args[at]);
        let mut args = args.to_vec();
        args[at] = config.display().to_string();
        (args, config)
    }

    fn check(&mut self, args: &[String], env: &[(String, String)], line: &str) {
        let (args, _) = self.with_config(args);
        let out = self.gateway_command(&args, env).output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{line}:\n{stdout}{stderr}");
        // As the README's comment says: the edits leave one issuer and one grant.
        let said = "ok (1 issuer(s), 1 grant(s))";
        assert!(self.readme.commands.contains(said), "the README says what check prints");
        assert!(stdout.contains(&format!(": {said}")), "{stdout}");
        self.checked = true;
    }

    /// `serve` with the README's `AWS_PROFILE`, written as a profile of
    /// static keys; on free ports instead of the configured ones.
    async fn serve(&mut self, args: &[String], env: &[(String, String)]) {
        assert!(self.checked, "check comes before serve");
        let (args, config) = self.with_config(args);
        let profile = env
            .iter()
            .find(|(k, _)| k == "AWS_PROFILE")
            .map(|(_, v)| v.clone())
            .expect("the README runs serve with AWS_PROFILE");
        let aws = self.home().join(".aws");
        std::fs::write(
            aws.join("credentials"),
            format!("[{profile}]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"),
        )
        .unwrap();
        std::fs::write(aws.join("config"), format!("[profile {profile}]\n")).unwrap();

        let mut doc: toml::Value = toml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        let configured =
            |doc: &toml::Value, k: &str| -> SocketAddr { at(doc, &["server", k]).as_str().unwrap().parse().unwrap() };
        let (configured_api, configured_admin) = (configured(&doc, "listen"), configured(&doc, "admin_listen"));
        doc["server"]["listen"] = "127.0.0.1:0".into();
        doc["server"]["admin_listen"] = "127.0.0.1:0".into();
        std::fs::write(&config, toml::to_string(&doc).unwrap()).unwrap();

        let mut process = Served::spawn(self.gateway_command(&args, env));
        let (api, admin) = process.addresses().await;
        self.serving = Some(Serving {
            process,
            configured_api,
            configured_admin,
            api,
            admin,
        });
    }

    /// The README's readiness check, repeated until it says ready (bounded).
    async fn wait_ready(&mut self, request: &Curl, line: &str) {
        let serving = self.serving.as_ref().unwrap();
        let path = split_url(&request.url).1;
        assert_eq!((request.method.as_str(), path.as_str()), ("GET", "/readyz"), "{line}");
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let (status, _, body) = send(&self.client, request, serving.admin).await;
            if status == 200 {
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["status"], "ready", "{body}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz still {status} {body} after {START_LIMIT:?}:\n{}",
                serving.process.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.ready = true;
    }

    /// The README's call: answered 200, and audited as the README shows.
    async fn monitor(&mut self, request: &Curl, line: &str) {
        let serving = self.serving.as_ref().unwrap();
        let (to, path) = split_url(&request.url);
        assert_eq!(to, serving.configured_api, "the API as configured: {line}");
        assert_eq!((request.method.as_str(), path.as_str()), ("POST", "/contact/monitor"));
        assert!(self.ready, "the quick start waits for /readyz first");
        let (status, headers, body) = send(&self.client, request, serving.api).await;
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(status, 200, "{answer}\n{}", serving.process.logs());
        assert_eq!(answer["success"], true, "{answer}");
        let sent: Value = serde_json::from_str(request.body.as_deref().unwrap()).unwrap();
        assert_eq!(answer["data"]["id"], sent["ContactId"], "{answer}");

        let request_id = headers["x-request-id"].to_str().unwrap().to_string();
        let deadline = Instant::now() + ANSWER_LIMIT;
        let line = loop {
            let lines = serving.process.audit_lines();
            if let Some(line) = lines.into_iter().find(|l| l["request_id"] == request_id) {
                break line;
            }
            assert!(Instant::now() < deadline, "no audit line for {request_id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let shown = self.readme.audit.as_object().unwrap();
        let real = line.as_object().unwrap();
        assert_eq!(
            shown.keys().collect::<BTreeSet<_>>(),
            real.keys().collect::<BTreeSet<_>>(),
            "the README's audit line has the real one's fields:\n{line}"
        );
        // Values of this request, or of the stand-ins: shown as the same kind of value.
        let varying = [
            "ts",
            "request_id",
            "issuer",
            "client_token",
            "aws_request_id",
            "duration_ms",
        ];
        for (key, value) in real {
            if varying.contains(&key.as_str()) {
                assert_eq!(json_type(&shown[key]), json_type(value), "{key}: {line}");
            } else {
                assert_eq!(&shown[key], value, "{key}: the README shows what the call audits");
            }
        }
        assert_eq!(line["issuer"], self.issuer.issuer());
        assert_eq!(shown["issuer"].as_str(), self.readme.issuer("issuer").as_str());
        assert_eq!(line["client_token"], answer["data"]["client_token"]);
        self.monitored = true;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_works_as_written_against_the_stand_ins() {
    let readme = Readme::read();

    // The README names exactly the keys to edit in gateway.toml; of them, the
    // test replaces the issuer and its jwks_url with the stand-in's.
    let mut edited_keys = BTreeSet::new();
    keys_set(&readme.gateway_edits, "", &mut edited_keys);
    assert_eq!(
        edited_keys,
        [
            "auth.issuers[].issuer",
            "auth.issuers[].audiences",
            "auth.issuers[].algorithms",
            "auth.issuers[].jwks_url",
            "connect.instances[].id",
            "connect.instances[].region",
            "policy.file",
        ]
        .map(String::from)
        .into(),
        "the keys the README's gateway.toml edits set"
    );
    // The token's claims, as the README shows them, fit its configuration.
    assert_eq!(readme.claims["iss"], readme.issuer("issuer").as_str().unwrap());
    assert!(
        readme
            .issuer("audiences")
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str() == readme.claims["aud"].as_str()),
        "the README's claims carry an audience it configures"
    );

    let mut run = Run::start(readme).await;
    for line in commands(&run.readme.commands.clone()) {
        run.line(&line).await;
    }

    assert!(run.installed, "the quick start installs the binary");
    assert!(run.monitored, "the quick start calls /contact/monitor");
    let claims = run.token_claims.as_ref().expect("the quick start sets TOKEN");
    assert_eq!(
        claims["connect_user_id"].as_str(),
        run.vars.get("USER_ID").map(String::as_str),
        "the token's connect_user_id is the USER_ID the body names"
    );
    // Connect got one MonitorContact, signed with the profile's keys.
    assert_eq!(run.connect.calls("MonitorContact"), 1);
    assert_eq!(run.connect.bad_signatures(), Vec::<String>::new());
    // Stopped (killed and reaped) here, whatever happened before.
    drop(run.serving.take());
}
