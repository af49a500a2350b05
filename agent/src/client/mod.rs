//! The live-policy client: the agent's side of the agent protocol
//! (`shared::protocol`).
//!
//! * Start-up: the newest of the last-known-good copy on disk and the
//!   control plane's current policy, waiting for the control plane at most
//!   `startup_wait`. With neither, the documented conservative default
//!   ([`CompiledPolicy::conservative_default`]).
//! * Then it holds the SSE stream (`GET /agent/stream`), reconnecting with
//!   capped, jittered backoff, and pulls `GET /agent/policy` with its ETag
//!   whenever the stream is down, so a broken stream never means a stale
//!   policy for long.
//! * Each new version is validated first, with the server's own
//!   validation ([`check_policy`]); one that fails is refused, logged and
//!   reported in the heartbeat, and the version in force stays. A valid
//!   one is compiled once and swapped in through the watch channel (calls
//!   in flight keep theirs), then written to disk. The copy on disk is
//!   checked the same way at start-up, and must govern this service and
//!   environment.
//! * Heartbeats report the applied version and its source, on an interval
//!   and at once after each apply (so the fleet view sees a new version
//!   without waiting a whole interval); telemetry is
//!   sealed about every second and sent oldest first, each batch resent
//!   under its sequence number until acknowledged.
//!
//! Nothing waits on the network without a bound: connections time out
//! (`connect_timeout`) and are kept alive by TCP keepalive; a request
//! and its body must complete within `request_timeout`; bodies and SSE
//! events larger than `max_body_bytes` are refused; and a stream silent
//! for longer than `stream_idle` (about three of the server's keep-alive
//! intervals) counts as broken, so after a silent partition the agent
//! falls back to pulling and reconnecting instead of waiting forever on a
//! stream that will never speak again.
//!
//! Every request carries `Authorization: Bearer <service token>`; the GETs
//! carry `?instance_id=`. Plain HTTP only: TLS is expected to be
//! terminated by the platform (a sidecar or the node's proxy).

mod accept;
mod lkg;
mod sse;

pub use accept::{MAX_REPORTED_ERRORS, check as check_policy};
pub use lkg::{load as load_last_known_good, newest, save as save_last_known_good};
pub use sse::{MAX_EVENT_BYTES, SseEvent, SseParser, TooLarge};

use crate::compiled::{CompiledPolicy, PolicyReceiver, policy_channel};
use crate::random::{RandomSource, SplitMix64};
use crate::retry::Backoff;
use crate::state::Enforcement;
use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::paths;
use shared::policy::Jitter;
use shared::protocol::{
    ActionAck, DeadLetterAck, DeadLetterReport, DlqAction, Heartbeat, PolicyEnvelope, PolicySource,
    RefusedPolicy, TelemetryAck, events,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

/// How the agent reaches the control plane.
#[derive(Clone)]
pub struct AgentConfig {
    /// The control plane's base URL, such as `http://ballast:8080`.
    pub base_url: String,
    /// The service token.
    pub token: String,
    /// This process's instance id.
    pub instance_id: String,
    /// The service and environment, for the conservative default's header.
    pub service: String,
    /// See `service`.
    pub environment: String,
    /// Where the last-known-good policy lives.
    pub last_known_good: PathBuf,
    /// The longest start-up waits for the control plane.
    pub startup_wait: Duration,
    /// Heartbeat interval.
    pub heartbeat_every: Duration,
    /// Telemetry flush interval.
    pub flush_every: Duration,
    /// The ETag pull interval while the stream is down, and the cap of the
    /// reconnect backoff.
    pub reconnect_max: Duration,
    /// The longest a TCP connection to the control plane may take to open.
    pub connect_timeout: Duration,
    /// The longest a request may take, its body included (for the stream:
    /// until its response head arrives).
    pub request_timeout: Duration,
    /// The TCP keepalive interval on connections to the control plane, so
    /// the kernel notices a peer that vanished.
    pub tcp_keepalive: Duration,
    /// The longest the stream may stay silent (not even a keep-alive
    /// comment) before the agent drops it and pulls instead.
    pub stream_idle: Duration,
    /// The largest response body, and the largest SSE event, accepted.
    pub max_body_bytes: usize,
}

/// The control plane's keep-alive interval on the stream; the stream's
/// idle deadline is three of them, so one or two lost comments are not a
/// partition.
pub const SERVER_KEEP_ALIVE: Duration = Duration::from_secs(15);

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in logs.
        f.debug_struct("AgentConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .field("instance_id", &self.instance_id)
            .field("last_known_good", &self.last_known_good)
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// A configuration with the usual intervals: 2 s start-up wait, 10 s
    /// heartbeats, 1 s flushes, reconnects backing off up to 30 s; 2 s to
    /// connect, 10 s per request, TCP keepalive every 30 s, a stream silent
    /// for 45 s (three keep-alives) dropped, and bodies and events of up to
    /// 8 MiB (eight times the largest policy document).
    pub fn new(
        base_url: impl Into<String>,
        token: impl Into<String>,
        instance_id: impl Into<String>,
        service: impl Into<String>,
        environment: impl Into<String>,
        last_known_good: impl Into<PathBuf>,
    ) -> AgentConfig {
        AgentConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            instance_id: instance_id.into(),
            service: service.into(),
            environment: environment.into(),
            last_known_good: last_known_good.into(),
            startup_wait: Duration::from_secs(2),
            heartbeat_every: Duration::from_secs(10),
            flush_every: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(30),
            stream_idle: SERVER_KEEP_ALIVE * 3,
            max_body_bytes: 8 * shared::policy::MAX_DOCUMENT_BYTES,
        }
    }
}

/// A call to the control plane failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection or the request failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The control plane answered with an unexpected status.
    #[error("status {status}: {body}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The body, for the log.
        body: String,
    },
    /// The answer did not parse.
    #[error("decode: {0}")]
    Decode(String),
}

/// The HTTP side: one pooled client, the token on every request.
#[derive(Clone)]
pub struct ControlPlane {
    client: Client<HttpConnector, Full<Bytes>>,
    base: Arc<str>,
    token: Arc<str>,
    instance_id: Arc<str>,
    request_timeout: Duration,
    max_body_bytes: usize,
}

/// The outcome of an ETag pull.
#[derive(Debug)]
pub enum Pulled {
    /// A policy, with its ETag.
    Policy(Box<PolicyEnvelope>),
    /// Unchanged since the ETag sent.
    NotModified,
    /// Nothing is published for this service yet.
    NothingPublished,
}

impl ControlPlane {
    /// A client for `config`'s control plane.
    pub fn new(config: &AgentConfig) -> ControlPlane {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_keepalive(Some(config.tcp_keepalive));
        ControlPlane {
            client: Client::builder(TokioExecutor::new()).build(connector),
            request_timeout: config.request_timeout,
            max_body_bytes: config.max_body_bytes,
            base: Arc::from(config.base_url.as_str()),
            token: Arc::from(config.token.as_str()),
            instance_id: Arc::from(config.instance_id.as_str()),
        }
    }

    fn request(&self, method: http::Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
    }

    fn instance_query(&self) -> String {
        // Instance ids are printable ASCII; only the characters that would
        // break a query string need escaping.
        let mut out = String::new();
        for b in self.instance_id.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        format!("instance_id={out}")
    }

    /// Sends `req` and waits for the response head, at most the request
    /// timeout.
    async fn send(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, ClientError> {
        match tokio::time::timeout(self.request_timeout, self.client.request(req)).await {
            Ok(r) => r.map_err(|e| ClientError::Transport(e.to_string())),
            Err(_) => Err(ClientError::Transport(format!(
                "no answer within {:?}",
                self.request_timeout
            ))),
        }
    }

    /// Reads a response body, at most `max_body_bytes` of it and within
    /// the request timeout: a control plane (or something posing as one)
    /// cannot make the agent buffer without bound or wait forever.
    async fn body(
        &self,
        resp: http::Response<hyper::body::Incoming>,
    ) -> Result<Bytes, ClientError> {
        let limited = http_body_util::Limited::new(resp.into_body(), self.max_body_bytes);
        match tokio::time::timeout(self.request_timeout, limited.collect()).await {
            Ok(r) => r
                .map(|c| c.to_bytes())
                .map_err(|e| ClientError::Transport(e.to_string())),
            Err(_) => Err(ClientError::Transport(format!(
                "body not read within {:?}",
                self.request_timeout
            ))),
        }
    }

    /// `GET /agent/policy`, with `If-None-Match` when an ETag is known.
    pub async fn pull(&self, etag: Option<&str>) -> Result<Pulled, ClientError> {
        let mut req = self.request(
            http::Method::GET,
            &format!("{}?{}", paths::AGENT_POLICY, self.instance_query()),
        );
        if let Some(etag) = etag {
            req = req.header(header::IF_NONE_MATCH, format!("\"{etag}\""));
        }
        let req = req
            .body(Full::default())
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let resp = self.send(req).await?;
        match resp.status() {
            StatusCode::NOT_MODIFIED => Ok(Pulled::NotModified),
            StatusCode::NOT_FOUND => Ok(Pulled::NothingPublished),
            StatusCode::OK => {
                let body = self.body(resp).await?;
                serde_json::from_slice(&body)
                    .map(|e| Pulled::Policy(Box::new(e)))
                    .map_err(|e| ClientError::Decode(e.to_string()))
            }
            status => Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&self.body(resp).await?).into_owned(),
            }),
        }
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Option<R>, ClientError> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let req = self
            .request(http::Method::POST, path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let resp = self.send(req).await?;
        let status = resp.status();
        let bytes = self.body(resp).await?;
        if !status.is_success() {
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST /agent/heartbeat`.
    pub async fn heartbeat(&self, beat: &Heartbeat) -> Result<(), ClientError> {
        self.post::<_, serde_json::Value>(paths::AGENT_HEARTBEAT, beat)
            .await
            .map(drop)
    }

    /// `POST /agent/telemetry`.
    pub async fn telemetry(
        &self,
        batch: &shared::protocol::TelemetryBatch,
    ) -> Result<Option<TelemetryAck>, ClientError> {
        self.post(paths::AGENT_TELEMETRY, batch).await
    }

    /// `POST /agent/dead-letters`.
    pub async fn dead_letter(
        &self,
        report: &DeadLetterReport,
    ) -> Result<Option<DeadLetterAck>, ClientError> {
        self.post(paths::AGENT_DEAD_LETTERS, report).await
    }

    /// `POST /agent/actions/{id}/ack`.
    pub async fn ack_action(&self, id: &str, ack: &ActionAck) -> Result<(), ClientError> {
        // The shared path builder escapes the id, so an id cannot reach
        // another path, and the prefix is the one the server routes.
        self.post::<_, serde_json::Value>(&paths::agent_action_ack(id), ack)
            .await
            .map(drop)
    }

    /// Opens `GET /agent/stream`; the body yields SSE bytes.
    pub async fn stream(&self) -> Result<hyper::body::Incoming, ClientError> {
        let req = self
            .request(
                http::Method::GET,
                &format!("{}?{}", paths::AGENT_STREAM, self.instance_query()),
            )
            .header(header::ACCEPT, "text/event-stream")
            .body(Full::default())
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let resp = self.send(req).await?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&self.body(resp).await?).into_owned(),
            });
        }
        Ok(resp.into_body())
    }
}

/// What is applied now, for heartbeats and de-duplication.
#[derive(Debug, Clone)]
struct Applied {
    version: Option<u64>,
    etag: Option<String>,
    source: PolicySource,
}

/// The running agent: the policy channel and the control-plane link.
pub struct LiveAgent {
    config: AgentConfig,
    plane: ControlPlane,
    sender: Arc<watch::Sender<Arc<CompiledPolicy>>>,
    receiver: PolicyReceiver,
    applied: Arc<Mutex<Applied>>,
    actions: Mutex<Option<mpsc::Receiver<DlqAction>>>,
    action_tx: mpsc::Sender<DlqAction>,
    started_at_ms: i64,
    random: Arc<dyn RandomSource>,
    /// Wakes the heartbeat loop after an apply, so that the fleet view
    /// learns the new version now rather than one interval later.
    heartbeat_now: Arc<Notify>,
    /// Whether the policy stream is open now.
    connected: watch::Sender<bool>,
    /// The newest policy refused for failing validation, for heartbeats.
    refused: Mutex<Option<RefusedPolicy>>,
}

/// Logs a refused policy and describes it for the heartbeat.
fn refusal(envelope: &PolicyEnvelope, source: PolicySource, errors: Vec<String>) -> RefusedPolicy {
    tracing::warn!(
        version = envelope.version,
        source = source.as_str(),
        errors = ?errors,
        "policy refused: it fails validation; the policy in force stays"
    );
    RefusedPolicy {
        version: envelope.version,
        source,
        errors,
        refused_at_ms: crate::clock::WallClock::system().now_ms(),
    }
}

impl LiveAgent {
    /// Starts: picks the policy to enforce (newest of disk and server,
    /// waiting at most `startup_wait` for the server; else disk; else the
    /// conservative default) and returns at once after that.
    pub async fn start(config: AgentConfig) -> LiveAgent {
        let plane = ControlPlane::new(&config);
        let mut refused = None;
        let disk = lkg::load(&config.last_known_good).filter(|e| {
            accept::check(e, Some((&config.service, &config.environment)))
                .map_err(|errors| refused = Some(refusal(e, PolicySource::Disk, errors)))
                .is_ok()
        });
        let server = match tokio::time::timeout(config.startup_wait, plane.pull(None)).await {
            Ok(Ok(Pulled::Policy(e))) => match accept::check(&e, None) {
                Ok(()) => Some(*e),
                Err(errors) => {
                    refused = Some(refusal(&e, PolicySource::Server, errors));
                    None
                }
            },
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "control plane unreachable at start");
                None
            }
            Err(_) => {
                tracing::warn!("control plane did not answer within the start-up wait");
                None
            }
        };
        let from_server = server.as_ref().map(|s| s.version);
        let chosen = lkg::newest(disk, server);
        let (compiled, applied) = match chosen {
            Some(env) => {
                let source = if Some(env.version) == from_server {
                    PolicySource::Server
                } else {
                    PolicySource::Disk
                };
                if source == PolicySource::Server {
                    save_quietly(&config.last_known_good, &env);
                }
                let applied = Applied {
                    version: Some(env.version),
                    etag: Some(env.etag.clone()),
                    source,
                };
                (
                    CompiledPolicy::compile(env.policy, Some(env.version), source),
                    applied,
                )
            }
            None => (
                CompiledPolicy::conservative_default(&config.service, &config.environment),
                Applied {
                    version: None,
                    etag: None,
                    source: PolicySource::Default,
                },
            ),
        };
        let (sender, receiver) = policy_channel(compiled);
        let (action_tx, action_rx) = mpsc::channel(64);
        LiveAgent {
            plane,
            sender: Arc::new(sender),
            receiver,
            applied: Arc::new(Mutex::new(applied)),
            actions: Mutex::new(Some(action_rx)),
            action_tx,
            started_at_ms: crate::clock::WallClock::system().now_ms(),
            random: Arc::new(SplitMix64::from_entropy()),
            heartbeat_now: Arc::new(Notify::new()),
            connected: watch::Sender::new(false),
            refused: Mutex::new(refused),
            config,
        }
    }

    /// The newest policy this instance refused because it failed
    /// validation, if any; the heartbeat reports it.
    pub fn refused(&self) -> Option<RefusedPolicy> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The policy channel to build a [`crate::Guard`] on.
    pub fn policy(&self) -> PolicyReceiver {
        self.receiver.clone()
    }

    /// The version applied now and where it came from.
    pub fn applied(&self) -> (Option<u64>, PolicySource) {
        let a = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        (a.version, a.source)
    }

    /// Whether the policy stream is open now. While it is, each new
    /// version arrives as an event; while it is not, the agent pulls
    /// between reconnect attempts.
    pub fn stream_connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    /// The control-plane client, for dead letters and action acks.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.plane
    }

    /// The approved DLQ actions the stream delivers; taken once.
    pub fn take_actions(&self) -> Option<mpsc::Receiver<DlqAction>> {
        self.actions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The heartbeat this instance would send now.
    pub fn heartbeat(&self) -> Heartbeat {
        let (version, source) = self.applied();
        Heartbeat {
            instance_id: self.config.instance_id.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            policy_version: version,
            policy_source: source,
            started_at_ms: self.started_at_ms,
            refused_policy: self.refused(),
        }
    }

    /// Spawns the background work: the policy stream with its pull
    /// fallback, the end of breaker overrides on time, heartbeats, and
    /// telemetry flushes for `state` (a
    /// [`crate::Guard`] or its [`Enforcement`]).
    pub fn spawn(self: &Arc<Self>, state: impl Into<Enforcement>) -> Vec<JoinHandle<()>> {
        let state = state.into();
        let me = self.clone();
        let policy = tokio::spawn(async move { me.policy_loop().await });
        let me = self.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                if let Err(e) = me.plane.heartbeat(&me.heartbeat()).await {
                    tracing::debug!(error = %e, "heartbeat failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(me.config.heartbeat_every) => {}
                    () = me.heartbeat_now.notified() => {}
                }
            }
        });
        let me = self.clone();
        let telemetry = tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.config.flush_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                state.seal_telemetry();
                me.flush(&state).await;
            }
        });
        let overrides = tokio::spawn(crate::compiled::lift_overrides_on_time(
            Arc::downgrade(&self.sender),
            crate::clock::WallClock::system(),
        ));
        vec![policy, heartbeat, telemetry, overrides]
    }

    /// Sends pending telemetry batches, oldest first, until one fails.
    pub async fn flush(&self, state: &Enforcement) {
        let recorder = state.recorder();
        while let Some(batch) = recorder.next_batch() {
            match self.plane.telemetry(&batch).await {
                // Accepted, or already had it: either way it is delivered.
                Ok(_) => recorder.acknowledge(batch.sequence),
                Err(e) => {
                    tracing::debug!(error = %e, pending = recorder.pending(), "telemetry flush failed");
                    break;
                }
            }
        }
    }

    /// Applies `envelope` if it differs from what is applied and passes
    /// validation: compiles it, swaps it in, writes it to disk. One that
    /// fails validation is refused (see [`LiveAgent::refused`]) and the
    /// version in force stays; returns whether it was applied.
    pub fn apply(&self, envelope: PolicyEnvelope) -> bool {
        {
            let a = self.applied.lock().unwrap_or_else(|e| e.into_inner());
            // The ETag is a hash of the document, so a rollback to earlier
            // content repeats an old one: the version tells it apart, and
            // the fleet view must see the version the instance runs.
            if a.etag.as_deref() == Some(envelope.etag.as_str())
                && a.version == Some(envelope.version)
                && a.source == PolicySource::Server
            {
                return false;
            }
        }
        if let Err(errors) = accept::check(&envelope, None) {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            // Pulls repeat a refused version while the stream is down: it is
            // logged and reported once.
            if refused.as_ref().map(|r| r.version) != Some(envelope.version) {
                *refused = Some(refusal(&envelope, PolicySource::Server, errors));
                drop(refused);
                self.heartbeat_now.notify_one();
            }
            return false;
        }
        save_quietly(&self.config.last_known_good, &envelope);
        let version = envelope.version;
        let etag = envelope.etag.clone();
        let compiled =
            CompiledPolicy::compile(envelope.policy, Some(version), PolicySource::Server);
        // Swapped under the lock that guards `applied`, so that whoever
        // sees the new version in the channel and then asks `applied()`
        // (a heartbeat, say) is told the same version, never the old one.
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        // `send_replace` swaps even with no receiver left; calls in flight
        // hold their own Arc of the previous version.
        self.sender.send_replace(Arc::new(compiled));
        *applied = Applied {
            version: Some(version),
            etag: Some(etag),
            source: PolicySource::Server,
        };
        drop(applied);
        // A refusal of an older version is history once a newer one runs.
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if refused.as_ref().is_some_and(|r| r.version <= version) {
            *refused = None;
        }
        drop(refused);
        // A permit is stored if the loop is mid-request, so this is never lost.
        self.heartbeat_now.notify_one();
        tracing::info!(version, "policy applied");
        true
    }

    async fn pull_once(&self) {
        let etag = self
            .applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .etag
            .clone();
        match self.plane.pull(etag.as_deref()).await {
            Ok(Pulled::Policy(e)) => {
                self.apply(*e);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "policy pull failed"),
        }
    }

    async fn policy_loop(&self) {
        let mut backoff = Backoff::new(
            250,
            self.config.reconnect_max.as_millis() as u64,
            Jitter::Decorrelated,
        );
        let mut failures = 0u32;
        loop {
            match self.plane.stream().await {
                Ok(body) => {
                    failures = 0;
                    self.connected.send_replace(true);
                    self.read_stream(body).await;
                    self.connected.send_replace(false);
                }
                Err(e) => tracing::debug!(error = %e, "policy stream unavailable"),
            }
            // The stream is down: pull, so the policy is at most one
            // backoff old, then reconnect after a jittered wait.
            self.pull_once().await;
            failures = failures.saturating_add(1);
            tokio::time::sleep(backoff.delay(failures, &*self.random)).await;
        }
    }

    /// Reads the stream until it ends, breaks, sends an event over the
    /// bound, or stays silent past the idle deadline. The deadline restarts
    /// with every frame, keep-alive comments included, so only a stream
    /// that has truly gone quiet (a partition that drops packets without a
    /// reset, a proxy that holds the connection) is given up on.
    async fn read_stream(&self, mut body: hyper::body::Incoming) {
        let mut parser = SseParser::with_limit(self.config.max_body_bytes);
        loop {
            let frame = match tokio::time::timeout(self.config.stream_idle, body.frame()).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(_) => {
                    tracing::warn!(
                        idle = ?self.config.stream_idle,
                        "policy stream silent past its idle deadline; pulling instead"
                    );
                    return;
                }
            };
            let Ok(frame) = frame else { return };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let events = match parser.feed(&data) {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "policy stream dropped");
                    return;
                }
            };
            for event in events {
                self.on_event(event).await;
            }
        }
    }

    async fn on_event(&self, event: SseEvent) {
        match event.event.as_str() {
            events::POLICY => match serde_json::from_str::<PolicyEnvelope>(&event.data) {
                Ok(env) => {
                    self.apply(env);
                }
                Err(e) => tracing::warn!(error = %e, "unreadable policy event ignored"),
            },
            events::ACTION => match serde_json::from_str::<DlqAction>(&event.data) {
                Ok(action) => {
                    // Bounded: if the service does not drain its actions
                    // they wait on the server, which redelivers them.
                    let _ = self.action_tx.try_send(action);
                }
                Err(e) => tracing::warn!(error = %e, "unreadable action event ignored"),
            },
            _ => {}
        }
    }
}

fn save_quietly(path: &std::path::Path, envelope: &PolicyEnvelope) {
    if let Err(e) = lkg::save(path, envelope) {
        tracing::warn!(error = %e, path = %path.display(), "could not write the last-known-good policy");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::policy::{Policy, RiskTier, Service};

    fn envelope(version: u64) -> PolicyEnvelope {
        PolicyEnvelope {
            service: "svc".into(),
            environment: "test".into(),
            version,
            etag: format!("e{version}"),
            published_at_ms: 0,
            policy: Policy::new(Service {
                name: "svc".into(),
                environment: "test".into(),
                owner: "me".into(),
                risk_tier: RiskTier::Low,
                description: None,
                dependencies: Default::default(),
            }),
        }
    }

    fn config(dir: &std::path::Path, base: &str) -> AgentConfig {
        AgentConfig::new(base, "tok", "i-1", "svc", "test", dir.join("lkg.json"))
    }

    #[test]
    fn the_last_known_good_copy_round_trips_and_the_newest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/lkg.json");
        save_last_known_good(&path, &envelope(3)).unwrap();
        save_last_known_good(&path, &envelope(4)).unwrap();
        assert_eq!(load_last_known_good(&path).unwrap().version, 4);
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no temporary file is left behind"
        );
        assert_eq!(
            newest(Some(envelope(5)), Some(envelope(4)))
                .unwrap()
                .version,
            5
        );
        assert_eq!(
            newest(Some(envelope(4)), Some(envelope(4))).unwrap().etag,
            "e4"
        );
        std::fs::write(&path, b"{ half a file").unwrap();
        assert!(
            load_last_known_good(&path).is_none(),
            "a corrupt copy is not trusted"
        );
    }

    #[tokio::test]
    async fn unreachable_at_start_it_runs_on_the_disk_copy() {
        let dir = tempfile::tempdir().unwrap();
        // A port nobody listens on: the connection is refused at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let cfg = config(dir.path(), &base);
        save_last_known_good(&cfg.last_known_good, &envelope(7)).unwrap();
        let live = LiveAgent::start(cfg).await;
        assert_eq!(live.applied(), (Some(7), PolicySource::Disk));
        assert_eq!(live.policy().borrow().version(), Some(7));
        assert_eq!(live.heartbeat().policy_source, PolicySource::Disk);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_control_plane_delays_start_by_at_most_the_bound_then_the_default_applies() {
        let dir = tempfile::tempdir().unwrap();
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let _hold = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                conns.push(c);
            }
        });
        let started = tokio::time::Instant::now();
        let live = LiveAgent::start(config(dir.path(), &base)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(live.applied(), (None, PolicySource::Default));
        assert_eq!(
            live.policy().borrow().total_budget(),
            Some(Duration::from_secs(30)),
            "the documented conservative default"
        );
    }

    #[tokio::test]
    async fn applying_swaps_the_policy_writes_it_to_disk_and_ignores_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let cfg = config(dir.path(), &base);
        let path = cfg.last_known_good.clone();
        let live = LiveAgent::start(cfg).await;
        let before = live.policy().borrow().clone();
        assert!(live.apply(envelope(9)));
        assert!(!live.apply(envelope(9)), "the same ETag twice is one apply");
        assert_eq!(live.policy().borrow().version(), Some(9));
        assert_eq!(
            before.version(),
            None,
            "a holder of the old version keeps it"
        );
        assert_eq!(load_last_known_good(&path).unwrap().version, 9);
        assert_eq!(live.heartbeat().policy_version, Some(9));
        // A rollback to v9's content is a new version with v9's ETag.
        let mut rollback = envelope(10);
        rollback.etag = String::from("e9");
        assert!(live.apply(rollback));
        assert_eq!(live.heartbeat().policy_version, Some(10));
    }

    /// A one-shot HTTP server that answers every connection with `reply`
    /// (or, given `None`, accepts and never answers).
    async fn answering(reply: Option<Vec<u8>>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut c, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf).await;
                if let Some(reply) = &reply {
                    let _ = c.write_all(reply).await;
                }
                held.push(c);
            }
        });
        base
    }

    #[tokio::test]
    async fn a_body_over_the_bound_is_refused_not_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let mut reply = b"HTTP/1.1 200 OK\r\ncontent-length: 4096\r\n\r\n".to_vec();
        reply.extend(std::iter::repeat_n(b'x', 4096));
        let mut cfg = config(dir.path(), &answering(Some(reply)).await);
        cfg.max_body_bytes = 1024;
        let err = ControlPlane::new(&cfg).pull(None).await.unwrap_err();
        assert!(matches!(err, ClientError::Transport(_)), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_the_control_plane_never_answers_ends_at_the_request_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), &answering(None).await);
        cfg.request_timeout = Duration::from_secs(3);
        let started = tokio::time::Instant::now();
        let err = ControlPlane::new(&cfg).pull(None).await.unwrap_err();
        assert!(err.to_string().contains("no answer within 3s"), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
