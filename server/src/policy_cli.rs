//! `ballast policy apply|diff|export`: policy as code against a running
//! server named by `BALLAST_URL`, with a user's token from `BALLAST_TOKEN`.
//! Policy files live in git; these commands show what would change, then
//! publish through the same API (and the same approvals) as the dashboard.

use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use shared::paths;
use shared::policy::{Change, ChangeKind, Format, Policy, Severity, ValidationContext};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// Where the server is and who is asking.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The server's base URL.
    #[arg(long, env = "BALLAST_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// A user's session token (from `POST /api/v1/auth/login`).
    #[arg(long, env = "BALLAST_TOKEN", hide_env_values = true)]
    pub token: crate::config::Secret,
}

/// The policy subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file, show its diff against the active version, and
    /// publish it after confirmation (or with --yes).
    Apply {
        /// The policy file (.yaml, .yml or .json).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Publish without asking.
        #[arg(long)]
        yes: bool,
        /// Only validate and show the diff.
        #[arg(long)]
        dry_run: bool,
        /// Why; recorded in the version and the audit log.
        #[arg(short = 'm', long, default_value = "applied from a policy file")]
        message: String,
        /// Roll out to this share of instances first (1–99).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=99))]
        canary: Option<u8>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show what a policy file would change against the active version.
    Diff {
        /// The policy file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a version (the active one by default) to stdout.
    Export {
        /// The service.
        #[arg(long)]
        service: String,
        /// The environment.
        #[arg(long = "env")]
        environment: String,
        /// A version number; the active version when absent.
        #[arg(long)]
        version: Option<u64>,
        /// yaml or json.
        #[arg(long, default_value = "yaml", value_parser = ["yaml", "json"])]
        format: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// A failed command, with the message for stderr.
pub struct Failure(pub String);

type Result<T> = std::result::Result<T, Failure>;

struct Api {
    base: String,
    token: crate::config::Secret,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Api {
    fn new(remote: &Remote) -> Result<Api> {
        let base = remote.url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            return Err(Failure(format!(
                "BALLAST_URL must be an http:// URL (TLS is terminated in front of Ballast); got {base:?}"
            )));
        }
        Ok(Api {
            base,
            token: remote.token.clone(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token.expose()));
        let bytes = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| Failure(e.to_string()))?;
        let response = self
            .client
            .request(req)
            .await
            .map_err(|e| Failure(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure(format!("reading the answer: {e}")))?
            .to_bytes();
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status == StatusCode::UNAUTHORIZED {
            return Err(Failure(format!(
                "the server refused the token: {}; sign in again and set BALLAST_TOKEN",
                error_text(&value)
            )));
        }
        Ok((status, value))
    }
}

fn error_text(v: &Value) -> String {
    let e = &v["error"];
    match e["field"].as_str() {
        Some(field) => format!("{field}: {}", e["message"].as_str().unwrap_or("error")),
        None => e["message"]
            .as_str()
            .unwrap_or("unexpected answer")
            .to_owned(),
    }
}

fn read_policy(file: &Path) -> Result<Policy> {
    let text =
        std::fs::read_to_string(file).map_err(|e| Failure(format!("{}: {e}", file.display())))?;
    let format = match file.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        _ => Format::Yaml,
    };
    Policy::parse(&text, format).map_err(|e| Failure(format!("{}: {e}", file.display())))
}

fn print_changes(changes: &[Change]) {
    if changes.is_empty() {
        eprintln!("no changes against the active version");
        return;
    }
    let show = |v: &Option<Value>| v.as_ref().map(Value::to_string).unwrap_or_default();
    for c in changes {
        match c.kind {
            ChangeKind::Added => eprintln!("+ {}: {}", c.path, show(&c.new)),
            ChangeKind::Removed => eprintln!("- {}: {}", c.path, show(&c.old)),
            ChangeKind::Changed => eprintln!("~ {}: {} -> {}", c.path, show(&c.old), show(&c.new)),
        }
    }
}

/// Validates locally (the same code as the server), then asks the server for
/// the diff against the active version. Returns the server's answer.
async fn check(api: &Api, policy: &Policy, create_if_missing: bool) -> Result<Value> {
    let report = policy.validate(&ValidationContext::new());
    for f in &report.findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        eprintln!("{level}: {}: {} [{}]", f.path, f.message, f.code.as_str());
    }
    if report.has_errors() {
        return Err(Failure(format!(
            "the policy has {} error(s); nothing was sent",
            report.errors().count()
        )));
    }
    let (name, env) = (&policy.service.name, &policy.service.environment);
    let path = paths::service(name, env).validate();
    let document = serde_json::to_value(policy).map_err(|e| Failure(e.to_string()))?;
    let (status, body) = api.call(Method::POST, &path, Some(&document)).await?;
    if status == StatusCode::NOT_FOUND && body["error"]["code"] == "not_found" {
        if !create_if_missing {
            eprintln!("{name}/{env} is not registered yet: everything would be new");
            return Ok(json!({ "changes": [], "approval_reasons": [], "new_service": true }));
        }
        let (status, created) = api
            .call(
                Method::POST,
                paths::SERVICES,
                Some(&json!({ "name": name, "environment": env, "owner": policy.service.owner })),
            )
            .await?;
        if !status.is_success() {
            return Err(Failure(format!(
                "cannot register {name}/{env}: {}",
                error_text(&created)
            )));
        }
        eprintln!("registered {name}/{env}");
        let (status, body) = api.call(Method::POST, &path, Some(&document)).await?;
        return if status.is_success() {
            Ok(body)
        } else {
            Err(Failure(error_text(&body)))
        };
    }
    if !status.is_success() {
        return Err(Failure(error_text(&body)));
    }
    Ok(body)
}

fn confirm() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure(
            "not publishing: stdin is not a terminal; pass --yes to publish without a prompt"
                .into(),
        ));
    }
    eprint!("Publish? [y/N] ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure(e.to_string()))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// Runs a policy subcommand.
pub async fn run(command: PolicyCommand) -> Result<()> {
    match command {
        PolicyCommand::Apply {
            file,
            yes,
            dry_run,
            message,
            canary,
            remote,
        } => {
            let policy = read_policy(&file)?;
            let api = Api::new(&remote)?;
            let answer = check(&api, &policy, !dry_run).await?;
            let changes: Vec<Change> =
                serde_json::from_value(answer["changes"].clone()).unwrap_or_default();
            print_changes(&changes);
            let reasons: Vec<String> =
                serde_json::from_value(answer["approval_reasons"].clone()).unwrap_or_default();
            for r in &reasons {
                eprintln!("needs approval: {r}");
            }
            if dry_run {
                return Ok(());
            }
            if answer["against_version"].is_u64() && changes.is_empty() {
                eprintln!("nothing to publish");
                return Ok(());
            }
            if !yes && !confirm()? {
                return Err(Failure("not published".into()));
            }
            let (name, env) = (&policy.service.name, &policy.service.environment);
            let document = serde_json::to_value(&policy).map_err(|e| Failure(e.to_string()))?;
            let (status, body) = api
                .call(
                    Method::POST,
                    &paths::service(name, env).publish(),
                    Some(&json!({ "message": message, "canary_percent": canary, "document": document })),
                )
                .await?;
            match (status, body["status"].as_str()) {
                (s, Some("published")) if s.is_success() => {
                    let canary = if body["canary"] == true {
                        " as a canary"
                    } else {
                        ""
                    };
                    eprintln!("published {name}/{env} version {}{canary}", body["version"]);
                    Ok(())
                }
                (s, Some("pending_approval")) if s.is_success() => {
                    eprintln!(
                        "waiting for approval: request {} (an approver other than you must approve it)",
                        body["request_id"].as_str().unwrap_or("?")
                    );
                    Ok(())
                }
                _ => Err(Failure(format!("publish refused: {}", error_text(&body)))),
            }
        }
        PolicyCommand::Diff { file, remote } => {
            let policy = read_policy(&file)?;
            let api = Api::new(&remote)?;
            let answer = check(&api, &policy, false).await?;
            let changes: Vec<Change> =
                serde_json::from_value(answer["changes"].clone()).unwrap_or_default();
            print_changes(&changes);
            Ok(())
        }
        PolicyCommand::Export {
            service,
            environment,
            version,
            format,
            remote,
        } => {
            let api = Api::new(&remote)?;
            let version = match version {
                Some(v) => v,
                None => {
                    let (status, svc) = api
                        .call(
                            Method::GET,
                            &paths::service(&service, &environment).root(),
                            None,
                        )
                        .await?;
                    if !status.is_success() {
                        return Err(Failure(error_text(&svc)));
                    }
                    svc["rollout"]["active_version"].as_u64().ok_or_else(|| {
                        Failure(format!("{service}/{environment} has no active version"))
                    })?
                }
            };
            let (status, body) = api
                .call(
                    Method::GET,
                    &paths::service(&service, &environment).version(version),
                    None,
                )
                .await?;
            if !status.is_success() {
                return Err(Failure(error_text(&body)));
            }
            let policy: Policy = serde_json::from_value(body["policy"].clone())
                .map_err(|e| Failure(format!("unexpected answer: {e}")))?;
            let text = match format.as_str() {
                "json" => policy.to_json(),
                _ => policy.to_yaml(),
            }
            .map_err(|e| Failure(e.to_string()))?;
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            Ok(())
        }
    }
}
