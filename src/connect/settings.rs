//! `[connect]`: the section as written, checked and resolved against the
//! environment (the default region, the endpoint override).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_config::meta::region::ProvideRegion;
use aws_config::profile::ProfileFileRegionProvider;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use serde::Deserialize;

use super::endpoint::{parse_endpoint, Endpoint, Router};
use super::operation::{Operation, Quota};
use crate::check::{secs, valid_region, Check, Environment, HumanDuration};

/// `[connect]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectSection {
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    use_fips: bool,
    #[serde(default = "default_attempt_timeout")]
    attempt_timeout: HumanDuration,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
    /// Optional local limit on MonitorContact calls per second (Connect's
    /// default quota is 2/s, burst 5); callers queue within their deadline.
    #[serde(default)]
    max_rate: Option<f64>,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default)]
    instances: Vec<InstanceSection>,
    #[serde(default)]
    lookups: LookupsSection,
    #[serde(default)]
    quotas: QuotasSection,
}

/// `[connect.quotas]`: the part of Connect's account-wide quotas the fleet
/// may use, and per-operation quotas where Service Quotas raised them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotasSection {
    #[serde(default = "default_share")]
    share: f64,
    #[serde(rename = "MonitorContact", default)]
    monitor_contact: Option<QuotaEntry>,
    #[serde(rename = "DescribeContact", default)]
    describe_contact: Option<QuotaEntry>,
    #[serde(rename = "DescribeUser", default)]
    describe_user: Option<QuotaEntry>,
    #[serde(rename = "ListSecurityProfilePermissions", default)]
    list_security_profile_permissions: Option<QuotaEntry>,
    #[serde(rename = "SearchUsers", default)]
    search_users: Option<QuotaEntry>,
    #[serde(rename = "GetCurrentUserData", default)]
    get_current_user_data: Option<QuotaEntry>,
}

/// One operation's quota as written: `{ rate = 10.0, burst = 15 }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaEntry {
    rate: f64,
    burst: u32,
}

fn default_share() -> f64 {
    1.0
}

impl Default for QuotasSection {
    fn default() -> Self {
        toml::from_str("").expect("every [connect.quotas] key has a default")
    }
}

impl QuotasSection {
    fn entries(&self) -> [(Operation, Option<QuotaEntry>); 6] {
        [
            (Operation::MonitorContact, self.monitor_contact),
            (Operation::DescribeContact, self.describe_contact),
            (Operation::DescribeUser, self.describe_user),
            (
                Operation::ListSecurityProfilePermissions,
                self.list_security_profile_permissions,
            ),
            (Operation::SearchUsers, self.search_users),
            (Operation::GetCurrentUserData, self.get_current_user_data),
        ]
    }
}

/// The budgets the fleet keeps for Connect's quotas (docs/configuration.md,
/// `[connect.quotas]`): per operation, per AWS account and region.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaSettings {
    /// The part of each quota the gateways may use.
    pub share: f64,
    /// Quotas named in the file (or by `[connect] max_rate` for
    /// MonitorContact); the others are Connect's defaults.
    pub(crate) quotas: BTreeMap<Operation, Quota>,
}

impl QuotaSettings {
    /// The whole fleet's budget for `operation`: its quota times `share`,
    /// the burst rounded down but at least 1.
    pub(crate) fn budget(&self, operation: Operation) -> Quota {
        let quota = self
            .quotas
            .get(&operation)
            .copied()
            .unwrap_or_else(|| operation.quota());
        Quota {
            rate: quota.rate * self.share,
            burst: ((f64::from(quota.burst) * self.share).floor() as u32).max(1),
        }
    }
}

/// `[connect.lookups]`: how long facts read from Connect are trusted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupsSection {
    #[serde(default = "default_lookup_ttl")]
    ttl: HumanDuration,
    #[serde(default = "default_lookup_max_entries")]
    max_entries: u64,
    #[serde(default = "default_live_ttl")]
    live_ttl: HumanDuration,
    #[serde(default = "default_max_list_pages")]
    max_list_pages: u32,
}

fn default_lookup_ttl() -> HumanDuration {
    secs(300)
}
fn default_lookup_max_entries() -> u64 {
    10_000
}
fn default_live_ttl() -> HumanDuration {
    secs(5)
}
fn default_max_list_pages() -> u32 {
    20
}

impl Default for LookupsSection {
    fn default() -> Self {
        LookupsSection {
            ttl: default_lookup_ttl(),
            max_entries: default_lookup_max_entries(),
            live_ttl: default_live_ttl(),
            max_list_pages: default_max_list_pages(),
        }
    }
}

/// `[connect.lookups]`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupSettings {
    /// How long a looked-up fact is trusted.
    pub ttl: Duration,
    /// Per kind of fact.
    pub max_entries: u64,
    /// How long a listing's answer from GetCurrentUserData is reused.
    pub live_ttl: Duration,
    /// Connect calls one listing may make (GetCurrentUserData and
    /// SearchUsers pages); past it the list is incomplete.
    pub max_list_pages: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceSection {
    id: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    source_identity_claim: Option<String>,
}

fn default_attempt_timeout() -> HumanDuration {
    secs(3)
}
fn default_max_attempts() -> u32 {
    3
}

impl Default for ConnectSection {
    fn default() -> Self {
        toml::from_str("").expect("every [connect] key has a default")
    }
}

/// A `[[connect.instances]]` entry: an instance the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// `None`: the default region.
    pub region: Option<String>,
    /// The role this instance's calls are signed as; `None`: the gateway's own.
    pub role: Option<AssumedRole>,
}

/// A role in (usually) another account, assumed with STS AssumeRole.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssumedRole {
    pub arn: String,
    /// The `sts:ExternalId` the role's trust policy asks for.
    pub external_id: Option<String>,
    /// The token claim whose value MonitorContact is signed with as the
    /// session's `SourceIdentity` (docs/security.md, "CloudTrail names the
    /// supervisor"); `None`: MonitorContact is signed as the role itself.
    pub source_identity_claim: Option<String>,
}

impl AssumedRole {
    /// Whether `other` is assumed the same way (the same STS call), whatever
    /// it signs MonitorContact with.
    fn same_session(&self, other: &AssumedRole) -> bool {
        self.arn == other.arn && self.external_id == other.external_id
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<path/name>`.
fn valid_role_arn(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource
            .strip_prefix("role/")
            .is_some_and(|name| !name.is_empty() && name.len() <= 512 && !name.ends_with('/'))
}

/// An external id as STS accepts it: 2 to 1224 characters of `[\w+=,.@:/-]`.
fn valid_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b))
}

/// `[connect]`, checked and resolved against the environment.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// `connect.region`, else the AWS region chain.
    pub default_region: Option<String>,
    /// Where every call goes instead of the regional endpoint, and which
    /// setting said so (`connect.endpoint`, `AWS_ENDPOINT_URL_CONNECT`, …).
    pub endpoint_override: Option<(&'static str, Endpoint)>,
    pub use_fips: bool,
    pub attempt_timeout: Duration,
    pub max_attempts: u32,
    /// When non-empty, the only instances served (an allow-list).
    pub instances: Vec<Instance>,
    pub lookups: LookupSettings,
    pub quotas: QuotaSettings,
    /// Why the profile `AWS_PROFILE` names cannot be found, when no shared
    /// AWS file exists at all (a warning: credentials may come from elsewhere).
    pub undefined_profile: Option<String>,
}

impl ConnectSection {
    pub(crate) async fn check(self, c: &mut Check<'_>) -> ConnectSettings {
        if self.max_attempts == 0 || self.max_attempts > 10 {
            c.bad("connect.max_attempts", "must be between 1 and 10");
        }
        if self.attempt_timeout.0.is_zero() {
            c.bad("connect.attempt_timeout", "must be longer than 0s");
        }
        if let Some(rate) = self.max_rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= 1_000_000.0) {
                c.bad(
                    "connect.max_rate",
                    format!("{rate} is not a rate between 0 and 1000000 per second"),
                );
            }
        }
        match (self.burst, self.max_rate) {
            (Some(0), _) => c.bad("connect.burst", "must be at least 1"),
            (Some(_), None) => c.bad("connect.burst", "only applies with connect.max_rate"),
            _ => {}
        }
        let quotas = self.quotas(c);
        let default_region = self.default_region(c).await;
        let undefined_profile = SharedFiles::of(c.env).undefined_profile();
        let endpoint_override = self.endpoint_override(c);
        for (i, inst) in self.instances.iter().enumerate() {
            let at = |k: &str| format!("connect.instances[{i}].{k}");
            if inst.id.is_empty() || inst.id.chars().count() > 100 {
                c.bad(at("id"), "must be 1 to 100 characters");
            }
            if self.instances[..i].iter().any(|o| o.id == inst.id) {
                c.bad(at("id"), format!("{:?} is listed twice", inst.id));
            }
            match &inst.region {
                Some(r) if !valid_region(r) => c.bad(at("region"), format!("{r:?} is not a region name")),
                None if default_region.is_none() => {
                    c.bad(at("region"), "no region here, in connect.region or the AWS region chain (AWS_REGION, AWS_DEFAULT_REGION, the profile's region)")
                }
                _ => {}
            }
            match (&inst.role_arn, &inst.external_id) {
                (Some(arn), _) if !valid_role_arn(arn) => c.bad(
                    at("role_arn"),
                    "is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)",
                ),
                (None, Some(_)) => c.bad(at("external_id"), "only applies with role_arn"),
                (_, Some(id)) if !valid_external_id(id) => c.bad(
                    at("external_id"),
                    "must be 2 to 1224 characters of letters, digits and _+=,.@:/-",
                ),
                _ => {}
            }
            match (&inst.role_arn, &inst.source_identity_claim) {
                (None, Some(_)) => c.bad(at("source_identity_claim"), "only applies with role_arn"),
                (_, Some(claim)) if claim.is_empty() => c.bad(at("source_identity_claim"), "must not be empty"),
                _ => {}
            }
        }
        if self.lookups.ttl.0.is_zero() {
            c.bad("connect.lookups.ttl", "must be longer than 0s");
        }
        if self.lookups.max_entries == 0 {
            c.bad("connect.lookups.max_entries", "must be at least 1");
        }
        if self.lookups.live_ttl.0.is_zero() {
            c.bad("connect.lookups.live_ttl", "must be longer than 0s");
        }
        if self.lookups.max_list_pages == 0 {
            c.bad("connect.lookups.max_list_pages", "must be at least 1");
        }
        if self.instances.is_empty() && default_region.is_none() {
            c.bad(
                "connect.region",
                "set connect.region (or AWS_REGION, AWS_DEFAULT_REGION or the AWS profile's region, or a region per instance)",
            );
        }
        ConnectSettings {
            default_region,
            endpoint_override,
            use_fips: self.use_fips,
            attempt_timeout: self.attempt_timeout.0,
            max_attempts: self.max_attempts,
            instances: self
                .instances
                .into_iter()
                .map(|i| Instance {
                    id: i.id,
                    region: i.region,
                    role: i.role_arn.map(|arn| AssumedRole {
                        arn,
                        external_id: i.external_id,
                        source_identity_claim: i.source_identity_claim,
                    }),
                })
                .collect(),
            lookups: LookupSettings {
                ttl: self.lookups.ttl.0,
                max_entries: self.lookups.max_entries,
                live_ttl: self.lookups.live_ttl.0,
                max_list_pages: self.lookups.max_list_pages,
            },
            quotas,
            undefined_profile,
        }
    }

    /// `[connect.quotas]`, checked; `[connect] max_rate`/`burst` stand for
    /// MonitorContact when the section does not name it.
    fn quotas(&self, c: &mut Check<'_>) -> QuotaSettings {
        let section = &self.quotas;
        if !(section.share.is_finite() && section.share > 0.0 && section.share <= 1.0) {
            c.bad("connect.quotas.share", "must be more than 0 and at most 1");
        }
        let mut quotas = BTreeMap::new();
        if let Some(rate) = self.max_rate {
            quotas.insert(
                Operation::MonitorContact,
                Quota {
                    rate,
                    burst: self.burst.unwrap_or_else(|| rate.ceil() as u32).max(1),
                },
            );
        }
        for (operation, entry) in section.entries() {
            let Some(entry) = entry else { continue };
            let key = |k: &str| format!("connect.quotas.{operation}.{k}");
            if !(entry.rate.is_finite() && entry.rate > 0.0 && entry.rate <= 1_000_000.0) {
                c.bad(key("rate"), "must be a rate more than 0 and at most 1000000 per second");
            }
            if entry.burst == 0 {
                c.bad(key("burst"), "must be at least 1");
            }
            quotas.insert(
                operation,
                Quota {
                    rate: entry.rate,
                    burst: entry.burst,
                },
            );
        }
        QuotaSettings {
            share: section.share,
            quotas,
        }
    }

    /// `connect.region`, else the standard AWS region chain: `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, then the `region` of the selected profile in the
    /// shared config file. The one place this rule lives. A malformed value is
    /// a problem named after where it came from.
    async fn default_region(&self, c: &mut Check<'_>) -> Option<String> {
        let (key, region) = match &self.region {
            Some(r) => ("connect.region".to_string(), r.clone()),
            None => {
                let from_env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
                    .into_iter()
                    .find_map(|name| c.env.get(name).map(|v| (name.to_string(), v.to_owned())));
                match from_env {
                    Some(found) => found,
                    None => profile_region(c.env).await?,
                }
            }
        };
        if !valid_region(&region) {
            c.bad(key, format!("{region:?} is not a region name (like \"us-east-1\")"));
            return None;
        }
        Some(region)
    }

    /// The endpoint override by its precedence (docs/configuration.md): config, then
    /// `AWS_ENDPOINT_URL_CONNECT`, then `AWS_ENDPOINT_URL`.
    fn endpoint_override(&self, c: &mut Check) -> Option<(&'static str, Endpoint)> {
        let (source, text) = match &self.endpoint {
            Some(e) => ("connect.endpoint", e.clone()),
            None => ["AWS_ENDPOINT_URL_CONNECT", "AWS_ENDPOINT_URL"]
                .into_iter()
                .find_map(|name| c.env.get(name).map(|v| (name, v.to_owned())))?,
        };
        match parse_endpoint(&text) {
            Ok(endpoint) => Some((source, endpoint)),
            Err(e) => {
                c.bad(source, format!("{text:?} is not an http(s) URL with a host: {e}"));
                None
            }
        }
    }
}

/// The shared AWS files, as the AWS SDK finds them: `AWS_CONFIG_FILE` else
/// `~/.aws/config`, `AWS_SHARED_CREDENTIALS_FILE` else `~/.aws/credentials`,
/// and the profile `AWS_PROFILE` selects in them (else `default`).
struct SharedFiles {
    config: Option<PathBuf>,
    credentials: Option<PathBuf>,
    profile: String,
    /// Whether `AWS_PROFILE` chose the profile.
    chosen: bool,
}

impl SharedFiles {
    fn of(env: &Environment) -> SharedFiles {
        let home = env.get("HOME").map(PathBuf::from);
        let file = |variable: &str, default: &str| {
            env.get(variable)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(default)))
        };
        SharedFiles {
            config: file("AWS_CONFIG_FILE", ".aws/config"),
            credentials: file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            profile: env.get("AWS_PROFILE").unwrap_or("default").to_owned(),
            chosen: env.get("AWS_PROFILE").is_some(),
        }
    }

    fn existing(&self) -> impl Iterator<Item = (EnvConfigFileKind, &PathBuf)> {
        [
            (EnvConfigFileKind::Config, &self.config),
            (EnvConfigFileKind::Credentials, &self.credentials),
        ]
        .into_iter()
        .filter_map(|(kind, path)| Some((kind, path.as_ref().filter(|p| p.is_file())?)))
    }

    /// When `AWS_PROFILE` names a profile and there is no shared file at all
    /// to define it in: the SDK's credentials chain then only says its
    /// profile link "was not enabled", so the gateway says what is wrong.
    fn undefined_profile(&self) -> Option<String> {
        if !self.chosen || self.existing().next().is_some() {
            return None;
        }
        let shown = |p: &Option<PathBuf>| p.as_ref().map_or("(no HOME)".to_owned(), |p| p.display().to_string());
        Some(format!(
            "AWS_PROFILE names profile `{profile}`, but neither {} nor {} exists: profile `{profile}` was not defined",
            shown(&self.config),
            shown(&self.credentials),
            profile = self.profile,
        ))
    }
}

/// The `region` of the selected profile in the shared files, read with the
/// AWS SDK's own region provider so the gateway and its credentials chain
/// agree on the files' meaning. Returns where it came from (for a problem's
/// name) and the region.
async fn profile_region(env: &Environment) -> Option<(String, String)> {
    let shared = SharedFiles::of(env);
    let mut files = EnvConfigFiles::builder();
    let mut any = false;
    for (kind, path) in shared.existing() {
        files = files.with_file(kind, path);
        any = true;
    }
    if !any {
        return None;
    }
    let provider = ProfileFileRegionProvider::builder()
        .profile_files(files.build())
        .profile_name(&shared.profile)
        .build();
    let region = provider.region().await?;
    Some((
        format!("the region of AWS profile {:?}", shared.profile),
        region.to_string(),
    ))
}

impl ConnectSettings {
    /// The router for these settings.
    pub fn router(&self) -> Router {
        Router::new(
            self.endpoint_override.as_ref().map(|(_, e)| e.clone()),
            self.use_fips,
            self.default_region.clone(),
            self.instances
                .iter()
                .filter_map(|i| Some((i.id.clone(), i.region.clone()?)))
                .collect(),
            self.instances
                .iter()
                .filter_map(|i| Some((i.id.clone(), i.role.as_ref()?.arn.clone())))
                .collect(),
        )
    }

    /// Every role an instance is signed as, with the region its STS calls go
    /// to (the instance's): each is assumed once and kept fresh.
    pub fn roles(&self) -> Vec<(AssumedRole, String)> {
        let mut roles: Vec<(AssumedRole, String)> = Vec::new();
        for i in &self.instances {
            let Some(role) = &i.role else { continue };
            let region = i.region.clone().or_else(|| self.default_region.clone());
            if let (false, Some(region)) = (roles.iter().any(|(r, _)| r.same_session(role)), region) {
                roles.push((role.clone(), region));
            }
        }
        roles
    }

    /// The instances whose MonitorContact is signed as the supervisor
    /// (`source_identity_claim`): each with its role and the region its STS
    /// calls go to.
    pub fn source_identity_instances(&self) -> Vec<(String, AssumedRole, String)> {
        self.instances
            .iter()
            .filter_map(|i| {
                let role = i.role.as_ref().filter(|r| r.source_identity_claim.is_some())?;
                let region = i.region.clone().or_else(|| self.default_region.clone())?;
                Some((i.id.clone(), role.clone(), region))
            })
            .collect()
    }
}
