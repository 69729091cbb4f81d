//! The MonitorContact operation: its route, the body sent (rebuilt from the
//! validated request, with a ClientToken), and the answer it returns. The
//! gateway serves it at the same path, so callers move over unchanged.

use std::time::Instant;

use serde::Deserialize;

use super::client::{Call, ConnectClient, ConnectFailure, Spent};
use super::credentials::SourceIdentity;
use super::endpoint::Route;
use super::monitor_request::MonitorRequest;
use super::operation::Operation;

const OPERATION: Operation = Operation::MonitorContact;
/// Connect's route for MonitorContact; the gateway's API path too.
pub(crate) const PATH: &str = OPERATION.route();

/// What a successful MonitorContact call gave back.
#[derive(Debug, Clone)]
pub(crate) struct Monitored {
    pub(crate) contact_id: String,
    pub(crate) contact_arn: String,
    /// The ClientToken the call was made with (the caller's, or one we made).
    pub(crate) client_token: String,
    pub(crate) status: u16,
    pub(crate) aws_request_id: Option<String>,
    pub(crate) attempts: u32,
}

/// The caller's ClientToken, or a fresh UUIDv4 as the SDK would make: every
/// retry of this call then carries the same one, so Connect acts at most once.
pub(crate) fn client_token(request: &MonitorRequest) -> String {
    request.client_token.clone().unwrap_or_else(crate::ids::random_uuid)
}

/// Calls MonitorContact for a validated, authorized request, signed in the
/// supervisor's session when the instance names one (`signed_as`).
pub(crate) async fn monitor_contact(
    client: &ConnectClient,
    route: &Route,
    request: &MonitorRequest,
    client_token: &str,
    signed_as: Option<&SourceIdentity>,
    deadline: Instant,
    spent: &Spent,
) -> Result<Monitored, ConnectFailure> {
    let call =
        Call::post(OPERATION, PATH.to_owned(), request.to_connect_body(client_token)).signed_as(signed_as.cloned());
    let reply = client.send(route, &call, deadline, spent).await?;
    #[derive(Deserialize)]
    struct Output {
        #[serde(rename = "ContactId")]
        contact_id: String,
        #[serde(rename = "ContactArn")]
        contact_arn: String,
    }
    let output: Output =
        serde_json::from_slice(&reply.body).map_err(|_| ConnectFailure::bad_response(OPERATION, &reply))?;
    Ok(Monitored {
        contact_id: output.contact_id,
        contact_arn: output.contact_arn,
        client_token: client_token.to_owned(),
        status: reply.status,
        aws_request_id: reply.aws_request_id,
        attempts: reply.attempts,
    })
}
