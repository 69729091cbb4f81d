//! Where a call goes: the instance's region and the Connect endpoint, by the
//! precedence of docs/configuration.md (config, `AWS_ENDPOINT_URL_CONNECT`,
//! `AWS_ENDPOINT_URL`, then the regional or FIPS endpoint).

use std::collections::{BTreeSet, HashMap};

use std::sync::Arc;

use http::uri::{Authority, Scheme, Uri};

/// An endpoint's scheme and authority; each operation brings its own path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl Endpoint {
    /// The URI of an operation's (already encoded) path and query here.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    /// The `Host` header value: the authority without a default port.
    pub fn host(&self) -> String {
        let default_port = if self.scheme == Scheme::HTTPS { 443 } else { 80 };
        match self.authority.port_u16() {
            Some(p) if p != default_port => format!("{}:{}", self.authority.host(), p),
            _ => self.authority.host().to_string(),
        }
    }
}

/// Parses an endpoint override: `http(s)://host[:port]`, nothing after it but `/`.
pub(crate) fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let uri: Uri = text.parse().map_err(|e| format!("{e}"))?;
    let scheme = uri.scheme().cloned().ok_or("no scheme")?;
    if scheme != Scheme::HTTPS && scheme != Scheme::HTTP {
        return Err("scheme must be http or https".into());
    }
    let authority = uri.authority().cloned().ok_or("no host")?;
    if authority.as_str().contains('@') {
        return Err("credentials in the URL are not allowed".into());
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err("a path is not supported".into());
    }
    Ok(Endpoint { scheme, authority })
}

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub region: String,
    pub endpoint: Endpoint,
    /// The IAM role the call is signed as; `None`: the gateway's own credentials.
    pub role_arn: Option<Arc<str>>,
}

/// No region is known for an instance (its own, `connect.region` or `AWS_REGION`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no region is configured for this instance")]
pub struct NoRegion;

/// Routes instances to regions and endpoints. Built once at start from
/// resolved settings, so the answer never changes under a request. Which
/// instances may be called at all is authorization's question, not this one.
#[derive(Debug, Clone)]
pub struct Router {
    override_endpoint: Option<Endpoint>,
    use_fips: bool,
    default_region: Option<String>,
    /// Instances that name their own region.
    regions: HashMap<String, String>,
    /// Instances signed as a role of their own.
    roles: HashMap<String, Arc<str>>,
}

impl Router {
    /// `regions` holds the instances that name their own region, `roles`
    /// those signed as a role of their own (instance id → role ARN).
    pub fn new(
        override_endpoint: Option<Endpoint>,
        use_fips: bool,
        default_region: Option<String>,
        regions: HashMap<String, String>,
        roles: HashMap<String, String>,
    ) -> Router {
        Router {
            override_endpoint,
            use_fips,
            default_region,
            regions,
            roles: roles.into_iter().map(|(id, arn)| (id, Arc::from(arn))).collect(),
        }
    }

    /// The route for an instance: its own region, else the default.
    pub fn route(&self, instance_id: &str) -> Result<Route, NoRegion> {
        let region = self
            .regions
            .get(instance_id)
            .or(self.default_region.as_ref())
            .ok_or(NoRegion)?
            .clone();
        let endpoint = match &self.override_endpoint {
            Some(e) => e.clone(),
            None => regional_endpoint(&region, self.use_fips),
        };
        Ok(Route {
            region,
            endpoint,
            role_arn: self.roles.get(instance_id).cloned(),
        })
    }

    /// Where calls go, for the log at start: the override, or the endpoint of
    /// every region the configuration names.
    pub fn describe(&self) -> String {
        if let Some(e) = &self.override_endpoint {
            return format!("{}://{}", e.scheme, e.authority);
        }
        let regions: BTreeSet<&String> = self.regions.values().chain(self.default_region.as_ref()).collect();
        let hosts: Vec<String> = regions
            .into_iter()
            .map(|r| regional_endpoint(r, self.use_fips).authority.to_string())
            .collect();
        hosts.join(", ")
    }
}

fn regional_endpoint(region: &str, fips: bool) -> Endpoint {
    let host = if fips {
        format!("connect-fips.{region}.amazonaws.com")
    } else {
        format!("connect.{region}.amazonaws.com")
    };
    Endpoint {
        scheme: Scheme::HTTPS,
        authority: host.parse().expect("a checked region forms a host name"),
    }
}

/// Percent-encodes one path label as Connect's REST routes want it: only
/// `A-Z a-z 0-9 - . _ ~` stay as they are (so `/` becomes `%2F`).
pub(crate) fn path_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(default_region: Option<&str>, fips: bool, regions: &[(&str, &str)]) -> Router {
        Router::new(
            None,
            fips,
            default_region.map(str::to_owned),
            regions.iter().map(|(i, r)| (i.to_string(), r.to_string())).collect(),
            HashMap::new(),
        )
    }

    #[test]
    fn regional_endpoint_by_default() {
        let r = router(Some("us-east-1"), false, &[]).route("any").unwrap();
        assert_eq!(r.region, "us-east-1");
        assert_eq!(r.endpoint.host(), "connect.us-east-1.amazonaws.com");
    }

    #[test]
    fn fips_endpoint_when_asked() {
        let r = router(Some("us-east-1"), true, &[]).route("x").unwrap();
        assert_eq!(r.endpoint.host(), "connect-fips.us-east-1.amazonaws.com");
    }

    #[test]
    fn instances_are_routed_to_their_own_regions() {
        let router = router(Some("us-east-1"), false, &[("a", "eu-west-2")]);
        assert_eq!(
            router.route("a").unwrap().endpoint.host(),
            "connect.eu-west-2.amazonaws.com"
        );
        assert_eq!(router.route("b").unwrap().region, "us-east-1");
        assert_eq!(
            router.describe(),
            "connect.eu-west-2.amazonaws.com, connect.us-east-1.amazonaws.com"
        );
    }

    #[test]
    fn an_instance_without_any_region_has_no_route() {
        assert_eq!(router(None, false, &[]).route("a"), Err(NoRegion));
    }

    #[test]
    fn endpoint_with_path_is_refused() {
        assert!(parse_endpoint("https://h/x").is_err());
        assert!(parse_endpoint("ftp://h").is_err());
        assert!(parse_endpoint("https://u:p@h").is_err());
        assert!(parse_endpoint("https://h/").is_ok());
    }

    #[test]
    fn path_labels_keep_only_unreserved_characters() {
        assert_eq!(path_label("a b/c"), "a%20b%2Fc");
        assert_eq!(path_label("Az09-._~"), "Az09-._~");
        assert_eq!(path_label("arn:aws"), "arn%3Aaws");
        assert_eq!(path_label("é"), "%C3%A9");
    }
}
