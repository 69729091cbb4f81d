//! Where a call goes: the instance's region and the Connect endpoint, by the
//! precedence of CONTRACT §3 (config, `AWS_ENDPOINT_URL_CONNECT`,
//! `AWS_ENDPOINT_URL`, then the regional or FIPS endpoint).

use std::collections::HashMap;

use http::uri::{Authority, Scheme, Uri};

use crate::config::Settings;

/// An endpoint's scheme and authority; the path is always `/contact/monitor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl Endpoint {
    /// The URI of the MonitorContact operation at this endpoint.
    pub fn monitor_contact_uri(&self) -> Uri {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query("/contact/monitor")
            .build()
            .expect("scheme, authority and a fixed path form a URI")
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
pub fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
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
}

/// Why an instance cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("instance is not served by this gateway")]
    UnknownInstance,
    #[error("no region is configured for this instance")]
    NoRegion,
}

/// Routes instances to regions and endpoints. Built once at start, so the
/// environment is read once and the answer never changes under a request.
#[derive(Debug, Clone)]
pub struct Router {
    override_endpoint: Option<Endpoint>,
    use_fips: bool,
    default_region: Option<String>,
    /// When non-empty, an allow-list of instances, each with its region.
    instances: HashMap<String, Option<String>>,
}

impl Router {
    /// Builds the router from settings and the endpoint variables given.
    pub fn new(settings: &Settings, env: impl Fn(&str) -> Option<String>) -> Result<Router, String> {
        let candidates = [
            ("connect.endpoint", settings.connect.endpoint.clone()),
            ("AWS_ENDPOINT_URL_CONNECT", env("AWS_ENDPOINT_URL_CONNECT")),
            ("AWS_ENDPOINT_URL", env("AWS_ENDPOINT_URL")),
        ];
        let override_endpoint = match candidates
            .into_iter()
            .find_map(|(n, v)| v.filter(|v| !v.is_empty()).map(|v| (n, v)))
        {
            Some((name, text)) => Some(parse_endpoint(&text).map_err(|e| format!("{name}: {e}"))?),
            None => None,
        };
        Ok(Router {
            override_endpoint,
            use_fips: settings.connect.use_fips,
            default_region: settings.default_region(&env),
            instances: settings
                .connect
                .instances
                .iter()
                .map(|i| (i.id.clone(), i.region.clone()))
                .collect(),
        })
    }

    /// The route for an instance, or why there is none.
    pub fn route(&self, instance_id: &str) -> Result<Route, RouteError> {
        let region = if self.instances.is_empty() {
            self.default_region.clone()
        } else {
            match self.instances.get(instance_id) {
                None => return Err(RouteError::UnknownInstance),
                Some(r) => r.clone().or_else(|| self.default_region.clone()),
            }
        }
        .ok_or(RouteError::NoRegion)?;
        let endpoint = match &self.override_endpoint {
            Some(e) => e.clone(),
            None => regional_endpoint(&region, self.use_fips),
        };
        Ok(Route { region, endpoint })
    }

    /// The regions the gateway may call (for logs at start).
    pub fn describe(&self) -> String {
        match &self.override_endpoint {
            Some(e) => format!("{}://{}", e.scheme, e.authority),
            None if self.use_fips => "connect-fips.{region}.amazonaws.com".into(),
            None => "connect.{region}.amazonaws.com".into(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InstanceConfig;

    fn settings(toml_extra: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), "").unwrap();
        std::fs::write(
            dir.path().join("j.json"),
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#,
        )
        .unwrap();
        let text = format!(
            "[[auth.issuers]]\nissuer=\"i\"\naudiences=[\"a\"]\nalgorithms=[\"EdDSA\"]\njwks_file=\"j.json\"\n[policy]\nfile=\"p.toml\"\n[connect]\nregion=\"us-east-1\"\n{toml_extra}"
        );
        Settings::from_toml(&text, &dir.path().join("g.toml")).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn regional_endpoint_by_default() {
        let r = Router::new(&settings(""), no_env).unwrap().route("any").unwrap();
        assert_eq!(r.region, "us-east-1");
        assert_eq!(r.endpoint.host(), "connect.us-east-1.amazonaws.com");
    }

    #[test]
    fn fips_endpoint_when_asked() {
        let r = Router::new(&settings("use_fips = true"), no_env)
            .unwrap()
            .route("x")
            .unwrap();
        assert_eq!(r.endpoint.host(), "connect-fips.us-east-1.amazonaws.com");
    }

    #[test]
    fn endpoint_precedence_config_then_service_env_then_global_env() {
        let env = |k: &str| match k {
            "AWS_ENDPOINT_URL_CONNECT" => Some("http://127.0.0.1:4000".to_string()),
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:5000".to_string()),
            _ => None,
        };
        let r = Router::new(&settings("endpoint = \"https://vpce.example:8443\""), env).unwrap();
        assert_eq!(r.route("x").unwrap().endpoint.host(), "vpce.example:8443");
        let r = Router::new(&settings(""), env).unwrap();
        assert_eq!(r.route("x").unwrap().endpoint.host(), "127.0.0.1:4000");
        let only_global = |k: &str| (k == "AWS_ENDPOINT_URL").then(|| "http://127.0.0.1:5000".to_string());
        let r = Router::new(&settings(""), only_global).unwrap();
        assert_eq!(r.route("x").unwrap().endpoint.host(), "127.0.0.1:5000");
    }

    #[test]
    fn instances_are_an_allow_list_with_their_own_regions() {
        let mut s = settings("");
        s.connect.instances = vec![
            InstanceConfig {
                id: "a".into(),
                region: Some("eu-west-2".into()),
            },
            InstanceConfig {
                id: "b".into(),
                region: None,
            },
        ];
        let router = Router::new(&s, no_env).unwrap();
        assert_eq!(
            router.route("a").unwrap().endpoint.host(),
            "connect.eu-west-2.amazonaws.com"
        );
        assert_eq!(router.route("b").unwrap().region, "us-east-1");
        assert_eq!(router.route("c"), Err(RouteError::UnknownInstance));
    }

    #[test]
    fn endpoint_with_path_is_refused() {
        assert!(parse_endpoint("https://h/x").is_err());
        assert!(parse_endpoint("ftp://h").is_err());
        assert!(parse_endpoint("https://u:p@h").is_err());
        assert!(parse_endpoint("https://h/").is_ok());
    }
}
