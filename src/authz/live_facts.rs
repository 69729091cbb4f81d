//! Connect itself as the source of a decision's facts: each fact through its
//! cache, looked up with the gateway's client within the request's deadline,
//! counting the HTTP calls made for the audit (`facts::Recorded` notes the
//! agent).

use std::sync::Arc;
use std::time::Instant;

use super::cache::{FactCaches, Worth};
use super::facts::{FactError, FactSource};
use crate::connect::client::{ConnectClient, Lookup, Spent};
use crate::connect::describe_contact::{describe_contact, ContactFacts};
use crate::connect::describe_user::{describe_user, ConnectUser};
use crate::connect::endpoint::Route;
use crate::connect::list_security_profile_permissions::list_security_profile_permissions;
use crate::connect::operation::Operation;
use crate::connect::search_users::user_id_by_username;

/// Connect itself, through the caches, within the request's deadline.
pub(crate) struct LiveFacts<'a> {
    client: &'a ConnectClient,
    caches: &'a FactCaches,
    deadline: Instant,
    /// What this request spent on Connect: HTTP calls and budget waits.
    spent: &'a Spent,
}

impl<'a> LiveFacts<'a> {
    pub(crate) fn new(client: &'a ConnectClient, caches: &'a FactCaches, deadline: Instant, spent: &'a Spent) -> Self {
        LiveFacts {
            client,
            caches,
            deadline,
            spent,
        }
    }

    fn at<'r>(&'r self, route: &'r Route, instance_id: &'r str) -> Lookup<'r> {
        Lookup {
            client: self.client,
            route,
            instance_id,
            deadline: self.deadline,
            spent: self.spent,
        }
    }
}

fn key(instance_id: &str, id: &str) -> (String, String) {
    (instance_id.to_owned(), id.to_owned())
}

impl FactSource for LiveFacts<'_> {
    async fn user_id_by_username(
        &self,
        route: &Route,
        instance_id: &str,
        username: &str,
    ) -> Result<Option<String>, FactError> {
        let fetch = async { Ok(user_id_by_username(self.at(route, instance_id), username).await?) };
        // No such user is an answer, but not one to keep.
        let worth = |id: &Option<String>| match id {
            Some(_) => Worth::Keeping,
            None => Worth::NotFound,
        };
        let caches = self.caches;
        let key = key(instance_id, username);
        caches
            .get(
                &caches.usernames,
                key,
                Operation::SearchUsers,
                self.deadline,
                worth,
                fetch,
            )
            .await
    }

    async fn contact(&self, route: &Route, instance_id: &str, contact_id: &str) -> Result<ContactFacts, FactError> {
        let fetch = async { Ok(describe_contact(self.at(route, instance_id), contact_id).await?) };
        // A contact no agent has accepted yet will have one soon: ask again next time.
        let worth = |c: &ContactFacts| match c.agent_id {
            Some(_) => Worth::Keeping,
            None => Worth::ThisTimeOnly,
        };
        let key = key(instance_id, contact_id);
        self.caches
            .get(
                &self.caches.contacts,
                key,
                Operation::DescribeContact,
                self.deadline,
                worth,
                fetch,
            )
            .await
    }

    async fn user(&self, route: &Route, instance_id: &str, user_id: &str) -> Result<ConnectUser, FactError> {
        let fetch = async { Ok(describe_user(self.at(route, instance_id), user_id).await?) };
        let key = key(instance_id, user_id);
        self.caches
            .get(
                &self.caches.users,
                key,
                Operation::DescribeUser,
                self.deadline,
                |_| Worth::Keeping,
                fetch,
            )
            .await
    }

    async fn permissions(&self, route: &Route, instance_id: &str, profile_id: &str) -> Result<Vec<String>, FactError> {
        let fetch = async {
            let listed = list_security_profile_permissions(self.at(route, instance_id), profile_id).await?;
            Ok(Arc::new(listed))
        };
        let key = key(instance_id, profile_id);
        let operation = Operation::ListSecurityProfilePermissions;
        let permissions = self
            .caches
            .get(
                &self.caches.permissions,
                key,
                operation,
                self.deadline,
                |_| Worth::Keeping,
                fetch,
            )
            .await?;
        Ok(permissions.as_ref().clone())
    }
}
