//! The server a fleet of replicas shares (`[shared]`, Redis or Valkey;
//! docs/operations.md, "Fleets"): Connect's budgets and the looked-up facts
//! live there, so that every replica draws on one budget and asks Connect
//! once for a fact. Every command is bounded by `command_timeout`; when one
//! fails the replica falls back to its own cache and budgets ("degraded"),
//! says so once, and a probe brings it back as soon as the server answers.

pub(crate) mod sealed;
pub(crate) mod settings;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, IntoConnectionInfo, Script};

pub(crate) use self::settings::SharedSettings;
use crate::telemetry::metrics::Metrics;

/// How often the server is probed, in use or not.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// One GCRA step, atomic on the server and on the server's clock: reserve
/// the next token if it comes within the caller's wait, else say when it
/// will. A value that is not a number (or not a string) is reset.
/// KEYS[1] the budget; ARGV: interval, burst tolerance, longest wait (µs).
/// Returns {1, wait µs} when reserved, {0, µs until the next token} when not.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local longest = tonumber(ARGV[3])
local stored = redis.pcall('GET', KEYS[1])
local tat = nil
if type(stored) == 'string' then tat = tonumber(stored) end
if type(stored) == 'table' and stored.err then redis.call('DEL', KEYS[1]) end
if tat == nil or tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
if wait > longest then return {0, wait} end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.floor((next_tat - now) / 1000) + 1000)
return {1, wait}
";

/// A fact, or its lock, in one atomic step. With ARGV[3] = "1" the fact is
/// read first and returned when there is one ({1, value, ms left to live});
/// else the lock is
/// taken for ARGV[1] (this replica) for ARGV[2] ms unless another holds it
/// ({2}: taken; {0}: held by another). Read and lock in one step: no replica
/// takes the lock just after another stored the fact. A "lock" with no expiry
/// was never one of ours (every lock is set with one): it is garbage, and
/// taken over, so no stray key keeps the fleet waiting.
const READ_OR_LOCK: &str = r"
if ARGV[3] == '1' then
  local fact = redis.pcall('GET', KEYS[1])
  if type(fact) == 'string' then return {1, fact, redis.call('PTTL', KEYS[1])} end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
if redis.call('PTTL', KEYS[2]) == -1 then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {2}
end
return {0}
";

/// Deletes a lock only if this replica still holds it.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The server could not be used for this command (down, slow, refused):
/// the caller goes on without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable;

/// What the server had for a missing fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claim {
    /// A stored value (still to be unsealed and checked), and how long it
    /// has left to live there.
    Stored(String, Option<Duration>),
    /// This replica took the fact's lock: it fetches the fact.
    Locked,
    /// Another replica holds the lock: it is fetching the fact.
    Held,
}

/// What a budget step on the server decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// Reserved: the call may go after this wait.
    After(Duration),
    /// Not within the longest wait: the next token comes after this.
    NotBefore(Duration),
}

/// The fleet's shared server, as one replica uses it.
pub(crate) struct SharedStore {
    client: Client,
    manager_config: ConnectionManagerConfig,
    connection: RwLock<ConnectionManager>,
    key_prefix: String,
    command_timeout: Duration,
    fallback_replicas: u32,
    integrity_key: Option<aws_lc_rs::hmac::Key>,
    gcra: Script,
    read_or_lock: Script,
    unlock: Script,
    degraded: AtomicBool,
    /// Counts the switches to fallback: each one starts the fallback budgets empty.
    fallbacks: AtomicU64,
    /// Names this replica's locks.
    replica: String,
    metrics: Arc<Metrics>,
}

/// Why the shared server's client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("[shared]: {0}")]
pub(crate) struct SharedUnusable(String);

impl SharedStore {
    /// A client for the server; nothing is connected yet (the first command
    /// or the probe connects), so a server down at start only degrades.
    pub(crate) fn new(settings: &SharedSettings, metrics: Arc<Metrics>) -> Result<SharedStore, SharedUnusable> {
        let bad = |what: &str| SharedUnusable(what.to_owned());
        let mut info = settings
            .url
            .as_str()
            .into_connection_info()
            .map_err(|_| bad("the url is not a Redis URL"))?;
        if let (Some(password), None) = (&settings.password, info.redis_settings().password()) {
            let redis = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(redis);
        }
        let client = match &settings.ca_file {
            Some(file) => {
                let root_cert =
                    std::fs::read(file).map_err(|e| SharedUnusable(format!("cannot read {}: {e}", file.display())))?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                Client::build_with_tls(info, certs).map_err(|_| bad("the CA file is not a PEM certificate"))?
            }
            None => Client::open(info).map_err(|_| bad("the url is not a Redis URL"))?,
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.command_timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
            .map_err(|_| bad("cannot make a client for the server"))?;
        Ok(SharedStore {
            client,
            manager_config,
            connection: RwLock::new(connection),
            key_prefix: settings.key_prefix.clone(),
            command_timeout: settings.command_timeout,
            fallback_replicas: settings.fallback_replicas,
            integrity_key: settings
                .integrity_key
                .as_ref()
                .map(|k| aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, k.as_bytes())),
            gcra: Script::new(GCRA),
            read_or_lock: Script::new(READ_OR_LOCK),
            unlock: Script::new(UNLOCK),
            degraded: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
            replica: crate::ids::random_uuid(),
            metrics,
        })
    }

    /// Whether the server is in use (else this replica runs on its own).
    pub(crate) fn in_use(&self) -> bool {
        !self.degraded.load(Ordering::Relaxed)
    }

    /// How many replicas share a budget while the server cannot be used.
    pub(crate) fn fallback_replicas(&self) -> u32 {
        self.fallback_replicas
    }

    /// Which fallback this is (a new one starts the fallback budgets empty).
    pub(crate) fn fallback_count(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// A readable key: the prefix, then the parts joined by `:` (a `:` or
    /// `%` inside a part is percent-encoded, so parts never run together).
    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut key = self.key_prefix.clone();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.push(':');
            }
            for ch in part.chars() {
                match ch {
                    '%' => key.push_str("%25"),
                    ':' => key.push_str("%3A"),
                    _ => key.push(ch),
                }
            }
        }
        key
    }

    /// The key stored facts are sealed with (`CMG_SHARED_KEY`), if any.
    pub(crate) fn integrity_key(&self) -> Option<&aws_lc_rs::hmac::Key> {
        self.integrity_key.as_ref()
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.read().expect("shared connection lock").clone()
    }

    /// Runs one command within `command_timeout`. A failure degrades the
    /// replica (a server's refusal of one value, such as a key of the wrong
    /// type, is the caller's to handle through `wrong_type`).
    async fn run<T, F>(&self, command: F) -> Result<T, Unavailable>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        if !self.in_use() {
            return Err(Unavailable);
        }
        match tokio::time::timeout(self.command_timeout, command).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                Err(Unavailable)
            }
            Err(_) => {
                self.failed("no answer within command_timeout");
                Err(Unavailable)
            }
        }
    }

    fn failed(&self, why: &str) {
        self.metrics.shared_error();
        if !self.degraded.swap(true, Ordering::SeqCst) {
            self.fallbacks.fetch_add(1, Ordering::SeqCst);
            self.metrics.shared_degraded(true);
            tracing::warn!(
                error = why,
                "shared server unreachable; using in-process caches and fallback budgets"
            );
        }
    }

    /// One GCRA step of the budget `key`: `interval` between tokens, up to
    /// `burst_tolerance` ahead, reserved only if it comes within `longest`.
    pub(crate) async fn take_token(
        &self,
        key: &str,
        interval: Duration,
        burst_tolerance: Duration,
        longest: Duration,
    ) -> Result<Token, Unavailable> {
        let mut connection = self.connection();
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 4);
        let mut invocation = self.gcra.key(key);
        invocation
            .arg(micros(interval))
            .arg(micros(burst_tolerance))
            .arg(micros(longest));
        let (reserved, wait): (i64, i64) = self.run(invocation.invoke_async(&mut connection)).await?;
        let wait = Duration::from_micros(wait.max(0) as u64);
        Ok(if reserved == 1 {
            Token::After(wait)
        } else {
            Token::NotBefore(wait)
        })
    }

    /// Stores `value` at `key` for `ttl`, replacing whatever was there.
    pub(crate) async fn put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), Unavailable> {
        let mut connection = self.connection();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(connection.pset_ex::<_, _, ()>(key, value, millis)).await
    }

    /// The value at `fact_key` (unless `read` is false), else the lock
    /// `lock_key` for `ttl` unless another replica holds it.
    pub(crate) async fn read_or_lock(
        &self,
        fact_key: &str,
        lock_key: &str,
        ttl: Duration,
        read: bool,
    ) -> Result<Claim, Unavailable> {
        let mut connection = self.connection();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.read_or_lock.key(fact_key);
        invocation
            .key(lock_key)
            .arg(&self.replica)
            .arg(millis)
            .arg(if read { "1" } else { "0" });
        let reply: Vec<redis::Value> = self.run(invocation.invoke_async(&mut connection)).await?;
        Ok(match reply.as_slice() {
            [redis::Value::Int(1), redis::Value::BulkString(bytes), redis::Value::Int(ttl_ms)] => {
                // Not UTF-8 is garbage: the caller's check refuses it. A value
                // with no expiry (-1) was not stored by a replica: it lives no
                // longer than a fresh fact here (the cache's ttl bounds it).
                let life = u64::try_from(*ttl_ms).ok().map(Duration::from_millis);
                Claim::Stored(String::from_utf8_lossy(bytes).into_owned(), life)
            }
            [redis::Value::Int(2)] => Claim::Locked,
            _ => Claim::Held,
        })
    }

    /// Gives the lock `key` back, if this replica still holds it.
    pub(crate) async fn unlock(&self, key: &str) -> Result<(), Unavailable> {
        let mut connection = self.connection();
        let mut invocation = self.unlock.key(key);
        invocation.arg(&self.replica);
        self.run(invocation.invoke_async::<i64>(&mut connection))
            .await
            .map(|_| ())
    }

    /// Probes the server every second: a failed probe degrades the replica
    /// (so `/readyz` is right without traffic); once degraded, a fresh
    /// connection that answers puts the server back in use.
    pub(crate) async fn probe_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            self.probe().await;
        }
    }

    /// One probe (see [`probe_loop`](Self::probe_loop)).
    pub(crate) async fn probe(&self) {
        if self.in_use() {
            let mut connection = self.connection();
            let ping = redis::cmd("PING");
            let _ = self.run(ping.query_async::<String>(&mut connection)).await;
            return;
        }
        let Ok(mut fresh) = ConnectionManager::new_lazy_with_config(self.client.clone(), self.manager_config.clone())
        else {
            return;
        };
        let ping = redis::cmd("PING");
        let answered = tokio::time::timeout(
            self.command_timeout.max(Duration::from_millis(500)),
            ping.query_async::<String>(&mut fresh),
        )
        .await;
        if let Ok(Ok(_)) = answered {
            *self.connection.write().expect("shared connection lock") = fresh;
            self.degraded.store(false, Ordering::SeqCst);
            self.metrics.shared_degraded(false);
            tracing::info!("shared server back in use");
        }
    }
}
