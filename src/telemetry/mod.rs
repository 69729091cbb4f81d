//! What the gateway tells its operators: the audit trail (one line per API
//! request), the Prometheus metrics and, when a collector is configured,
//! traces. Used by every layer; uses none.

pub(crate) mod audit;
pub(crate) mod metrics;
pub(crate) mod trace_context;
pub(crate) mod traces;

/// An error with its causes, for logs: `connect:DescribeUser failed: Connect
/// could not be reached: client error (Connect): tcp connect error: …`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
