//! The integration tests: one crate, one binary. Each module holds one
//! subject; the real gateway stack runs against in-process stand-ins for the
//! identity provider and for Amazon Connect on ephemeral loopback ports
//! (`support`). Helpers the tests need from the gateway come through its
//! `test-util` feature (`connect_monitor_gateway::test_util`).

/// The stand-ins, the harness that starts the gateway on them, and helpers.
mod support;

// The request path, end to end.
/// CORS proven in a real browser (headless Chromium).
mod browser_cors;
/// CORS through the real stack.
mod cors;
/// The demo's dashboard page in a real browser (headless Chromium).
mod demo_dashboard;
/// The dry run, `POST /contact/monitor/check`.
mod dry_run;
/// What the HTTP layer answers on its own, before the gateway sees a request.
mod http_layer;
/// Identifiers and the caller's claim hold no control characters.
mod identifier_rules;
/// The whole request path, black-box.
mod request_path;
/// Every constraint of the MonitorContact model, by family.
mod validation_rules;

// Authentication.
/// Real identity providers' access tokens against their example configs.
mod identity_providers;
/// Issuer keys over time: rotation, unknown `kid`, outages.
mod jwks_rotation;
/// OIDC discovery (`discovery = true`).
mod oidc_discovery;
/// Tokens at the edges of validity that must still be accepted.
mod token_leeway;
/// The gateway's own limit on a bearer token's size.
mod token_size;
/// A token that checked out is not verified again while it is reused.
mod verified_tokens;
/// The Wycheproof JOSE vectors, every one run through the token verifier.
mod wycheproof;

// Authorization.
/// Every denial reason of the policy, through the real stack.
mod authorization_rules;
/// The gateway and `explain` decide through the same function.
mod authorization_seam;
/// Connect-aware grants against the SigV4-checking Connect stand-in.
mod connect_aware;
/// `explain --facts FILE` agrees with the gateway.
mod explain_facts;
/// Grants that need no facts from Connect are tried first.
mod grant_order;
/// The listing of monitorable contacts, `GET /contacts/monitorable`.
mod listing;
/// The caches of Connect's facts.
mod lookup_cache;
/// `require_reason` and the `Monitor-Reason` header.
mod monitor_reason;

// Calling Connect.
/// Instances signed as a role of their own (STS AssumeRole).
mod assumed_roles;
/// Connect's answers and failures, through the real stack.
mod connect_errors;
/// The gateway's AWS credentials: cached, refreshed, never per request.
mod credentials;
/// A request whose handling panics is answered, audited and counted out.
mod panic_safety;
/// Faults and load: retries, their quota, load shedding, hang-ups.
mod resilience;
/// MonitorContact signed in the supervisor's session (STS `SourceIdentity`).
mod source_identity;
/// TLS on the API listener, and outbound calls through proxies and CAs.
mod tls_and_proxy;

// Hostile input, by class (docs/security.md).
/// Every class of hostile input as a named case.
mod security;
/// The HTTP edge: smuggling, framing, header and body limits, slow clients.
mod security_http_edge;
/// The claims of a well-signed token.
mod security_token_claims;
/// Tokens as written: the header, the segments, the JSON.
mod security_token_format;
/// Algorithms, signatures and where keys come from.
mod security_token_signatures;

// The fleet: replicas sharing state and Connect's quotas.
/// The Connect stand-in throttles per account and Region, as Connect does.
mod connect_standin_quotas;
/// Fleets: one Connect budget and one cache for every replica, on a real redis-server.
mod fleet;
/// The real redis-server the fleet tests share state through.
mod shared_server_harness;

// Operating it.
/// The shape of src/: no import cycles, main.rs only wires.
mod architecture;
/// The tamper-evident audit: `[audit] chain` and `verify-audit`.
mod audit_chain;
/// The real binary: `check`, `explain`, `--version`, `demo --once`, `serve`.
mod binary;
/// The deployment examples under deploy/ agree with each other and the gateway.
mod deploy_manifests;
/// Every configuration shipped under config/ loads.
mod example_configs;
/// `/metrics` after a mix of requests.
mod metrics;
/// deploy/openapi.yaml stays true to real responses.
mod openapi;
/// The README's quick start, run as written.
mod quick_start;
/// Traces exported over OTLP, and a collector that is down or hung.
mod traces;
