//! Where the facts of a decision come from (docs/policy.md): a source of facts
//! (Connect itself in the gateway, `live_facts.rs`), or none at all, so
//! `explain` can name what it would need. Every
//! fact is asked for at most once per decision, and only when a grant that
//! passed its static checks needs it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::Poll;

use crate::connect::client::ConnectFailure;
use crate::connect::describe_contact::ContactFacts;
use crate::connect::describe_user::ConnectUser;
use crate::connect::endpoint::Route;

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
