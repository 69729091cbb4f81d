//! The facts `explain --facts FILE` is given (CONTRACT §9): one contact as
//! DescribeContact's `Contact`, users as DescribeUser's `User`, security
//! profiles' permissions and usernames' user ids, read strictly. What the
//! file does not give is missing, by name, exactly as with no facts at all.
//! (`facts::Recorded` notes, of any fact source, the contact's agent and what
//! was missing.)

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::authz::facts::{FactError, FactSource};
use crate::connect::describe_contact::{contact_facts, ContactFacts};
use crate::connect::describe_user::ConnectUser;
use crate::connect::endpoint::Route;

/// The members a facts file may have.
const MEMBERS: [&str; 4] = ["contact", "users", "security_profiles", "usernames"];

/// A facts file that cannot be read as one: what is wrong, naming the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadFacts(pub String);

fn bad(member: impl std::fmt::Display, problem: impl std::fmt::Display) -> BadFacts {
    BadFacts(format!("{member}: {problem}"))
}

/// Connect's facts, as given in a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GivenFacts {
    /// The given contact's id and its facts.
    contact: Option<(String, ContactFacts)>,
    users: HashMap<String, ConnectUser>,
    security_profiles: HashMap<String, Vec<String>>,
    /// `None`: no `usernames` member, so no username can be resolved.
    usernames: Option<HashMap<String, String>>,
}

impl GivenFacts {
    /// Reads a facts file's text.
    pub(crate) fn parse(text: &str) -> Result<Self, BadFacts> {
        let value: Value = serde_json::from_str(text).map_err(|e| BadFacts(format!("not JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Reads a facts file's JSON: every member optional, none other allowed.
    pub(crate) fn from_value(value: Value) -> Result<Self, BadFacts> {
        let Value::Object(members) = value else {
            return Err(BadFacts(format!(
                "must be a JSON object with any of the members {}",
                MEMBERS.join(", ")
            )));
        };
        let mut facts = GivenFacts::default();
        for (member, value) in members {
            match member.as_str() {
                "contact" => facts.contact = Some(contact(value)?),
                "users" => facts.users = users(value)?,
                "security_profiles" => facts.security_profiles = security_profiles(value)?,
                "usernames" => facts.usernames = Some(usernames(value)?),
                _ => {
                    return Err(bad(
                        format_args!("{member:?}"),
                        format_args!("unknown member; expected one of {}", MEMBERS.join(", ")),
                    ))
                }
            }
        }
        Ok(facts)
    }
}

/// An object member, or what it must be.
fn object(value: Value, member: &str, must_be: &str) -> Result<Map<String, Value>, BadFacts> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(bad(member, format_args!("must be {must_be}"))),
    }
}

/// A non-empty string, or what it must be.
fn id(value: Value, member: impl std::fmt::Display, must_be: &str) -> Result<String, BadFacts> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s),
        _ => Err(bad(member, format_args!("must be {must_be} (a non-empty string)"))),
    }
}

fn contact(value: Value) -> Result<(String, ContactFacts), BadFacts> {
    let contact = object(value, "contact", "DescribeContact's Contact object")?;
    let contact_id = id(
        contact.get("Id").cloned().unwrap_or(Value::Null),
        "contact.Id",
        "the contact's id",
    )?;
    Ok((contact_id, contact_facts(&Value::Object(contact))))
}

fn users(value: Value) -> Result<HashMap<String, ConnectUser>, BadFacts> {
    let users = object(value, "users", "an object of user id to DescribeUser's User object")?;
    users
        .into_iter()
        .map(|(key, user)| {
            let member = format!("users.{key:?}");
            if !user.is_object() {
                return Err(bad(member, "must be DescribeUser's User object"));
            }
            let user: ConnectUser = serde_json::from_value(user).map_err(|e| bad(&member, e))?;
            if user.id != key {
                return Err(bad(
                    format_args!("{member}.Id"),
                    format_args!("is {:?}, not the user id it is given under", user.id),
                ));
            }
            Ok((key, user))
        })
        .collect()
}

fn security_profiles(value: Value) -> Result<HashMap<String, Vec<String>>, BadFacts> {
    let profiles = object(
        value,
        "security_profiles",
        "an object of security profile id to its list of permissions",
    )?;
    profiles
        .into_iter()
        .map(|(key, permissions)| {
            let member = format!("security_profiles.{key:?}");
            match permissions {
                Value::Array(list) => list
                    .into_iter()
                    .map(|p| match p {
                        Value::String(p) => Ok(p),
                        _ => Err(bad(&member, "must be a list of permission names (strings)")),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(|list| (key, list)),
                _ => Err(bad(&member, "must be a list of permission names (strings)")),
            }
        })
        .collect()
}

fn usernames(value: Value) -> Result<HashMap<String, String>, BadFacts> {
    let usernames = object(value, "usernames", "an object of username to user id")?;
    usernames
        .into_iter()
        .map(|(name, user_id)| {
            let user_id = id(user_id, format_args!("usernames.{name:?}"), "a user id")?;
            Ok((name, user_id))
        })
        .collect()
}

impl FactSource for GivenFacts {
    /// A username the given `usernames` do not list names no user.
    async fn user_id_by_username(&self, _: &Route, _: &str, username: &str) -> Result<Option<String>, FactError> {
        match &self.usernames {
            Some(usernames) => Ok(usernames.get(username).cloned()),
            None => Err(FactError::Missing(format!("the user id of username {username:?}"))),
        }
    }

    /// Only the given contact, by its id.
    async fn contact(&self, _: &Route, _: &str, contact_id: &str) -> Result<ContactFacts, FactError> {
        match &self.contact {
            Some((id, facts)) if id == contact_id => Ok(facts.clone()),
            _ => Err(FactError::Missing(format!("contact {contact_id:?}"))),
        }
    }

    async fn user(&self, _: &Route, _: &str, user_id: &str) -> Result<ConnectUser, FactError> {
        self.users
            .get(user_id)
            .cloned()
            .ok_or_else(|| FactError::Missing(format!("user {user_id:?}")))
    }

    async fn permissions(&self, _: &Route, _: &str, profile_id: &str) -> Result<Vec<String>, FactError> {
        self.security_profiles
            .get(profile_id)
            .cloned()
            .ok_or_else(|| FactError::Missing(format!("security profile {profile_id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::facts::{NoFacts, Recorded};
    use crate::connect::endpoint::parse_endpoint;
    use serde_json::json;

    fn route() -> Route {
        Route {
            region: "eu-west-2".into(),
            endpoint: parse_endpoint("https://connect.eu-west-2.amazonaws.com").unwrap(),
            role_arn: None,
        }
    }

    fn file() -> Value {
        json!({
            "contact": {
                "Id": "contact-1",
                "AgentInfo": {
                    "Id": "agent-1",
                    "HierarchyGroups": {"Level1": {"Arn": "arn:aws:connect:eu-west-2:1:instance/i/agent-group/g-site"}},
                },
                "QueueInfo": {"Id": "q-1"},
            },
            "users": {"user-1": {"Id": "user-1", "Username": "sup", "HierarchyGroupId": "g-site",
                                 "SecurityProfileIds": ["sp-1"]}},
            "security_profiles": {"sp-1": ["ManagerListenIn"]},
            "usernames": {"sup@example.com": "user-1"},
        })
    }

    fn given(value: Value) -> GivenFacts {
        GivenFacts::from_value(value).unwrap()
    }

    fn missing<T: std::fmt::Debug>(answer: Result<T, FactError>) -> String {
        match answer {
            Err(FactError::Missing(what)) => what,
            other => panic!("expected a missing fact, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn every_given_fact_is_answered() {
        let facts = given(file());
        let r = route();
        let contact = facts.contact(&r, "inst-1", "contact-1").await.unwrap();
        assert_eq!(
            contact,
            ContactFacts {
                agent_id: Some("agent-1".into()),
                agent_groups: vec!["g-site".into()],
                queue_id: Some("q-1".into()),
            }
        );
        let user = facts.user(&r, "inst-1", "user-1").await.unwrap();
        assert_eq!(user.hierarchy_group_id.as_deref(), Some("g-site"));
        assert_eq!(user.security_profile_ids, vec!["sp-1".to_string()]);
        assert_eq!(
            facts.permissions(&r, "inst-1", "sp-1").await.unwrap(),
            vec!["ManagerListenIn".to_string()]
        );
        assert_eq!(
            facts
                .user_id_by_username(&r, "inst-1", "sup@example.com")
                .await
                .unwrap()
                .as_deref(),
            Some("user-1")
        );
    }

    #[tokio::test]
    async fn what_is_not_given_is_missing_by_the_same_names_as_with_no_facts() {
        let facts = given(json!({"contact": {"Id": "contact-1"}}));
        let r = route();
        for (given, none) in [
            (
                missing(facts.contact(&r, "i", "contact-2").await),
                missing(NoFacts.contact(&r, "i", "contact-2").await),
            ),
            (
                missing(facts.user(&r, "i", "user-9").await),
                missing(NoFacts.user(&r, "i", "user-9").await),
            ),
            (
                missing(facts.permissions(&r, "i", "sp-9").await),
                missing(NoFacts.permissions(&r, "i", "sp-9").await),
            ),
            (
                missing(facts.user_id_by_username(&r, "i", "who").await),
                missing(NoFacts.user_id_by_username(&r, "i", "who").await),
            ),
        ] {
            assert_eq!(given, none);
        }
        assert_eq!(
            missing(facts.contact(&r, "i", "contact-2").await),
            "contact \"contact-2\""
        );
    }

    #[tokio::test]
    async fn a_username_absent_from_given_usernames_is_no_such_user() {
        let facts = given(json!({"usernames": {}}));
        assert_eq!(facts.user_id_by_username(&route(), "i", "nobody").await.unwrap(), None);
    }

    #[test]
    fn an_empty_file_object_is_no_facts() {
        assert_eq!(given(json!({})), GivenFacts::default());
    }

    #[test]
    fn unknown_members_and_wrong_shapes_are_refused_by_name() {
        let cases = [
            (json!([]), "must be a JSON object"),
            (json!({"contacts": {}}), "\"contacts\": unknown member"),
            (
                json!({"contact": []}),
                "contact: must be DescribeContact's Contact object",
            ),
            (
                json!({"contact": {"QueueInfo": {"Id": "q"}}}),
                "contact.Id: must be the contact's id",
            ),
            (json!({"contact": {"Id": 7}}), "contact.Id: must be the contact's id"),
            (json!({"users": []}), "users: must be an object"),
            (
                json!({"users": {"u": 1}}),
                "users.\"u\": must be DescribeUser's User object",
            ),
            (json!({"users": {"u": {}}}), "users.\"u\": missing field `Id`"),
            (
                json!({"users": {"u": {"Id": "u", "SecurityProfileIds": "sp"}}}),
                "users.\"u\": invalid type",
            ),
            (json!({"users": {"u": {"Id": "v"}}}), "users.\"u\".Id: is \"v\""),
            (
                json!({"security_profiles": ["p"]}),
                "security_profiles: must be an object",
            ),
            (
                json!({"security_profiles": {"sp": "ManagerListenIn"}}),
                "security_profiles.\"sp\": must be a list",
            ),
            (
                json!({"security_profiles": {"sp": [1]}}),
                "security_profiles.\"sp\": must be a list",
            ),
            (json!({"usernames": "x"}), "usernames: must be an object"),
            (json!({"usernames": {"x": null}}), "usernames.\"x\": must be a user id"),
            (json!({"usernames": {"x": ""}}), "usernames.\"x\": must be a user id"),
        ];
        for (value, expected) in cases {
            let problem = GivenFacts::from_value(value.clone()).unwrap_err().0;
            assert!(problem.starts_with(expected), "{value}: {problem}");
        }
        assert!(GivenFacts::parse("{").unwrap_err().0.starts_with("not JSON"));
    }

    #[tokio::test]
    async fn recorded_notes_the_contacts_agent_and_each_missing_fact_once() {
        let r = route();
        let facts = Recorded::new(given(file()));
        assert_eq!(facts.agent_id(), None, "no contact looked at yet");
        facts.contact(&r, "i", "contact-1").await.unwrap();
        assert_eq!(facts.agent_id(), Some(Some("agent-1".into())));
        for _ in 0..2 {
            let _ = facts.user(&r, "i", "user-9").await;
        }
        let _ = facts.permissions(&r, "i", "sp-9").await;
        assert_eq!(facts.missing(), vec!["user \"user-9\"", "security profile \"sp-9\""]);

        let no_agent = Recorded::new(given(json!({"contact": {"Id": "contact-1"}})));
        no_agent.contact(&r, "i", "contact-1").await.unwrap();
        assert_eq!(no_agent.agent_id(), Some(None));

        let nothing = Recorded::new(NoFacts);
        let _ = nothing.contact(&r, "i", "contact-1").await;
        assert_eq!(
            (nothing.agent_id(), nothing.missing()),
            (None, vec!["contact \"contact-1\"".to_string()])
        );
    }
}
