//! What the gateway tells its operators: the audit trail (one line per API
//! request) and the Prometheus metrics. Used by every layer; uses none.

pub mod audit;
pub mod metrics;
pub mod trace_context;
