//! The MonitorContact request body: strict parsing, every constraint of
//! Connect's model (docs/connect.md, "MonitorContact"), and the re-serialization sent upstream.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A monitoring capability of Connect's `MonitorCapability` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Capability {
    #[serde(rename = "SILENT_MONITOR")]
    SilentMonitor,
    #[serde(rename = "BARGE")]
    Barge,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::SilentMonitor => "SILENT_MONITOR",
            Capability::Barge => "BARGE",
        }
    }

    pub fn parse(s: &str) -> Option<Capability> {
        match s {
            "SILENT_MONITOR" => Some(Capability::SilentMonitor),
            "BARGE" => Some(Capability::Barge),
            _ => None,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that passed every check; the only thing the gateway forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorRequest {
    pub instance_id: String,
    pub contact_id: String,
    pub user_id: String,
    /// What the caller asked for; `["SILENT_MONITOR"]` when it sent none.
    pub capabilities: Vec<Capability>,
    pub client_token: Option<String>,
}

/// Why a body was refused; the text names the member and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

impl InvalidRequest {
    fn new(message: impl Into<String>) -> InvalidRequest {
        InvalidRequest(message.into())
    }
}

/// An identifier is printable: a control character (NUL, CR, LF, ESC, DEL,
/// the C1 range) has no place in an id, and it would reach Connect's path,
/// the policy's comparisons and the audit.
fn no_control_characters(member: &str, value: &str) -> Result<(), InvalidRequest> {
    match value.chars().any(char::is_control) {
        true => Err(InvalidRequest(format!("{member} must not contain control characters"))),
        false => Ok(()),
    }
}

/// The members of Connect's model, in its order; member names are
/// case-sensitive, so `userId` is not one of them.
const MEMBERS: [&str; 5] = [
    "InstanceId",
    "ContactId",
    "UserId",
    "AllowedMonitorCapabilities",
    "ClientToken",
];

const MAX_CAPABILITIES: usize = 2;

fn check_length(member: &str, value: &str, min: usize, max: usize) -> Result<(), InvalidRequest> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(InvalidRequest(format!(
            "{member} must be {min} to {max} characters long (got {n})"
        )));
    }
    Ok(())
}

/// Reads the body as one JSON object with no member name given twice at any
/// depth. serde's own messages are never used: they quote the caller's bytes
/// (an invented member's name, a value of the wrong type), and the 400 text
/// goes back to a browser and into logs. Every message here is ours.
fn read_object(body: &[u8]) -> Result<Map<String, Value>, InvalidRequest> {
    use crate::json::{parse_object, StrictJsonError as E};
    parse_object(body).map_err(|e| match e {
        E::NotAnObject => InvalidRequest::new("body must be a JSON object"),
        // Only a model member is named: an invented name is the caller's text.
        E::Duplicate(duplicate) => match MEMBERS.iter().find(|m| **m == duplicate.name) {
            Some(member) if duplicate.top_level => InvalidRequest(format!("{member} is given more than once")),
            _ => InvalidRequest::new("a member is given more than once"),
        },
        E::Syntax { line, column } if line > 0 => {
            InvalidRequest(format!("body is not valid JSON (line {line}, column {column})"))
        }
        E::Syntax { .. } => InvalidRequest::new("body is not valid JSON"),
        E::TrailingCharacters => InvalidRequest::new("body has trailing characters after the JSON object"),
    })
}

/// A required string member: present, and a string (`null` is not absent).
fn required_string(members: &mut Map<String, Value>, member: &str) -> Result<String, InvalidRequest> {
    match members.remove(member) {
        None => Err(InvalidRequest(format!("{member} is required"))),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(InvalidRequest(format!("{member} must be a string"))),
    }
}

/// `ClientToken`: a string, or left out; `null` is neither.
fn client_token(value: Option<Value>) -> Result<Option<String>, InvalidRequest> {
    match value {
        None => Ok(None),
        Some(Value::String(token)) => {
            check_length("ClientToken", &token, 1, 500)?;
            Ok(Some(token))
        }
        Some(_) => Err(InvalidRequest::new("ClientToken must be a string, or left out")),
    }
}

/// `AllowedMonitorCapabilities`: left out (meaning `["SILENT_MONITOR"]`), or
/// one or two different capabilities. An empty list passes every grant's
/// capability check without asking for anything, and a repeat means nothing
/// in the model, so neither is taken (nor forwarded to Connect).
fn capabilities(value: Option<Value>) -> Result<Vec<Capability>, InvalidRequest> {
    let not_a_list = || InvalidRequest::new("AllowedMonitorCapabilities must be an array of strings, or left out");
    let items = match value {
        None => return Ok(vec![Capability::SilentMonitor]),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(not_a_list()),
    };
    let names = items
        .iter()
        .map(Value::as_str)
        .collect::<Option<Vec<&str>>>()
        .ok_or_else(not_a_list)?;
    if names.is_empty() {
        return Err(InvalidRequest::new(
            "AllowedMonitorCapabilities must list at least one capability",
        ));
    }
    if names.len() > MAX_CAPABILITIES {
        return Err(InvalidRequest(format!(
            "AllowedMonitorCapabilities may hold at most {MAX_CAPABILITIES} items (got {})",
            names.len()
        )));
    }
    let mut capabilities = Vec::with_capacity(names.len());
    for name in names {
        let capability = Capability::parse(name)
            .ok_or_else(|| InvalidRequest::new("AllowedMonitorCapabilities items must be SILENT_MONITOR or BARGE"))?;
        if capabilities.contains(&capability) {
            return Err(InvalidRequest::new(
                "AllowedMonitorCapabilities must not list a capability twice",
            ));
        }
        capabilities.push(capability);
    }
    Ok(capabilities)
}

impl MonitorRequest {
    /// Parses and validates a body. Never echoes the caller's values back,
    /// nor the names of members it made up.
    pub fn parse(body: &[u8]) -> Result<MonitorRequest, InvalidRequest> {
        let mut members = read_object(body)?;
        if members.keys().any(|name| !MEMBERS.contains(&name.as_str())) {
            return Err(InvalidRequest(format!(
                "body has a member that MonitorContact does not define (allowed: {})",
                MEMBERS.join(", ")
            )));
        }
        let instance_id = required_string(&mut members, "InstanceId")?;
        let contact_id = required_string(&mut members, "ContactId")?;
        let user_id = required_string(&mut members, "UserId")?;
        check_length("InstanceId", &instance_id, 1, 100)?;
        check_length("ContactId", &contact_id, 1, 256)?;
        check_length("UserId", &user_id, 1, 256)?;
        for (member, value) in [
            ("InstanceId", &instance_id),
            ("ContactId", &contact_id),
            ("UserId", &user_id),
        ] {
            no_control_characters(member, value)?;
        }
        let capabilities = capabilities(members.remove("AllowedMonitorCapabilities"))?;
        let client_token = client_token(members.remove("ClientToken"))?;
        Ok(MonitorRequest {
            instance_id,
            contact_id,
            user_id,
            capabilities,
            client_token,
        })
    }

    /// The body sent to Connect: rebuilt from the validated fields, never the
    /// caller's bytes, with the capabilities that were authorized spelled out.
    pub fn to_connect_body(&self, client_token: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct ConnectBody<'a> {
            #[serde(rename = "InstanceId")]
            instance_id: &'a str,
            #[serde(rename = "ContactId")]
            contact_id: &'a str,
            #[serde(rename = "UserId")]
            user_id: &'a str,
            #[serde(rename = "AllowedMonitorCapabilities")]
            capabilities: &'a [Capability],
            #[serde(rename = "ClientToken")]
            client_token: &'a str,
        }
        serde_json::to_vec(&ConnectBody {
            instance_id: &self.instance_id,
            contact_id: &self.contact_id,
            user_id: &self.user_id,
            capabilities: &self.capabilities,
            client_token,
        })
        .expect("serializing plain strings cannot fail")
    }
}

#[cfg(test)]
#[path = "monitor_request_tests.rs"]
mod tests;
