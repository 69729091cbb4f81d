//! The MonitorContact request body: strict parsing, every constraint of
//! Connect's model (REFERENCE.md), and the re-serialization sent upstream.

use serde::{Deserialize, Serialize};
use std::fmt;

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

/// The body as the caller wrote it. serde's derive rejects unknown members
/// (`deny_unknown_fields`) and members given twice (`duplicate field`), which
/// is what stops a second `UserId` from hiding behind the first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest {
    #[serde(rename = "InstanceId")]
    instance_id: Option<String>,
    #[serde(rename = "ContactId")]
    contact_id: Option<String>,
    #[serde(rename = "UserId")]
    user_id: Option<String>,
    #[serde(rename = "AllowedMonitorCapabilities")]
    allowed_monitor_capabilities: Option<Vec<String>>,
    #[serde(rename = "ClientToken")]
    client_token: Option<String>,
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

fn required(member: &str, value: Option<String>) -> Result<String, InvalidRequest> {
    value.ok_or_else(|| InvalidRequest(format!("{member} is required")))
}

impl MonitorRequest {
    /// Parses and validates a body. Never echoes the caller's values back.
    pub fn parse(body: &[u8]) -> Result<MonitorRequest, InvalidRequest> {
        // serde would also take a struct from a JSON array (`["i","c","u"]`);
        // the model only has the object form, so nothing else gets that far.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(InvalidRequest("body must be a JSON object".into()));
        }
        let wire: WireRequest = serde_json::from_slice(body).map_err(|e| {
            // serde's message names the member ("unknown field `X`", "duplicate
            // field `UserId`", "invalid type: …"); its position helps too.
            InvalidRequest(format!("body is not a valid MonitorContact request: {e}"))
        })?;
        let instance_id = required("InstanceId", wire.instance_id)?;
        let contact_id = required("ContactId", wire.contact_id)?;
        let user_id = required("UserId", wire.user_id)?;
        check_length("InstanceId", &instance_id, 1, 100)?;
        check_length("ContactId", &contact_id, 1, 256)?;
        check_length("UserId", &user_id, 1, 256)?;
        let capabilities = match wire.allowed_monitor_capabilities {
            None => vec![Capability::SilentMonitor],
            Some(list) => {
                if list.len() > MAX_CAPABILITIES {
                    return Err(InvalidRequest(format!(
                        "AllowedMonitorCapabilities may hold at most {MAX_CAPABILITIES} items (got {})",
                        list.len()
                    )));
                }
                list.iter()
                    .map(|c| {
                        Capability::parse(c).ok_or_else(|| {
                            InvalidRequest(
                                "AllowedMonitorCapabilities items must be SILENT_MONITOR or BARGE".to_string(),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        if let Some(token) = &wire.client_token {
            check_length("ClientToken", token, 1, 500)?;
        }
        Ok(MonitorRequest {
            instance_id,
            contact_id,
            user_id,
            capabilities,
            client_token: wire.client_token,
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
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<MonitorRequest, InvalidRequest> {
        MonitorRequest::parse(s.as_bytes())
    }

    #[test]
    fn missing_capabilities_means_silent_monitor() {
        let r = parse(r#"{"InstanceId":"i","ContactId":"c","UserId":"u"}"#).unwrap();
        assert_eq!(r.capabilities, vec![Capability::SilentMonitor]);
        assert_eq!(r.client_token, None);
    }

    #[test]
    fn connect_body_is_rebuilt_with_token_and_capabilities() {
        let r = parse(r#"{"UserId":"u","InstanceId":"i","ContactId":"c"}"#).unwrap();
        let body = String::from_utf8(r.to_connect_body("t")).unwrap();
        assert_eq!(
            body,
            r#"{"InstanceId":"i","ContactId":"c","UserId":"u","AllowedMonitorCapabilities":["SILENT_MONITOR"],"ClientToken":"t"}"#
        );
    }

    #[test]
    fn array_form_of_the_struct_is_refused() {
        assert_eq!(
            parse(r#"["i","c","u",null,null]"#),
            Err(InvalidRequest("body must be a JSON object".into()))
        );
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let id = "é".repeat(100);
        assert!(parse(&format!(r#"{{"InstanceId":"{id}","ContactId":"c","UserId":"u"}}"#)).is_ok());
    }
}
