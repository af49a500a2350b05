//! Typed configuration, from flags and `BALLAST_*` environment variables.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A string that must never be printed: `Debug` and `Display` show a
/// placeholder, so a secret cannot leak through a log line or a panic.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Where the data lives. Every subcommand that touches the store takes these.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the SQLite database and the generated JWT secret.
    #[arg(long, env = "BALLAST_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`. Defaults to
    /// SQLite in the data directory. May hold a password, so it is a secret.
    #[arg(long, env = "BALLAST_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
}

impl StoreArgs {
    /// The database URL in force.
    pub fn url(&self) -> Secret {
        self.database_url
            .clone()
            .unwrap_or_else(|| Secret::new(crate::store::Store::sqlite_url_in(&self.data_dir)))
    }
}

/// `ballast serve` settings.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "BALLAST_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    /// HMAC key for session tokens. When unset, one is generated on first run
    /// and kept in the data directory with mode 0600. Replicas that share a
    /// Postgres database must share this too.
    #[arg(long, env = "BALLAST_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// Directory holding the built dashboard (`pkg/ballast.js` and friends).
    #[arg(long, env = "BALLAST_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
    /// Lifetime of a login session token, in seconds.
    #[arg(long, env = "BALLAST_SESSION_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub session_ttl_secs: u64,
    /// Mark the session cookie `Secure`. Turn on whenever Ballast is served
    /// over HTTPS (directly or behind a proxy).
    #[arg(long, env = "BALLAST_COOKIE_SECURE", default_value_t = false)]
    pub cookie_secure: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "BALLAST_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,
    /// How long a request may take to produce its response, in seconds.
    #[arg(long, env = "BALLAST_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Days to keep one-minute telemetry rollups before pruning them.
    #[arg(long, env = "BALLAST_ROLLUP_RETENTION_DAYS", default_value_t = 14,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub rollup_retention_days: u32,
    /// Days to keep a dead letter (with its actions and history) after it
    /// left the queue.
    #[arg(long, env = "BALLAST_DEAD_LETTER_RETENTION_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub dead_letter_retention_days: u32,
    /// The most dead letters one service may have open at once; reports
    /// past it get 429, so a misbehaving agent cannot fill the disk.
    #[arg(long, env = "BALLAST_DEAD_LETTER_MAX_LIVE", default_value_t = 100_000,
          value_parser = clap::value_parser!(i64).range(1..=100_000_000))]
    pub dead_letter_max_live: i64,
    /// Bearer token that Prometheus must present to scrape `/metrics`.
    /// `/metrics` answers 404 while this is unset.
    #[arg(long, env = "BALLAST_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,
}
