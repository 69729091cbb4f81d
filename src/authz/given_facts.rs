//! The facts `explain --facts FILE` is given (docs/policy.md, "explain"): one contact as
//! DescribeContact's `Contact`, users as DescribeUser's `User`, security
//! profiles' permissions and usernames' user ids, read strictly; and, for a
//! listing, the agents on contacts as GetCurrentUserData answers, read as the
//! gateway reads that answer. Each may also be what the AWS CLI prints for it,
//! as it comes (`aws connect describe-contact`, `describe-user`,
//! `list-security-profile-permissions`, `search-users`,
//! `get-current-user-data`), and the whole file may be one describe-contact
//! output. What the file does not give is missing, by name, exactly as with
//! no facts at all. (`facts::Recorded` notes, of any fact source, the contact's agent
//! and what was missing.) Messages name members and the ids the file keys
//! things by, never the file's values.

use std::collections::HashMap;
use std::time::UNIX_EPOCH;

use serde_json::{json, Map, Value};

use crate::authz::facts::{live_named, members_named, FactError, FactSource, Paged, Pages};
use crate::connect::describe_contact::{contact_facts, ContactFacts};
use crate::connect::describe_user::ConnectUser;
use crate::connect::endpoint::Route;
use crate::connect::get_current_user_data::{page, LiveAgent, LiveFilter};
use crate::connect::search_users::Members;

/// The members a facts file may have.
const MEMBERS: [&str; 5] = ["contact", "users", "security_profiles", "usernames", "live"];

/// An AWS CLI output a facts file takes, known by the member only it has at
/// its top, and where in the file it goes.
#[derive(Debug, PartialEq, Eq)]
struct CliOutput {
    mark: &'static str,
    command: &'static str,
    /// Its other top-level members.
    others: &'static [&'static str],
    place: &'static str,
}

const DESCRIBE_CONTACT: CliOutput = CliOutput {
    mark: "Contact",
    command: "describe-contact",
    others: &[],
    place: "contact",
};
const DESCRIBE_USER: CliOutput = CliOutput {
    mark: "User",
    command: "describe-user",
    others: &[],
    place: "users.\"<UserId>\"",
};
const LIST_PERMISSIONS: CliOutput = CliOutput {
    mark: "Permissions",
    command: "list-security-profile-permissions",
    others: &["NextToken", "LastModifiedTime", "LastModifiedRegion"],
    place: "security_profiles.\"<SecurityProfileId>\"",
};
const SEARCH_USERS: CliOutput = CliOutput {
    mark: "Users",
    command: "search-users",
    others: &["NextToken", "ApproximateTotalCount"],
    place: "usernames",
};
const GET_CURRENT_USER_DATA: CliOutput = CliOutput {
    mark: "UserDataList",
    command: "get-current-user-data",
    others: &["NextToken", "ApproximateTotalCount"],
    place: "live",
};
const CLI_OUTPUTS: [&CliOutput; 5] = [
    &DESCRIBE_CONTACT,
    &DESCRIBE_USER,
    &LIST_PERMISSIONS,
    &SEARCH_USERS,
    &GET_CURRENT_USER_DATA,
];

impl CliOutput {
    /// The output `name` marks.
    fn marked_by(name: &str) -> Option<&'static CliOutput> {
        CLI_OUTPUTS.into_iter().find(|o| o.mark == name)
    }

    /// The output an object is, by its mark; `None` for one with `own`, the
    /// member the object in its place has (a `Contact`'s or `User`'s `Id`).
    fn of(object: &Map<String, Value>, own: Option<&str>) -> Option<&'static CliOutput> {
        if own.is_some_and(|own| object.contains_key(own)) {
            return None;
        }
        CLI_OUTPUTS.into_iter().find(|o| object.contains_key(o.mark))
    }

    /// Where one found in the wrong place goes.
    fn goes_under(&self) -> String {
        format!(
            "this looks like aws connect {} output: put it under {}",
            self.command, self.place
        )
    }

    /// The output's one member that matters, refusing members it never has.
    fn open(&self, mut output: Map<String, Value>, member: &str) -> Result<Value, BadFacts> {
        if let Some(other) = output
            .keys()
            .find(|k| *k != self.mark && !self.others.contains(&k.as_str()))
        {
            return Err(bad(
                format_args!("{member}.{other:?}"),
                format_args!("unknown member of aws connect {} output", self.command),
            ));
        }
        Ok(output.remove(self.mark).unwrap_or(Value::Null))
    }

    /// Refuses one page of a paginated output: what it leaves out would read
    /// as absent (no permission, no such user), which only the whole says.
    fn whole(&self, output: &Map<String, Value>, member: &str) -> Result<(), BadFacts> {
        match has_next_page(output) {
            false => Ok(()),
            true => Err(bad(
                member,
                format_args!(
                    "is one page of aws connect {} output (it has a NextToken); give the whole output, \
                     as the CLI prints it without --no-paginate or --max-items",
                    self.command
                ),
            )),
        }
    }
}

/// Whether an output is a page with more after it.
fn has_next_page(output: &Map<String, Value>) -> bool {
    match output.get("NextToken") {
        // Like the SDK's paginators (and the gateway), an empty token ends the list.
        None | Some(Value::Null) => false,
        Some(Value::String(token)) => !token.is_empty(),
        Some(_) => true,
    }
}

/// A facts file that cannot be read as one: what is wrong, naming the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadFacts(pub String);

fn bad(member: impl std::fmt::Display, problem: impl std::fmt::Display) -> BadFacts {
    BadFacts(format!("{member}: {problem}"))
}

/// Connect's facts, as given in a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GivenFacts {
    /// The given contact's id and its facts.
    contact: Option<(String, ContactFacts)>,
    users: HashMap<String, ConnectUser>,
    security_profiles: HashMap<String, Vec<String>>,
    /// `None`: no `usernames` member, so no username can be resolved.
    usernames: Option<HashMap<String, String>>,
    /// The agents of the `live` answer, with their contacts; `None`: no
    /// `live` member, so no listing can be made.
    live: Option<Vec<LiveAgent>>,
}

impl GivenFacts {
    /// Reads a facts file's text.
    pub(crate) fn parse(text: &str) -> Result<Self, BadFacts> {
        let value: Value = serde_json::from_str(text).map_err(|e| BadFacts(format!("not JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Reads a facts file's JSON: every member optional, none other allowed;
    /// or one bare describe-contact output, as if under `contact`.
    pub(crate) fn from_value(value: Value) -> Result<Self, BadFacts> {
        let Value::Object(mut members) = value else {
            return Err(BadFacts(format!(
                "must be a JSON object with any of the members {}, or aws connect describe-contact output",
                MEMBERS.join(", ")
            )));
        };
        if members.len() == 1 {
            if let Some(contact) = members.remove(DESCRIBE_CONTACT.mark) {
                return Ok(GivenFacts {
                    contact: Some(contact_object(contact, DESCRIBE_CONTACT.mark)?),
                    ..GivenFacts::default()
                });
            }
        }
        let mut unknown = members.keys().filter(|m| !MEMBERS.contains(&m.as_str()));
        // A misplaced output is named by its mark, whichever of its members sorts first.
        if let Some((member, output)) = unknown.clone().find_map(|m| Some((m, CliOutput::marked_by(m)?))) {
            return Err(bad(
                format_args!("{member:?}"),
                format_args!("unknown member; {}", output.goes_under()),
            ));
        }
        if let Some(member) = unknown.next() {
            return Err(bad(
                format_args!("{member:?}"),
                format_args!("unknown member; expected one of {}", MEMBERS.join(", ")),
            ));
        }
        let mut facts = GivenFacts::default();
        for (member, value) in members {
            match member.as_str() {
                "contact" => facts.contact = Some(contact(value)?),
                "users" => facts.users = users(value)?,
                "security_profiles" => facts.security_profiles = security_profiles(value)?,
                "usernames" => facts.usernames = Some(usernames(value)?),
                "live" => facts.live = Some(live(value)?),
                _ => unreachable!("unknown members are refused above"),
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

/// A list of strings, or what it must be.
fn strings(value: Value, member: &str, must_be: &str) -> Result<Vec<String>, BadFacts> {
    let not = || bad(member, format_args!("must be {must_be}"));
    match value {
        Value::Array(list) => list
            .into_iter()
            .map(|s| match s {
                Value::String(s) => Ok(s),
                _ => Err(not()),
            })
            .collect(),
        _ => Err(not()),
    }
}

/// Refuses an object keyed by Connect's ids that holds an output's mark
/// instead: no id is spelt `User` or `Permissions`, so the output itself
/// was put where its contents go.
fn no_output_for_an_id(map: &Map<String, Value>, member: &str) -> Result<(), BadFacts> {
    match map.keys().find_map(|k| Some((k, CliOutput::marked_by(k)?))) {
        Some((key, output)) => Err(bad(format_args!("{member}.{key:?}"), output.goes_under())),
        None => Ok(()),
    }
}

/// `contact`: DescribeContact's `Contact` object or the whole describe-contact output.
fn contact(value: Value) -> Result<(String, ContactFacts), BadFacts> {
    let member = "contact";
    let contact = object(
        value,
        member,
        "DescribeContact's Contact object or aws connect describe-contact output",
    )?;
    match CliOutput::of(&contact, Some("Id")) {
        None => read_contact(contact, member),
        Some(&DESCRIBE_CONTACT) => contact_object(DESCRIBE_CONTACT.open(contact, member)?, "contact.Contact"),
        Some(other) => Err(bad(member, other.goes_under())),
    }
}

fn contact_object(value: Value, member: &str) -> Result<(String, ContactFacts), BadFacts> {
    read_contact(object(value, member, "DescribeContact's Contact object")?, member)
}

fn read_contact(contact: Map<String, Value>, member: &str) -> Result<(String, ContactFacts), BadFacts> {
    let contact_id = id(
        contact.get("Id").cloned().unwrap_or(Value::Null),
        format_args!("{member}.Id"),
        "the contact's id",
    )?;
    Ok((contact_id, contact_facts(&Value::Object(contact))))
}

/// `users`: each DescribeUser's `User` object or the whole describe-user output.
fn users(value: Value) -> Result<HashMap<String, ConnectUser>, BadFacts> {
    let users = object(
        value,
        "users",
        "an object of user id to DescribeUser's User object or aws connect describe-user output",
    )?;
    no_output_for_an_id(&users, "users")?;
    users
        .into_iter()
        .map(|(key, user)| {
            let member = format!("users.{key:?}");
            let user = object(
                user,
                &member,
                "DescribeUser's User object or aws connect describe-user output",
            )?;
            let user = match CliOutput::of(&user, Some("Id")) {
                None => read_user(user, &member, &key)?,
                Some(&DESCRIBE_USER) => {
                    let user = DESCRIBE_USER.open(user, &member)?;
                    let member = format!("{member}.User");
                    read_user(object(user, &member, "DescribeUser's User object")?, &member, &key)?
                }
                Some(other) => return Err(bad(member, other.goes_under())),
            };
            Ok((key, user))
        })
        .collect()
}

/// The members of a `User` the gateway reads, as strictly as it reads
/// DescribeUser's answer; but with messages of our own, for serde's would
/// quote the file's values.
fn read_user(mut user: Map<String, Value>, member: &str, key: &str) -> Result<ConnectUser, BadFacts> {
    let mut take = |name: &str| user.remove(name).unwrap_or(Value::Null);
    let id = id(take("Id"), format_args!("{member}.Id"), "the user's id")?;
    if id != key {
        return Err(bad(
            format_args!("{member}.Id"),
            format_args!("is not {key:?}, the user id it is given under"),
        ));
    }
    let hierarchy_group_id = match take("HierarchyGroupId") {
        Value::Null => None,
        Value::String(group) => Some(group),
        _ => {
            return Err(bad(
                format_args!("{member}.HierarchyGroupId"),
                "must be a hierarchy group id (a string)",
            ))
        }
    };
    let security_profile_ids = match user.remove("SecurityProfileIds") {
        None => Vec::new(),
        Some(ids) => strings(
            ids,
            &format!("{member}.SecurityProfileIds"),
            "a list of security profile ids (strings)",
        )?,
    };
    Ok(ConnectUser {
        id,
        hierarchy_group_id,
        security_profile_ids,
    })
}

/// `security_profiles`: each a list of permission names or the whole
/// list-security-profile-permissions output.
fn security_profiles(value: Value) -> Result<HashMap<String, Vec<String>>, BadFacts> {
    const MUST_BE: &str =
        "a list of permission names (strings) or aws connect list-security-profile-permissions output";
    let profiles = object(
        value,
        "security_profiles",
        "an object of security profile id to its list of permissions",
    )?;
    no_output_for_an_id(&profiles, "security_profiles")?;
    profiles
        .into_iter()
        .map(|(key, permissions)| {
            let member = format!("security_profiles.{key:?}");
            let permissions = match permissions {
                Value::Object(output) => match CliOutput::of(&output, None) {
                    Some(&LIST_PERMISSIONS) => {
                        LIST_PERMISSIONS.whole(&output, &member)?;
                        let list = LIST_PERMISSIONS.open(output, &member)?;
                        strings(
                            list,
                            &format!("{member}.Permissions"),
                            "a list of permission names (strings)",
                        )?
                    }
                    Some(other) => return Err(bad(member, other.goes_under())),
                    None => return Err(bad(member, format_args!("must be {MUST_BE}"))),
                },
                list => strings(list, &member, MUST_BE)?,
            };
            Ok((key, permissions))
        })
        .collect()
}

/// `usernames`: username to user id, or the whole search-users output.
fn usernames(value: Value) -> Result<HashMap<String, String>, BadFacts> {
    let usernames = object(
        value,
        "usernames",
        "an object of username to user id or aws connect search-users output",
    )?;
    // A username may be spelt `Users`, but its user id is a string.
    if usernames.get(SEARCH_USERS.mark).is_some_and(|users| !users.is_string()) {
        return search_users(usernames);
    }
    // A misplaced output first, before its other members read as bad user ids.
    let misplaced = usernames.iter().find_map(|(name, user_id)| {
        let output = user_id
            .as_object()
            .and_then(|object| CliOutput::of(object, Some("Id")))
            .or_else(|| CliOutput::marked_by(name).filter(|_| !user_id.is_string()))?;
        Some((name, output))
    });
    if let Some((name, output)) = misplaced {
        return Err(bad(format_args!("usernames.{name:?}"), output.goes_under()));
    }
    usernames
        .into_iter()
        .map(|(name, user_id)| {
            let member = format!("usernames.{name:?}");
            Ok((name, id(user_id, member, "a user id")?))
        })
        .collect()
}

/// Each user's `Username` to its `Id`. A username two users share is left
/// out: the gateway finds nobody by an ambiguous name, and neither may explain.
fn search_users(output: Map<String, Value>) -> Result<HashMap<String, String>, BadFacts> {
    let member = "usernames";
    SEARCH_USERS.whole(&output, member)?;
    let Value::Array(users) = SEARCH_USERS.open(output, member)? else {
        return Err(bad(
            "usernames.Users",
            "must be a list of users, each with its Id and Username",
        ));
    };
    let mut by_name: HashMap<String, Option<String>> = HashMap::new();
    for (i, user) in users.into_iter().enumerate() {
        let member = format!("usernames.Users[{i}]");
        let mut user = object(user, &member, "a user with its Id and Username")?;
        let mut take = |name: &str| user.remove(name).unwrap_or(Value::Null);
        let user_id = id(take("Id"), format_args!("{member}.Id"), "a user id")?;
        let username = id(take("Username"), format_args!("{member}.Username"), "a username")?;
        by_name
            .entry(username)
            .and_modify(|shared| *shared = None)
            .or_insert(Some(user_id));
    }
    Ok(by_name
        .into_iter()
        .filter_map(|(name, user_id)| Some((name, user_id?)))
        .collect())
}

/// `live`: aws connect get-current-user-data output, or its pages in a list.
/// The CLI prints one page at a time (`--next-token` asks for the next), so
/// a list must end with the page that has no `NextToken`: what a missing
/// page leaves out would read as an agent on no contact. Each page is read
/// as the gateway reads Connect's answer.
fn live(value: Value) -> Result<Vec<LiveAgent>, BadFacts> {
    let member = "live";
    match value {
        Value::Array(pages) => {
            let last = pages.len().checked_sub(1).ok_or_else(|| {
                bad(
                    member,
                    "must hold at least one page of aws connect get-current-user-data output",
                )
            })?;
            let mut agents = Vec::new();
            for (i, output) in pages.into_iter().enumerate() {
                agents.extend(live_page(output, &format!("{member}[{i}]"), i == last)?);
            }
            Ok(agents)
        }
        output => live_page(output, member, true),
    }
}

/// One get-current-user-data output; `last`: the one that must end the list.
fn live_page(value: Value, member: &str, last: bool) -> Result<Vec<LiveAgent>, BadFacts> {
    const MUST_BE: &str = "aws connect get-current-user-data output, or a list of its pages";
    let Value::Object(output) = value else {
        return Err(bad(member, format_args!("must be {MUST_BE}")));
    };
    match CliOutput::of(&output, None) {
        Some(&GET_CURRENT_USER_DATA) => {}
        Some(other) => return Err(bad(member, other.goes_under())),
        None => return Err(bad(member, format_args!("must be {MUST_BE}"))),
    }
    if last {
        no_next_page(&output, member)?;
    }
    let Value::Array(mut list) = GET_CURRENT_USER_DATA.open(output, member)? else {
        return Err(bad(
            format_args!("{member}.UserDataList"),
            "must be a list of agents' user data",
        ));
    };
    for (i, user_data) in list.iter_mut().enumerate() {
        let contacts = user_data.get_mut("Contacts").and_then(Value::as_array_mut);
        for (j, contact) in contacts.into_iter().flatten().enumerate() {
            for name in ["StateStartTimestamp", "ConnectedToAgentTimestamp"] {
                let Some(at) = contact.get_mut(name) else { continue };
                if let Value::String(text) = at {
                    let seconds = epoch_seconds(text).ok_or_else(|| {
                        bad(
                            format_args!("{member}.UserDataList[{i}].Contacts[{j}].{name}"),
                            "must be a time: epoch seconds, or ISO 8601 as the CLI prints it",
                        )
                    })?;
                    *at = json!(seconds);
                }
            }
        }
    }
    let answer = json!({ "UserDataList": list });
    Ok(page(&answer).map(|p| p.agents).unwrap_or_default())
}

/// Refuses a page that is not the last: unlike the other outputs a file
/// takes, the CLI does not ask for the next pages itself.
fn no_next_page(output: &Map<String, Value>, member: &str) -> Result<(), BadFacts> {
    match has_next_page(output) {
        false => Ok(()),
        true => Err(bad(
            member,
            "is one page of aws connect get-current-user-data output (it has a NextToken), and the CLI \
             prints one page at a time: run it again with --next-token until a page has none, and give \
             every page, in order, as a list",
        )),
    }
}

/// A time as the CLI prints it (`--cli-timestamp-format iso8601`, version
/// 2's default: `2024-05-14T09:30:19.504000+00:00`, in the local offset),
/// in epoch seconds.
fn epoch_seconds(text: &str) -> Option<f64> {
    let (local, offset) = match text.strip_suffix(['Z', 'z']) {
        Some(utc) => (utc, 0),
        None => {
            let at = text.len().checked_sub("+00:00".len())?;
            let (local, offset) = (text.get(..at)?, text.get(at..)?.as_bytes());
            let sign = match offset[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits = |d: &[u8]| -> Option<i64> {
                d.iter()
                    .try_fold(0, |n, b| b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0')))
            };
            if offset[3] != b':' {
                return None;
            }
            let (hours, minutes) = (digits(&offset[1..3])?, digits(&offset[4..6])?);
            (local, sign * (hours * 3600 + minutes * 60))
        }
    };
    // The date and time alone, read as UTC, then moved by the offset.
    let at = humantime::parse_rfc3339_weak(local).ok()?;
    let seconds = at.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    Some(seconds - offset as f64)
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

    /// The agents of the given live answer (those whose hierarchy path holds
    /// the group, for a subtree): whole, and read now.
    async fn members(
        &self,
        _: &Route,
        _: &str,
        members: &Members<'_>,
        _: &Pages,
    ) -> Result<Paged<Vec<String>>, FactError> {
        let agents = self
            .live
            .as_ref()
            .ok_or_else(|| FactError::Missing(members_named(members)))?;
        let ids = agents
            .iter()
            .filter(|agent| match members {
                Members::Everyone => true,
                Members::Subtree(group) => agent.groups.iter().any(|g| g == group),
            })
            .map(|agent| agent.agent_id.clone())
            .collect();
        Ok(Paged::now(ids, true))
    }

    /// The named agents of the given live answer; for queues, every agent
    /// of it, since the decision judges each contact by its own queue.
    async fn live(
        &self,
        _: &Route,
        _: &str,
        filter: &LiveFilter,
        _: &Pages,
    ) -> Result<Paged<Vec<LiveAgent>>, FactError> {
        let agents = self
            .live
            .as_ref()
            .ok_or_else(|| FactError::Missing(live_named(filter)))?;
        let named = agents
            .iter()
            .filter(|agent| match filter {
                LiveFilter::Agents(ids) => ids.contains(&agent.agent_id),
                LiveFilter::Queues(_) => true,
            })
            .cloned()
            .collect();
        Ok(Paged::now(named, true))
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
        let (pages, subtree) = (Pages::new(1), Members::Subtree("g-team"));
        let agents = LiveFilter::Agents(vec!["agent-1".into()]);
        let queues = LiveFilter::Queues(vec!["q-1".into()]);
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
            (
                missing(facts.members(&r, "i", &subtree, &pages).await),
                missing(NoFacts.members(&r, "i", &subtree, &pages).await),
            ),
            (
                missing(facts.members(&r, "i", &Members::Everyone, &pages).await),
                missing(NoFacts.members(&r, "i", &Members::Everyone, &pages).await),
            ),
            (
                missing(facts.live(&r, "i", &agents, &pages).await),
                missing(NoFacts.live(&r, "i", &agents, &pages).await),
            ),
            (
                missing(facts.live(&r, "i", &queues, &pages).await),
                missing(NoFacts.live(&r, "i", &queues, &pages).await),
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

    /// `GivenFacts::from_value`'s problem, for a file that is not one.
    fn refused(value: Value) -> String {
        match GivenFacts::from_value(value.clone()) {
            Err(BadFacts(problem)) => problem,
            Ok(facts) => panic!("{value} was read as {facts:?}"),
        }
    }

    #[test]
    fn describe_contact_output_is_accepted_as_it_comes() {
        let contact = file()["contact"].clone();
        assert_eq!(
            given(json!({"contact": {"Contact": contact.clone()}})),
            given(json!({"contact": contact}))
        );
    }

    #[test]
    fn a_file_that_is_one_describe_contact_output_is_read_as_its_contact() {
        let contact = file()["contact"].clone();
        assert_eq!(
            given(json!({"Contact": contact.clone()})),
            given(json!({"contact": contact}))
        );
    }

    #[test]
    fn describe_user_output_is_accepted_as_it_comes() {
        let user = file()["users"]["user-1"].clone();
        let mut output = json!({"User": user.clone()});
        // DescribeUser's User carries more than the gateway reads.
        output["User"]["IdentityInfo"] = json!({"FirstName": "Sup"});
        output["User"]["LastModifiedRegion"] = json!("eu-west-2");
        assert_eq!(
            given(json!({"users": {"user-1": output}})),
            given(json!({"users": {"user-1": user}}))
        );
    }

    #[test]
    fn list_security_profile_permissions_output_is_accepted_as_it_comes() {
        let plain = given(json!({"security_profiles": {"sp-1": ["ManagerListenIn", "ManagerBargeIn"]}}));
        for output in [
            json!({"Permissions": ["ManagerListenIn", "ManagerBargeIn"]}),
            json!({"Permissions": ["ManagerListenIn", "ManagerBargeIn"],
                   "LastModifiedTime": "2024-03-02T11:02:10.433000+00:00", "LastModifiedRegion": "eu-west-2"}),
            // --cli-timestamp-format none prints epoch seconds.
            json!({"Permissions": ["ManagerListenIn", "ManagerBargeIn"], "LastModifiedTime": 1709377330.433}),
            // No token, or an empty one, ends the list (as for the gateway).
            json!({"Permissions": ["ManagerListenIn", "ManagerBargeIn"], "NextToken": null}),
            json!({"Permissions": ["ManagerListenIn", "ManagerBargeIn"], "NextToken": ""}),
        ] {
            assert_eq!(
                given(json!({"security_profiles": {"sp-1": output.clone()}})),
                plain,
                "{output}"
            );
        }
        let empty = given(json!({"security_profiles": {"sp-1": {"Permissions": []}}}));
        assert_eq!(empty.security_profiles["sp-1"], Vec::<String>::new());
    }

    #[test]
    fn search_users_output_is_accepted_as_it_comes() {
        let output = json!({
            "Users": [
                {"Id": "user-1", "Username": "sup@example.com", "Arn": "arn:aws:connect:eu-west-2:1:instance/i/agent/user-1",
                 "SecurityProfileIds": ["sp-1"], "IdentityInfo": {"FirstName": "Sup"}},
                {"Id": "user-2", "Username": "agent@example.com"},
            ],
            "ApproximateTotalCount": 2,
        });
        assert_eq!(
            given(json!({"usernames": output})),
            given(json!({"usernames": {"sup@example.com": "user-1", "agent@example.com": "user-2"}}))
        );
        assert_eq!(
            given(json!({"usernames": {"Users": [], "NextToken": null}})),
            given(json!({"usernames": {}}))
        );
    }

    #[test]
    fn a_username_spelt_like_search_users_output_is_still_a_username() {
        assert_eq!(
            given(json!({"usernames": {"Users": "user-1"}})).usernames,
            Some(HashMap::from([("Users".to_string(), "user-1".to_string())]))
        );
    }

    #[tokio::test]
    async fn a_username_two_users_share_in_search_users_output_names_nobody_as_in_the_gateway() {
        let facts = given(json!({"usernames": {"Users": [
            {"Id": "user-1", "Username": "sup@example.com"},
            {"Id": "user-2", "Username": "sup@example.com"},
            {"Id": "user-3", "Username": "other@example.com"},
        ]}}));
        let r = route();
        assert_eq!(
            facts.user_id_by_username(&r, "i", "sup@example.com").await.unwrap(),
            None
        );
        assert_eq!(
            facts
                .user_id_by_username(&r, "i", "other@example.com")
                .await
                .unwrap()
                .as_deref(),
            Some("user-3")
        );
    }

    #[test]
    fn one_page_of_a_paginated_output_is_refused_asking_for_the_whole() {
        assert_eq!(
            refused(json!({"security_profiles": {"sp-1": {"Permissions": ["ManagerListenIn"], "NextToken": "t"}}})),
            "security_profiles.\"sp-1\": is one page of aws connect list-security-profile-permissions output \
             (it has a NextToken); give the whole output, as the CLI prints it without --no-paginate or --max-items"
        );
        assert_eq!(
            refused(json!({"usernames": {"Users": [], "NextToken": "t"}})),
            "usernames: is one page of aws connect search-users output (it has a NextToken); give the whole \
             output, as the CLI prints it without --no-paginate or --max-items"
        );
    }

    #[test]
    fn misplaced_cli_outputs_are_refused_saying_where_they_go() {
        let user = json!({"User": {"Id": "user-1"}});
        let permissions = json!({"Permissions": ["ManagerListenIn"], "LastModifiedRegion": "eu-west-2"});
        let search = json!({"Users": [{"Id": "user-1", "Username": "sup"}], "ApproximateTotalCount": 1});
        let contact = json!({"Contact": {"Id": "contact-1"}});
        let to_users = "this looks like aws connect describe-user output: put it under users.\"<UserId>\"";
        let to_profiles = "this looks like aws connect list-security-profile-permissions output: \
                           put it under security_profiles.\"<SecurityProfileId>\"";
        let to_usernames = "this looks like aws connect search-users output: put it under usernames";
        let to_contact = "this looks like aws connect describe-contact output: put it under contact";
        let cases = [
            // At the top of the file, named by the output's own member.
            (user.clone(), format!("\"User\": unknown member; {to_users}")),
            (
                permissions.clone(),
                format!("\"Permissions\": unknown member; {to_profiles}"),
            ),
            (search.clone(), format!("\"Users\": unknown member; {to_usernames}")),
            (
                json!({"Contact": {"Id": "contact-1"}, "users": {}}),
                format!("\"Contact\": unknown member; {to_contact}"),
            ),
            // Under a member, in the place of what it holds.
            (json!({"users": user.clone()}), format!("users.\"User\": {to_users}")),
            (
                json!({"users": search.clone()}),
                format!("users.\"Users\": {to_usernames}"),
            ),
            (
                json!({"security_profiles": permissions.clone()}),
                format!("security_profiles.\"Permissions\": {to_profiles}"),
            ),
            (json!({"contact": user.clone()}), format!("contact: {to_users}")),
            (json!({"contact": search.clone()}), format!("contact: {to_usernames}")),
            (
                json!({"users": {"user-1": contact.clone()}}),
                format!("users.\"user-1\": {to_contact}"),
            ),
            (
                json!({"users": {"user-1": permissions.clone()}}),
                format!("users.\"user-1\": {to_profiles}"),
            ),
            (
                json!({"security_profiles": {"sp-1": user.clone()}}),
                format!("security_profiles.\"sp-1\": {to_users}"),
            ),
            (
                json!({"usernames": {"sup": user.clone()}}),
                format!("usernames.\"sup\": {to_users}"),
            ),
            (
                json!({"usernames": {"User": {"Id": "user-1"}}}),
                format!("usernames.\"User\": {to_users}"),
            ),
            (json!({"usernames": user}), format!("usernames.\"User\": {to_users}")),
            (
                json!({"usernames": permissions}),
                format!("usernames.\"Permissions\": {to_profiles}"),
            ),
            (
                json!({"usernames": contact}),
                format!("usernames.\"Contact\": {to_contact}"),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(refused(value.clone()), expected, "{value}");
        }
    }

    #[test]
    fn unknown_members_and_wrong_shapes_are_refused_by_name() {
        let cases = [
            (
                json!([]),
                "must be a JSON object with any of the members contact, users, security_profiles, usernames, \
                 live, or aws connect describe-contact output",
            ),
            (
                json!({"contacts": {}}),
                "\"contacts\": unknown member; expected one of contact, users, security_profiles, usernames, live",
            ),
            (
                json!({"contact": []}),
                "contact: must be DescribeContact's Contact object or aws connect describe-contact output",
            ),
            (
                json!({"contact": {"QueueInfo": {"Id": "q"}}}),
                "contact.Id: must be the contact's id (a non-empty string)",
            ),
            (
                json!({"contact": {"Id": 7}}),
                "contact.Id: must be the contact's id (a non-empty string)",
            ),
            (
                json!({"contact": {"Contact": []}}),
                "contact.Contact: must be DescribeContact's Contact object",
            ),
            (
                json!({"contact": {"Contact": {}}}),
                "contact.Contact.Id: must be the contact's id (a non-empty string)",
            ),
            (
                json!({"contact": {"Contact": {"Id": "c"}, "ResponseMetadata": {}}}),
                "contact.\"ResponseMetadata\": unknown member of aws connect describe-contact output",
            ),
            (
                json!({"Contact": {"Id": ""}}),
                "Contact.Id: must be the contact's id (a non-empty string)",
            ),
            (
                json!({"Contact": 1}),
                "Contact: must be DescribeContact's Contact object",
            ),
            (
                json!({"users": []}),
                "users: must be an object of user id to DescribeUser's User object or aws connect describe-user output",
            ),
            (
                json!({"users": {"u": 1}}),
                "users.\"u\": must be DescribeUser's User object or aws connect describe-user output",
            ),
            (
                json!({"users": {"u": {}}}),
                "users.\"u\".Id: must be the user's id (a non-empty string)",
            ),
            (
                json!({"users": {"u": {"Id": "u", "SecurityProfileIds": "sp"}}}),
                "users.\"u\".SecurityProfileIds: must be a list of security profile ids (strings)",
            ),
            (
                json!({"users": {"u": {"Id": "u", "SecurityProfileIds": ["sp", 1]}}}),
                "users.\"u\".SecurityProfileIds: must be a list of security profile ids (strings)",
            ),
            (
                json!({"users": {"u": {"Id": "u", "HierarchyGroupId": ["g"]}}}),
                "users.\"u\".HierarchyGroupId: must be a hierarchy group id (a string)",
            ),
            (
                json!({"users": {"u": {"Id": "v"}}}),
                "users.\"u\".Id: is not \"u\", the user id it is given under",
            ),
            (
                json!({"users": {"u": {"User": "u"}}}),
                "users.\"u\".User: must be DescribeUser's User object",
            ),
            (
                json!({"users": {"u": {"User": {"Id": "v"}}}}),
                "users.\"u\".User.Id: is not \"u\", the user id it is given under",
            ),
            (
                json!({"users": {"u": {"User": {"Id": "u"}, "NextToken": "t"}}}),
                "users.\"u\".\"NextToken\": unknown member of aws connect describe-user output",
            ),
            (
                json!({"security_profiles": ["p"]}),
                "security_profiles: must be an object of security profile id to its list of permissions",
            ),
            (
                json!({"security_profiles": {"sp": "ManagerListenIn"}}),
                "security_profiles.\"sp\": must be a list of permission names (strings) or aws connect \
                 list-security-profile-permissions output",
            ),
            (
                json!({"security_profiles": {"sp": [1]}}),
                "security_profiles.\"sp\": must be a list of permission names (strings) or aws connect \
                 list-security-profile-permissions output",
            ),
            (
                json!({"security_profiles": {"sp": {"Name": "x"}}}),
                "security_profiles.\"sp\": must be a list of permission names (strings) or aws connect \
                 list-security-profile-permissions output",
            ),
            (
                json!({"security_profiles": {"sp": {"Permissions": "ManagerListenIn"}}}),
                "security_profiles.\"sp\".Permissions: must be a list of permission names (strings)",
            ),
            (
                json!({"security_profiles": {"sp": {"Permissions": [], "SecurityProfileId": "sp"}}}),
                "security_profiles.\"sp\".\"SecurityProfileId\": unknown member of aws connect \
                 list-security-profile-permissions output",
            ),
            (
                json!({"usernames": "x"}),
                "usernames: must be an object of username to user id or aws connect search-users output",
            ),
            (
                json!({"usernames": {"x": null}}),
                "usernames.\"x\": must be a user id (a non-empty string)",
            ),
            (
                json!({"usernames": {"x": ""}}),
                "usernames.\"x\": must be a user id (a non-empty string)",
            ),
            (
                json!({"usernames": {"Users": {"Id": "u"}}}),
                "usernames.Users: must be a list of users, each with its Id and Username",
            ),
            (
                json!({"usernames": {"Users": [], "sup": "user-1"}}),
                "usernames.\"sup\": unknown member of aws connect search-users output",
            ),
            (
                json!({"usernames": {"Users": ["user-1"]}}),
                "usernames.Users[0]: must be a user with its Id and Username",
            ),
            (
                json!({"usernames": {"Users": [{"Id": "user-1", "Username": "a"}, {"Username": "b"}]}}),
                "usernames.Users[1].Id: must be a user id (a non-empty string)",
            ),
            (
                json!({"usernames": {"Users": [{"Id": "user-1", "Username": ""}]}}),
                "usernames.Users[0].Username: must be a username (a non-empty string)",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(refused(value.clone()), expected, "{value}");
        }
        assert!(GivenFacts::parse("{").unwrap_err().0.starts_with("not JSON"));
    }

    #[test]
    fn messages_never_quote_the_files_values() {
        // Every value here is one the file gives, not an id it keys things by.
        let v = "VALUE-7f3a";
        for value in [
            json!({"contact": {"Id": [v]}}),
            json!({"Contact": {"Id": {"x": v}}}),
            json!({"users": {"u": {"Id": v}}}),
            json!({"users": {"u": {"User": {"Id": v}}}}),
            json!({"users": {"u": {"Id": "u", "SecurityProfileIds": v}}}),
            json!({"users": {"u": {"Id": "u", "HierarchyGroupId": [v]}}}),
            json!({"security_profiles": {"sp": v}}),
            json!({"security_profiles": {"sp": {"Permissions": [v, 1]}}}),
            json!({"security_profiles": {"sp": {"Permissions": [], "NextToken": v}}}),
            json!({"usernames": {"x": [v]}}),
            json!({"usernames": {"Users": [{"Id": v, "Username": 1}]}}),
            json!({"usernames": {"Users": [{"Id": 1, "Username": v}]}}),
            json!({"usernames": {"Users": [], "NextToken": v}}),
        ] {
            let problem = refused(value.clone());
            assert!(!problem.contains(v), "{value}: {problem}");
        }
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

    fn group(id: &str) -> Value {
        json!({"Id": id, "Arn": format!("arn:aws:connect:eu-west-2:1:instance/i/agent-group/{id}"), "Name": id})
    }

    /// aws connect get-current-user-data output as CLI version 2 prints it:
    /// `agent-team` (in g-site > g-team) on a call and a chat, `agent-other`
    /// (in g-site > g-other) on a call.
    fn get_current_user_data_output() -> Value {
        json!({
            "UserDataList": [
                {
                    "User": {"Id": "agent-team", "Arn": "arn:aws:connect:eu-west-2:1:instance/i/agent/agent-team"},
                    "RoutingProfile": {"Id": "rp-1", "Arn": "arn:aws:connect:eu-west-2:1:instance/i/routing-profile/rp-1"},
                    "HierarchyPath": {"LevelOne": group("g-site"), "LevelTwo": group("g-team")},
                    "Status": {"StatusStartTimestamp": "2024-05-14T09:00:00+00:00", "StatusName": "Available"},
                    "AvailableSlotsByChannel": {"VOICE": 0, "CHAT": 1},
                    "MaxSlotsByChannel": {"VOICE": 1, "CHAT": 2},
                    "ActiveSlotsByChannel": {"VOICE": 1, "CHAT": 1},
                    "Contacts": [
                        {"ContactId": "c-voice", "Channel": "VOICE", "InitiationMethod": "INBOUND",
                         "AgentContactState": "CONNECTED",
                         "StateStartTimestamp": "2024-05-14T10:30:19.504000+01:00",
                         "ConnectedToAgentTimestamp": "2024-05-14T01:30:19.504000-08:00",
                         "Queue": {"Id": "q-1", "Arn": "arn:aws:connect:eu-west-2:1:instance/i/queue/q-1"}},
                        {"ContactId": "c-chat", "Channel": "CHAT", "InitiationMethod": "API",
                         "AgentContactState": "CONNECTED_ONHOLD", "StateStartTimestamp": "2024-05-14T09:31:00Z",
                         "Queue": {"Id": "q-2"}},
                    ],
                    "NextStatus": "Offline",
                },
                {
                    "User": {"Id": "agent-other"},
                    "HierarchyPath": {"LevelOne": group("g-site"), "LevelTwo": group("g-other")},
                    "Contacts": [
                        {"ContactId": "c-other", "Channel": "VOICE", "AgentContactState": "CONNECTED",
                         "StateStartTimestamp": 1715679000.25, "Queue": {"Id": "q-1"}},
                    ],
                },
            ],
            "ApproximateTotalCount": 2,
        })
    }

    /// 2024-05-14T09:30:19.504Z.
    const CONNECTED_AT: f64 = 1_715_679_019.504;

    fn live_agents(facts: &GivenFacts) -> &[LiveAgent] {
        facts.live.as_deref().expect("a live answer")
    }

    #[test]
    fn get_current_user_data_output_under_live_is_read_as_the_gateway_reads_the_answer() {
        let output = get_current_user_data_output();
        let facts = given(json!({"live": output.clone()}));
        let agents = live_agents(&facts);
        assert_eq!(
            agents
                .iter()
                .map(|a| (a.agent_id.as_str(), a.groups.clone()))
                .collect::<Vec<_>>(),
            [
                ("agent-team", vec!["g-site".to_string(), "g-team".to_string()]),
                ("agent-other", vec!["g-site".to_string(), "g-other".to_string()]),
            ]
        );
        let voice = &agents[0].contacts[0];
        assert_eq!(
            (
                voice.contact_id.as_str(),
                voice.channel.as_deref(),
                voice.state.as_str()
            ),
            ("c-voice", Some("VOICE"), "CONNECTED")
        );
        assert_eq!(voice.queue_id.as_deref(), Some("q-1"));
        // Connected to the agent first, at its offset; else the state's start.
        assert!((voice.since.unwrap() - CONNECTED_AT).abs() < 1e-3, "{:?}", voice.since);
        assert_eq!(agents[0].contacts[1].since, Some(1_715_679_060.0));
        assert_eq!(agents[1].contacts[0].since, Some(1_715_679_000.25));

        // The same answer as Connect sends it (epoch seconds) reads the same.
        let mut wire = output;
        for contact in wire["UserDataList"][0]["Contacts"].as_array_mut().unwrap() {
            for name in ["StateStartTimestamp", "ConnectedToAgentTimestamp"] {
                if let Some(at) = contact.get_mut(name) {
                    *at = json!(epoch_seconds(at.as_str().unwrap()).unwrap());
                }
            }
        }
        assert_eq!(given(json!({"live": wire})), facts);
        // What the gateway skips, a file's answer skips too.
        let odd = given(json!({"live": {"UserDataList": [
            {"User": {}},
            {"User": {"Id": "agent-1"}, "Contacts": [{"Channel": "VOICE", "AgentContactState": "CONNECTED"}]},
        ]}}));
        assert_eq!(
            live_agents(&odd),
            [LiveAgent {
                agent_id: "agent-1".into(),
                groups: vec![],
                contacts: vec![]
            }]
        );
    }

    #[test]
    fn cli_timestamps_are_read_at_their_offset() {
        for (text, seconds) in [
            ("2024-05-14T09:30:19.504000+00:00", CONNECTED_AT),
            ("2024-05-14T09:30:19.504Z", CONNECTED_AT),
            ("2024-05-14T01:30:19.504000-08:00", CONNECTED_AT),
            ("2024-05-14T15:00:19.504+05:30", CONNECTED_AT),
            ("2024-05-14T09:30:19+00:00", CONNECTED_AT.floor()),
        ] {
            let read = epoch_seconds(text).unwrap_or_else(|| panic!("{text}"));
            assert!((read - seconds).abs() < 1e-3, "{text}: {read}");
        }
        for text in [
            "",
            "yesterday",
            "2024-05-14",
            "2024-05-14T09:30:19+0000",
            "2024-05-14T09:30:19*00:00",
            "2024-05-14T09:30:19+0a:00",
            "2024-05-14T09:30:19é00",
        ] {
            assert_eq!(epoch_seconds(text), None, "{text}");
        }
    }

    #[tokio::test]
    async fn a_listing_is_answered_from_the_given_live_answer() {
        let facts = given(json!({"live": get_current_user_data_output()}));
        let (r, pages) = (route(), Pages::new(0));
        let members = |paged: Paged<Vec<String>>| {
            assert!(paged.complete, "a file's answer is whole");
            paged.value
        };
        assert_eq!(
            members(facts.members(&r, "i", &Members::Everyone, &pages).await.unwrap()),
            ["agent-team", "agent-other"]
        );
        assert_eq!(
            members(
                facts
                    .members(&r, "i", &Members::Subtree("g-site"), &pages)
                    .await
                    .unwrap()
            ),
            ["agent-team", "agent-other"]
        );
        assert_eq!(
            members(
                facts
                    .members(&r, "i", &Members::Subtree("g-team"), &pages)
                    .await
                    .unwrap()
            ),
            ["agent-team"]
        );
        assert_eq!(
            members(
                facts
                    .members(&r, "i", &Members::Subtree("g-none"), &pages)
                    .await
                    .unwrap()
            ),
            Vec::<String>::new()
        );
        let live = |filter: LiveFilter| {
            let facts = &facts;
            let (r, pages) = (&r, &pages);
            async move {
                let paged = facts.live(r, "i", &filter, pages).await.unwrap();
                assert!(paged.complete);
                let now = Paged::now((), true).as_of;
                assert!(paged.as_of <= now && now - paged.as_of < 60.0, "read now");
                paged.value.into_iter().map(|a| a.agent_id).collect::<Vec<_>>()
            }
        };
        assert_eq!(
            live(LiveFilter::Agents(vec!["agent-other".into(), "agent-9".into()])).await,
            ["agent-other"]
        );
        assert_eq!(
            live(LiveFilter::Queues(vec!["q-9".into()])).await,
            ["agent-team", "agent-other"],
            "every agent: each contact is judged by its own queue"
        );
    }

    #[test]
    fn every_page_of_get_current_user_data_output_is_read_and_one_page_alone_is_refused() {
        let output = get_current_user_data_output();
        let mut first = json!({"UserDataList": [output["UserDataList"][0].clone()], "NextToken": "AAE"});
        let last = json!({"UserDataList": [output["UserDataList"][1].clone()], "ApproximateTotalCount": 2});
        assert_eq!(
            given(json!({"live": [first.clone(), last.clone()]})),
            given(json!({"live": output}))
        );
        let every_page = "is one page of aws connect get-current-user-data output (it has a NextToken), and the \
                          CLI prints one page at a time: run it again with --next-token until a page has none, \
                          and give every page, in order, as a list";
        assert_eq!(refused(json!({"live": first.clone()})), format!("live: {every_page}"));
        assert_eq!(
            refused(json!({"live": [last, first.clone()]})),
            format!("live[1]: {every_page}")
        );
        // An empty token ends the list, as for the gateway.
        first["NextToken"] = json!("");
        assert_eq!(live_agents(&given(json!({"live": first}))).len(), 1);
    }

    #[test]
    fn a_misplaced_get_current_user_data_output_is_refused_saying_it_goes_under_live() {
        let output = get_current_user_data_output();
        let to_live = "this looks like aws connect get-current-user-data output: put it under live";
        for (value, expected) in [
            (output.clone(), format!("\"UserDataList\": unknown member; {to_live}")),
            (
                json!({"UserDataList": []}),
                format!("\"UserDataList\": unknown member; {to_live}"),
            ),
            (json!({"contact": output.clone()}), format!("contact: {to_live}")),
            (
                json!({"users": output.clone()}),
                format!("users.\"UserDataList\": {to_live}"),
            ),
            (
                json!({"users": {"user-1": output.clone()}}),
                format!("users.\"user-1\": {to_live}"),
            ),
            (
                json!({"security_profiles": {"sp-1": output.clone()}}),
                format!("security_profiles.\"sp-1\": {to_live}"),
            ),
            (
                json!({"usernames": output.clone()}),
                format!("usernames.\"UserDataList\": {to_live}"),
            ),
            (
                json!({"live": {"Users": [], "ApproximateTotalCount": 0}}),
                "live: this looks like aws connect search-users output: put it under usernames".to_string(),
            ),
            (
                json!({"live": [output, {"User": {"Id": "u"}}]}),
                "live[1]: this looks like aws connect describe-user output: put it under users.\"<UserId>\""
                    .to_string(),
            ),
        ] {
            assert_eq!(refused(value.clone()), expected, "{value}");
        }
    }

    #[test]
    fn a_live_member_that_is_not_one_is_refused_by_name() {
        let must_be = "must be aws connect get-current-user-data output, or a list of its pages";
        for (value, expected) in [
            (json!({"live": "x"}), format!("live: {must_be}")),
            (json!({"live": {}}), format!("live: {must_be}")),
            (json!({"live": [[]]}), format!("live[0]: {must_be}")),
            (
                json!({"live": []}),
                "live: must hold at least one page of aws connect get-current-user-data output".to_string(),
            ),
            (
                json!({"live": {"UserDataList": {}}}),
                "live.UserDataList: must be a list of agents' user data".to_string(),
            ),
            (
                json!({"live": {"UserDataList": [], "ResponseMetadata": {}}}),
                "live.\"ResponseMetadata\": unknown member of aws connect get-current-user-data output".to_string(),
            ),
            (
                json!({"live": {"UserDataList": [{"User": {"Id": "a"}, "Contacts": [
                    {"ContactId": "c", "AgentContactState": "CONNECTED", "StateStartTimestamp": "at noon"}]}]}}),
                "live.UserDataList[0].Contacts[0].StateStartTimestamp: must be a time: epoch seconds, or ISO 8601 \
                 as the CLI prints it"
                    .to_string(),
            ),
        ] {
            assert_eq!(refused(value.clone()), expected, "{value}");
        }
        let v = "VALUE-7f3a";
        for value in [
            json!({"live": {"UserDataList": [], "NextToken": v}}),
            json!({"live": {"UserDataList": [{"Contacts": [{"ConnectedToAgentTimestamp": v}]}]}}),
        ] {
            let problem = refused(value.clone());
            assert!(!problem.contains(v), "{value}: {problem}");
        }
    }
}
