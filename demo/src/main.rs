//! `ballast-demo`: runs the simulated services against a Ballast server.
//!
//! ```sh
//! BALLAST_ADMIN_PASSWORD=… ballast-demo --bootstrap --instances 3 --rps 20
//! ```

use clap::Parser;
use demo::bootstrap::{Credentials, SERVICES, bootstrap};
use demo::control::{CaseControl, ControlState, RunFn, router};
use demo::dead_letters::DeadLetterState;
use demo::deps::{CATALOGUE, Dependencies};
use demo::faults::Faults;
use demo::fleet::{self, Counters, ServiceSpec};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Runs the simulated RAG answer service and case-review agent, each as
/// many instances with their own Ballast agent, under a steady load.
#[derive(Debug, Parser)]
#[command(name = "ballast-demo", version)]
struct Args {
    /// The Ballast server.
    #[arg(long, env = "BALLAST_URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// The service token of rag-answer/prod (not needed with --bootstrap).
    #[arg(long, env = "BALLAST_TOKEN_RAG", hide_env_values = true)]
    token_rag: Option<String>,
    /// The service token of case-review-agent/prod (not needed with --bootstrap).
    #[arg(long, env = "BALLAST_TOKEN_CASE", hide_env_values = true)]
    token_case: Option<String>,
    /// Sign in as admin, register both services, create their tokens and
    /// publish the example policies before starting.
    #[arg(long)]
    bootstrap: bool,
    /// The admin account --bootstrap signs in as.
    #[arg(long, default_value = "admin")]
    admin_user: String,
    /// Its password.
    #[arg(long, env = "BALLAST_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// The second person who approves high-risk publishes (created if
    /// missing). Without its password, publish requests stay pending.
    #[arg(long, default_value = "demo-approver")]
    approver_user: String,
    /// The approver's password (at least 12 characters).
    #[arg(long, env = "BALLAST_APPROVER_PASSWORD", hide_env_values = true)]
    approver_password: Option<String>,
    /// Instances per service.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=500))]
    instances: u16,
    /// Requests per second to rag-answer, over all its instances.
    #[arg(long, default_value_t = 10.0)]
    rps: f64,
    /// Review runs per second to case-review-agent.
    #[arg(long, default_value_t = 1.0)]
    case_rps: f64,
    /// Where the fault-injection API listens.
    #[arg(long, default_value = "127.0.0.1:3100")]
    control: SocketAddr,
    /// Where each instance keeps its last-known-good policy.
    #[arg(long, default_value = "data/demo")]
    state_dir: PathBuf,
    /// Prefix of instance ids; differ it between demo processes.
    #[arg(long, default_value = "demo")]
    id_prefix: String,
    /// Seed of every simulated latency, error and jitter.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How often to log a summary, in seconds.
    #[arg(long, default_value_t = 10)]
    report_every: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BALLAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if !(args.rps >= 0.0
        && args.case_rps >= 0.0
        && args.rps.is_finite()
        && args.case_rps.is_finite())
    {
        eprintln!("--rps and --case-rps must be finite and not negative");
        return ExitCode::from(2);
    }
    let (rag_token, case_token) = if args.bootstrap {
        let Some(admin_password) = args.admin_password.clone() else {
            eprintln!("--bootstrap needs the admin's password in BALLAST_ADMIN_PASSWORD");
            return ExitCode::from(2);
        };
        let creds = Credentials {
            admin_user: args.admin_user.clone(),
            admin_password,
            approver_user: args.approver_user.clone(),
            approver_password: args.approver_password.clone(),
        };
        match bootstrap(&args.url, &creds).await {
            Ok(t) => (t.rag, t.case),
            Err(e) => {
                tracing::error!(error = %e, "bootstrap failed");
                return ExitCode::FAILURE;
            }
        }
    } else {
        match (args.token_rag.clone(), args.token_case.clone()) {
            (Some(r), Some(c)) => (r, c),
            _ => {
                eprintln!(
                    "give BALLAST_TOKEN_RAG and BALLAST_TOKEN_CASE (service tokens), or --bootstrap"
                );
                return ExitCode::from(2);
            }
        }
    };

    let faults = Faults::new();
    let deps = Dependencies::new(&faults, args.seed);
    // The case-review agent's dead letters, shared by its instances.
    let dead_letters = DeadLetterState::default();
    let mut all = Vec::new();
    let mut counters = Vec::new();
    let mut drivers = Vec::new();
    for ((service, env, _), (token, rps)) in SERVICES
        .iter()
        .zip([(rag_token, args.rps), (case_token, args.case_rps)])
    {
        let spec = ServiceSpec {
            service,
            environment: (*env).to_owned(),
            base_url: args.url.clone(),
            token,
            instances: usize::from(args.instances),
            id_prefix: args.id_prefix.clone(),
            state_dir: args.state_dir.clone(),
            seed: args.seed,
        };
        let instances = fleet::start(&spec, &deps, &dead_letters).await;
        let count = Arc::new(Counters::default());
        drivers.push(fleet::drive(instances.clone(), rps, count.clone()));
        counters.push((*service, count));
        all.extend(instances);
    }
    let names: Vec<&'static str> = CATALOGUE.iter().map(|(n, _)| *n).collect();
    let status = {
        let all = all.clone();
        let counters = counters.clone();
        let names = names.clone();
        Arc::new(move || fleet::status(&all, &counters, &names))
    };
    let listener = match tokio::net::TcpListener::bind(args.control).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %args.control, error = %e, "cannot listen for the control API");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        address = %args.control,
        "control API: GET /faults, POST|DELETE /faults/{{dependency}}, GET /status, \
         POST /case-review/runs, POST /case-review/fail-once, GET /case-review/dead-letters, GET /side-effects"
    );
    let run: RunFn = {
        let all = all.clone();
        Arc::new(move |run_id: String, tenant: String| {
            let all = all.clone();
            Box::pin(async move { fleet::run_case(&all, &run_id, &tenant).await })
        })
    };
    let app = router(
        ControlState::new(
            faults,
            names.iter().map(|n| (*n).to_owned()),
            status.clone(),
        )
        .with_case_review(CaseControl {
            dead_letters,
            deps: deps.clone(),
            run,
        }),
    );
    let control = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut report = tokio::time::interval(Duration::from_secs(args.report_every.max(1)));
    report.tick().await;
    loop {
        tokio::select! {
            _ = report.tick() => {
                let s = status();
                tracing::info!(requests = %s["requests"], "load");
                for i in s["instances"].as_array().into_iter().flatten() {
                    let open: Vec<&String> = i["breakers"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(_, v)| *v != "closed")
                        .map(|(k, _)| k)
                        .collect();
                    tracing::info!(
                        instance = %i["instance_id"],
                        policy_version = %i["policy_version"],
                        policy_source = %i["policy_source"],
                        stream = %i["stream_connected"],
                        breakers_not_closed = ?open,
                        "instance"
                    );
                }
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("stopping");
                break;
            }
        }
    }
    control.abort();
    for d in drivers {
        d.abort();
    }
    ExitCode::SUCCESS
}
