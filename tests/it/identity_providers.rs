//! Real identity providers' access tokens against their example configs
//! (config/<idp>.toml and config/<idp>.policy.toml): for Okta, Entra ID (v1.0
//! and v2.0 tokens), Keycloak, Cognito and Auth0, a token shaped like the
//! provider's own — header (`typ`, `kid`), `iss` in the provider's form, `aud`
//! as the provider writes it (or none, for Cognito), the provider's claim
//! names — is allowed and denied as the example policy says.
//!
//! The gateway runs on the example's `[[auth.issuers]]` and `[policy]` as
//! written, with two changes only: the keys come from the in-process issuer
//! stand-in (`jwks_url`, in place of the provider's URL or `discovery`, which
//! would leave the machine), publishing the test RSA key under the
//! provider's `kid` in the provider's JWKS shape; and Connect is the
//! SigV4-checking stand-in.

use crate::support;

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use connect_monitor_gateway::test_util::ConnectStandIn;
use connect_monitor_gateway::test_util::{IssuerStandIn, SigningKey};
use serde_json::{json, Value};
use support::{config_text, now, test_credentials, Answer, Harness, Keys, Options};

/// The instance every example policy grants.
const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";
/// The supervisor's Connect user id, and another user's.
const SUPERVISOR_USER_ID: &str = "a1b2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
const OTHER_USER_ID: &str = "f0e1d2c3-b4a5-4968-8776-655443322110";
const CONTACT_ID: &str = "c0ffee00-1111-4222-8333-444444444444";

// The placeholders the example configs use.
const OKTA_ISSUER: &str = "https://example.okta.com/oauth2/default";
const TENANT: &str = "aaaabbbb-0000-cccc-1111-dddd2222eeee";
const ENTRA_API_CLIENT_ID: &str = "00001111-aaaa-2222-bbbb-3333cccc4444";
const KEYCLOAK_ISSUER: &str = "https://keycloak.example.com/realms/contact-center";
const COGNITO_ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123";
const COGNITO_CLIENT_ID: &str = "1h57kf5cpq17m0eml12EXAMPLE";
const AUTH0_ISSUER: &str = "https://example-tenant.us.auth0.com/";
const AUTH0_API: &str = "https://connect-monitor-gateway.example.com";

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------------------
// The gateway on an example config

/// The gateway configuration for these stand-ins: the harness's own, with
/// the example's `[[auth.issuers]]` (keys from the stand-in instead) and
/// its `[policy]` (the policy file written next to it).
fn example_config_text(idp: &str, issuer: &IssuerStandIn, connect: &ConnectStandIn, dir: &Path) -> String {
    let example: toml::Table = toml::from_str(&read(&format!("config/{idp}.toml"))).expect("example config is TOML");
    let instance = format!("[[connect.instances]]\nid = \"{INSTANCE}\"\nregion = \"us-east-1\"");
    let mut config: toml::Table =
        toml::from_str(&config_text(issuer, connect, dir, &instance)).expect("harness config is TOML");

    let issuers = example["auth"]["issuers"].as_array().expect("[[auth.issuers]]");
    let issuers: Vec<toml::Value> = issuers
        .iter()
        .map(|table| {
            let mut table = table.as_table().expect("an issuer is a table").clone();
            for key in ["jwks_url", "jwks_file", "discovery"] {
                table.remove(key);
            }
            table.insert("jwks_url".into(), issuer.jwks_url().into());
            toml::Value::Table(table)
        })
        .collect();
    config["auth"]
        .as_table_mut()
        .expect("[auth]")
        .insert("issuers".into(), issuers.into());

    let mut policy = example["policy"].as_table().expect("[policy]").clone();
    policy.insert("file".into(), "policy.toml".into());
    config.insert("policy".into(), policy.into());
    toml::to_string(&config).expect("config serializes")
}

/// The gateway on config/<idp>.toml and config/<idp>.policy.toml, its
/// issuer stand-in publishing `jwks`.
async fn gateway_for(idp: &str, jwks: Value) -> Harness {
    let keys = Keys::load();
    let issuer = IssuerStandIn::start(jwks).await.unwrap();
    let connect = ConnectStandIn::start(test_credentials(None)).await.unwrap();
    let o = Options {
        policy: read(&format!("config/{idp}.policy.toml")),
        ..Options::default()
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), &o.policy).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, example_config_text(idp, &issuer, &connect, dir.path())).unwrap();
    Harness::on_config(keys, issuer, connect, dir, &config, o).await
}

// ---------------------------------------------------------------------------
// Tokens and key sets in the providers' shapes

/// A compact JWS with exactly this header (no member added or left out) and
/// these claims, signed with `key`.
fn mint(key: &SigningKey, header: Value, claims: &Value) -> String {
    assert_eq!(header["alg"], json!("RS256"), "the test key is RS256");
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", part(&header), part(claims));
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key.key, key.alg).unwrap();
    format!("{input}.{signature}")
}

/// The test RSA key's public JWK under `kid`, with the provider's members
/// (`null` removes one).
fn rsa_jwk(keys: &Keys, kid: &str, changes: Value) -> Value {
    let mut jwk = serde_json::to_value(keys.rsa.public_jwk()).unwrap();
    jwk["kid"] = json!(kid);
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            jwk.as_object_mut().unwrap().remove(k);
        } else {
            jwk[k] = v.clone();
        }
    }
    jwk
}

fn monitor_body(user_id: &str, capabilities: &[&str]) -> String {
    json!({"InstanceId": INSTANCE, "ContactId": CONTACT_ID, "UserId": user_id,
           "AllowedMonitorCapabilities": capabilities})
    .to_string()
}

fn assert_allowed(h: &Harness, a: &Answer, case: &str) {
    assert_eq!((a.status, a.code()), (200, "OK"), "{case}: {:?}", a.body);
    assert_eq!(a.body["data"]["id"], json!(CONTACT_ID), "{case}");
    h.assert_signatures_verified();
}

fn assert_denied(a: &Answer, reason: &str, case: &str) {
    assert_eq!((a.status, a.code()), (403, "FORBIDDEN"), "{case}: {:?}", a.body);
    assert!(a.message().ends_with(reason), "{case}: {reason}: {}", a.message());
}

fn assert_unauthenticated(a: &Answer, case: &str) {
    assert_eq!((a.status, a.code()), (401, "UNAUTHENTICATED"), "{case}: {:?}", a.body);
    assert!(a.headers.contains_key("www-authenticate"), "{case}");
}

/// What every example policy says: the supervisors' group (or role) may
/// silently monitor on the instance, into their own Contact Control Panel;
/// barging, someone else's panel, and any other group are denied.
async fn assert_example_policy(h: &Harness, supervisor: &str, other_group: &str, issuer: &str) {
    let a = h
        .monitor(Some(supervisor), &monitor_body(SUPERVISOR_USER_ID, &["SILENT_MONITOR"]))
        .await;
    assert_allowed(h, &a, "a supervisor, silently, on their own panel");
    let audit = h.audit_lines();
    assert_eq!(audit[0]["decision"], json!("allow"), "{}", audit[0]);
    assert_eq!(audit[0]["issuer"], json!(issuer), "{}", audit[0]);

    let a = h
        .monitor(
            Some(supervisor),
            &monitor_body(SUPERVISOR_USER_ID, &["SILENT_MONITOR", "BARGE"]),
        )
        .await;
    assert_denied(&a, "capability_not_allowed", "a supervisor barging");
    let a = h
        .monitor(Some(supervisor), &monitor_body(OTHER_USER_ID, &["SILENT_MONITOR"]))
        .await;
    assert_denied(&a, "user_not_allowed", "a supervisor on someone else's panel");
    let a = h
        .monitor(Some(other_group), &monitor_body(OTHER_USER_ID, &["SILENT_MONITOR"]))
        .await;
    assert_denied(&a, "no_grant", "a member of another group");

    assert_eq!(
        h.connect.calls("MonitorContact"),
        1,
        "only the allowed request reached Connect"
    );
    h.assert_signatures_verified();
}

// ---------------------------------------------------------------------------
// Okta

/// An Okta custom authorization server's access token: no `typ` in the
/// header, `ver` 1, `cid`, `uid`, `scp` an array, `aud` a string, no `nbf`;
/// `groups` and `connect_user_id` are claims added on the server.
fn okta_token(keys: &Keys, kid: &str, group: &str, user_id: &str) -> String {
    let claims = json!({
        "ver": 1,
        "jti": "AT.x9VN6Z0x2fQ8L3p4mKoQzRcUvWbYdE1aTsG7hJkLmN0",
        "iss": OKTA_ISSUER,
        "aud": "api://connect-monitor-gateway",
        "iat": now(),
        "exp": now() + 3600,
        "cid": "0oa8f3k2j1HgFdSa5d7",
        "uid": "00u1a2b3c4D5e6F7g8h9",
        "scp": ["openid", "profile", "connect.monitor"],
        "auth_time": now() - 60,
        "sub": "ana.supervisor@example.com",
        "groups": ["Everyone", group],
        "connect_user_id": user_id,
    });
    mint(&keys.rsa, json!({"kid": kid, "alg": "RS256"}), &claims)
}

#[tokio::test]
async fn okta_access_token_in_the_groups_claim_is_allowed_and_denied_as_the_example_policy_says() {
    let kid = "Hk1u3aN0QyKb8qP8f3TjSxz5nEHwVpGm7c2bR9YxXlE";
    let keys = Keys::load();
    let jwks = json!({"keys": [rsa_jwk(&keys, kid, json!({"alg": "RS256", "use": "sig"}))]});
    let h = gateway_for("okta", jwks).await;

    let supervisor = okta_token(&h.keys, kid, "cc-supervisors", SUPERVISOR_USER_ID);
    let agent = okta_token(&h.keys, kid, "cc-agents", OTHER_USER_ID);
    assert_example_policy(&h, &supervisor, &agent, OKTA_ISSUER).await;
}

// ---------------------------------------------------------------------------
// Microsoft Entra ID

const ENTRA_KID: &str = "PoVKeirIOvmTyLQ9G9BenBwos7k";
const ENTRA_SUPERVISOR_UPN: &str = "ana.supervisor@contoso.com";

/// Entra's key set: no `alg`, `x5t` = `kid`, and its own `issuer` member
/// (its `x5c` certificate chain is left out: the test key has none).
fn entra_jwks(keys: &Keys) -> Value {
    let issuer = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
    json!({"keys": [rsa_jwk(keys, ENTRA_KID, json!({
        "alg": null, "use": "sig", "x5t": ENTRA_KID, "issuer": issuer,
    }))]})
}

/// Entra's header: `typ` JWT, `x5t` and `kid` naming the key.
fn entra_header() -> Value {
    json!({"typ": "JWT", "alg": "RS256", "x5t": ENTRA_KID, "kid": ENTRA_KID})
}

/// An Entra v2.0 access token for the API: `ver` "2.0", `aud` the API's
/// client id, `azp`, `scp` a space-separated string, `roles`,
/// `preferred_username`, and the optional claim `upn` asked for.
fn entra_v2_token(keys: &Keys, role: &str, upn: &str) -> String {
    let claims = json!({
        "aud": ENTRA_API_CLIENT_ID,
        "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
        "iat": now(),
        "nbf": now(),
        "exp": now() + 3900,
        "aio": "AZQAa/8WAAAAm5wjtOE6nQlzxu2UXWSEuqp1RhaE7zzK7gG2Ta0Y=",
        "azp": "7f3b9a51-0c2d-4e8f-9a1b-2c3d4e5f6a7b",
        "azpacr": "0",
        "name": "Ana Supervisor",
        "oid": "e5f6a7b8-c9d0-4e1f-a2b3-c4d5e6f7a8b9",
        "preferred_username": upn,
        "rh": "1.AXkAu9Kx8uQ5TkOKq0e6Zz1lW1ERAACqIiKbuzMzzMxERAB5AA.",
        "roles": [role],
        "scp": "Monitor.Contact User.Read",
        "sid": "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
        "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
        "tid": TENANT,
        "upn": upn,
        "uti": "AbCdEf0123456789GhIjKl",
        "ver": "2.0",
    });
    mint(&keys.rsa, entra_header(), &claims)
}

/// An Entra v1.0 access token: `iss` https://sts.windows.net/{tenant}/ (a
/// trailing slash), `aud` the Application ID URI, `ver` "1.0", `appid`,
/// `upn` and `unique_name`, no `preferred_username`.
fn entra_v1_token(keys: &Keys, role: &str, upn: &str) -> String {
    let claims = json!({
        "aud": format!("api://{ENTRA_API_CLIENT_ID}"),
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "iat": now(),
        "nbf": now(),
        "exp": now() + 3900,
        "acr": "1",
        "aio": "E2ZgYJh8cPr7v6b1O0+gWx8b3L9ZbHwMxq7UPXoGk1Yt7v3Ae0EA",
        "amr": ["pwd", "mfa"],
        "appid": "7f3b9a51-0c2d-4e8f-9a1b-2c3d4e5f6a7b",
        "appidacr": "0",
        "family_name": "Supervisor",
        "given_name": "Ana",
        "ipaddr": "203.0.113.10",
        "name": "Ana Supervisor",
        "oid": "e5f6a7b8-c9d0-4e1f-a2b3-c4d5e6f7a8b9",
        "rh": "0.AXkAu9Kx8uQ5TkOKq0e6Zz1lW1ERAACqIiKbuzMzzMxERAB5AA.",
        "roles": [role],
        "scp": "Monitor.Contact",
        "sub": "l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA",
        "tid": TENANT,
        "unique_name": upn,
        "upn": upn,
        "uti": "AbCdEf0123456789GhIjKl",
        "ver": "1.0",
    });
    mint(&keys.rsa, entra_header(), &claims)
}

/// The gateway on config/entra.toml, Connect knowing the supervisor by UPN.
async fn entra_gateway() -> Harness {
    let h = gateway_for("entra", entra_jwks(&Keys::load())).await;
    h.connect
        .add_user(json!({"Id": SUPERVISOR_USER_ID, "Username": ENTRA_SUPERVISOR_UPN}));
    h.connect
        .add_user(json!({"Id": OTHER_USER_ID, "Username": "ben.agent@contoso.com"}));
    h
}

#[tokio::test]
async fn entra_v2_access_token_with_app_roles_is_allowed_and_denied_as_the_example_policy_says() {
    let h = entra_gateway().await;
    let supervisor = entra_v2_token(&h.keys, "ContactCenter.Supervisor", ENTRA_SUPERVISOR_UPN);
    let agent = entra_v2_token(&h.keys, "ContactCenter.Agent", "ben.agent@contoso.com");
    let issuer = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
    assert_example_policy(&h, &supervisor, &agent, &issuer).await;
    assert_eq!(
        h.connect.calls("SearchUsers"),
        1,
        "the UPN is looked up once, then cached"
    );
}

#[tokio::test]
async fn entra_v1_access_token_with_app_roles_is_allowed_and_denied_as_the_example_policy_says() {
    let h = entra_gateway().await;
    let supervisor = entra_v1_token(&h.keys, "ContactCenter.Supervisor", ENTRA_SUPERVISOR_UPN);
    let agent = entra_v1_token(&h.keys, "ContactCenter.Agent", "ben.agent@contoso.com");
    let issuer = format!("https://sts.windows.net/{TENANT}/");
    assert_example_policy(&h, &supervisor, &agent, &issuer).await;

    // The two versions' audiences are not interchangeable: a v1.0 token for
    // the client id alone, or a v2.0-issuer token for the App ID URI, is refused.
    let v1_for_client_id = {
        let token = entra_v1_token(&h.keys, "ContactCenter.Supervisor", ENTRA_SUPERVISOR_UPN);
        let mut claims = payload(&token);
        claims["aud"] = json!(ENTRA_API_CLIENT_ID);
        mint(&h.keys.rsa, entra_header(), &claims)
    };
    let a = h
        .monitor(
            Some(&v1_for_client_id),
            &monitor_body(SUPERVISOR_USER_ID, &["SILENT_MONITOR"]),
        )
        .await;
    assert_unauthenticated(&a, "a v1.0 token whose aud is the client id");
}

// ---------------------------------------------------------------------------
// Keycloak

const KEYCLOAK_KID: &str = "3mFcuVb0yKMxtEf-tSvhRfyb2g4M8nTZ5b8tGZ1aVxQ";

/// Keycloak's key set: the realm's RS256 signing key and its RSA-OAEP
/// encryption key (`use` enc), which must not get in the way.
fn keycloak_jwks(keys: &Keys) -> Value {
    json!({"keys": [
        rsa_jwk(keys, KEYCLOAK_KID, json!({"alg": "RS256", "use": "sig"})),
        rsa_jwk(keys, "Zr4pS0lJ5yQ2kXw9bN7cV1mT8hG6fD3eA0uI4oP2qWs", json!({"alg": "RSA-OAEP", "use": "enc"})),
    ]})
}

/// A Keycloak access token: header `typ` JWT, a `typ` claim "Bearer", `aud`
/// an array (the audience mapper's value and "account"), `azp`, roles in
/// `realm_access.roles` and `resource_access`, `preferred_username`, and the
/// user-attribute mapper's `connect_user_id`.
fn keycloak_token(keys: &Keys, role: &str, user_id: &str) -> String {
    let claims = json!({
        "exp": now() + 300,
        "iat": now(),
        "auth_time": now() - 30,
        "jti": "onrtac:8d5f2c1e-3b4a-4f6e-9d8c-7b6a5f4e3d2c",
        "iss": KEYCLOAK_ISSUER,
        "aud": ["connect-monitor-gateway", "account"],
        "sub": "6b0e4a8c-2f1d-4e3b-9a7c-5d4e3f2a1b0c",
        "typ": "Bearer",
        "azp": "supervisor-dashboard",
        "sid": "9c8b7a6f-5e4d-4c3b-a291-807f6e5d4c3b",
        "acr": "1",
        "allowed-origins": ["https://dashboard.example.com"],
        "realm_access": {"roles": ["default-roles-contact-center", "offline_access", "uma_authorization", role]},
        "resource_access": {"account": {"roles": ["manage-account", "manage-account-links", "view-profile"]}},
        "scope": "openid profile email",
        "email_verified": true,
        "name": "Ana Supervisor",
        "preferred_username": "ana.supervisor",
        "given_name": "Ana",
        "family_name": "Supervisor",
        "email": "ana.supervisor@example.com",
        "connect_user_id": user_id,
    });
    mint(
        &keys.rsa,
        json!({"alg": "RS256", "typ": "JWT", "kid": KEYCLOAK_KID}),
        &claims,
    )
}

#[tokio::test]
async fn keycloak_access_token_with_realm_roles_is_allowed_and_denied_as_the_example_policy_says() {
    let h = gateway_for("keycloak", keycloak_jwks(&Keys::load())).await;
    let supervisor = keycloak_token(&h.keys, "cc-supervisor", SUPERVISOR_USER_ID);
    let agent = keycloak_token(&h.keys, "cc-agent", OTHER_USER_ID);
    assert_example_policy(&h, &supervisor, &agent, KEYCLOAK_ISSUER).await;
}

// ---------------------------------------------------------------------------
// Amazon Cognito

const COGNITO_ACCESS_KID: &str = "Gn1cE7SrlGq1k/ZJ+r8mV3qX0oTA2yWbKp9fN6hLdQs=";
const COGNITO_ID_KID: &str = "tY7uI8oP9aS0dF1gH2jK3lZ4xC5vB6nM7qW8eR9tY0u=";

/// A user pool's key set: one key for access tokens, one for ID tokens,
/// their `kid`s standard base64 (with `+`, `/` and `=`).
fn cognito_jwks(keys: &Keys) -> Value {
    let sig = json!({"alg": "RS256", "use": "sig"});
    json!({"keys": [rsa_jwk(keys, COGNITO_ACCESS_KID, sig.clone()), rsa_jwk(keys, COGNITO_ID_KID, sig)]})
}

/// A Cognito access token: header `kid` and `alg` only, no `aud` but
/// `client_id`, `token_use` "access", `version` 2, `username`,
/// `cognito:groups`, no `nbf`.
fn cognito_access_token(keys: &Keys, client_id: &str, group: &str, username: &str) -> String {
    let claims = json!({
        "sub": "94b8e4c8-1011-7060-9a35-0c6a1d3e5f70",
        "cognito:groups": [group],
        "iss": COGNITO_ISSUER,
        "version": 2,
        "client_id": client_id,
        "origin_jti": "2f6c1e0a-8b7d-4c3e-9f1a-5b4c3d2e1f0a",
        "event_id": "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
        "token_use": "access",
        "scope": "openid email",
        "auth_time": now(),
        "exp": now() + 3600,
        "iat": now(),
        "jti": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
        "username": username,
    });
    mint(&keys.rsa, json!({"kid": COGNITO_ACCESS_KID, "alg": "RS256"}), &claims)
}

/// The gateway on config/cognito.toml, Connect knowing the users by their
/// user-pool usernames.
async fn cognito_gateway() -> Harness {
    let h = gateway_for("cognito", cognito_jwks(&Keys::load())).await;
    h.connect
        .add_user(json!({"Id": SUPERVISOR_USER_ID, "Username": "ana.supervisor"}));
    h.connect
        .add_user(json!({"Id": OTHER_USER_ID, "Username": "ben.agent"}));
    h
}

#[tokio::test]
async fn cognito_access_token_in_cognito_groups_is_allowed_and_denied_as_the_example_policy_says() {
    let h = cognito_gateway().await;
    let supervisor = cognito_access_token(&h.keys, COGNITO_CLIENT_ID, "cc-supervisors", "ana.supervisor");
    let agent = cognito_access_token(&h.keys, COGNITO_CLIENT_ID, "cc-agents", "ben.agent");
    assert_example_policy(&h, &supervisor, &agent, COGNITO_ISSUER).await;
}

#[tokio::test]
async fn cognito_access_tokens_are_checked_against_client_id_with_audience_claim() {
    let h = cognito_gateway().await;
    let body = monitor_body(SUPERVISOR_USER_ID, &["SILENT_MONITOR"]);

    let listed = cognito_access_token(&h.keys, COGNITO_CLIENT_ID, "cc-supervisors", "ana.supervisor");
    assert_allowed(&h, &h.monitor(Some(&listed), &body).await, "client_id listed");

    // Another app client of the same pool, even with a matching `aud` added.
    let other_app = {
        let token = cognito_access_token(
            &h.keys,
            "5other0app0client0id0abcde",
            "cc-supervisors",
            "ana.supervisor",
        );
        let mut claims = payload(&token);
        claims["aud"] = json!(COGNITO_CLIENT_ID);
        mint(&h.keys.rsa, json!({"kid": COGNITO_ACCESS_KID, "alg": "RS256"}), &claims)
    };
    assert_unauthenticated(
        &h.monitor(Some(&other_app), &body).await,
        "another app's client_id, a matching aud",
    );

    // No client_id at all, e.g. the pool's ID token: `aud` is the client id there.
    let id_token = {
        let token = cognito_access_token(&h.keys, COGNITO_CLIENT_ID, "cc-supervisors", "ana.supervisor");
        let mut claims = payload(&token);
        let c = claims.as_object_mut().unwrap();
        for k in ["client_id", "version", "scope", "username", "jti"] {
            c.remove(k);
        }
        c.insert("aud".into(), json!(COGNITO_CLIENT_ID));
        c.insert("token_use".into(), json!("id"));
        c.insert("cognito:username".into(), json!("ana.supervisor"));
        c.insert("email".into(), json!("ana.supervisor@example.com"));
        mint(&h.keys.rsa, json!({"kid": COGNITO_ID_KID, "alg": "RS256"}), &claims)
    };
    assert_unauthenticated(&h.monitor(Some(&id_token), &body).await, "an ID token");

    assert_eq!(h.connect.calls("MonitorContact"), 1);
}

// ---------------------------------------------------------------------------
// Auth0

const AUTH0_KID: &str = "QzBGNjIxMTE1RTg1ODgyRjNBRjhBQjc3QTIwNEJDNTgzQTA0NzQ0NQ";

/// An Auth0 access token for an API, in one of its two token profiles:
/// "Auth0" (header `typ` JWT, `azp`) or "RFC 9068" (header `typ` at+jwt,
/// `client_id`). `aud` is an array (the API and the tenant's userinfo, as
/// when `openid` was asked for too); roles and the Connect user id are
/// namespaced claims an Action adds.
fn auth0_token(keys: &Keys, rfc9068: bool, role: &str, user_id: &str) -> String {
    let mut claims = json!({
        "https://example.com/roles": [role],
        "https://example.com/connect_user_id": user_id,
        "iss": AUTH0_ISSUER,
        "sub": "auth0|65f1c0ffee0123456789abcd",
        "aud": [AUTH0_API, format!("{AUTH0_ISSUER}userinfo")],
        "iat": now(),
        "exp": now() + 86400,
        "scope": "openid profile email",
    });
    let typ = if rfc9068 {
        claims["client_id"] = json!("kV3xdG7pQ2mZ9rT4wY6uB8nC1aS5eF0h");
        claims["jti"] = json!("b3f1a2c4d5e6f708");
        "at+jwt"
    } else {
        claims["azp"] = json!("kV3xdG7pQ2mZ9rT4wY6uB8nC1aS5eF0h");
        "JWT"
    };
    mint(
        &keys.rsa,
        json!({"alg": "RS256", "typ": typ, "kid": AUTH0_KID}),
        &claims,
    )
}

#[tokio::test]
async fn auth0_access_token_with_namespaced_claims_is_allowed_and_denied_as_the_example_policy_says() {
    for rfc9068 in [false, true] {
        let keys = Keys::load();
        let jwk = rsa_jwk(
            &keys,
            AUTH0_KID,
            json!({"alg": "RS256", "use": "sig", "x5t": AUTH0_KID}),
        );
        let h = gateway_for("auth0", json!({"keys": [jwk]})).await;
        let supervisor = auth0_token(&h.keys, rfc9068, "cc-supervisor", SUPERVISOR_USER_ID);
        let agent = auth0_token(&h.keys, rfc9068, "cc-agent", OTHER_USER_ID);
        assert_example_policy(&h, &supervisor, &agent, AUTH0_ISSUER).await;
    }
}

// ---------------------------------------------------------------------------

/// A token's claims, decoded without checking anything.
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}
