//! What the gateway tells its operators: the audit trail (one line per API
//! request) and the Prometheus metrics. Used by every layer; uses none.

pub(crate) mod audit;
pub(crate) mod metrics;
pub(crate) mod trace_context;
