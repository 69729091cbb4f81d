//! The GetCurrentUserData operation (docs/connect.md, "Lookups"): a signed
//! POST of `/metrics/userdata/{InstanceId}` that answers, a page at a time,
//! which agents are on which contacts right now, with each agent's hierarchy
//! path. A listing (docs/api.md, "The listing") reads it for live contacts.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{Call, ConnectFailure, Lookup};
use super::describe_contact::text;
use super::endpoint::path_label;
use super::operation::Operation;

const OPERATION: Operation = Operation::GetCurrentUserData;

/// The most agents, queues or answers one request may name or hold.
pub(crate) const MAX_PER_CALL: usize = 100;

/// The agent states in which a contact can be monitored.
pub(crate) const LIVE_STATES: [&str; 2] = ["CONNECTED", "CONNECTED_ONHOLD"];

/// The levels of `HierarchyPath`, top first.
const LEVELS: [&str; 5] = ["LevelOne", "LevelTwo", "LevelThree", "LevelFour", "LevelFive"];

/// Whose current contacts to ask for: Connect takes exactly one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LiveFilter {
    /// These agents (at most 100).
    Agents(Vec<String>),
    /// The agents whose routing profiles hold these queues (at most 100).
    Queues(Vec<String>),
}

/// One agent of the answer, with its live contacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LiveAgent {
    pub(crate) agent_id: String,
    /// The agent's hierarchy group ids, LevelOne first; absent levels skipped.
    pub(crate) groups: Vec<String>,
    pub(crate) contacts: Vec<LiveContact>,
}

/// One contact an agent is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LiveContact {
    pub(crate) contact_id: String,
    pub(crate) channel: Option<String>,
    pub(crate) state: String,
    /// Since when, in epoch seconds: `ConnectedToAgentTimestamp`, else
    /// `StateStartTimestamp`.
    pub(crate) since: Option<f64>,
    pub(crate) queue_id: Option<String>,
}

/// One page of the answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LivePage {
    pub(crate) agents: Vec<LiveAgent>,
    pub(crate) next_token: Option<String>,
}

/// The request path: the bare instance id as a path label.
pub(crate) fn path(instance_id: &str) -> String {
    format!("/metrics/userdata/{}", path_label(instance_id))
}

/// The JSON body: one filter, only live contacts, a page of up to 100.
pub(crate) fn body(filter: &LiveFilter, next_token: Option<&str>) -> String {
    let filters = match filter {
        LiveFilter::Agents(ids) => json!({ "Agents": ids }),
        LiveFilter::Queues(ids) => json!({ "Queues": ids }),
    };
    let mut filters = filters;
    filters["ContactFilter"] = json!({ "ContactStates": LIVE_STATES });
    let mut input = json!({ "Filters": filters, "MaxResults": MAX_PER_CALL });
    if let Some(token) = next_token {
        input["NextToken"] = json!(token);
    }
    input.to_string()
}

/// A group's id: its `Id`, else the part of its ARN after `agent-group/`.
fn group_id(level: &Value) -> Option<String> {
    text(level, "Id").or_else(|| {
        let arn = level.get("Arn")?.as_str()?;
        let (_, id) = arn.split_once("agent-group/")?;
        (!id.is_empty()).then(|| id.to_owned())
    })
}

/// Reads one `Contacts[]` entry; `None` without a contact id or a state.
fn live_contact(contact: &Value) -> Option<LiveContact> {
    let epoch = |member: &str| contact.get(member).and_then(Value::as_f64).filter(|t| t.is_finite());
    Some(LiveContact {
        contact_id: text(contact, "ContactId")?,
        channel: text(contact, "Channel"),
        state: text(contact, "AgentContactState")?,
        since: epoch("ConnectedToAgentTimestamp").or_else(|| epoch("StateStartTimestamp")),
        queue_id: contact.get("Queue").and_then(|q| text(q, "Id")),
    })
}

/// Reads one `UserDataList[]` entry. Every member is optional in Connect's
/// model; what cannot be read counts as absent, which can only narrow what
/// a grant allows (an agent without groups is in no subtree).
fn live_agent(user_data: &Value) -> Option<LiveAgent> {
    let path = user_data.get("HierarchyPath");
    Some(LiveAgent {
        agent_id: user_data.get("User").and_then(|u| text(u, "Id"))?,
        groups: LEVELS.iter().filter_map(|level| group_id(path?.get(level)?)).collect(),
        contacts: user_data
            .get("Contacts")
            .and_then(Value::as_array)
            .map(|contacts| contacts.iter().filter_map(live_contact).collect())
            .unwrap_or_default(),
    })
}

/// Reads an answer; `None` when it is not one (no `UserDataList` array).
pub(crate) fn page(output: &Value) -> Option<LivePage> {
    Some(LivePage {
        agents: output
            .get("UserDataList")?
            .as_array()?
            .iter()
            .filter_map(live_agent)
            .collect(),
        next_token: text(output, "NextToken"),
    })
}

/// One page of the agents `filter` names and their live contacts.
pub(crate) async fn get_current_user_data(
    at: Lookup<'_>,
    filter: &LiveFilter,
    next_token: Option<&str>,
) -> Result<LivePage, ConnectFailure> {
    let call = Call::post(OPERATION, path(at.instance_id), body(filter, next_token));
    let reply = at.send(&call).await?;
    serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .as_ref()
        .and_then(page)
        .ok_or_else(|| ConnectFailure::bad_response(OPERATION, &reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arn(id: &str) -> String {
        format!("arn:aws:connect:eu-west-2:123456789012:instance/inst-1/agent-group/{id}")
    }

    #[test]
    fn the_body_names_one_filter_and_only_live_states() {
        let agents: Value = serde_json::from_str(&body(&LiveFilter::Agents(vec!["a-1".into()]), None)).unwrap();
        assert_eq!(
            agents,
            json!({"Filters": {"Agents": ["a-1"], "ContactFilter": {"ContactStates": ["CONNECTED", "CONNECTED_ONHOLD"]}},
                   "MaxResults": 100})
        );
        let queued: Value = serde_json::from_str(&body(&LiveFilter::Queues(vec!["q".into()]), Some("t/+="))).unwrap();
        assert_eq!(queued["Filters"]["Queues"], json!(["q"]));
        assert_eq!(queued["NextToken"], "t/+=");
    }

    #[test]
    fn the_path_holds_the_bare_instance_id_as_a_label() {
        assert_eq!(path("inst 1"), "/metrics/userdata/inst%201");
    }

    #[test]
    fn agents_their_groups_and_their_contacts_are_read() {
        let output = json!({
            "UserDataList": [{
                "User": {"Id": "agent-1", "Arn": "…"},
                "HierarchyPath": {"LevelTwo": {"Arn": arn("g-team")}, "LevelOne": {"Id": "g-site", "Arn": arn("g-site")}},
                "Contacts": [
                    {"ContactId": "c-1", "Channel": "VOICE", "AgentContactState": "CONNECTED",
                     "StateStartTimestamp": 1.7e9, "ConnectedToAgentTimestamp": 1.6e9, "Queue": {"Id": "q-1"}},
                    {"ContactId": "c-2", "Channel": "CHAT", "AgentContactState": "CONNECTED_ONHOLD",
                     "StateStartTimestamp": 1.7e9},
                    {"Channel": "CHAT", "AgentContactState": "CONNECTED"},
                ],
            }, {"User": {}}],
            "NextToken": "more",
        });
        let page = page(&output).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("more"));
        assert_eq!(page.agents.len(), 1, "an agent without an id is skipped");
        let agent = &page.agents[0];
        assert_eq!(agent.groups, vec!["g-site".to_string(), "g-team".to_string()]);
        assert_eq!(agent.contacts.len(), 2, "a contact without an id is skipped");
        assert_eq!(agent.contacts[0].since, Some(1.6e9), "connected to the agent first");
        assert_eq!(agent.contacts[0].queue_id.as_deref(), Some("q-1"));
        assert_eq!(agent.contacts[1].since, Some(1.7e9), "else the state's start");
        assert_eq!(agent.contacts[1].queue_id, None);
    }

    #[test]
    fn an_answer_without_a_user_data_list_is_not_read() {
        assert!(page(&json!({"NextToken": "x"})).is_none());
        assert!(page(&json!({"UserDataList": {}})).is_none());
    }
}
