//! The `ballast` command line. Output meant for scripts (a token) goes alone
//! to stdout; messages go to stderr. Exit codes: 0 success, 1 failure,
//! 2 bad usage (clap's own exit code for usage errors).

use crate::app::{AppState, Settings, router};
use crate::auth::password;
use crate::auth::{tokens, users};
use crate::clock::{Clock, SystemClock};
use crate::config::{Secret, ServeConfig, StoreArgs};
use crate::store::{AuditRecord, Store};
use clap::{Parser, Subcommand};
use serde_json::json;
use shared::role::Role;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Ballast: a reliability control plane for AI applications.
#[derive(Debug, Parser)]
#[command(name = "ballast", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: API, dashboard and agent protocol.
    Serve(Box<ServeConfig>),
    /// Manage users in the local data directory.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Manage service tokens in the local data directory.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Policy as code, against a running server (BALLAST_URL, BALLAST_TOKEN).
    Policy {
        #[command(subcommand)]
        command: crate::policy_cli::PolicyCommand,
    },
    /// Work with the audit log in the local data directory.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a user. The password is read from the first line of stdin, so it
    /// never appears in the process list or shell history.
    CreateUser {
        /// The new user's name.
        #[arg(long)]
        username: String,
        /// viewer, engineer, approver or admin.
        #[arg(long)]
        role: Role,
        /// Read the password from stdin (required: there is no other way).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a service token and print it, alone, on stdout. It is shown once.
    Create {
        /// The service the token speaks for.
        #[arg(long)]
        service: String,
        /// The environment the token speaks for.
        #[arg(long = "env")]
        environment: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tokens (without secrets) as JSON lines on stdout.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id (the part after `bst_` and before the next `_`).
        #[arg(long)]
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain and report the first broken link.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// A failed command: the message for stderr.
#[derive(Debug)]
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string())
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ballast: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("ballast: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Admin {
            command:
                AdminCommand::CreateUser {
                    username,
                    role,
                    password_stdin: _,
                    store,
                },
        } => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']).to_owned();
            users::validate_username(&username).map_err(|e| Failure(e.message))?;
            users::validate_password(&password).map_err(|e| Failure(e.message))?;
            let store = open_store(&store).await?;
            let hash = password::hash(password).await?;
            let user = store
                .create_user(
                    &username,
                    &hash,
                    role,
                    SystemClock.now_ms(),
                    &AuditRecord::new("cli", "user.create", "", json!({ "role": role })),
                )
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::Conflict(_) => {
                        Failure(format!("user {username:?} already exists"))
                    }
                    other => Failure(other.to_string()),
                })?;
            eprintln!(
                "created user {:?} with role {} (id {})",
                user.username, user.role, user.id
            );
            Ok(())
        }
        Command::Token { command } => match command {
            TokenCommand::Create {
                service,
                environment,
                store,
            } => {
                let store = open_store(&store).await?;
                let created =
                    tokens::issue(&store, SystemClock.now_ms(), "cli", &service, &environment)
                        .await
                        .map_err(|e| Failure(e.message))?;
                eprintln!(
                    "created token {} for {}/{}; it is shown once, below",
                    created.info.id, created.info.service, created.info.environment
                );
                println!("{}", created.token);
                Ok(())
            }
            TokenCommand::List { store } => {
                let store = open_store(&store).await?;
                for token in store.list_tokens().await? {
                    println!("{}", serde_json::to_string(&token.view())?);
                }
                Ok(())
            }
            TokenCommand::Revoke { id, store } => {
                let store = open_store(&store).await?;
                store
                    .revoke_token(
                        &id,
                        SystemClock.now_ms(),
                        &AuditRecord::new("cli", "token.revoke", format!("token:{id}"), json!({})),
                    )
                    .await
                    .map_err(|e| match e {
                        crate::store::StoreError::NotFound => {
                            Failure(format!("no token with id {id:?}"))
                        }
                        other => Failure(other.to_string()),
                    })?;
                eprintln!("revoked token {id}");
                Ok(())
            }
        },
        Command::Policy { command } => crate::policy_cli::run(command)
            .await
            .map_err(|crate::policy_cli::Failure(message)| Failure(message)),
        Command::Audit {
            command: AuditCommand::Verify { store },
        } => {
            let store = open_store(&store).await?;
            match store.verify_audit().await? {
                Ok(count) => {
                    eprintln!("audit log intact: {count} entries verified");
                    Ok(())
                }
                Err(brk) => Err(Failure(format!(
                    "audit log broken at entry {}: {}",
                    brk.seq, brk.reason
                ))),
            }
        }
    }
}

async fn open_store(args: &StoreArgs) -> Result<Store, Failure> {
    if args.database_url.is_none() {
        create_private_dir(&args.data_dir)?;
    }
    Store::open(args.url().expose())
        .await
        .map_err(|e| Failure(format!("cannot open the database: {e}")))
}

/// Creates the data directory readable by its owner only: it holds the
/// database and the signing key.
fn create_private_dir(dir: &Path) -> Result<(), Failure> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure(format!("cannot create {}: {e}", dir.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// The signing secret: configured, or generated once and kept in the data
/// directory with mode 0600.
fn jwt_secret(config: &ServeConfig) -> Result<Secret, Failure> {
    if let Some(secret) = &config.jwt_secret {
        if secret.expose().len() < 32 {
            return Err(Failure(
                "BALLAST_JWT_SECRET must be at least 32 characters".into(),
            ));
        }
        return Ok(secret.clone());
    }
    if config.store.database_url.is_some() {
        tracing::warn!(
            "no BALLAST_JWT_SECRET set: replicas sharing this database must share one, or sessions will not carry across them"
        );
    }
    let path = config.store.data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(Secret::new(s.trim())),
        Ok(_) => {
            return Err(Failure(format!(
                "{} is too short; delete it to generate a new one",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Failure(format!("cannot read {}: {e}", path.display()))),
    }
    let secret = crate::auth::random_hex(32);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options
        .open(&path)
        .map_err(|e| Failure(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(Secret::new(secret))
}

async fn serve(config: ServeConfig) -> Result<(), Failure> {
    init_tracing();
    create_private_dir(&config.store.data_dir)?;
    let store = open_store(&config.store).await?;
    let secret = jwt_secret(&config)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if !config.site_root.join("pkg").join("ballast.js").exists() {
        tracing::warn!(
            site_root = %config.site_root.display(),
            "the dashboard bundle is not built; pages will not become interactive (scripts/run builds it)"
        );
    }
    bootstrap_admin(&store, clock.as_ref(), config.listen).await?;
    let settings = Settings {
        site_root: config.site_root.clone(),
        body_limit: config.body_limit,
        request_timeout: Duration::from_secs(config.request_timeout_secs),
        session_ttl_secs: config.session_ttl_secs,
        cookie_secure: config.cookie_secure,
        rollup_retention_days: config.rollup_retention_days,
        dead_letter_retention_days: config.dead_letter_retention_days,
        dead_letter_max_live: config.dead_letter_max_live,
        metrics_token: config
            .metrics_token
            .clone()
            .filter(|t| !t.expose().is_empty()),
        ..Settings::default()
    };
    let state = AppState::new(store.clone(), &secret, clock, settings)?;
    let app = router(state.clone());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Failure(format!("cannot listen on {}: {e}", config.listen)))?;
    let backend = match store.backend() {
        crate::store::Backend::Sqlite => "sqlite",
        crate::store::Backend::Postgres => "postgres",
    };
    tracing::info!(address = %config.listen, backend, "Ballast is serving on http://{}", config.listen);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let state = state.clone();
        async move {
            shutdown_signal().await;
            // End the agents' and browsers' streams so that they reconnect
            // elsewhere and the graceful shutdown below can finish.
            state.shutdown.send_replace(true);
        }
    })
    .await?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// On the very first start there are no users: create an admin and say, once,
/// how to sign in. `BALLAST_ADMIN_PASSWORD` sets the password (for demos and
/// automation); otherwise a random one is generated and printed to the
/// terminal, not to the log.
async fn bootstrap_admin(
    store: &Store,
    clock: &dyn Clock,
    listen: SocketAddr,
) -> Result<(), Failure> {
    if store.count_users().await? > 0 {
        return Ok(());
    }
    let (password, generated) = match std::env::var("BALLAST_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (crate::auth::random_hex(12), true),
    };
    users::validate_password(&password)
        .map_err(|e| Failure(format!("BALLAST_ADMIN_PASSWORD: {}", e.message)))?;
    let hash = password::hash(password.clone()).await?;
    let created = store
        .create_user(
            "admin",
            &hash,
            Role::Admin,
            clock.now_ms(),
            &AuditRecord::new(
                "system",
                "user.create",
                "",
                json!({ "role": "admin", "bootstrap": true }),
            ),
        )
        .await;
    match created {
        Ok(_) => {}
        // Replicas started together on an empty Postgres race to bootstrap;
        // the one that loses finds the admin already there, which is fine.
        Err(crate::store::StoreError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let shown = if generated {
        password.as_str()
    } else {
        "(the value of BALLAST_ADMIN_PASSWORD)"
    };
    eprintln!(
        "\n  First run: created the admin user.\n    Sign in at http://{listen}/login\n    username: admin\n    password: {shown}\n  This is shown only once. Create named users afterwards and disable this one.\n"
    );
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BALLAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
