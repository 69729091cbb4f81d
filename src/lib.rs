//! connect-monitor-gateway: an authorizing SigV4 gateway in front of Amazon
//! Connect's MonitorContact. See README.md and CONTRACT.md.
//!
//! The layers, each a folder: `http` (the server edge), `gateway` (the
//! request path and its composition root), `auth` (who the caller is),
//! `authz` (what it may do), `connect` (calling Amazon Connect), `config`
//! (the file as a whole), `telemetry` (audit and metrics), `check` (how
//! configuration problems are named), `cli`, and `demo` (stand-ins and keys
//! that exist only with the default-on `demo` feature); beside them `ids`
//! (random request ids and client tokens).

pub mod auth;
pub mod authz;
pub mod check;
pub mod cli;
pub mod config;
pub mod connect;
#[cfg(feature = "demo")]
pub mod demo;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod telemetry;

/// Sent as `user-agent` on every outbound call.
pub const USER_AGENT: &str = concat!("connect-monitor-gateway/", env!("CARGO_PKG_VERSION"));
