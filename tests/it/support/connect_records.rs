//! Connect's records for the Connect-aware tests: a supervisor (`user-1`,
//! also the caller), a contact whose agent sits in named hierarchy groups
//! (on queue `q-1`), and a grant for the `supervisors` group with rules added.

use serde_json::{json, Value};

use super::{Answer, Harness, Options};

/// The supervisor (`user-1`, who is also the caller) and a contact whose
/// agent sits in `g-team` under `g-site`, on queue `q-1`.
pub const SUPERVISOR: &str = "user-1";

pub fn group_arn(id: &str) -> String {
    format!("arn:aws:connect:eu-west-2:123456789012:instance/inst-1/agent-group/{id}")
}

pub fn contact(agent: Option<&str>, groups: &[&str]) -> Value {
    let levels: serde_json::Map<String, Value> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("Level{}", i + 1), json!({"Arn": group_arn(g)})))
        .collect();
    let mut contact = json!({"Id": "contact-1", "Channel": "VOICE", "QueueInfo": {"Id": "q-1"}});
    if let Some(agent) = agent {
        contact["AgentInfo"] = json!({"Id": agent, "HierarchyGroups": levels});
    }
    contact
}

pub fn supervisor(group: Option<&str>, profiles: &[&str]) -> Value {
    let mut user = json!({"Id": SUPERVISOR, "Username": "sup@example.com", "SecurityProfileIds": profiles});
    if let Some(group) = group {
        user["HierarchyGroupId"] = json!(group);
    }
    user
}

/// One grant for the `supervisors` group, with `rules` added.
pub fn grant(rules: &str) -> String {
    format!(
        "[[grant]]\nname = \"connect-aware\"\nclaims = {{ groups = \"supervisors\" }}\ninstances = [\"*\"]\n\
         capabilities = [\"SILENT_MONITOR\", \"BARGE\"]\nas_user = \"self\"\n{rules}\n"
    )
}

pub async fn harness(policy: String) -> Harness {
    Harness::with(Options {
        policy,
        ..Options::default()
    })
    .await
}

/// Monitors `contact-1` as the supervisor, asking for `capabilities`.
pub async fn monitor(h: &Harness, capabilities: &[&str]) -> Answer {
    let body = json!({"InstanceId": "inst-1", "ContactId": "contact-1", "UserId": SUPERVISOR,
                      "AllowedMonitorCapabilities": capabilities});
    h.monitor(Some(&h.supervisor_token()), &body.to_string()).await
}
