//! The command line: `serve`, `check`, `explain`, `verify-audit`, `demo`
//! (docs/operations.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use serde_json::{json, Value};

use crate::auth::token::Identity;
use crate::authz::cache::FactCaches;
use crate::authz::facts::Recorded;
use crate::authz::facts::{FactSource, NoFacts};
use crate::authz::given_facts::GivenFacts;
use crate::authz::listing::{self, Listing};
use crate::authz::live_facts::LiveFacts;
use crate::authz::{Authorizer, Permit, Refusal};
use crate::config::{config_path, Settings};
use crate::connect::client::Spent;
use crate::connect::monitor_request::MonitorRequest;
use crate::gateway::build::{self, Dependencies};
use crate::http::server::shutdown_signal;
use crate::telemetry::audit;
use crate::telemetry::metrics::Metrics;

/// Exit code for bad input or an invalid configuration.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "connect-monitor-gateway",
    version,
    about = "Authorizing SigV4 gateway for Amazon Connect MonitorContact"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (default: $CMG_CONFIG, else config/gateway.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate the config, the policy and key files, then exit (0 ok, 2 problems).
    Check {
        /// Config file to check, with the policy and key files it names
        /// (default: $CMG_CONFIG, else config/gateway.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print the policy decision for given claims and request (0 allow, 1 deny, 2 bad input), or with
    /// --list the live contacts the caller may monitor (0 listed, 1 refused, 2 bad input).
    Explain {
        /// Config file whose policy decides (default: $CMG_CONFIG, else
        /// config/gateway.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The caller's token claims, as a JSON object.
        #[arg(long)]
        claims: String,
        #[command(flatten)]
        question: Question,
        /// Connect's facts for Connect-aware grants, as a JSON file:
        /// {"contact": <DescribeContact's Contact>, "users": {"<UserId>": <DescribeUser's User>},
        /// "security_profiles": {"<id>": ["<permission>", …]}, "usernames": {"<username>": "<user id>"},
        /// "live": <aws connect get-current-user-data output>}; every member optional. The AWS CLI's output
        /// is taken as it comes: `aws connect describe-contact` for contact (or as the whole file), describe-user
        /// for each user, list-security-profile-permissions for each profile (all pages: no NextToken),
        /// search-users for usernames, and get-current-user-data for live, which --list needs (every page:
        /// a list of its outputs when there is more than one).
        #[arg(long, value_name = "FILE", conflicts_with = "live")]
        facts: Option<PathBuf>,
        /// Look the facts up in Connect, with the gateway's own AWS credentials.
        #[arg(long)]
        live: bool,
    },
    /// Check the chain of an audit file written with `[audit] chain = true`
    /// (0 it holds, 1 it breaks: the first broken line is named, 2 unreadable).
    VerifyAudit {
        /// The audit file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Run on the embedded default: in-process issuer and Connect stand-in.
    #[cfg(feature = "demo")]
    Demo {
        /// Send the sample requests, print the outcomes, exit 0 only if all are as expected.
        #[arg(long)]
        once: bool,
    },
}

/// What `explain` is asked: a decision on one request, or a listing.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Question {
    /// The MonitorContact request body, as JSON: print the decision on it.
    #[arg(long)]
    pub request: Option<String>,
    /// Print the live contacts of this instance the caller may monitor as themselves, as
    /// GET /contacts/monitorable answers them.
    #[arg(long, value_name = "INSTANCE_ID")]
    pub list: Option<String>,
}

/// Logs: JSON lines on stderr, filtered by `RUST_LOG` (default `info`; the
/// AWS SDK's own chatter, which names the profile's access key id at `info`,
/// only from `warn` unless `RUST_LOG` asks for it).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn load(config: Option<PathBuf>) -> Result<Settings, ExitCode> {
    let chosen = config.is_some() || std::env::var_os("CMG_CONFIG").is_some();
    let path = config_path(config);
    if !chosen && !path.exists() {
        // A newcomer's first run: say how to start rather than only "cannot read".
        eprintln!("{}", how_to_start(&path));
        return Err(ExitCode::from(EXIT_USAGE));
    }
    Settings::load(&path).await.map_err(|problems| {
        for p in &problems.0 {
            eprintln!("{p}");
        }
        ExitCode::from(EXIT_USAGE)
    })
}

/// [`load`] before any runtime of the command's own exists (`check`, and
/// `serve`, whose runtime is sized by the configuration).
fn load_now(config: Option<PathBuf>) -> Result<Settings, ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    match runtime {
        Ok(rt) => rt.block_on(load(config)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// What to do when no configuration was named and the default one is absent.
fn how_to_start(default: &Path) -> String {
    format!(
        "no configuration: no --config, no CMG_CONFIG, and no {} here.\n\
         To start, copy the example, edit its issuer, audiences and instances (and the\n\
         policy file it names, config/policy.example.toml), then check it:\n  \
         cp config/gateway.example.toml config/gateway.toml\n  \
         connect-monitor-gateway check --config config/gateway.toml\n\
         Examples for Okta, Entra ID, Keycloak, Cognito and Auth0 are in config/ (docs/identity-providers.md).\n\
         To try the gateway with nothing set up: connect-monitor-gateway demo",
        default.display()
    )
}

pub fn check(config: Option<PathBuf>) -> ExitCode {
    match load_now(config) {
        Ok(s) => {
            if let Some(warning) = &s.connect.undefined_profile {
                eprintln!("warning: {warning}");
            }
            for warning in s.shared.iter().flat_map(|shared| shared.warnings()) {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: ok ({} issuer(s), {} grant(s))",
                s.config_file.display(),
                s.auth.issuers.len(),
                s.authz.policy.grants.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `verify-audit`: whether the chain of an audit file holds. Names lines by
/// number only, never their content (it may hold identifiers).
pub fn verify_audit(file: &Path) -> ExitCode {
    let verdict = std::fs::File::open(file).and_then(|f| audit::verify(std::io::BufReader::with_capacity(1 << 16, f)));
    match verdict {
        Ok(Ok(lines)) => {
            println!("verify-audit: {lines} lines, chain holds");
            ExitCode::SUCCESS
        }
        Ok(Err(broken)) => {
            println!("verify-audit: {broken}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("verify-audit: cannot read {}: {e}", file.display());
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The decision the gateway would make, made by the same function it uses,
/// with no facts from Connect.
#[cfg(feature = "test-util")]
pub(crate) async fn decide(settings: &Settings, claims: Value, request: &MonitorRequest) -> Result<Permit, Refusal> {
    decide_with(settings, claims, request, &NoFacts).await
}

/// The gateway's authorizer for `settings`, and the identity of a token
/// with these claims.
fn authorizer_for(settings: &Settings, claims: Value) -> (Authorizer, Identity) {
    let authorizer = Authorizer::new(&settings.authz, &settings.connect);
    let text = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let identity = Identity {
        issuer: text("iss"),
        subject: text("sub"),
        claims,
    };
    (authorizer, identity)
}

/// The decision the gateway would make, with Connect's facts from `facts`.
pub(crate) async fn decide_with(
    settings: &Settings,
    claims: Value,
    request: &MonitorRequest,
    facts: &impl FactSource,
) -> Result<Permit, Refusal> {
    let (authorizer, identity) = authorizer_for(settings, claims);
    authorizer.decide(&identity, request, true, facts).await
}

/// The listing the gateway would answer, with Connect's facts from `facts`
/// and the gateway's allowance of pages.
pub(crate) async fn list_with(
    settings: &Settings,
    claims: Value,
    instance_id: &str,
    facts: &impl FactSource,
) -> Result<Listing, Refusal> {
    let (authorizer, identity) = authorizer_for(settings, claims);
    let max_pages = settings.connect.lookups.max_list_pages;
    authorizer.list(&identity, instance_id, facts, max_pages).await
}

/// Reads `--facts FILE`; the problem, naming the file, otherwise.
fn read_facts(file: &Path) -> Result<GivenFacts, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("--facts {}: cannot read: {e}", file.display()))?;
    GivenFacts::parse(&text).map_err(|e| format!("--facts {}: {e}", file.display()))
}

/// `a`, `a and b`, `a, b and c`.
fn listed(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `--list`'s instance id, by the rules of the listing's `instance_id`.
fn listed_instance(instance_id: &str) -> Result<String, String> {
    listing::check_instance_id(instance_id).map_err(|rule| format!("the instance id {rule}"))?;
    Ok(instance_id.to_owned())
}

/// What explain answers: the decision on a request, or a listing.
enum Asked {
    Decide(MonitorRequest),
    List(String),
}

pub async fn explain(
    config: Option<PathBuf>,
    claims: &str,
    question: &Question,
    facts: Option<&Path>,
    live: bool,
) -> ExitCode {
    let settings = match load(config).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let claims: Value = match serde_json::from_str(claims) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            eprintln!("--claims: not a JSON object");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let asked = match (&question.request, &question.list) {
        (Some(request), None) => match MonitorRequest::parse(request.as_bytes()) {
            Ok(r) => Asked::Decide(r),
            Err(e) => {
                eprintln!("--request: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        (None, Some(instance_id)) => match listed_instance(instance_id) {
            Ok(id) => Asked::List(id),
            Err(problem) => {
                eprintln!("--list: {problem}");
                return ExitCode::from(EXIT_USAGE);
            }
        },
        // The command line refuses these first; a caller of this function may not.
        _ => {
            eprintln!("explain: give exactly one of --request and --list");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if live {
        let client = build::lookup_client(&settings).await;
        // One question of Connect: no shared server, an in-process cache and budget.
        let caches = FactCaches::new(settings.connect.lookups, None, Arc::new(Metrics::new()));
        let deadline = Instant::now() + settings.server.request_timeout;
        let spent = Spent::default();
        let facts = LiveFacts::new(&client, &caches, deadline, &spent);
        return answer(&settings, claims, &asked, facts).await;
    }
    match facts {
        Some(file) => match read_facts(file) {
            Ok(given) => answer(&settings, claims, &asked, given).await,
            Err(problem) => {
                eprintln!("{problem}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        None => answer(&settings, claims, &asked, NoFacts).await,
    }
}

async fn answer(settings: &Settings, claims: Value, asked: &Asked, facts: impl FactSource) -> ExitCode {
    match asked {
        Asked::Decide(request) => explain_with(settings, claims, request, facts).await,
        Asked::List(instance_id) => explain_list(settings, claims, instance_id, facts).await,
    }
}

/// Decides with `facts`, prints the verdict (with the contact's agent when a
/// contact was looked at) and gives explain's exit code.
async fn explain_with(
    settings: &Settings,
    claims: Value,
    request: &MonitorRequest,
    facts: impl FactSource,
) -> ExitCode {
    let facts = Recorded::new(facts);
    let (mut verdict, code) = match decide_with(settings, claims, request, &facts).await {
        Ok(permit) => (json!({"decision": "allow", "grant": permit.grant}), ExitCode::SUCCESS),
        Err(refusal) => match refused(refusal, &facts, "the grant") {
            Ok(verdict) => (verdict, ExitCode::from(1)),
            Err(code) => return code,
        },
    };
    if let Some(agent) = facts.agent_id() {
        verdict["agent_id"] = json!(agent);
    }
    println!("{verdict}");
    code
}

/// Lists with `facts`, prints the listing as the route's `data`, and gives
/// explain's exit code: 0 for a listing, even an empty one.
async fn explain_list(settings: &Settings, claims: Value, instance_id: &str, facts: impl FactSource) -> ExitCode {
    let facts = Recorded::new(facts);
    match list_with(settings, claims, instance_id, &facts).await {
        Ok(listing) => {
            println!("{}", listing.data(instance_id));
            ExitCode::SUCCESS
        }
        Err(refusal) => match refused(refusal, &facts, "the listing") {
            Ok(verdict) => {
                println!("{verdict}");
                ExitCode::from(1)
            }
            Err(code) => code,
        },
    }
}

/// What explain tells of a refusal: the verdict to print (exit 1); or exit
/// 2 once the problem is on stderr, naming the facts `needing` needs and
/// was not given.
fn refused<F: FactSource>(refusal: Refusal, facts: &Recorded<F>, needing: &str) -> Result<Value, ExitCode> {
    match refusal {
        Refusal::Denied(reason) => Ok(json!({"decision": "deny", "reason": reason.as_str()})),
        // What the gateway answers 503 for: its own configuration, not the caller.
        Refusal::NoRegion => {
            Ok(json!({"decision": "unavailable", "status": 503, "reason": "no region is configured for this instance"}))
        }
        // A grant that passed its static checks needs Connect's facts.
        Refusal::FactsMissing(what) => {
            let mut missing = facts.missing();
            if missing.is_empty() {
                missing.push(what);
            }
            let them = if missing.len() == 1 { "it" } else { "them" };
            let live = match missing.iter().any(|what| from_live_answer(what)) {
                true => {
                    " (a listing's agents and their contacts as aws connect get-current-user-data output, under live)"
                }
                false => "",
            };
            eprintln!(
                "explain: {needing} needs {}; give {them} in --facts{live}",
                listed(&missing)
            );
            Err(ExitCode::from(EXIT_USAGE))
        }
        Refusal::LookupFailed(failure) => {
            eprintln!("explain: {}", crate::telemetry::error_chain(&failure));
            Err(ExitCode::from(EXIT_USAGE))
        }
        refused @ Refusal::ControlCharacterInClaim(_) => {
            eprintln!("--claims: {refused}");
            Err(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// Whether a missing fact is one a facts file gives only in `live`: a
/// subtree's or the instance's users, or agents' current contacts (as
/// `facts::members_named` and `facts::live_named` name them).
fn from_live_answer(what: &str) -> bool {
    [
        "the users of hierarchy group ",
        "every user of the instance",
        "the current contacts of ",
    ]
    .iter()
    .any(|named| what.starts_with(named))
}

/// A runtime of `workers` threads (tokio's multi-thread scheduler).
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("cmg-worker")
        .enable_all()
        .build()
}

/// Runs a command other than `serve` on a small runtime of its own.
pub fn on_runtime(command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    run_on(2, command)
}

fn run_on(workers: usize, command: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match runtime(workers) {
        Ok(rt) => rt.block_on(command),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `serve`: loads the configuration, then runs the gateway on a runtime of
/// `server.worker_threads` workers (never one per core of the node).
pub fn serve(config: Option<PathBuf>) -> ExitCode {
    let settings = match load_now(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    run_on(settings.server.worker_threads, serve_settings(settings))
}

async fn serve_settings(settings: Settings) -> ExitCode {
    let running = match build::start(&settings, Dependencies::default()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    shutdown_signal().await;
    tracing::info!(grace = ?settings.server.shutdown_grace, "shutting down: draining in-flight requests");
    running.shutdown(settings.server.shutdown_grace).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

#[cfg(feature = "demo")]
pub async fn demo(once: bool) -> ExitCode {
    match crate::demo::run(once).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
