//! Connect itself as the source of a decision's facts: each fact through its
//! cache, looked up with the gateway's client within the request's deadline,
//! counting the lookups for the audit (`facts::Recorded` notes the agent).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::cache::FactCaches;
use super::facts::{FactError, FactSource};
use crate::connect::client::{ConnectClient, Lookup};
use crate::connect::describe_contact::{self, describe_contact, ContactFacts};
use crate::connect::describe_user::{self, describe_user, ConnectUser};
use crate::connect::endpoint::Route;
use crate::connect::list_security_profile_permissions::{self, list_security_profile_permissions};
use crate::connect::search_users::{self, user_id_by_username};

/// Connect itself, through the caches, within the request's deadline.
pub(crate) struct LiveFacts<'a> {
    client: &'a ConnectClient,
    caches: &'a FactCaches,
    deadline: Instant,
    /// Calls this request made to Connect (for the audit; cache hits do not count).
    lookups: AtomicU32,
}

impl<'a> LiveFacts<'a> {
    pub(crate) fn new(client: &'a ConnectClient, caches: &'a FactCaches, deadline: Instant) -> Self {
        LiveFacts {
            client,
            caches,
            deadline,
            lookups: AtomicU32::new(0),
        }
    }

    /// How many lookups reached Connect.
    pub(crate) fn lookups(&self) -> u32 {
        self.lookups.load(Ordering::Relaxed)
    }

    fn at<'r>(&'r self, route: &'r Route, instance_id: &'r str) -> Lookup<'r> {
        Lookup {
            client: self.client,
            route,
            instance_id,
            deadline: self.deadline,
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
        let caches = self.caches;
        let key = key(instance_id, username);
        let keep = |id: &Option<String>| id.is_some();
        caches
            .get(
                &caches.usernames,
                key,
                search_users::OPERATION,
                keep,
                fetch,
                &self.lookups,
            )
            .await
    }

    async fn contact(&self, route: &Route, instance_id: &str, contact_id: &str) -> Result<ContactFacts, FactError> {
        let fetch = async { Ok(describe_contact(self.at(route, instance_id), contact_id).await?) };
        // A contact no agent has accepted yet will have one soon: ask again next time.
        let keep = |c: &ContactFacts| c.agent_id.is_some();
        let key = key(instance_id, contact_id);
        self.caches
            .get(
                &self.caches.contacts,
                key,
                describe_contact::OPERATION,
                keep,
                fetch,
                &self.lookups,
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
                describe_user::OPERATION,
                |_| true,
                fetch,
                &self.lookups,
            )
            .await
    }

    async fn permissions(&self, route: &Route, instance_id: &str, profile_id: &str) -> Result<Vec<String>, FactError> {
        let fetch = async {
            let listed = list_security_profile_permissions(self.at(route, instance_id), profile_id).await?;
            Ok(Arc::new(listed))
        };
        let key = key(instance_id, profile_id);
        let operation = list_security_profile_permissions::OPERATION;
        let permissions = self
            .caches
            .get(&self.caches.permissions, key, operation, |_| true, fetch, &self.lookups)
            .await?;
        Ok(permissions.as_ref().clone())
    }
}
