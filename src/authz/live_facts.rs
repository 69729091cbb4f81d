//! Connect itself as the source of a decision's facts: each fact through its
//! cache, looked up with the gateway's client within the request's deadline,
//! counting the HTTP calls made for the audit (`facts::Recorded` notes the
//! agent).

use std::sync::Arc;
use std::time::Instant;

use super::cache::{FactCaches, Kind, Worth};
use super::facts::{FactError, FactSource, Paged, Pages};
use crate::connect::client::{ConnectClient, Lookup, Spent};
use crate::connect::describe_contact::ContactFacts as Contact;
use crate::connect::describe_contact::{describe_contact, ContactFacts};
use crate::connect::describe_user::{describe_user, ConnectUser};
use crate::connect::endpoint::Route;
use crate::connect::get_current_user_data::{get_current_user_data, LiveAgent, LiveFilter};
use crate::connect::list_security_profile_permissions::list_security_profile_permissions;
use crate::connect::search_users::{members_page, user_id_by_username, Members};

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

/// An answer cut short is this listing's, not one to keep.
fn worth_of_paged<T>(paged: &Paged<T>) -> Worth {
    match paged.complete {
        true => Worth::Keeping,
        false => Worth::ThisTimeOnly,
    }
}

/// A live answer's key: the filter's kind and a digest of its ids, sorted
/// (a hundred ids would make a key no operator could read).
fn live_key(filter: &LiveFilter) -> String {
    let (kind, ids) = match filter {
        LiveFilter::Agents(ids) => ("agents", ids),
        LiveFilter::Queues(ids) => ("queues", ids),
    };
    let mut sorted: Vec<&str> = ids.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, sorted.join("\n").as_bytes());
    let hex: String = digest.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}:{}:{hex}", sorted.len())
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
            .get(&caches.usernames, key, Kind::Username, self.deadline, worth, fetch)
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
            .get(&self.caches.contacts, key, Kind::Contact, self.deadline, worth, fetch)
            .await
    }

    async fn user(&self, route: &Route, instance_id: &str, user_id: &str) -> Result<ConnectUser, FactError> {
        let fetch = async { Ok(describe_user(self.at(route, instance_id), user_id).await?) };
        let key = key(instance_id, user_id);
        self.caches
            .get(
                &self.caches.users,
                key,
                Kind::User,
                self.deadline,
                |_| Worth::Keeping,
                fetch,
            )
            .await
    }

    async fn members(
        &self,
        route: &Route,
        instance_id: &str,
        members: &Members<'_>,
        pages: &Pages,
    ) -> Result<Paged<Vec<String>>, FactError> {
        let name = match members {
            Members::Subtree(group) => format!("subtree:{group}"),
            Members::Everyone => "everyone".to_owned(),
        };
        let fetch = self.fetch_members(route, instance_id, members, pages);
        self.caches
            .get(
                &self.caches.members,
                key(instance_id, &name),
                Kind::Members,
                self.deadline,
                worth_of_paged,
                fetch,
            )
            .await
    }

    async fn live(
        &self,
        route: &Route,
        instance_id: &str,
        filter: &LiveFilter,
        pages: &Pages,
    ) -> Result<Paged<Vec<LiveAgent>>, FactError> {
        let fetch = self.fetch_live(route, instance_id, filter, pages);
        let answer = self
            .caches
            .get(
                &self.caches.live,
                key(instance_id, &live_key(filter)),
                Kind::Live,
                self.deadline,
                worth_of_paged,
                fetch,
            )
            .await?;
        // Kept in process whoever fetched it (this request, another, or
        // another replica): a contact evicted since is known again.
        for (key, contact) in contacts_of(instance_id, &answer.value) {
            self.caches.keep_contact(key, contact).await;
        }
        Ok(answer)
    }

    async fn permissions(&self, route: &Route, instance_id: &str, profile_id: &str) -> Result<Vec<String>, FactError> {
        let fetch = async {
            let listed = list_security_profile_permissions(self.at(route, instance_id), profile_id).await?;
            Ok(Arc::new(listed))
        };
        let key = key(instance_id, profile_id);
        let permissions = self
            .caches
            .get(
                &self.caches.permissions,
                key,
                Kind::Permissions,
                self.deadline,
                |_| Worth::Keeping,
                fetch,
            )
            .await?;
        Ok(permissions.as_ref().clone())
    }
}

impl LiveFacts<'_> {
    /// The user ids `members` names, every page while the listing allows.
    pub(crate) async fn fetch_members(
        &self,
        route: &Route,
        instance_id: &str,
        members: &Members<'_>,
        pages: &Pages,
    ) -> Result<Paged<Vec<String>>, FactError> {
        let mut ids = Vec::new();
        let mut next: Option<String> = None;
        loop {
            if !pages.take() {
                return Ok(Paged::now(ids, false));
            }
            let page = members_page(self.at(route, instance_id), members, next.as_deref()).await?;
            ids.extend(page.user_ids);
            match page.next_token {
                Some(token) => next = Some(token),
                None => return Ok(Paged::now(ids, true)),
            }
        }
    }

    /// The agents `filter` names and their live contacts, every page while
    /// the listing allows; each contact is then kept as DescribeContact
    /// would have told it, on the shared server (`live` keeps them here).
    pub(crate) async fn fetch_live(
        &self,
        route: &Route,
        instance_id: &str,
        filter: &LiveFilter,
        pages: &Pages,
    ) -> Result<Paged<Vec<LiveAgent>>, FactError> {
        let mut agents = Vec::new();
        let mut next: Option<String> = None;
        let complete = loop {
            if !pages.take() {
                break false;
            }
            let page = get_current_user_data(self.at(route, instance_id), filter, next.as_deref()).await?;
            agents.extend(page.agents);
            match page.next_token {
                Some(token) => next = Some(token),
                None => break true,
            }
        };
        // Fetched from Connect here: the fleet's other replicas learn its contacts too.
        for (key, contact) in contacts_of(instance_id, &agents) {
            self.caches.share_contact(&key, &contact).await;
        }
        Ok(Paged::now(agents, complete))
    }
}

/// The contacts of a live answer as DescribeContact would tell them: the
/// click that follows a listing needs no DescribeContact.
fn contacts_of<'a>(
    instance_id: &'a str,
    agents: &'a [LiveAgent],
) -> impl Iterator<Item = ((String, String), Contact)> + 'a {
    agents.iter().flat_map(move |agent| {
        agent.contacts.iter().map(move |contact| {
            let facts = Contact {
                agent_id: Some(agent.agent_id.clone()),
                agent_groups: agent.groups.clone(),
                queue_id: contact.queue_id.clone(),
            };
            (key(instance_id, &contact.contact_id), facts)
        })
    })
}
