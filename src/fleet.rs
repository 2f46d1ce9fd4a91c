//! Fleet mode (`[fleet] redis_url`): replicas share what they learn about
//! upstreams through Redis (or Valkey), and losing Redis never fails a
//! request. What is shared (docs/fleet.md has the bounds):
//!
//! - **circuits** — a replica whose circuit for a target opens or closes
//!   publishes it on one channel (`<prefix>events`) and, for an opening, sets
//!   `<prefix>circuit:<target>` expiring when the cool-down ends; every
//!   replica applies what it hears at once, and reads the keys when it
//!   (re)connects, so a missed message cannot keep a circuit open past its
//!   cool-down nor leave it closed for longer than a reconnect;
//! - **the half-open probe** — one across the fleet: `SET NX PX` on
//!   `<prefix>probe:<target>`, released when the probe's outcome is known
//!   (or when it is dropped), expiring after `probe_lock_ms` if its holder
//!   died;
//! - **tight rate-limit windows** — once a target advertises
//!   `shared_pacing_below` remaining requests or fewer, the count left is
//!   kept in `<prefix>budget:<target>` (expiring at the reset) and every
//!   request to it takes one atomically, so the fleet together never sends
//!   more than the provider said it would accept.
//!
//! Redis is never on the critical path: every call is bounded by
//! `timeout_ms`, a replica that is not connected does not ask at all, and
//! any failure falls back to the replica's own state. In the steady state —
//! circuits closed, windows wide — a proxied request makes no Redis call.
//! The retry budget, failure records and metrics stay per replica.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::ConnectionManager;

use crate::config::FleetConfig;
use crate::metrics::Metrics;

mod wire;

use wire::Message;
pub use wire::{instant_of, unix_ms, unix_of, Event};

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whoever applies what the fleet says (the targets).
pub trait Listener: Send + Sync {
    fn apply(&self, event: &Event);
}

/// What taking one request from a shared window came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Taken,
    /// The window is spent until its reset.
    Exhausted,
    /// Nothing shared is known (no window, Redis not there): local pacing decides.
    Unknown,
}

/// One replica's link to the fleet.
pub struct Fleet {
    client: redis::Client,
    prefix: String,
    /// This replica, so that it ignores its own messages.
    replica: String,
    timeout: Duration,
    probe_lock: Duration,
    pub shared_pacing_below: u64,
    conn: Mutex<Option<ConnectionManager>>,
    connected: AtomicBool,
    metrics: Arc<Metrics>,
}

/// Takes one request from a window if any is left; `-1` when there is no
/// shared window.
const TAKE: &str = r"
local left = redis.call('GET', KEYS[1])
if not left then return -1 end
left = tonumber(left)
if left <= 0 then return 0 end
redis.call('DECR', KEYS[1])
return 1
";

/// Records what the provider said is left: the lower of that and the
/// count already kept, until the reset.
const OBSERVE: &str = r"
local left = redis.call('GET', KEYS[1])
local seen = tonumber(ARGV[1])
if (not left) or tonumber(left) > seen then
  redis.call('SET', KEYS[1], seen, 'PX', ARGV[2])
end
return 1
";

/// Keeps the probe lock (if this replica holds it) for ARGV[2] ms more.
const HOLD: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// Deletes the probe lock only if this replica holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

impl Fleet {
    /// The link for `config`, or `None` when fleet mode is off. Nothing is
    /// connected until [`Fleet::start`].
    pub fn new(config: &FleetConfig, metrics: Arc<Metrics>) -> Result<Option<Arc<Fleet>>, String> {
        if config.redis_url.is_empty() {
            return Ok(None);
        }
        let url = config
            .redis_url
            .expose()
            .replacen("valkeys://", "rediss://", 1)
            .replacen("valkey://", "redis://", 1);
        let client =
            redis::Client::open(url).map_err(|e| format!("fleet.redis_url: {}", e.category()))?;
        metrics.register_fleet();
        metrics.fleet_connected.set(0);
        Ok(Some(Arc::new(Fleet {
            client,
            prefix: config.key_prefix.clone(),
            replica: uuid::Uuid::new_v4().to_string(),
            timeout: Duration::from_millis(config.timeout_ms),
            probe_lock: Duration::from_millis(config.probe_lock_ms),
            shared_pacing_below: config.shared_pacing_below,
            conn: Mutex::new(None),
            connected: AtomicBool::new(false),
            metrics,
        })))
    }

    /// Connects, and keeps reconnecting (with backoff) for as long as the
    /// listener lives; applies every event other replicas publish.
    pub fn start(self: &Arc<Self>, listener: Weak<dyn Listener>) {
        let fleet = Arc::clone(self);
        tokio::spawn(async move { fleet.run(listener).await });
    }

    fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    fn key(&self, what: &str, target: &str) -> String {
        format!("{}{what}:{target}", self.prefix)
    }

    /// Whether the replica is talking to Redis now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn set_connected(&self, up: bool) {
        if self.connected.swap(up, Ordering::Relaxed) != up {
            self.metrics.fleet_connected.set(i64::from(up));
            if up {
                tracing::info!("fleet: connected to Redis, sharing circuits and pacing");
            } else {
                tracing::warn!("fleet: Redis unreachable, going on with this replica's own state");
            }
        }
    }

    async fn run(self: Arc<Self>, listener: Weak<dyn Listener>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if listener.strong_count() == 0 {
                return;
            }
            match self.session(&listener).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => tracing::debug!(error = %e.category(), "fleet: session ended"),
            }
            self.set_connected(false);
            *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = None;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life: subscribe, catch up, then apply events until
    /// the connection drops.
    async fn session(&self, listener: &Weak<dyn Listener>) -> redis::RedisResult<()> {
        let connect = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(self.channel()).await?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(500))))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(1);
            let conn = ConnectionManager::new_with_config(self.client.clone(), config).await?;
            Ok::<_, redis::RedisError>((pubsub, conn))
        };
        let (pubsub, mut conn) = tokio::time::timeout(Duration::from_secs(2), connect)
            .await
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
        // Catch up on the circuits opened while this replica was away.
        // SCAN, not KEYS: a shared Redis may hold many other keys.
        let pattern = self.key("circuit", "*");
        let mut keys: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut opened = Vec::new();
        for key in keys {
            let value: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
            if let Some(event) = value.and_then(|v| serde_json::from_str::<Event>(&v).ok()) {
                opened.push(event);
            }
        }
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
        self.set_connected(true);
        if let Some(l) = listener.upgrade() {
            for event in &opened {
                l.apply(event);
            }
        }
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<Message>(&payload) else {
                continue;
            };
            if message.from == self.replica {
                continue;
            }
            match listener.upgrade() {
                Some(l) => l.apply(&message.event),
                None => return Ok(()),
            }
        }
        Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "the subscription ended",
        )))
    }

    fn connection(&self) -> Option<ConnectionManager> {
        if !self.is_connected() {
            return None;
        }
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs one command within the timeout; `None` on any failure (counted).
    async fn call<T: redis::FromRedisValue>(&self, op: &'static str, cmd: redis::Cmd) -> Option<T> {
        let mut conn = self.connection()?;
        let result = tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await;
        let outcome = match &result {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        };
        self.metrics
            .fleet_operations
            .with_label_values(&[op, outcome])
            .inc();
        result.ok().and_then(Result::ok)
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        script: &str,
        key: &str,
        args: &[String],
    ) -> Option<T> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(1).arg(key);
        for a in args {
            cmd.arg(a);
        }
        self.call(op, cmd).await
    }

    /// Tells the fleet about a circuit change of this replica's (in the
    /// background: never waited for).
    pub fn publish(self: &Arc<Self>, event: Event) {
        if !self.is_connected() {
            return;
        }
        let fleet = Arc::clone(self);
        tokio::spawn(async move {
            let message = serde_json::to_string(&Message {
                from: fleet.replica.clone(),
                event: event.clone(),
            })
            .unwrap_or_default();
            match &event {
                Event::Open {
                    target, until_ms, ..
                } => {
                    let ttl = until_ms.saturating_sub(unix_ms()).max(1);
                    let value = serde_json::to_string(&event).unwrap_or_default();
                    let mut set = redis::cmd("SET");
                    set.arg(fleet.key("circuit", target))
                        .arg(value)
                        .arg("PX")
                        .arg(ttl);
                    let _: Option<()> = fleet.call("circuit_set", set).await;
                }
                Event::Closed { target } => {
                    let mut del = redis::cmd("DEL");
                    del.arg(fleet.key("circuit", target));
                    let _: Option<i64> = fleet.call("circuit_del", del).await;
                }
                Event::Tight { .. } => {}
            }
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(fleet.channel()).arg(message);
            let _: Option<i64> = fleet.call("publish", publish).await;
        });
    }

    /// Takes the fleet-wide probe of `target`: `Some(true)` this replica
    /// probes, `Some(false)` another one does, `None` Redis did not say.
    pub async fn take_probe(&self, target: &str) -> Option<bool> {
        let mut set = redis::cmd("SET");
        set.arg(self.key("probe", target))
            .arg(&self.replica)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(self.probe_lock.as_millis()).unwrap_or(u64::MAX));
        let taken: Option<Option<String>> = self.call("probe_take", set).await;
        taken.map(|t| t.is_some())
    }

    /// Gives the probe of `target` back (in the background).
    pub fn release_probe(self: &Arc<Self>, target: &str) {
        let fleet = Arc::clone(self);
        let key = self.key("probe", target);
        tokio::spawn(async move {
            let replica = fleet.replica.clone();
            let _: Option<i64> = fleet
                .script("probe_release", RELEASE, &key, &[replica])
                .await;
        });
    }

    /// The probe of `target` failed: the lock is kept until the new
    /// cool-down ends, so no replica probes again before the fleet has heard
    /// that the circuit reopened (background).
    pub fn hold_probe(self: &Arc<Self>, target: &str, cooldown: Duration) {
        let fleet = Arc::clone(self);
        let key = self.key("probe", target);
        tokio::spawn(async move {
            let ms = u64::try_from(cooldown.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let args = [fleet.replica.clone(), ms.to_string()];
            let _: Option<i64> = fleet.script("probe_hold", HOLD, &key, &args).await;
        });
    }

    /// Takes one request from `target`'s shared window.
    pub async fn take(&self, target: &str) -> Take {
        let key = self.key("budget", target);
        match self.script::<i64>("budget_take", TAKE, &key, &[]).await {
            Some(1) => Take::Taken,
            Some(0) => Take::Exhausted,
            Some(_) | None => Take::Unknown,
        }
    }

    /// Shares what `target` advertised — `remaining` requests until
    /// `reset_in` — and tells the fleet its window is tight (background).
    pub fn observe(self: &Arc<Self>, target: &str, remaining: u64, reset_in: Duration) {
        if !self.is_connected() {
            return;
        }
        let fleet = Arc::clone(self);
        let target = target.to_string();
        tokio::spawn(async move {
            let ttl = u64::try_from(reset_in.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let key = fleet.key("budget", &target);
            let args = [remaining.to_string(), ttl.to_string()];
            let _: Option<i64> = fleet.script("budget_observe", OBSERVE, &key, &args).await;
            fleet.publish(Event::Tight {
                target,
                reset_ms: unix_ms() + ttl,
            });
        });
    }
}
