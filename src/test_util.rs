//! What the integration tests, the benchmark drivers and the fuzz targets
//! reach inside the gateway for, with the `test-util` feature only: the
//! stand-ins, the seams the harness builds the gateway with, and the parts
//! tested on their own. Nothing here is part of the product.

// Building and running the gateway as the binary does, with parts swapped.
pub use crate::check::Environment;
pub use crate::config::Settings;
pub use crate::connect::retry::RetrySettings;
pub use crate::gateway::build::{start, start_on, Dependencies, PanicHook, RunningGateway};
pub use crate::telemetry::audit::AuditSink;
pub use crate::telemetry::metrics::Metrics;

// The stand-ins for an identity provider and for Amazon Connect.
pub use crate::demo::connect_standin::{percent_decode, verify_sigv4_for, ConnectStandIn, Received, Reply};
pub use crate::demo::issuer_standin::{jwks_of, IssuerStandIn, SigningKey};
pub use crate::demo::RunningDemo;

// The HTTP edge.
pub use crate::http::client::{build as http_client, Egress, HttpClient};
pub use crate::http::server::{serve, Listening};
pub use crate::http::tls::{read_certs, server_config, ReloadableTls, TlsFiles};
pub use crate::telemetry::error_chain;

// Authentication, as the fuzz targets and the Wycheproof vectors drive it.
pub use crate::auth::issuer::{parse_algorithm, KeySource};
pub use crate::auth::jwks::{parse as parse_jwks, KeySet};
pub use crate::auth::token::{parse_strict_object, verify_jws, CompactJws};

// Authorization, as `explain` and the gateway share it.
pub use crate::connect::monitor_request::MonitorRequest;
pub use crate::connect::settings::Instance;

/// What `explain` decides with no facts from Connect: the allowing grant, or
/// the refusal as explain names it (a deny reason's wire name, or why no
/// decision could be made).
pub async fn decide(
    settings: &Settings,
    claims: serde_json::Value,
    request: &MonitorRequest,
) -> Result<String, String> {
    match crate::cli::decide(settings, claims, request).await {
        Ok(permit) => Ok(permit.grant),
        Err(crate::authz::Refusal::Denied(reason)) => Err(reason.as_str().to_owned()),
        Err(other) => Err(other.to_string()),
    }
}
