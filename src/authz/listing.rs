//! The listing (docs/api.md, "The listing"): the live contacts of an
//! instance that the caller may monitor as themselves. Connect is asked only
//! about the agents some grant could allow (the grants' coverage), and each
//! contact is then judged by [`Authorizer::decide`] itself, as the check and
//! the real call would judge it: the listing cannot disagree with them.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::facts::{all, FactError, FactSource, Paged, Pages};
use super::policy::{Coverage, DenyReason, Grant, Needs};
use super::{Authorizer, Known, Refusal};
use crate::auth::token::Identity;
use crate::connect::describe_contact::ContactFacts;
use crate::connect::describe_user::ConnectUser;
use crate::connect::endpoint::Route;
use crate::connect::get_current_user_data::{LiveAgent, LiveContact, LiveFilter, LIVE_STATES, MAX_PER_CALL};
use crate::connect::monitor_request::{Capability, MonitorRequest};
use crate::connect::search_users::Members;

/// The capabilities tried for each contact, widest first: a contact is
/// listed with the first set that is allowed, and the grant that allows it.
const TRIES: [&[Capability]; 3] = [
    &[Capability::SilentMonitor, Capability::Barge],
    &[Capability::SilentMonitor],
    &[Capability::Barge],
];

/// The answer to a listing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Listing {
    /// When Connect gave the oldest answer used (epoch seconds); `None`
    /// when Connect was not asked.
    pub(crate) as_of: Option<f64>,
    /// False when the allowance of Connect calls ran out first.
    pub(crate) complete: bool,
    /// The caller's own Connect user id, when known.
    pub(crate) caller: Option<String>,
    /// Oldest first.
    pub(crate) contacts: Vec<Listed>,
}

/// The longest instance id a listing takes (Connect's own limit).
pub(crate) const MAX_INSTANCE_ID_CHARS: usize = 100;

/// The rules of a listed instance id; the broken one, in words that follow
/// the id's name. Never quotes the id.
pub(crate) fn check_instance_id(instance_id: &str) -> Result<(), String> {
    if instance_id.is_empty() {
        return Err("must not be empty".into());
    }
    if instance_id.chars().count() > MAX_INSTANCE_ID_CHARS {
        return Err(format!("must be at most {MAX_INSTANCE_ID_CHARS} characters"));
    }
    if instance_id.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Epoch seconds as RFC 3339, to the second.
fn rfc3339(epoch_seconds: f64) -> String {
    let at = SystemTime::UNIX_EPOCH + Duration::try_from_secs_f64(epoch_seconds.max(0.0)).unwrap_or_default();
    humantime::format_rfc3339_seconds(at).to_string()
}

impl Listing {
    /// The listing as the route's `data` (docs/api.md, "The listing"), and
    /// as `explain --list` prints it.
    pub(crate) fn data(&self, instance_id: &str) -> Value {
        let contacts: Vec<Value> = self
            .contacts
            .iter()
            .map(|l| {
                json!({
                    "contact_id": l.contact.contact_id,
                    "agent_id": l.agent_id,
                    "queue_id": l.contact.queue_id,
                    "channel": l.contact.channel,
                    "state": l.contact.state,
                    "since": l.contact.since.map(rfc3339),
                    "capabilities": l.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "grant": l.grant,
                })
            })
            .collect();
        // Connect not asked: the answer is as of now.
        let as_of = self.as_of.map_or_else(
            || humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            rfc3339,
        );
        json!({
            "instance_id": instance_id,
            "as_of": as_of,
            "complete": self.complete,
            "contacts": contacts,
        })
    }

    fn empty(caller: Option<String>) -> Self {
        Listing {
            as_of: None,
            complete: true,
            caller,
            contacts: Vec::new(),
        }
    }
}

/// One contact the caller may monitor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Listed {
    pub(crate) agent_id: String,
    pub(crate) contact: LiveContact,
    pub(crate) capabilities: Vec<Capability>,
    pub(crate) grant: String,
}

/// Whose live contacts to ask Connect for: the union of the grants' coverage.
#[derive(Debug, Default)]
struct Population {
    everyone: bool,
    agents: BTreeSet<String>,
    subtrees: BTreeSet<String>,
    queues: BTreeSet<String>,
}

impl Population {
    fn add(&mut self, coverage: Coverage) {
        match coverage {
            Coverage::Nobody => {}
            Coverage::Everyone => self.everyone = true,
            Coverage::Agents(ids) => self.agents.extend(ids),
            Coverage::Subtrees(ids) => self.subtrees.extend(ids),
            Coverage::Queues(ids) => self.queues.extend(ids),
        }
    }

    fn is_empty(&self) -> bool {
        !self.everyone && self.agents.is_empty() && self.subtrees.is_empty() && self.queues.is_empty()
    }
}

type Boxed<'f, T> = Pin<Box<dyn Future<Output = T> + Send + 'f>>;

impl Authorizer {
    /// Lists the live contacts of `instance_id` the caller may monitor as
    /// themselves, asking Connect at most `max_pages` pages. Fails closed: a
    /// lookup that fails fails the listing.
    pub(crate) async fn list(
        &self,
        identity: &Identity,
        instance_id: &str,
        facts: &impl FactSource,
        max_pages: u32,
    ) -> Result<Listing, Refusal> {
        if let Some(allowed) = &self.allowed_instances {
            if !allowed.contains(instance_id) {
                return Err(Refusal::Denied(DenyReason::InstanceNotAllowed));
            }
        }
        let route = self.router.route(instance_id).map_err(|_| Refusal::NoRegion)?;
        let policy = self.policy.read().expect("policy lock").clone();
        // The caller, for themselves, on a contact yet unknown.
        let mut probe = MonitorRequest {
            instance_id: instance_id.to_owned(),
            contact_id: String::new(),
            user_id: String::new(),
            capabilities: Vec::new(),
            client_token: None,
        };
        let admitting: Vec<&Grant> = policy
            .grants
            .iter()
            .filter(|g| g.admits(&identity.claims, &probe).is_ok())
            .collect();
        if admitting.is_empty() {
            return Ok(Listing::empty(None));
        }
        let mut known = Known::default();
        let Some(caller) = self.caller_id(identity, &probe, &route, facts, &mut known).await? else {
            return Ok(Listing::empty(None));
        };
        probe.user_id.clone_from(&caller);
        let grants: Vec<&Grant> = admitting
            .into_iter()
            .filter(|g| g.user_allowed(&probe, Some(&caller)).is_ok())
            .collect();
        // What Connect says of the supervisor, when a grant's coverage needs it.
        let needs = grants.iter().fold(Needs::default(), |n, g| {
            let g = g.needs();
            Needs {
                contact: false,
                supervisor: n.supervisor || g.supervisor,
                permissions: n.permissions || g.permissions,
            }
        });
        if needs.any() {
            Box::pin(known.fetch(needs, &probe, &route, facts)).await?;
        }
        let supervisor = known.supervisor();
        let mut population = Population::default();
        for grant in &grants {
            population.add(grant.coverage(supervisor.as_ref()));
        }
        if population.is_empty() {
            return Ok(Listing::empty(Some(caller)));
        }

        let pages = Pages::new(max_pages);
        let (agents, complete, as_of) = Box::pin(live_agents(facts, &route, instance_id, population, &pages)).await?;

        // Every live contact once, with what DescribeContact would say of it.
        let mut seen = HashMap::new();
        let mut live = Vec::new();
        for agent in agents {
            for contact in agent.contacts {
                if !LIVE_STATES.contains(&contact.state.as_str()) || seen.contains_key(&contact.contact_id) {
                    continue;
                }
                let facts = ContactFacts {
                    agent_id: Some(agent.agent_id.clone()),
                    agent_groups: agent.groups.clone(),
                    queue_id: contact.queue_id.clone(),
                };
                seen.insert(contact.contact_id.clone(), facts);
                live.push((agent.agent_id.clone(), contact));
            }
        }
        let judged = WithContacts {
            inner: facts,
            contacts: &seen,
        };
        let mut contacts = Vec::new();
        for (agent_id, contact) in live {
            probe.contact_id.clone_from(&contact.contact_id);
            if let Some((capabilities, grant)) = self.widest_allowed(identity, &mut probe, &judged).await? {
                contacts.push(Listed {
                    agent_id,
                    contact,
                    capabilities,
                    grant,
                });
            }
        }
        contacts.sort_by(|a, b| {
            let since = |l: &Listed| l.contact.since.unwrap_or(f64::INFINITY);
            since(a)
                .total_cmp(&since(b))
                .then_with(|| a.contact.contact_id.cmp(&b.contact.contact_id))
        });
        Ok(Listing {
            as_of,
            complete,
            caller: Some(caller),
            contacts,
        })
    }

    /// The widest capabilities `decide` allows on the probe's contact, and
    /// the grant that allows them; `None` when it allows none.
    async fn widest_allowed(
        &self,
        identity: &Identity,
        probe: &mut MonitorRequest,
        facts: &impl FactSource,
    ) -> Result<Option<(Vec<Capability>, String)>, Refusal> {
        for capabilities in TRIES {
            probe.capabilities = capabilities.to_vec();
            match Box::pin(self.decide(identity, probe, facts)).await {
                Ok(permit) => return Ok(Some((capabilities.to_vec(), permit.grant))),
                Err(Refusal::Denied(_)) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(None)
    }
}

/// The live agents of a population: the members of its subtrees (or of the
/// whole instance) first, then their current contacts, 100 agents (or
/// queues) a call, all at once. Also whether every page was read, and when
/// the oldest answer was given.
async fn live_agents(
    facts: &impl FactSource,
    route: &Route,
    instance_id: &str,
    population: Population,
    pages: &Pages,
) -> Result<(Vec<LiveAgent>, bool, Option<f64>), Refusal> {
    let mut complete = true;
    let mut agents = population.agents;
    let lists: Vec<Members<'_>> = match population.everyone {
        true => vec![Members::Everyone],
        false => population.subtrees.iter().map(|g| Members::Subtree(g)).collect(),
    };
    let lookups: Vec<Boxed<'_, Result<Paged<Vec<String>>, FactError>>> = lists
        .iter()
        .map(|members| Box::pin(facts.members(route, instance_id, members, pages)) as Boxed<'_, _>)
        .collect();
    for listed in all(lookups).await {
        let listed = listed?;
        complete &= listed.complete;
        agents.extend(listed.value);
    }
    let agents: Vec<String> = agents.into_iter().collect();
    let queues: Vec<String> = match population.everyone {
        // Every agent is asked for already.
        true => Vec::new(),
        false => population.queues.into_iter().collect(),
    };
    let filters: Vec<LiveFilter> = agents
        .chunks(MAX_PER_CALL)
        .map(|ids| LiveFilter::Agents(ids.to_vec()))
        .chain(queues.chunks(MAX_PER_CALL).map(|ids| LiveFilter::Queues(ids.to_vec())))
        .collect();
    let lookups: Vec<Boxed<'_, Result<Paged<Vec<LiveAgent>>, FactError>>> = filters
        .iter()
        .map(|filter| Box::pin(facts.live(route, instance_id, filter, pages)) as Boxed<'_, _>)
        .collect();
    let mut live = Vec::new();
    let mut as_of: Option<f64> = None;
    for answer in all(lookups).await {
        let answer = answer?;
        complete &= answer.complete;
        as_of = Some(as_of.map_or(answer.as_of, |t| t.min(answer.as_of)));
        live.extend(answer.value);
    }
    Ok((live, complete, as_of))
}

/// The listing's facts: its contacts as the live answer told them (so each
/// is judged on the data it was listed from), the rest from `inner`.
struct WithContacts<'a, F> {
    inner: &'a F,
    contacts: &'a HashMap<String, ContactFacts>,
}

impl<F: FactSource> FactSource for WithContacts<'_, F> {
    async fn user_id_by_username(
        &self,
        route: &Route,
        instance_id: &str,
        username: &str,
    ) -> Result<Option<String>, FactError> {
        self.inner.user_id_by_username(route, instance_id, username).await
    }

    async fn contact(&self, route: &Route, instance_id: &str, contact_id: &str) -> Result<ContactFacts, FactError> {
        match self.contacts.get(contact_id) {
            Some(contact) => Ok(contact.clone()),
            None => self.inner.contact(route, instance_id, contact_id).await,
        }
    }

    async fn user(&self, route: &Route, instance_id: &str, user_id: &str) -> Result<ConnectUser, FactError> {
        self.inner.user(route, instance_id, user_id).await
    }

    async fn permissions(&self, route: &Route, instance_id: &str, profile_id: &str) -> Result<Vec<String>, FactError> {
        self.inner.permissions(route, instance_id, profile_id).await
    }

    async fn members(
        &self,
        route: &Route,
        instance_id: &str,
        members: &Members<'_>,
        pages: &Pages,
    ) -> Result<Paged<Vec<String>>, FactError> {
        self.inner.members(route, instance_id, members, pages).await
    }

    async fn live(
        &self,
        route: &Route,
        instance_id: &str,
        filter: &LiveFilter,
        pages: &Pages,
    ) -> Result<Paged<Vec<LiveAgent>>, FactError> {
        self.inner.live(route, instance_id, filter, pages).await
    }
}
