//! The deployment examples under deploy/ agree with each other and with the
//! gateway: the shipped configs of both Kubernetes topologies (sidecar and
//! edge, docs/operations.md "Topologies") and of ECS pass the gateway's own loader, and the
//! ports, probes, paths, file names, labels and shutdown timings in the
//! Dockerfile, the manifests and the ECS task definition are the ones that
//! config implies.
//! The manifests are read with serde_norway into the same JSON values as the
//! ECS task definition. Schema validation is `.ci/validate-deploy`'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use connect_monitor_gateway::test_util::Environment;
use connect_monitor_gateway::test_util::KeySource;
use connect_monitor_gateway::test_util::Metrics;
use connect_monitor_gateway::test_util::Settings;
use serde_json::{json, Value};

fn read(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

// --- reading the manifests ----------------------------------------------------

/// A YAML file of one document (serde_norway refuses more than one).
fn yaml(path: &str) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn number<T: std::str::FromStr>(text: Option<&str>, what: &str) -> T {
    text.and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{what}: not a number: {text:?}"))
}

/// A whole number, as YAML writes it (not quoted).
fn count<T: TryFrom<u64>>(value: &Value, what: &str) -> T {
    value
        .as_u64()
        .and_then(|n| T::try_from(n).ok())
        .unwrap_or_else(|| panic!("{what}: not a count: {value}"))
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {value}"))
}

/// The items of a sequence; panics when `value` is none.
fn list<'a>(value: &'a Value, what: &str) -> &'a [Value] {
    value
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not a sequence: {value}"))
}

/// The item of a sequence whose `name` is `name`.
fn named<'a>(items: &'a Value, name: &str) -> &'a Value {
    list(items, name)
        .iter()
        .find(|item| item["name"] == name)
        .unwrap_or_else(|| panic!("no item named {name} in {items}"))
}

/// A mapping of strings (labels, selectors).
fn strings(value: &Value, what: &str) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{what}: {e}: {value}"))
}

// --- the artifacts ------------------------------------------------------------

/// One of the Kubernetes topologies, a kustomization each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    /// Next to the dashboard backend in its pod: loopback, plain HTTP, no CORS.
    Sidecar,
    /// Shared, behind a Service: TLS on all interfaces, CORS for the browsers.
    Edge,
    /// Sidecars as one fleet: one Connect budget and one cache on a Redis.
    Fleet,
}

const TOPOLOGIES: [Topology; 3] = [Topology::Sidecar, Topology::Edge, Topology::Fleet];

impl Topology {
    fn dir(self) -> &'static str {
        match self {
            Topology::Sidecar => "deploy/kubernetes/sidecar",
            Topology::Edge => "deploy/kubernetes/edge",
            Topology::Fleet => "deploy/kubernetes/fleet",
        }
    }

    fn manifest(self, file: &str) -> Value {
        yaml(&format!("{}/{file}", self.dir()))
    }

    fn deployment(self) -> Value {
        self.manifest("deployment.yaml")
    }

    fn configmap(self) -> ConfigMap {
        let cm = self.manifest("configmap.yaml");
        ConfigMap {
            name: text(&cm["metadata"]["name"], "ConfigMap name").to_string(),
            gateway_toml: text(&cm["data"]["gateway.toml"], "ConfigMap gateway.toml").to_string(),
            policy_toml: text(&cm["data"]["policy.toml"], "ConfigMap policy.toml").to_string(),
        }
    }

    /// The ConfigMap's config as the container sees it: with the TLS files it
    /// names (the edge's Secret keys, projected beside it) standing in as the
    /// test certificate.
    fn settings(self) -> Settings {
        let cm = self.configmap();
        let doc: toml::Value = toml::from_str(&cm.gateway_toml).expect("gateway.toml is TOML");
        let mut beside = vec![("policy.toml".to_string(), cm.policy_toml.into_bytes())];
        for (key, fixture) in [("cert_file", "server.pem"), ("key_file", "server.key")] {
            if let Some(name) = doc.get("server").and_then(|s| s.get("tls")).and_then(|t| t.get(key)) {
                let name = name.as_str().expect("a file name");
                assert_eq!(
                    Path::new(name).file_name().and_then(|n| n.to_str()),
                    Some(name),
                    "server.tls.{key} is a file beside gateway.toml (the projected Secret key)"
                );
                beside.push((name.to_string(), read_bytes(&format!("tests/fixtures/tls/{fixture}"))));
            }
        }
        load_with(&cm.gateway_toml, &beside)
    }
}

fn read_bytes(path: &str) -> Vec<u8> {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

struct ConfigMap {
    name: String,
    gateway_toml: String,
    policy_toml: String,
}

/// Loads a gateway.toml with its policy.toml beside it, as the container sees them.
fn load(gateway_toml: &str, policy_toml: &str) -> Settings {
    load_with(
        gateway_toml,
        &[("policy.toml".to_string(), policy_toml.as_bytes().to_vec())],
    )
}

/// Loads a gateway.toml with these files beside it.
fn load_with(gateway_toml: &str, beside: &[(String, Vec<u8>)]) -> Settings {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in beside {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, gateway_toml).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(Settings::from_toml(gateway_toml, &path, Environment::default()))
        .unwrap_or_else(|e| panic!("the config does not load:\n{e}"))
}

/// The `[cors] allowed_origins` as written, each checked against the loaded settings.
fn allowed_origins(t: Topology) -> Vec<String> {
    let doc: toml::Value = toml::from_str(&t.configmap().gateway_toml).unwrap();
    let origins: Vec<String> = doc
        .get("cors")
        .and_then(|c| c.get("allowed_origins"))
        .and_then(toml::Value::as_array)
        .map(|a| a.iter().map(|o| o.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    let settings = t.settings();
    let asked_by = |origin: &str| settings.allows_origin(origin);
    for origin in &origins {
        assert!(asked_by(origin), "{t:?}: {origin} is allowed by the loaded config");
    }
    assert!(!asked_by("https://elsewhere.example.net"), "{t:?}: exact origins only");
    origins
}

fn ecs() -> Value {
    serde_json::from_str(&read("deploy/ecs/task-definition.json")).expect("task definition JSON")
}

fn ecs_container<'a>(task: &'a Value, name: &str) -> &'a Value {
    task["containerDefinitions"]
        .as_array()
        .expect("containerDefinitions")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no ECS container {name}"))
}

fn ecs_env<'a>(container: &'a Value, name: &str) -> &'a str {
    container["environment"]
        .as_array()
        .and_then(|env| env.iter().find(|e| e["name"] == name))
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("no environment variable {name} in {}", container["name"]))
}

fn ecs_settings(task: &Value) -> Settings {
    let init = ecs_container(task, "gateway-config");
    load(ecs_env(init, "GATEWAY_TOML"), ecs_env(init, "POLICY_TOML"))
}

/// The JSON array of a Dockerfile instruction in exec form (the last one: the runtime stage's).
fn dockerfile_exec(instruction: &str) -> Vec<String> {
    let line = dockerfile_line(instruction);
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{instruction} is not in exec form: {e}"))
}

/// The arguments of a Dockerfile instruction (the last one: the runtime stage's).
fn dockerfile_line(instruction: &str) -> String {
    read("deploy/Dockerfile")
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("no {instruction} in the Dockerfile"))
        .to_string()
}

fn config_flag(args: &[String]) -> String {
    let at = args
        .iter()
        .position(|a| a == "--config")
        .expect("--config in the arguments");
    args[at + 1].clone()
}

/// The pod template's spec.
fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

/// A container of the pod template.
fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    named(&pod_spec(deployment)["containers"], name)
}

/// The gateway container's `args`.
fn gateway_args(deployment: &Value) -> Vec<String> {
    serde_json::from_value(container(deployment, "gateway")["args"].clone()).expect("args: a list of strings")
}

fn folder(path: &str) -> String {
    Path::new(path).parent().unwrap().display().to_string()
}

fn admin(settings: &Settings) -> SocketAddr {
    settings.server.admin_listen.expect("server.admin_listen is set")
}

fn gateway_url_port(url: &str) -> u16 {
    let (host, port) = url
        .strip_prefix("http://")
        .and_then(|rest| rest.trim_end_matches('/').rsplit_once(':'))
        .unwrap_or_else(|| panic!("{url} is not http://host:port"));
    assert!(
        host == "127.0.0.1" || host == "localhost",
        "{url}: the sidecar is reached on loopback"
    );
    number(Some(port), url)
}

/// The pod template's labels.
fn pod_labels(deployment: &Value) -> BTreeMap<String, String> {
    strings(&deployment["spec"]["template"]["metadata"]["labels"], "pod labels")
}

/// The gateway container's ports, by name.
fn container_ports(deployment: &Value) -> BTreeMap<String, u16> {
    list(&container(deployment, "gateway")["ports"], "ports")
        .iter()
        .map(|port| {
            (
                text(&port["name"], "every port is named").to_string(),
                count(&port["containerPort"], "containerPort"),
            )
        })
        .collect()
}

/// What a volume is made of: the sources of a projected volume, or the volume itself.
fn volume_sources(volume: &Value) -> Vec<&Value> {
    match volume.get("projected") {
        Some(projected) => list(&projected["sources"], "projected sources").iter().collect(),
        None => vec![volume],
    }
}

/// The volume holding the ConfigMap (directly or projected) and the gateway's mount of it.
fn config_volume<'a>(deployment: &'a Value, configmap: &str) -> (&'a Value, &'a Value) {
    let volume = list(&pod_spec(deployment)["volumes"], "volumes")
        .iter()
        .find(|v| {
            volume_sources(v)
                .iter()
                .any(|source| source["configMap"]["name"] == configmap)
        })
        .unwrap_or_else(|| panic!("no volume holds the ConfigMap {configmap}"));
    let name = text(&volume["name"], "volume name");
    let mount = named(&container(deployment, "gateway")["volumeMounts"], name);
    (volume, mount)
}

// --- the rules ----------------------------------------------------------------

#[test]
fn sidecar_config_passes_the_gateway_loader() {
    let s = Topology::Sidecar.settings();
    assert!(
        s.server.listen.ip().is_loopback(),
        "the API is for the pod's own dashboard only"
    );
    assert!(
        s.server.tls.is_none(),
        "plain HTTP on loopback: nothing on the wire to protect"
    );
    assert_eq!(
        allowed_origins(Topology::Sidecar),
        Vec::<String>::new(),
        "no browser calls a sidecar"
    );
}

#[test]
fn edge_config_passes_the_gateway_loader() {
    let s = Topology::Edge.settings();
    assert!(
        s.server.listen.ip().is_unspecified(),
        "the Service reaches the API on the pod IP"
    );
    let tls = s.server.tls.as_ref().expect("[server.tls]: the API leaves the pod");
    assert!(tls.client_ca_file.is_none(), "browsers carry no client certificate");
    let origins = allowed_origins(Topology::Edge);
    assert!(
        !origins.is_empty(),
        "browser dashboards call the edge: CORS lists their origins"
    );
    assert!(
        origins.iter().all(|o| o.starts_with("https://")),
        "dashboards are served over https: {origins:?}"
    );
    assert!(
        s.server.max_in_flight > Topology::Sidecar.settings().server.max_in_flight,
        "the edge takes every browser's traffic, a sidecar one backend's"
    );
}

#[test]
fn both_topologies_share_the_container_conventions() {
    for t in TOPOLOGIES {
        let s = t.settings();
        assert!(
            s.server.admin_listen.is_some_and(|a| a.ip().is_unspecified()),
            "{t:?}: kubelet and Prometheus reach the admin listener on the pod IP"
        );
        assert_eq!(
            s.audit_file, "-",
            "{t:?}: the root filesystem is read-only: audit goes to stdout"
        );
        assert!(
            s.auth.issuers.iter().all(|i| matches!(i.keys, KeySource::Url(_))),
            "{t:?}: no key file is mounted: issuers use jwks_url"
        );
    }
}

#[test]
fn ecs_config_passes_the_gateway_loader_and_equals_the_sidecar_configmap() {
    let task = ecs();
    let s = ecs_settings(&task);
    assert_eq!(s.audit_file, "-");
    // Comments aside, one sidecar config for both platforms.
    let cm = Topology::Sidecar.configmap();
    let init = ecs_container(&task, "gateway-config");
    for (k8s, ecs, name) in [
        (&cm.gateway_toml, ecs_env(init, "GATEWAY_TOML"), "gateway.toml"),
        (&cm.policy_toml, ecs_env(init, "POLICY_TOML"), "policy.toml"),
    ] {
        let k8s: toml::Value = toml::from_str(k8s).unwrap();
        let ecs: toml::Value = toml::from_str(ecs).unwrap();
        assert_eq!(
            k8s, ecs,
            "{name} differs between the sidecar ConfigMap and the ECS task"
        );
    }
}

#[test]
fn the_policies_of_both_topologies_are_the_same() {
    let sidecar: toml::Value = toml::from_str(&Topology::Sidecar.configmap().policy_toml).unwrap();
    let edge: toml::Value = toml::from_str(&Topology::Edge.configmap().policy_toml).unwrap();
    assert_eq!(
        sidecar, edge,
        "who may monitor does not depend on where the gateway runs"
    );
}

#[test]
fn probes_and_metrics_annotations_use_the_admin_port() {
    for t in TOPOLOGIES {
        let admin_port = admin(&t.settings()).port();
        let deployment = t.deployment();
        let gateway = container(&deployment, "gateway");
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &gateway[probe]["httpGet"];
            assert_eq!(get["path"], path, "{t:?} {probe} path");
            assert_eq!(count::<u16>(&get["port"], probe), admin_port, "{t:?} {probe} port");
        }
        // Annotation values are strings in Kubernetes.
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
        assert_eq!(
            number::<u16>(annotations["prometheus.io/port"].as_str(), "prometheus.io/port"),
            admin_port,
            "{t:?} prometheus.io/port"
        );
    }
}

#[test]
fn container_ports_match_the_listeners() {
    let mut exposed_wanted = BTreeSet::new();
    for t in TOPOLOGIES {
        let s = t.settings();
        let ports = container_ports(&t.deployment());
        assert_eq!(
            ports,
            BTreeMap::from([
                ("api".to_string(), s.server.listen.port()),
                ("admin".to_string(), admin(&s).port())
            ]),
            "{t:?}: the gateway's containerPorts"
        );
        exposed_wanted.extend(ports.into_values());
    }

    let task = ecs();
    let s = ecs_settings(&task);
    let ecs_ports: BTreeSet<u16> = ecs_container(&task, "gateway")["portMappings"]
        .as_array()
        .expect("portMappings")
        .iter()
        .map(|m| m["containerPort"].as_u64().expect("containerPort") as u16)
        .collect();
    assert_eq!(ecs_ports, BTreeSet::from([s.server.listen.port(), admin(&s).port()]));

    let exposed: BTreeSet<u16> = dockerfile_line("EXPOSE")
        .split_whitespace()
        .map(|p| number(Some(p), "EXPOSE"))
        .collect();
    assert_eq!(
        exposed, exposed_wanted,
        "the Dockerfile's EXPOSE: every topology's ports"
    );
}

#[test]
fn sidecar_dashboard_calls_the_gateway_on_its_api_port() {
    let listen = Topology::Sidecar.settings().server.listen.port();
    let deployment = Topology::Sidecar.deployment();
    let dashboard = container(&deployment, "dashboard");
    let url = text(&named(&dashboard["env"], "GATEWAY_URL")["value"], "GATEWAY_URL value");
    assert_eq!(gateway_url_port(url), listen, "Kubernetes dashboard GATEWAY_URL");

    let task = ecs();
    let url = ecs_env(ecs_container(&task, "dashboard"), "GATEWAY_URL");
    assert_eq!(
        gateway_url_port(url),
        ecs_settings(&task).server.listen.port(),
        "ECS GATEWAY_URL"
    );
}

#[test]
fn edge_service_pdb_and_spread_select_the_gateway_pods() {
    let t = Topology::Edge;
    let deployment = t.deployment();
    let labels = pod_labels(&deployment);
    let replicas: u32 = count(&deployment["spec"]["replicas"], "replicas");
    assert!(replicas >= 2, "several replicas behind the Service: {replicas}");
    assert_eq!(
        strings(&deployment["spec"]["selector"]["matchLabels"], "selector"),
        labels,
        "the Deployment's selector"
    );

    // The Service sends its port to the gateway's API port.
    let service = t.manifest("service.yaml");
    assert_eq!(service["kind"], "Service");
    assert_eq!(
        strings(&service["spec"]["selector"], "selector"),
        labels,
        "the Service's selector"
    );
    let ports = list(&service["spec"]["ports"], "ports");
    assert_eq!(
        ports.len(),
        1,
        "only the API is load-balanced; probes and scrapes go to each pod"
    );
    let target = &ports[0]["targetPort"];
    let api = container_ports(&deployment)["api"];
    assert!(
        *target == "api" || *target == api,
        "targetPort {target} is the API port {api}"
    );
    assert_eq!(api, t.settings().server.listen.port());

    // The disruption budget keeps most replicas serving through drains.
    let pdb = t.manifest("poddisruptionbudget.yaml");
    assert_eq!(pdb["kind"], "PodDisruptionBudget");
    assert_eq!(
        strings(&pdb["spec"]["selector"]["matchLabels"], "selector"),
        labels,
        "the PodDisruptionBudget's selector"
    );
    let serving = match (pdb["spec"].get("maxUnavailable"), pdb["spec"].get("minAvailable")) {
        (Some(max), None) => replicas - count::<u32>(max, "maxUnavailable"),
        (None, Some(min)) => count(min, "minAvailable"),
        other => panic!("exactly one of maxUnavailable and minAvailable, as a count: {other:?}"),
    };
    assert!(
        (1..replicas).contains(&serving),
        "a drain may take a replica, never all: {serving} of {replicas} keep serving"
    );

    // Spread over zones and nodes, counting this Deployment's pods.
    let spread = list(
        &pod_spec(&deployment)["topologySpreadConstraints"],
        "topologySpreadConstraints",
    );
    let keys: BTreeSet<&str> = spread.iter().map(|c| text(&c["topologyKey"], "topologyKey")).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["topology.kubernetes.io/zone", "kubernetes.io/hostname"])
    );
    for constraint in spread {
        assert_eq!(
            strings(&constraint["labelSelector"]["matchLabels"], "labelSelector"),
            labels,
            "topologySpreadConstraints count the gateway's own pods"
        );
    }
}

#[test]
fn config_mount_is_the_folder_of_the_config_path() {
    for t in TOPOLOGIES {
        let cm = t.configmap();
        let deployment = t.deployment();
        let config = config_flag(&gateway_args(&deployment));
        assert_eq!(
            Path::new(&config).file_name().unwrap(),
            "gateway.toml",
            "{t:?}: the ConfigMap key"
        );
        let (volume, mount) = config_volume(&deployment, &cm.name);
        assert_eq!(mount["mountPath"], folder(&config), "{t:?}");
        assert_eq!(mount["readOnly"], true, "{t:?}");
        // policy.file resolves beside gateway.toml, so it must be a key of the same ConfigMap.
        let policy = t.settings().policy_file().to_path_buf();
        assert_eq!(
            policy.file_name().unwrap(),
            "policy.toml",
            "{t:?}: the ConfigMap's policy key"
        );
        assert!(!cm.policy_toml.trim().is_empty());

        // The TLS files the config names come from a Secret in the same folder.
        let tls = t.settings().server.tls;
        let secret = volume_sources(volume)
            .into_iter()
            .find_map(|source| source.get("secret"));
        match tls {
            None => assert!(secret.is_none(), "{t:?}: no TLS, no Secret"),
            Some(files) => {
                let secret = secret.unwrap_or_else(|| panic!("{t:?}: the TLS files come from a Secret"));
                assert!(secret["name"].is_string(), "{t:?}: the Secret is named");
                let projected: BTreeSet<&str> = list(&secret["items"], "Secret items")
                    .iter()
                    .map(|item| {
                        assert_eq!(item["key"], item["path"], "kubernetes.io/tls keys, as they are");
                        text(&item["path"], "path")
                    })
                    .collect();
                let named: BTreeSet<String> = [files.cert_file, files.key_file]
                    .iter()
                    .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
                    .collect();
                assert_eq!(
                    projected,
                    named.iter().map(String::as_str).collect(),
                    "{t:?}: the Secret's keys are the files [server.tls] names"
                );
            }
        }
    }

    let task = ecs();
    let gw = ecs_container(&task, "gateway");
    let config = ecs_env(gw, "CMG_CONFIG");
    let mounted = |c: &Value| {
        c["mountPoints"]
            .as_array()
            .expect("mountPoints")
            .iter()
            .map(|m| m["containerPath"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        mounted(gw),
        [folder(config)],
        "ECS: the gateway mounts its config folder"
    );
    assert!(
        gw.get("command").is_some_and(|c| !c.to_string().contains("--config")),
        "CMG_CONFIG names the config"
    );
    let init = ecs_container(&task, "gateway-config");
    assert_eq!(mounted(init), [folder(config)]);
    let script = init["command"].to_string();
    for file in [config.to_string(), format!("{}/policy.toml", folder(config))] {
        assert!(script.contains(&file), "the init container writes {file}");
    }
}

#[test]
fn termination_grace_exceeds_prestop_plus_shutdown_grace() {
    for t in TOPOLOGIES {
        let grace = t.settings().server.shutdown_grace;
        let deployment = t.deployment();
        let termination = Duration::from_secs(count(
            &pod_spec(&deployment)["terminationGracePeriodSeconds"],
            "terminationGracePeriodSeconds",
        ));
        let gateway = container(&deployment, "gateway");
        let sleep = Duration::from_secs(count(
            &gateway["lifecycle"]["preStop"]["sleep"]["seconds"],
            "preStop sleep",
        ));
        assert!(
            termination > sleep + grace,
            "{t:?}: terminationGracePeriodSeconds {termination:?} must exceed preStop {sleep:?} + shutdown_grace {grace:?}"
        );
    }

    let task = ecs();
    let grace = ecs_settings(&task).server.shutdown_grace;
    let stop = Duration::from_secs(
        ecs_container(&task, "gateway")["stopTimeout"]
            .as_u64()
            .expect("stopTimeout"),
    );
    assert!(
        stop > grace,
        "ECS stopTimeout {stop:?} must exceed shutdown_grace {grace:?}"
    );
}

#[test]
fn dockerfile_cmd_config_path_matches_the_manifests() {
    let entrypoint = dockerfile_exec("ENTRYPOINT");
    assert_eq!(entrypoint, ["/usr/local/bin/connect-monitor-gateway"]);
    let cmd = dockerfile_exec("CMD");
    assert_eq!(cmd[0], "serve");
    let config = config_flag(&cmd);

    for t in TOPOLOGIES {
        assert_eq!(config_flag(&gateway_args(&t.deployment())), config, "{t:?} args");
    }
    assert_eq!(
        ecs_env(ecs_container(&ecs(), "gateway"), "CMG_CONFIG"),
        config,
        "ECS CMG_CONFIG"
    );
}

#[test]
fn containers_run_as_the_image_user_on_a_read_only_root() {
    let user = dockerfile_line("USER");
    let uid = user.split(':').next().unwrap();
    assert_ne!(uid, "0");

    for t in TOPOLOGIES {
        let deployment = t.deployment();
        assert_eq!(
            count::<u64>(&pod_spec(&deployment)["securityContext"]["runAsUser"], "runAsUser").to_string(),
            uid,
            "{t:?}: the pod's runAsUser is the image's USER"
        );
        let sc = &container(&deployment, "gateway")["securityContext"];
        for (key, want) in [
            ("runAsNonRoot", true),
            ("readOnlyRootFilesystem", true),
            ("allowPrivilegeEscalation", false),
        ] {
            assert_eq!(sc[key], want, "{t:?}: gateway securityContext.{key}");
        }
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    }

    let task = ecs();
    let gw = ecs_container(&task, "gateway");
    assert_eq!(gw["user"], user.as_str(), "ECS user is the image's USER");
    assert_eq!(gw["readonlyRootFilesystem"], true);
}

#[test]
fn each_kustomization_lists_every_manifest_of_its_folder() {
    let root = format!("{}/deploy/kubernetes", env!("CARGO_MANIFEST_DIR"));
    let folders: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap())
        .inspect(|e| {
            assert!(
                e.file_type().unwrap().is_dir(),
                "{}: manifests live in a topology's folder",
                e.path().display()
            )
        })
        .map(|e| format!("deploy/kubernetes/{}", e.file_name().to_string_lossy()))
        .collect();
    assert_eq!(
        folders,
        TOPOLOGIES.iter().map(|t| t.dir().to_string()).collect(),
        "one folder per topology"
    );
    for t in TOPOLOGIES {
        let kustomization = t.manifest("kustomization.yaml");
        let listed: BTreeSet<String> = list(&kustomization["resources"], "resources")
            .iter()
            .map(|r| text(r, "a resource").to_string())
            .collect();
        let present: BTreeSet<String> = std::fs::read_dir(format!("{}/{}", env!("CARGO_MANIFEST_DIR"), t.dir()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
            .collect();
        assert_eq!(listed, present, "{t:?}: kustomization.yaml resources");
    }
}

/// Names and label names of the samples the gateway's /metrics serves once
/// every contract metric has been touched (empty families are not rendered).
fn served_metrics() -> (BTreeSet<String>, BTreeSet<String>) {
    let metrics = Metrics::new();
    metrics.request_done("OK", Duration::from_millis(1));
    metrics.upstream_attempt("MonitorContact", "success");
    metrics.upstream_duration(Duration::from_millis(1));
    metrics.jwks_refresh("https://idp.example.com", "success");
    metrics.policy_reload("success");
    metrics.connect_lookup("DescribeContact", "ok");
    metrics.budget_waited("MonitorContact", Duration::from_millis(1));
    metrics.budget_exhausted("MonitorContact");
    metrics.shared_error();
    metrics.shared_degraded(true);
    let (mut names, mut labels) = (BTreeSet::new(), BTreeSet::new());
    for line in metrics.render().lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        names.insert(name.to_string());
        // The family name too, as the descriptions call a histogram.
        for suffix in ["_bucket", "_sum", "_count"] {
            names.extend(name.strip_suffix(suffix).map(String::from));
        }
        if let Some(set) = line[name_end..]
            .strip_prefix('{')
            .and_then(|r| r.split_once('}'))
            .map(|(s, _)| s)
        {
            labels.extend(
                set.split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, _)| k.to_string()),
            );
        }
    }
    (names, labels)
}

fn identifier_at(text: &str, at: usize) -> &str {
    let end = text[at..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(text.len(), |n| at + n);
    &text[at..end]
}

#[test]
fn dashboard_and_alerts_use_only_metrics_the_gateway_serves() {
    let (served, mut labels) = served_metrics();
    // Added by Prometheus at scrape time.
    labels.extend(["job", "instance"].map(String::from));
    for file in ["deploy/grafana-dashboard.json", "deploy/prometheus-alerts.yaml"] {
        let text = read(file);
        let mut used = BTreeSet::new();
        let mut used_labels = BTreeSet::new();
        for (at, _) in text.match_indices("cmg_") {
            let name = identifier_at(&text, at);
            used.insert(name);
            // Label matchers right after the name: `cmg_x{code=~"...",job="..."}`.
            if let Some(set) = text[at + name.len()..]
                .strip_prefix('{')
                .and_then(|r| r.split_once('}'))
            {
                used_labels.extend(set.0.split(',').map(|m| identifier_at(m.trim(), 0)));
            }
        }
        for (at, _) in text.match_indices("by (") {
            let list = text[at + 4..].split_once(')').expect("closed by (...)").0;
            used_labels.extend(list.split(',').map(str::trim));
        }
        assert!(!used.is_empty(), "{file} uses no cmg_ metric");
        let unknown: Vec<_> = used.iter().filter(|m| !served.contains(**m)).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses {unknown:?}, not served (served: {served:?})"
        );
        used_labels.remove("le");
        let unknown: Vec<_> = used_labels.iter().filter(|l| !labels.contains(**l)).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses labels {unknown:?}, not served (served: {labels:?})"
        );
    }
}

#[test]
fn iam_documents_are_policies_naming_only_what_the_gateway_calls() {
    let allowed = [
        "connect:MonitorContact",
        "connect:DescribeContact",
        "connect:DescribeUser",
        "connect:ListSecurityProfilePermissions",
        "connect:SearchUsers",
        "connect:GetCurrentUserData",
        "sts:AssumeRole",
        "sts:SetSourceIdentity",
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("iam-") && name.ends_with(".json")) {
            continue;
        }
        seen += 1;
        let doc: Value = serde_json::from_str(&read(&format!("deploy/{name}"))).unwrap();
        assert_eq!(doc["Version"], "2012-10-17", "{name}");
        for statement in doc["Statement"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no Statement"))
        {
            assert!(
                statement["Sid"].is_string(),
                "{name}: every statement says what it is for"
            );
            assert!(matches!(statement["Effect"].as_str(), Some("Allow" | "Deny")), "{name}");
            let actions: Vec<&str> = match &statement["Action"] {
                Value::String(a) => vec![a],
                Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
                other => panic!("{name}: Action {other}"),
            };
            for action in actions {
                assert!(
                    allowed.contains(&action),
                    "{name}: {action} is not something the gateway calls"
                );
            }
        }
    }
    assert_eq!(
        seen, 4,
        "iam-policy, -monitor-capabilities, -assume-role, -trust-policy-cross-account"
    );
}
