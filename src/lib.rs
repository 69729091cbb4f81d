//! connect-monitor-gateway: an authorizing SigV4 gateway in front of Amazon
//! Connect's MonitorContact. See README.md and CONTRACT.md.

pub mod admin;
pub mod audit;
pub mod authentication;
pub mod cli;
pub mod config;
pub mod connect_standin;
pub mod cors;
pub mod credentials;
pub mod demo;
pub mod endpoint;
pub mod errors;
pub mod http_client;
pub mod issuer_standin;
pub mod jwks;
pub mod metrics;
pub mod monitor_request;
pub mod pipeline;
pub mod policy;
pub mod rate_limit;
pub mod server;
pub mod signing;
pub mod tls;
pub mod upstream;

/// Sent as `user-agent` on every outbound call.
pub const USER_AGENT: &str = concat!("connect-monitor-gateway/", env!("CARGO_PKG_VERSION"));
