//! Where the facts of a decision come from (docs/policy.md): a source of facts
//! (Connect itself in the gateway, `live_facts.rs`), or none at all, so
//! `explain` can name what it would need. Every
//! fact is asked for at most once per decision, and only when a grant that
//! passed its static checks needs it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::task::Poll;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::connect::client::ConnectFailure;
use crate::connect::describe_contact::ContactFacts;
use crate::connect::describe_user::ConnectUser;
use crate::connect::endpoint::Route;
use crate::connect::get_current_user_data::{LiveAgent, LiveFilter};
use crate::connect::search_users::Members;

/// Why a fact could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FactError {
    /// Connect could not tell us (after retries): the request fails closed.
    #[error(transparent)]
    Lookup(#[from] ConnectFailure),
    /// No source for this fact (explain without facts); names the fact.
    #[error("needs {0}, which was not given")]
    Missing(String),
}

/// An answer read page by page: whole, or cut short when a listing's
/// allowance of Connect calls ran out; and when Connect gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Paged<T> {
    pub(crate) value: T,
    pub(crate) complete: bool,
    /// Epoch seconds.
    pub(crate) as_of: f64,
}

impl<T> Paged<T> {
    /// An answer read now.
    pub(crate) fn now(value: T, complete: bool) -> Self {
        let as_of = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Paged { value, complete, as_of }
    }
}

/// How many more pages one listing may ask Connect for (docs/configuration.md,
/// `max_list_pages`); shared by its concurrent lookups.
pub(crate) struct Pages(AtomicU32);

impl Pages {
    pub(crate) fn new(allowed: u32) -> Self {
        Pages(AtomicU32::new(allowed))
    }

    /// Takes one page from the allowance; `false` when none is left.
    pub(crate) fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1))
            .is_ok()
    }
}

/// A source of Connect's facts about one instance's contacts and users.
pub(crate) trait FactSource: Sync {
    /// The id of the one user with exactly this username, if there is one.
    fn user_id_by_username(
        &self,
        route: &Route,
        instance_id: &str,
        username: &str,
    ) -> impl Future<Output = Result<Option<String>, FactError>> + Send;
    fn contact(
        &self,
        route: &Route,
        instance_id: &str,
        contact_id: &str,
    ) -> impl Future<Output = Result<ContactFacts, FactError>> + Send;
    fn user(
        &self,
        route: &Route,
        instance_id: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<ConnectUser, FactError>> + Send;
    fn permissions(
        &self,
        route: &Route,
        instance_id: &str,
        profile_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, FactError>> + Send;
    /// The user ids of a hierarchy subtree, or of the whole instance, page
    /// by page while `pages` allows.
    fn members(
        &self,
        route: &Route,
        instance_id: &str,
        members: &Members<'_>,
        pages: &Pages,
    ) -> impl Future<Output = Result<Paged<Vec<String>>, FactError>> + Send;
    /// The agents `filter` names and their live contacts, page by page while
    /// `pages` allows.
    fn live(
        &self,
        route: &Route,
        instance_id: &str,
        filter: &LiveFilter,
        pages: &Pages,
    ) -> impl Future<Output = Result<Paged<Vec<LiveAgent>>, FactError>> + Send;
}

/// What a facts source says of a set of members, by name.
pub(crate) fn members_named(members: &Members<'_>) -> String {
    match members {
        Members::Subtree(group) => format!("the users of hierarchy group {group:?} and below"),
        Members::Everyone => "every user of the instance".to_owned(),
    }
}

/// What a facts source says of a live filter, by name.
pub(crate) fn live_named(filter: &LiveFilter) -> String {
    match filter {
        LiveFilter::Agents(ids) => format!("the current contacts of agents {ids:?}"),
        LiveFilter::Queues(ids) => format!("the current contacts of the agents of queues {ids:?}"),
    }
}

/// No facts at all: every fact is missing, by name.
pub(crate) struct NoFacts;

impl FactSource for NoFacts {
    async fn user_id_by_username(&self, _: &Route, _: &str, username: &str) -> Result<Option<String>, FactError> {
        Err(FactError::Missing(format!("the user id of username {username:?}")))
    }

    async fn contact(&self, _: &Route, _: &str, contact_id: &str) -> Result<ContactFacts, FactError> {
        Err(FactError::Missing(format!("contact {contact_id:?}")))
    }

    async fn user(&self, _: &Route, _: &str, user_id: &str) -> Result<ConnectUser, FactError> {
        Err(FactError::Missing(format!("user {user_id:?}")))
    }

    async fn permissions(&self, _: &Route, _: &str, profile_id: &str) -> Result<Vec<String>, FactError> {
        Err(FactError::Missing(format!("security profile {profile_id:?}")))
    }

    async fn members(
        &self,
        _: &Route,
        _: &str,
        members: &Members<'_>,
        _: &Pages,
    ) -> Result<Paged<Vec<String>>, FactError> {
        Err(FactError::Missing(members_named(members)))
    }

    async fn live(
        &self,
        _: &Route,
        _: &str,
        filter: &LiveFilter,
        _: &Pages,
    ) -> Result<Paged<Vec<LiveAgent>>, FactError> {
        Err(FactError::Missing(live_named(filter)))
    }
}

/// A fact source that notes what one decision asked of it: the agent of the
/// contact it answered with, and each fact it did not have.
pub(crate) struct Recorded<F> {
    inner: F,
    /// `Some(agent)` once a contact was looked at.
    agent: Mutex<Option<Option<String>>>,
    missing: Mutex<Vec<String>>,
}

impl<F: FactSource> Recorded<F> {
    pub(crate) fn new(inner: F) -> Self {
        Recorded {
            inner,
            agent: Mutex::new(None),
            missing: Mutex::new(Vec::new()),
        }
    }

    /// `None` when no contact was looked at; `Some(None)` when it had no agent.
    pub(crate) fn agent_id(&self) -> Option<Option<String>> {
        self.agent.lock().expect("agent lock").clone()
    }

    /// The facts that were asked for and not had, in the order asked, each once.
    pub(crate) fn missing(&self) -> Vec<String> {
        self.missing.lock().expect("missing lock").clone()
    }

    fn note<T>(&self, answer: Result<T, FactError>) -> Result<T, FactError> {
        if let Err(FactError::Missing(what)) = &answer {
            let mut missing = self.missing.lock().expect("missing lock");
            if !missing.contains(what) {
                missing.push(what.clone());
            }
        }
        answer
    }
}

impl<F: FactSource> FactSource for Recorded<F> {
    async fn user_id_by_username(
        &self,
        route: &Route,
        instance_id: &str,
        username: &str,
    ) -> Result<Option<String>, FactError> {
        self.note(self.inner.user_id_by_username(route, instance_id, username).await)
    }

    async fn contact(&self, route: &Route, instance_id: &str, contact_id: &str) -> Result<ContactFacts, FactError> {
        let answer = self.note(self.inner.contact(route, instance_id, contact_id).await);
        if let Ok(contact) = &answer {
            *self.agent.lock().expect("agent lock") = Some(contact.agent_id.clone());
        }
        answer
    }

    async fn user(&self, route: &Route, instance_id: &str, user_id: &str) -> Result<ConnectUser, FactError> {
        self.note(self.inner.user(route, instance_id, user_id).await)
    }

    async fn permissions(&self, route: &Route, instance_id: &str, profile_id: &str) -> Result<Vec<String>, FactError> {
        self.note(self.inner.permissions(route, instance_id, profile_id).await)
    }

    async fn members(
        &self,
        route: &Route,
        instance_id: &str,
        members: &Members<'_>,
        pages: &Pages,
    ) -> Result<Paged<Vec<String>>, FactError> {
        self.note(self.inner.members(route, instance_id, members, pages).await)
    }

    async fn live(
        &self,
        route: &Route,
        instance_id: &str,
        filter: &LiveFilter,
        pages: &Pages,
    ) -> Result<Paged<Vec<LiveAgent>>, FactError> {
        self.note(self.inner.live(route, instance_id, filter, pages).await)
    }
}

/// Runs futures concurrently on this task and gives their outputs in order
/// (the security profiles of one user are independent lookups).
pub(crate) async fn all<'f, T>(futures: Vec<Pin<Box<dyn Future<Output = T> + Send + 'f>>>) -> Vec<T> {
    let mut pending: Vec<Option<Pin<Box<dyn Future<Output = T> + Send + 'f>>>> =
        futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                if let Poll::Ready(value) = future.as_mut().poll(cx) {
                    *output = Some(value);
                    *slot = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}
