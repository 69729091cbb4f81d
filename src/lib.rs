//! connect-monitor-gateway: an authorizing SigV4 gateway in front of Amazon
//! Connect's MonitorContact (docs/README.md).
//!
//! The layers, each a folder: `http` (the server edge), `gateway` (the
//! request path and its composition root), `auth` (who the caller is),
//! `authz` (what it may do), `connect` (calling Amazon Connect), `config`
//! (the file as a whole), `telemetry` (audit and metrics), `check` (how
//! configuration problems are named), `cli`, and `demo` (stand-ins and keys
//! that exist only with the default-on `demo` feature); beside them `ids`
//! (random request ids and client tokens) and `json` (strict JSON reading).
//! Only `cli` is public: the binary is the product. Tests, benchmark drivers
//! and fuzz targets reach further through `test_util` (feature `test-util`).
#![cfg_attr(feature = "test-util", warn(unreachable_pub))]

mod auth;
mod authz;
mod check;
pub mod cli;
mod config;
mod connect;
#[cfg(feature = "demo")]
mod demo;
mod gateway;
mod http;
mod ids;
mod json;
mod shared;
mod telemetry;
#[cfg(feature = "test-util")]
pub mod test_util;

/// Sent as `user-agent` on every outbound call.
const USER_AGENT: &str = concat!("connect-monitor-gateway/", env!("CARGO_PKG_VERSION"));
