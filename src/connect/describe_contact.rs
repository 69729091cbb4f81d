//! The DescribeContact operation (docs/connect.md, "Lookups"): a signed GET of
//! `/contacts/{InstanceId}/{ContactId}`, read for the contact's agent, the
//! agent's hierarchy groups and the contact's queue.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{Call, ConnectFailure, Lookup};
use super::endpoint::path_label;
use super::operation::Operation;

/// The hierarchy levels of `AgentInfo.HierarchyGroups`, top first.
const LEVELS: [&str; 5] = ["Level1", "Level2", "Level3", "Level4", "Level5"];

/// What marks a hierarchy group's id in its ARN
/// (`arn:aws:connect:{region}:{account}:instance/{instance}/agent-group/{groupId}`).
const GROUP_MARK: &str = "agent-group/";

/// The facts of a contact that Connect-aware authorization reads (and the
/// shape the shared server keeps them in: every member, nothing else).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContactFacts {
    /// The user id of the agent; `None` until an agent has accepted the contact.
    pub(crate) agent_id: Option<String>,
    /// The agent's hierarchy group ids, Level1 first; absent levels are skipped.
    pub(crate) agent_groups: Vec<String>,
    pub(crate) queue_id: Option<String>,
}

/// Reads DescribeContact's `Contact` object. Every member is optional, and
/// anything that is not what Connect documents counts as absent: a fact we
/// cannot read can only narrow what a grant allows, never widen it.
pub(crate) fn contact_facts(contact: &Value) -> ContactFacts {
    let agent = contact.get("AgentInfo");
    let groups = agent.and_then(|a| a.get("HierarchyGroups"));
    ContactFacts {
        agent_id: agent.and_then(|a| text(a, "Id")),
        agent_groups: LEVELS
            .iter()
            .filter_map(|level| groups?.get(level)?.get("Arn")?.as_str())
            .filter_map(group_id)
            .map(str::to_owned)
            .collect(),
        queue_id: contact.get("QueueInfo").and_then(|q| text(q, "Id")),
    }
}

/// A non-empty string member; an empty id names nobody.
pub(crate) fn text(object: &Value, member: &str) -> Option<String> {
    object
        .get(member)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The group id in a hierarchy group's ARN; `None` for any other ARN.
fn group_id(arn: &str) -> Option<&str> {
    arn.split_once(GROUP_MARK).map(|(_, id)| id).filter(|id| !id.is_empty())
}

/// The request path: the bare instance id and the contact id, each a path label.
pub(crate) fn path(instance_id: &str, contact_id: &str) -> String {
    format!("/contacts/{}/{}", path_label(instance_id), path_label(contact_id))
}

/// Describes one contact of an instance.
pub(crate) async fn describe_contact(at: Lookup<'_>, contact_id: &str) -> Result<ContactFacts, ConnectFailure> {
    let operation = Operation::DescribeContact;
    let reply = at.send(&Call::get(operation, path(at.instance_id, contact_id))).await?;
    // Without a `Contact` object there is no contact to read: reading it as
    // one with no agent would put a wrong fact behind the decision.
    let output: Value =
        serde_json::from_slice(&reply.body).map_err(|_| ConnectFailure::bad_response(operation, &reply))?;
    match output.get("Contact") {
        Some(contact) if contact.is_object() => Ok(contact_facts(contact)),
        _ => Err(ConnectFailure::bad_response(operation, &reply)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group_arn(id: &str) -> String {
        format!("arn:aws:connect:eu-west-2:123456789012:instance/inst-1/agent-group/{id}")
    }

    #[test]
    fn labels_are_percent_encoded_in_the_path() {
        assert_eq!(path("inst-1", "a b/c"), "/contacts/inst-1/a%20b%2Fc");
        assert_eq!(
            path("arn:aws:connect:eu-west-2:1:instance/i", "c"),
            "/contacts/arn%3Aaws%3Aconnect%3Aeu-west-2%3A1%3Ainstance%2Fi/c"
        );
    }

    #[test]
    fn the_agent_its_groups_in_level_order_and_the_queue_are_read() {
        let contact = json!({
            "Id": "c-1",
            "AgentInfo": {
                "Id": "agent-1",
                "HierarchyGroups": {
                    "Level3": {"Arn": group_arn("g3")},
                    "Level1": {"Arn": group_arn("g1")},
                    "Level2": {"Arn": group_arn("g2")},
                },
            },
            "QueueInfo": {"Id": "queue-1", "EnqueueTimestamp": 1.7e9},
        });
        assert_eq!(
            contact_facts(&contact),
            ContactFacts {
                agent_id: Some("agent-1".into()),
                agent_groups: vec!["g1".into(), "g2".into(), "g3".into()],
                queue_id: Some("queue-1".into()),
            }
        );
    }

    #[test]
    fn a_contact_without_agent_info_has_no_agent_facts() {
        let contact = json!({"Id": "c-1", "QueueInfo": {"Id": "queue-1"}});
        assert_eq!(
            contact_facts(&contact),
            ContactFacts {
                queue_id: Some("queue-1".into()),
                ..ContactFacts::default()
            }
        );
        assert_eq!(contact_facts(&json!({})), ContactFacts::default());
        assert_eq!(contact_facts(&json!("not an object")), ContactFacts::default());
    }

    #[test]
    fn absent_levels_and_arns_of_anything_but_a_group_are_skipped() {
        let contact = json!({
            "AgentInfo": {
                "Id": "agent-1",
                "HierarchyGroups": {
                    "Level1": {"Arn": group_arn("g1")},
                    "Level2": {"Arn": "arn:aws:connect:eu-west-2:123456789012:instance/inst-1/queue/q"},
                    "Level4": {"Arn": group_arn("g4")},
                    "Level5": {},
                },
            },
        });
        let facts = contact_facts(&contact);
        assert_eq!(facts.agent_groups, vec!["g1".to_string(), "g4".to_string()]);
        assert_eq!(facts.queue_id, None);
    }

    #[test]
    fn members_of_the_wrong_type_or_empty_count_as_absent() {
        let contact = json!({
            "AgentInfo": {"Id": "", "HierarchyGroups": {"Level1": {"Arn": 7}, "Level2": {"Arn": group_arn("")}}},
            "QueueInfo": {"Id": 5},
        });
        assert_eq!(contact_facts(&contact), ContactFacts::default());
    }
}
