//! The DescribeUser operation (docs/connect.md, "Lookups"): a signed GET of
//! `/users/{InstanceId}/{UserId}`, read for the user's hierarchy group and
//! security profiles. Connect-aware grants (docs/policy.md) build on it.

use serde::{Deserialize, Serialize};

use super::client::{Call, ConnectFailure, Lookup};
use super::endpoint::path_label;
use super::operation::Operation;

/// The facts of a Connect user the gateway reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConnectUser {
    #[serde(rename = "Id")]
    pub(crate) id: String,
    /// Absent when the user belongs to no hierarchy group.
    #[serde(rename = "HierarchyGroupId", default)]
    pub(crate) hierarchy_group_id: Option<String>,
    #[serde(rename = "SecurityProfileIds", default)]
    pub(crate) security_profile_ids: Vec<String>,
}

/// The request path: the bare instance id and the user id, each a path label.
pub(crate) fn path(instance_id: &str, user_id: &str) -> String {
    format!("/users/{}/{}", path_label(instance_id), path_label(user_id))
}

/// Describes one user of an instance.
pub(crate) async fn describe_user(at: Lookup<'_>, user_id: &str) -> Result<ConnectUser, ConnectFailure> {
    let operation = Operation::DescribeUser;
    let reply = at.send(&Call::get(operation, path(at.instance_id, user_id))).await?;
    #[derive(Deserialize)]
    struct Output {
        #[serde(rename = "User")]
        user: ConnectUser,
    }
    serde_json::from_slice::<Output>(&reply.body)
        .map(|o| o.user)
        .map_err(|_| ConnectFailure::bad_response(operation, &reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_percent_encoded_in_the_path() {
        assert_eq!(path("inst-1", "a b/c"), "/users/inst-1/a%20b%2Fc");
    }
}
