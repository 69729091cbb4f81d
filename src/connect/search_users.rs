//! The SearchUsers operation (docs/connect.md, "Lookups"): a signed POST of
//! `/search-users` that finds the user id behind a Connect username, for a
//! caller named by `user_name_claim`; and, a page at a time, the users of a
//! hierarchy group's subtree or of the whole instance, for a listing.

use serde::{Deserialize, Serialize};

use super::client::{Call, ConnectFailure, Lookup};
use super::operation::Operation;

const OPERATION: Operation = Operation::SearchUsers;

/// Two, not one: a second user in the answer shows the name is ambiguous,
/// and an ambiguous name identifies nobody.
const MAX_RESULTS: u32 = 2;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Input<'a> {
    instance_id: &'a str,
    search_criteria: SearchCriteria<'a>,
    max_results: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SearchCriteria<'a> {
    string_condition: StringCondition<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StringCondition<'a> {
    field_name: &'a str,
    value: &'a str,
    comparison_type: &'a str,
}

/// The JSON body: an exact search on `Username` in one instance.
pub(crate) fn body(instance_id: &str, username: &str) -> String {
    let input = Input {
        instance_id,
        search_criteria: SearchCriteria {
            string_condition: StringCondition {
                field_name: "Username",
                value: username,
                comparison_type: "EXACT",
            },
        },
        max_results: MAX_RESULTS,
    };
    serde_json::to_string(&input).expect("strings and numbers always serialize")
}

/// A page of users, for a listing: whose ids to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Members<'a> {
    /// The users of this group and of every group below it.
    Subtree(&'a str),
    /// Every user of the instance.
    Everyone,
}

/// The most users one page holds.
const PAGE_SIZE: u32 = 100;

/// The JSON body of one page of `members`.
pub(crate) fn members_body(instance_id: &str, members: &Members<'_>, next_token: Option<&str>) -> String {
    let mut input = serde_json::json!({ "InstanceId": instance_id, "MaxResults": PAGE_SIZE });
    if let Members::Subtree(group) = members {
        input["SearchCriteria"] = serde_json::json!({
            "HierarchyGroupCondition": { "Value": group, "HierarchyGroupMatchType": "WITH_CHILD_GROUPS" }
        });
    }
    if let Some(token) = next_token {
        input["NextToken"] = serde_json::json!(token);
    }
    input.to_string()
}

/// One page of user ids, and the token of the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MembersPage {
    pub(crate) user_ids: Vec<String>,
    pub(crate) next_token: Option<String>,
}

#[derive(Deserialize)]
struct MembersOutput {
    #[serde(rename = "Users")]
    users: Vec<UserSummary>,
    #[serde(rename = "NextToken", default)]
    next_token: Option<String>,
}

/// One page of the users `members` names; a user without an id is skipped.
pub(crate) async fn members_page(
    at: Lookup<'_>,
    members: &Members<'_>,
    next_token: Option<&str>,
) -> Result<MembersPage, ConnectFailure> {
    let body = members_body(at.instance_id, members, next_token);
    let reply = at
        .send(&Call::post(OPERATION, OPERATION.route().to_owned(), body))
        .await?;
    let output: MembersOutput =
        serde_json::from_slice(&reply.body).map_err(|_| ConnectFailure::bad_response(OPERATION, &reply))?;
    Ok(MembersPage {
        user_ids: output
            .users
            .into_iter()
            .filter_map(|u| u.id.filter(|id| !id.is_empty()))
            .collect(),
        next_token: output.next_token.filter(|t| !t.is_empty()),
    })
}

/// One user of the answer; Connect documents every member as optional.
#[derive(Debug, Deserialize)]
struct UserSummary {
    #[serde(rename = "Id", default)]
    id: Option<String>,
    #[serde(rename = "Username", default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct Output {
    #[serde(rename = "Users")]
    users: Vec<UserSummary>,
}

/// The id of the one user whose username is `username`, byte for byte:
/// Connect's own matching may be looser (case), and a caller must not become
/// another user by the spelling of a claim. `Err` when the one user has no id.
fn the_one(users: &[UserSummary], username: &str) -> Result<Option<String>, ()> {
    let mut matching = users.iter().filter(|u| u.username.as_deref() == Some(username));
    match (matching.next(), matching.next()) {
        (Some(user), None) => match user.id.as_deref() {
            Some(id) if !id.is_empty() => Ok(Some(id.to_owned())),
            _ => Err(()),
        },
        _ => Ok(None),
    }
}

/// The user id of `username` in an instance; `None` when no user, or more
/// than one, has exactly that username.
pub(crate) async fn user_id_by_username(at: Lookup<'_>, username: &str) -> Result<Option<String>, ConnectFailure> {
    // Every member travels in the body.
    let call = Call::post(OPERATION, OPERATION.route().to_owned(), body(at.instance_id, username));
    let reply = at.send(&call).await?;
    let output: Output =
        serde_json::from_slice(&reply.body).map_err(|_| ConnectFailure::bad_response(OPERATION, &reply))?;
    the_one(&output.users, username).map_err(|()| ConnectFailure::bad_response(OPERATION, &reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn users(list: Value) -> Vec<UserSummary> {
        serde_json::from_value::<Output>(json!({ "Users": list }))
            .unwrap()
            .users
    }

    #[test]
    fn the_body_is_an_exact_username_search_with_its_values_escaped() {
        let text = body("inst-1", "a\"b\\c@example.com");
        assert!(text.starts_with(r#"{"InstanceId":"inst-1","SearchCriteria""#), "{text}");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            json!({
                "InstanceId": "inst-1",
                "SearchCriteria": {"StringCondition": {
                    "FieldName": "Username", "Value": "a\"b\\c@example.com", "ComparisonType": "EXACT",
                }},
                "MaxResults": 2,
            })
        );
    }

    #[test]
    fn a_subtree_is_searched_with_its_child_groups_and_everyone_without_criteria() {
        let subtree: Value =
            serde_json::from_str(&members_body("inst-1", &Members::Subtree("g-1"), Some("t/+="))).unwrap();
        assert_eq!(
            subtree,
            json!({"InstanceId": "inst-1", "MaxResults": 100, "NextToken": "t/+=",
                   "SearchCriteria": {"HierarchyGroupCondition": {"Value": "g-1", "HierarchyGroupMatchType": "WITH_CHILD_GROUPS"}}})
        );
        let everyone: Value = serde_json::from_str(&members_body("inst-1", &Members::Everyone, None)).unwrap();
        assert_eq!(everyone, json!({"InstanceId": "inst-1", "MaxResults": 100}));
    }

    #[test]
    fn exactly_one_user_with_exactly_that_username_is_the_answer() {
        let found = users(json!([
            {"Id": "u-2", "Username": "Sup@example.com"},
            {"Id": "u-1", "Username": "sup@example.com"},
        ]));
        assert_eq!(the_one(&found, "sup@example.com"), Ok(Some("u-1".into())));
        assert_eq!(the_one(&found, "SUP@example.com"), Ok(None), "case counts");
    }

    #[test]
    fn no_user_or_several_with_that_username_is_nobody() {
        assert_eq!(the_one(&users(json!([])), "sup"), Ok(None));
        let twins = users(json!([{"Id": "u-1", "Username": "sup"}, {"Id": "u-2", "Username": "sup"}]));
        assert_eq!(the_one(&twins, "sup"), Ok(None));
        assert_eq!(the_one(&users(json!([{"Id": "u-1"}])), "sup"), Ok(None));
    }

    #[test]
    fn the_one_user_without_an_id_is_a_bad_response() {
        assert_eq!(the_one(&users(json!([{"Username": "sup"}])), "sup"), Err(()));
        assert_eq!(the_one(&users(json!([{"Id": "", "Username": "sup"}])), "sup"), Err(()));
    }

    #[test]
    fn an_answer_without_a_user_list_is_not_read() {
        assert!(serde_json::from_str::<Output>(r#"{"ApproximateTotalCount": 0}"#).is_err());
        assert!(serde_json::from_str::<Output>(r#"{"Users": {"Id": "u-1"}}"#).is_err());
    }
}
