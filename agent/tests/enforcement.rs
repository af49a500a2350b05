//! The policy the server validates is the policy the agent enforces: one
//! test per section of issue 18, each on a paused clock (or, where a real
//! socket must refuse a connection, on no clock at all), each failing when
//! its enforcement is taken out.
//!
//! Most policies here are compiled directly, without validation, on
//! purpose: the agent must refuse what validation forbids even when a
//! policy reaches it some other way (built in code, from an older server).

use agent::client::{AgentConfig, LiveAgent, save_last_known_good};
use shared::policy::Policy;
use shared::protocol::{PolicyEnvelope, PolicySource};

// ------------------------------------------------------- policy on receipt

const VALID: &str = r#"
service:
  name: svc
  environment: test
  owner: reliability
  risk_tier: medium
  dependencies:
    search: { kind: lexical_search }
timeouts: { total_ms: 2000, dependencies: { search: 500 } }
fallbacks:
  - { component: search, failure: any, fallback: { kind: explain_unavailable },
      degraded_status: refused, user_message: Search is down., allowed: true }
"#;

fn envelope(version: u64, yaml: &str) -> PolicyEnvelope {
    PolicyEnvelope {
        service: "svc".into(),
        environment: "test".into(),
        version,
        etag: format!("e{version}"),
        published_at_ms: 0,
        policy: Policy::from_yaml(yaml).unwrap(),
    }
}

/// The same policy with its one row answering from the model's memory.
fn invalid() -> String {
    VALID.replace("kind: explain_unavailable", "kind: model_memory")
}

/// An agent whose control plane refuses connections at once.
async fn offline_agent(dir: &std::path::Path, lkg: Option<PolicyEnvelope>) -> LiveAgent {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = AgentConfig::new(base, "tok", "i-1", "svc", "test", dir.join("lkg.json"));
    if let Some(e) = lkg {
        save_last_known_good(&config.last_known_good, &e).unwrap();
    }
    LiveAgent::start(config).await
}

// On the real clock: the start-up pull must see its connection refused,
// and a paused clock, seeing the runtime idle, would jump to the start-up
// wait first. Nothing here waits on time.
#[tokio::test]
async fn a_pushed_policy_that_fails_validation_is_refused_reported_and_the_last_good_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let live = offline_agent(dir.path(), None).await;
    assert_eq!(
        agent::client::check_policy(&envelope(1, VALID), None),
        Ok(())
    );
    assert!(live.apply(envelope(1, VALID)));
    assert!(!live.apply(envelope(2, &invalid())), "refused");
    assert_eq!(
        live.policy().borrow().version(),
        Some(1),
        "v1 stays in force"
    );
    let beat = live.heartbeat();
    assert_eq!(beat.policy_version, Some(1));
    let refused = beat.refused_policy.expect("the refusal is reported");
    assert_eq!((refused.version, refused.source), (2, PolicySource::Server));
    assert_eq!(
        refused.errors,
        vec!["fallbacks.0.fallback: fallback_loses_grounding".to_owned()]
    );
    let disk = agent::client::load_last_known_good(&dir.path().join("lkg.json")).unwrap();
    assert_eq!(disk.version, 1, "a refused policy never reaches the disk");
    // A newer good version runs, and the refusal is history.
    assert!(live.apply(envelope(3, VALID)));
    assert_eq!(live.heartbeat().refused_policy, None);
}

#[tokio::test]
async fn an_invalid_or_foreign_last_known_good_copy_is_refused_and_the_default_applies() {
    let dir = tempfile::tempdir().unwrap();
    let live = offline_agent(dir.path(), Some(envelope(4, &invalid()))).await;
    assert_eq!(live.applied(), (None, PolicySource::Default));
    let refused = live.refused().expect("reported");
    assert_eq!((refused.version, refused.source), (4, PolicySource::Disk));

    let dir = tempfile::tempdir().unwrap();
    let mut foreign = envelope(5, VALID);
    foreign.service = "billing".into();
    let live = offline_agent(dir.path(), Some(foreign)).await;
    assert_eq!(live.applied(), (None, PolicySource::Default));
    assert!(live.refused().unwrap().errors[0].contains("billing/test"));
}
