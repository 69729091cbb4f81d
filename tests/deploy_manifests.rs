//! The deployment examples under deploy/ agree with each other and with the
//! gateway: the shipped configs pass the gateway's own loader, and the ports,
//! paths, file names and shutdown timings in the Dockerfile, the Kubernetes
//! manifests and the ECS task definition are the ones that config implies.
//! YAML is read by indentation (no YAML crate here); the manifests are kept in
//! block style so that suffices. Schema validation is `.ci/validate-deploy`'s job.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use connect_monitor_gateway::check::Environment;
use connect_monitor_gateway::config::Settings;
use connect_monitor_gateway::telemetry::metrics::Metrics;
use serde_json::Value;

fn read(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

// --- a little YAML by indentation ---------------------------------------------

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_filler(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The lines nested under `lines[at]` (more indented; blank and comment lines kept).
fn nested<'a>(lines: &[&'a str], at: usize) -> Vec<&'a str> {
    let base = indent(lines[at]);
    lines[at + 1..]
        .iter()
        .take_while(|l| is_filler(l) || indent(l) > base)
        .copied()
        .collect()
}

/// The index of the first line that is `key:` (or the sequence item `- key:`).
fn find_key(lines: &[&str], key: &str) -> Option<usize> {
    lines.iter().position(|l| {
        let t = l.trim_start();
        let t = t.strip_prefix("- ").unwrap_or(t);
        !is_filler(l) && (t == format!("{key}:") || t.starts_with(&format!("{key}: ")))
    })
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"').trim_matches('\'')
}

/// The scalar of the first `key: value` line.
fn value<'a>(lines: &[&'a str], key: &str) -> Option<&'a str> {
    let at = find_key(lines, key)?;
    let (_, v) = lines[at].split_once(": ")?;
    Some(unquote(v))
}

/// The lines nested under the first `key:` line; panics when there is none.
fn section<'a>(lines: &[&'a str], key: &str) -> Vec<&'a str> {
    let at = find_key(lines, key).unwrap_or_else(|| panic!("no `{key}:` in:\n{}", lines.join("\n")));
    nested(lines, at)
}

/// The item of a sequence that starts `- name: <name>`, its first line included.
fn named_item<'a>(lines: &[&'a str], name: &str) -> Vec<&'a str> {
    let at = lines
        .iter()
        .position(|l| l.trim() == format!("- name: {name}"))
        .unwrap_or_else(|| panic!("no item named {name}"));
    let mut item = vec![lines[at]];
    item.extend(nested(lines, at));
    item
}

/// A block scalar (`key: |`), dedented.
fn block_scalar(lines: &[&str], key: &str) -> String {
    let at = lines
        .iter()
        .position(|l| l.trim() == format!("{key}: |"))
        .unwrap_or_else(|| panic!("no block scalar {key}"));
    let body = nested(lines, at);
    let cut = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| indent(l))
        .min()
        .unwrap_or(0);
    body.iter()
        .map(|l| l.get(cut..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn number<T: std::str::FromStr>(text: Option<&str>, what: &str) -> T {
    text.and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{what}: not a number: {text:?}"))
}

// --- the artifacts ------------------------------------------------------------

struct ConfigMap {
    name: String,
    gateway_toml: String,
    policy_toml: String,
}

fn configmap() -> ConfigMap {
    let text = read("deploy/kubernetes/configmap.yaml");
    let lines: Vec<&str> = text.lines().collect();
    ConfigMap {
        name: value(&section(&lines, "metadata"), "name")
            .expect("ConfigMap name")
            .to_string(),
        gateway_toml: block_scalar(&lines, "gateway.toml"),
        policy_toml: block_scalar(&lines, "policy.toml"),
    }
}

/// Loads a gateway.toml with its policy.toml beside it, as the container sees them.
fn load(gateway_toml: &str, policy_toml: &str) -> Settings {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), policy_toml).unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, gateway_toml).unwrap();
    Settings::from_toml(gateway_toml, &path, Environment::default())
        .unwrap_or_else(|e| panic!("the config does not load:\n{e}"))
}

fn k8s_settings() -> Settings {
    let cm = configmap();
    load(&cm.gateway_toml, &cm.policy_toml)
}

fn deployment() -> String {
    read("deploy/kubernetes/deployment.yaml")
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
    let text = read("deploy/Dockerfile");
    let line = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("no {instruction} in the Dockerfile"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{instruction} is not in exec form: {e}"))
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

// --- the rules ----------------------------------------------------------------

#[test]
fn configmap_config_passes_the_gateway_loader() {
    let s = k8s_settings();
    assert!(
        s.server.listen.ip().is_loopback(),
        "the API is for the pod's own dashboard only"
    );
    assert!(
        s.server.admin_listen.is_some_and(|a| a.ip().is_unspecified()),
        "kubelet and Prometheus reach the admin listener on the pod IP"
    );
    assert_eq!(
        s.audit_file, "-",
        "the root filesystem is read-only: audit goes to stdout"
    );
    assert!(
        s.auth
            .issuers
            .iter()
            .all(|i| matches!(i.keys, connect_monitor_gateway::auth::issuer::KeySource::Url(_))),
        "no key file is mounted: issuers use jwks_url"
    );
}

#[test]
fn ecs_config_passes_the_gateway_loader_and_equals_the_configmap() {
    let task = ecs();
    let s = ecs_settings(&task);
    assert_eq!(s.audit_file, "-");
    // Comments aside, one config for both platforms.
    let cm = configmap();
    let init = ecs_container(&task, "gateway-config");
    for (k8s, ecs, name) in [
        (&cm.gateway_toml, ecs_env(init, "GATEWAY_TOML"), "gateway.toml"),
        (&cm.policy_toml, ecs_env(init, "POLICY_TOML"), "policy.toml"),
    ] {
        let k8s: toml::Value = toml::from_str(k8s).unwrap();
        let ecs: toml::Value = toml::from_str(ecs).unwrap();
        assert_eq!(k8s, ecs, "{name} differs between the ConfigMap and the ECS task");
    }
}

#[test]
fn probes_and_metrics_annotations_use_the_admin_port() {
    let admin_port = admin(&k8s_settings()).port();
    let text = deployment();
    let lines: Vec<&str> = text.lines().collect();
    let gateway = named_item(&lines, "gateway");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = section(&section(&gateway, probe), "httpGet");
        assert_eq!(value(&get, "path"), Some(path), "{probe} path");
        assert_eq!(number::<u16>(value(&get, "port"), probe), admin_port, "{probe} port");
    }
    let annotations = section(&section(&lines, "template"), "annotations");
    assert_eq!(value(&annotations, "prometheus.io/scrape"), Some("true"));
    assert_eq!(value(&annotations, "prometheus.io/path"), Some("/metrics"));
    assert_eq!(
        number::<u16>(value(&annotations, "prometheus.io/port"), "prometheus.io/port"),
        admin_port
    );
}

#[test]
fn container_ports_match_the_listeners() {
    let s = k8s_settings();
    let wanted = BTreeSet::from([s.server.listen.port(), admin(&s).port()]);
    let text = deployment();
    let lines: Vec<&str> = text.lines().collect();
    let gateway = named_item(&lines, "gateway");
    let ports: BTreeSet<u16> = section(&gateway, "ports")
        .iter()
        .filter(|l| l.trim_start().starts_with("containerPort:"))
        .map(|l| number(l.split_once(": ").map(|(_, v)| v.trim()), "containerPort"))
        .collect();
    assert_eq!(ports, wanted, "the gateway's containerPorts");

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
    assert_eq!(exposed, wanted, "the Dockerfile's EXPOSE");
}

#[test]
fn dashboard_calls_the_gateway_on_its_api_port() {
    let listen = k8s_settings().server.listen.port();
    let text = deployment();
    let lines: Vec<&str> = text.lines().collect();
    let dashboard = named_item(&lines, "dashboard");
    let url = value(&named_item(&dashboard, "GATEWAY_URL"), "value").expect("GATEWAY_URL value");
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
fn config_mount_is_the_folder_of_the_config_path() {
    let cm = configmap();
    let text = deployment();
    let lines: Vec<&str> = text.lines().collect();
    let gateway = named_item(&lines, "gateway");
    let args: Vec<String> = serde_json::from_str(value(&gateway, "args").expect("args")).expect("args as a flow list");
    let config = config_flag(&args);
    assert_eq!(
        Path::new(&config).file_name().unwrap(),
        "gateway.toml",
        "the ConfigMap key"
    );

    // The volume that holds the ConfigMap, and where the gateway mounts it.
    let volumes = section(&section(&lines, "template"), "volumes");
    let volume = volumes
        .iter()
        .filter_map(|l| l.trim().strip_prefix("- name: "))
        .find(|v| value(&section(&named_item(&volumes, v), "configMap"), "name") == Some(cm.name.as_str()))
        .expect("a volume from the ConfigMap");
    let mount = named_item(&section(&gateway, "volumeMounts"), volume);
    assert_eq!(value(&mount, "mountPath"), Some(folder(&config).as_str()));
    assert_eq!(value(&mount, "readOnly"), Some("true"));
    // policy.file resolves beside gateway.toml, so it must be a key of the same ConfigMap.
    let policy = k8s_settings().authz.policy_file;
    assert_eq!(policy.file_name().unwrap(), "policy.toml", "the ConfigMap's policy key");
    assert!(!cm.policy_toml.trim().is_empty());

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
    let grace = k8s_settings().server.shutdown_grace;
    let text = deployment();
    let lines: Vec<&str> = text.lines().collect();
    let termination = Duration::from_secs(number(
        value(&lines, "terminationGracePeriodSeconds"),
        "terminationGracePeriodSeconds",
    ));
    let gateway = named_item(&lines, "gateway");
    let pre_stop = section(&section(&section(&gateway, "lifecycle"), "preStop"), "sleep");
    let sleep = Duration::from_secs(number(value(&pre_stop, "seconds"), "preStop sleep"));
    assert!(
        termination > sleep + grace,
        "terminationGracePeriodSeconds {termination:?} must exceed preStop {sleep:?} + shutdown_grace {grace:?}"
    );

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

    let text = deployment();
    let lines: Vec<&str> = text.lines().collect();
    let gateway = named_item(&lines, "gateway");
    let args: Vec<String> = serde_json::from_str(value(&gateway, "args").unwrap()).unwrap();
    assert_eq!(config_flag(&args), config, "Kubernetes args");
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

    let text = deployment();
    let lines: Vec<&str> = text.lines().collect();
    let pod = section(&section(&lines, "template"), "securityContext");
    assert_eq!(
        value(&pod, "runAsUser"),
        Some(uid),
        "the pod's runAsUser is the image's USER"
    );
    let gateway = named_item(&lines, "gateway");
    let sc = section(&gateway, "securityContext");
    for (key, want) in [
        ("runAsNonRoot", "true"),
        ("readOnlyRootFilesystem", "true"),
        ("allowPrivilegeEscalation", "false"),
    ] {
        assert_eq!(value(&sc, key), Some(want), "gateway securityContext.{key}");
    }
    assert_eq!(value(&section(&sc, "capabilities"), "drop"), Some(r#"["ALL"]"#));
    assert_eq!(value(&section(&sc, "seccompProfile"), "type"), Some("RuntimeDefault"));

    let task = ecs();
    let gw = ecs_container(&task, "gateway");
    assert_eq!(gw["user"], user.as_str(), "ECS user is the image's USER");
    assert_eq!(gw["readonlyRootFilesystem"], true);
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
