//! The demo's control API: inject and clear faults on the fake
//! dependencies while the demo runs, and read what the instances enforce.
//! Browser and chaos tests drive it; it listens on loopback only by
//! default and carries no authentication, so it is a test fixture, not a
//! production surface.
//!
//! | call | what |
//! |---|---|
//! | `GET /faults` | every fault in force, by dependency |
//! | `POST /faults/{dependency}` | `{"error_rate": 0.0–1.0, "latency_ms": n, "outage": bool}`, each optional |
//! | `DELETE /faults/{dependency}` | back to the dependency's everyday behaviour |
//! | `GET /status` | each instance's policy version and source, stream state and breakers, and the request counts |
//! | `POST /case-review/runs` | `{"run_id", "tenant"?, "fail_at"?: "draft" \| "send_notice"}`: runs that review now and answers what it did, with its dead letter if it left one |
//! | `POST /case-review/fail-once` | `{"run_id", "node": "draft" \| "send_notice"}`: the next execution of that run (a new run, or a redrive) fails at that node, through the guard, and is dead-lettered |
//! | `GET /case-review/fail-once` | the runs armed to fail, by run id |
//! | `GET /case-review/dead-letters` | the dead-lettered runs the service holds, oldest first, with the last action executed on each |
//! | `GET /side-effects` | every write the fake systems of record did, `{run_id: {operation: count}}`; `?run_id=` for one run (`{}` when none) |
//!
//! `fail_at: "send_notice"` closes the case and then fails the notice on
//! every attempt (the guard retries it as the policy says), so the run
//! dead-letters at `send_notice` with `close_case` as its checkpoint;
//! `"draft"` makes every structured output of the run miss its schema, so
//! it dead-letters at `draft` once the policy's repairs are used up. A run
//! id is 1 to 128 characters of letters, digits and `.`, `_`, `:`, `-`; a
//! reused run id reuses its idempotency keys, so nothing it did before is
//! done again.
//!
//! Errors are JSON in the server's shape: `{"error": {"code", "message", "field"?}}`.

use crate::dead_letters::{ARMED_RUNS, BoxFuture, DeadLetterState, Node};
use crate::deps::Dependencies;
use crate::faults::{FaultSpec, Faults};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Produces the `GET /status` document.
pub type StatusFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// Runs the case review `(run_id, tenant)` now and describes it; `None`
/// when no case-review instance runs.
pub type RunFn = Arc<dyn Fn(String, String) -> BoxFuture<Option<Value>> + Send + Sync>;

/// What the case-review endpoints work on.
#[derive(Clone)]
pub struct CaseControl {
    /// The service's dead letters and armed failures.
    pub dead_letters: DeadLetterState,
    /// The fake dependencies, whose writes are the side effects.
    pub deps: Dependencies,
    /// Runs a review on demand.
    pub run: RunFn,
}

/// What the control API works on.
#[derive(Clone)]
pub struct ControlState {
    faults: Faults,
    known: Arc<BTreeSet<String>>,
    status: StatusFn,
    case: Option<CaseControl>,
}

impl ControlState {
    /// Faults on the dependencies named in `known`; `status` answers
    /// `GET /status`.
    pub fn new(
        faults: Faults,
        known: impl IntoIterator<Item = String>,
        status: StatusFn,
    ) -> ControlState {
        ControlState {
            faults,
            known: Arc::new(known.into_iter().collect()),
            status,
            case: None,
        }
    }

    /// With the case-review endpoints.
    pub fn with_case_review(mut self, case: CaseControl) -> ControlState {
        self.case = Some(case);
        self
    }
}

fn error(status: StatusCode, code: &str, message: String, field: Option<&str>) -> Response {
    let mut detail = json!({ "code": code, "message": message });
    if let Some(f) = field {
        detail["field"] = json!(f);
    }
    (status, axum::Json(json!({ "error": detail }))).into_response()
}

fn unknown(state: &ControlState, dependency: &str) -> Option<Response> {
    (!state.known.contains(dependency)).then(|| {
        error(
            StatusCode::NOT_FOUND,
            "unknown_dependency",
            format!(
                "no simulated dependency is called {dependency:?}; known: {}",
                state.known.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            Some("dependency"),
        )
    })
}

async fn list(State(state): State<ControlState>) -> Response {
    axum::Json(state.faults.all()).into_response()
}

async fn set(
    State(state): State<ControlState>,
    Path(dependency): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = unknown(&state, &dependency) {
        return r;
    }
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_json",
                format!("the body is not a fault: {e}"),
                None,
            );
        }
    };
    if let Err(e) = state.faults.set(&dependency, spec) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_fault",
            e.message,
            Some(e.field),
        );
    }
    tracing::info!(%dependency, ?spec, "fault injected");
    axum::Json(json!({ "dependency": dependency, "fault": spec })).into_response()
}

async fn clear(State(state): State<ControlState>, Path(dependency): Path<String>) -> Response {
    if let Some(r) = unknown(&state, &dependency) {
        return r;
    }
    if state.faults.clear(&dependency) {
        tracing::info!(%dependency, "fault cleared");
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn status(State(state): State<ControlState>) -> Response {
    axum::Json((state.status)()).into_response()
}

/// A request the case-review endpoints turn down, answered in the
/// server's error shape.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
}

impl Refusal {
    fn invalid(code: &'static str, message: String, field: Option<&'static str>) -> Refusal {
        Refusal {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code,
            message,
            field,
        }
    }

    fn too_many_armed() -> Refusal {
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "too_many_armed",
            message: format!("at most {ARMED_RUNS} runs can be armed at once"),
            field: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.status, self.code, self.message, self.field)
    }
}

fn case_control(state: &ControlState) -> Result<&CaseControl, Refusal> {
    state.case.as_ref().ok_or_else(|| Refusal {
        status: StatusCode::NOT_FOUND,
        code: "no_case_review",
        message: "the case-review agent does not run in this process".into(),
        field: None,
    })
}

/// Checks a run id: it becomes part of idempotency keys (`run/node`), so
/// it is kept to characters that cannot split or escape one.
fn run_id(id: &str) -> Result<(), Refusal> {
    let fits = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if fits {
        Ok(())
    } else {
        Err(Refusal::invalid(
            "invalid_run_id",
            "a run id is 1 to 128 characters of letters, digits and . _ : -".into(),
            Some("run_id"),
        ))
    }
}

fn node(name: &str, field: &'static str) -> Result<Node, Refusal> {
    Node::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Node::ALL.iter().map(|n| n.as_str()).collect();
        Refusal::invalid(
            "unknown_node",
            format!(
                "a run can be made to fail at {}, not {name:?}",
                known.join(" or ")
            ),
            Some(field),
        )
    })
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, Refusal> {
    serde_json::from_slice(body)
        .map_err(|e| Refusal::invalid("invalid_json", format!("the body is not {what}: {e}"), None))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailOnceBody {
    run_id: String,
    node: String,
}

async fn arm(State(state): State<ControlState>, body: Bytes) -> Result<Response, Refusal> {
    let case = case_control(&state)?;
    let body: FailOnceBody = parse(&body, "a run id and a node")?;
    run_id(&body.run_id)?;
    let node = node(&body.node, "node")?;
    case.dead_letters
        .fail_once
        .arm(&body.run_id, node)
        .map_err(|_| Refusal::too_many_armed())?;
    tracing::info!(run_id = %body.run_id, node = node.as_str(), "run armed to fail once");
    Ok(axum::Json(json!({ "run_id": body.run_id, "node": node })).into_response())
}

async fn armed(State(state): State<ControlState>) -> Result<Response, Refusal> {
    let case = case_control(&state)?;
    Ok(axum::Json(case.dead_letters.fail_once.armed()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    run_id: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    fail_at: Option<String>,
}

async fn run(State(state): State<ControlState>, body: Bytes) -> Result<Response, Refusal> {
    let case = case_control(&state)?.clone();
    let body: RunBody = parse(&body, "a run")?;
    run_id(&body.run_id)?;
    let fail_at = match body.fail_at.as_deref() {
        Some(n) => Some(node(n, "fail_at")?),
        None => None,
    };
    let fail_once = &case.dead_letters.fail_once;
    if let Some(node) = fail_at {
        fail_once
            .arm(&body.run_id, node)
            .map_err(|_| Refusal::too_many_armed())?;
    }
    let tenant = body.tenant.unwrap_or_else(|| "tenant-a".to_owned());
    let review = (case.run)(body.run_id.clone(), tenant).await;
    // A run that stopped before the node (a paused approval, say) must not
    // leave the arming behind for some later execution.
    if let Some(node) = fail_at {
        fail_once.take(&body.run_id, node);
    }
    review
        .map(|v| axum::Json(v).into_response())
        .ok_or_else(|| Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "no_instance",
            message: "no case-review instance is running".into(),
            field: None,
        })
}

async fn held(State(state): State<ControlState>) -> Result<Response, Refusal> {
    let case = case_control(&state)?;
    Ok(axum::Json(case.dead_letters.held.list()).into_response())
}

#[derive(Deserialize)]
struct EffectsQuery {
    run_id: Option<String>,
}

async fn side_effects(
    State(state): State<ControlState>,
    Query(q): Query<EffectsQuery>,
) -> Result<Response, Refusal> {
    let case = case_control(&state)?;
    let mut all = case.deps.side_effects();
    Ok(match q.run_id {
        Some(id) => axum::Json(all.remove(&id).unwrap_or_default()).into_response(),
        None => axum::Json(all).into_response(),
    })
}

/// The control API.
pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/faults", get(list))
        .route(
            "/faults/{dependency}",
            axum::routing::post(set).delete(clear),
        )
        .route("/status", get(status))
        .route("/case-review/runs", post(run))
        .route("/case-review/fail-once", post(arm).get(armed))
        .route("/case-review/dead-letters", get(held))
        .route("/side-effects", get(side_effects))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; see GET /faults, GET /status, GET /side-effects and /case-review/…"
                    .into(),
                None,
            )
        })
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app(faults: &Faults) -> Router {
        router(ControlState::new(
            faults.clone(),
            ["reranker".to_owned(), "model_provider".to_owned()],
            Arc::new(|| json!({ "instances": [] })),
        ))
    }

    async fn send(app: &Router, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn a_fault_is_set_listed_seen_by_the_dependencies_and_cleared() {
        let faults = Faults::new();
        let app = app(&faults);
        let (status, body) = send(
            &app,
            "POST",
            "/faults/reranker",
            r#"{"error_rate": 1.0, "latency_ms": 250}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["fault"]["outage"], false, "absent fields default");
        assert_eq!(
            faults.get("reranker"),
            Some(FaultSpec {
                error_rate: 1.0,
                latency_ms: 250,
                outage: false,
                invalid_output_rate: 0.0,
            })
        );
        let (status, body) = send(&app, "GET", "/faults", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["reranker"]["latency_ms"], 250);

        let (status, _) = send(&app, "DELETE", "/faults/reranker", "").await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(faults.get("reranker"), None);
        let (_, body) = send(&app, "GET", "/faults", "").await;
        assert_eq!(body, json!({}));
        let (status, _) = send(&app, "DELETE", "/faults/reranker", "").await;
        assert_eq!(status, StatusCode::NO_CONTENT, "clearing twice is fine");
    }

    #[tokio::test]
    async fn bad_faults_get_a_json_error_naming_the_problem() {
        let faults = Faults::new();
        let app = app(&faults);
        let (status, body) = send(&app, "POST", "/faults/reranker", r#"{"error_rate": 1.5}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["field"], "error_rate");
        let (status, body) = send(&app, "POST", "/faults/reranker", r#"{"eror_rate": 1}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "invalid_json");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("eror_rate")
        );
        let (status, body) = send(&app, "POST", "/faults/flux", r#"{"outage": true}"#).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "unknown_dependency");
        let (status, _) = send(&app, "DELETE", "/faults/flux", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(faults.all().is_empty());
        let (status, body) = send(&app, "GET", "/status", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "instances": [] }));
        let (status, body) = send(&app, "GET", "/side-effects", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "no case review here");
        assert_eq!(body["error"]["code"], "no_case_review");
    }

    /// The control API over one case-review workflow, reporting nowhere.
    fn case_app(faults: &Faults) -> Router {
        use crate::case_review::CaseReview;
        use crate::dead_letters::{DeadLetters, no_reporter};
        use agent::{CompiledPolicy, Guard, SplitMix64, policy_channel};
        use shared::policy::Policy;
        use shared::protocol::PolicySource;
        let policy = Policy::from_yaml(include_str!(
            "../../examples/policies/case-review-agent.yaml"
        ))
        .unwrap();
        let (_, rx) = policy_channel(CompiledPolicy::compile(
            policy,
            Some(1),
            PolicySource::Server,
        ));
        let guard = Guard::builder(rx)
            .random(Arc::new(SplitMix64::seeded(5)))
            .build();
        let deps = Dependencies::new(faults, 21);
        let state = DeadLetterState::default();
        let case = CaseReview::new(
            guard,
            deps.clone(),
            DeadLetters::new(state.clone(), no_reporter()),
        );
        let run: RunFn = Arc::new(move |run_id: String, tenant: String| {
            let case = case.clone();
            Box::pin(async move {
                let review = case.review(&run_id, &tenant).await;
                Some(crate::fleet::review_json("case-1", &run_id, &review))
            })
        });
        router(
            ControlState::new(faults.clone(), Vec::new(), Arc::new(|| json!({}))).with_case_review(
                CaseControl {
                    dead_letters: state,
                    deps,
                    run,
                },
            ),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_made_to_fail_at_the_notice_is_dead_lettered_and_its_effects_counted() {
        let app = case_app(&Faults::new());
        let (status, body) = send(
            &app,
            "POST",
            "/case-review/runs",
            r#"{"run_id": "ctl-1", "fail_at": "send_notice"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["closed"], true, "{body}");
        assert_eq!(body["notified"], false);
        assert_eq!(body["dead_letter"]["failed_node"], "send_notice");
        assert_eq!(body["dead_letter"]["last_checkpoint"], "close_case");
        assert_eq!(body["dead_letter"]["error_type"], "connection");
        assert_eq!(body["dead_letter_id"], Value::Null, "reported nowhere");

        let (_, effects) = send(&app, "GET", "/side-effects?run_id=ctl-1", "").await;
        assert_eq!(effects["close_case"], 1, "{effects}");
        assert_eq!(effects.get("send_notice"), None);
        let (_, held) = send(&app, "GET", "/case-review/dead-letters", "").await;
        assert_eq!(held[0]["input"]["run_id"], "ctl-1", "{held}");
        assert_eq!(held[0]["node"], "send_notice");
        let (_, armed) = send(&app, "GET", "/case-review/fail-once", "").await;
        assert_eq!(armed, json!({}), "a run's arming goes with it");

        // Armed on its own, the next execution of the run fails; then the
        // run goes through and the notice is sent once.
        let (status, body) = send(
            &app,
            "POST",
            "/case-review/fail-once",
            r#"{"run_id": "ctl-2", "node": "draft"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, armed) = send(&app, "GET", "/case-review/fail-once", "").await;
        assert_eq!(armed, json!({ "ctl-2": "draft" }));
        let (_, body) = send(&app, "POST", "/case-review/runs", r#"{"run_id": "ctl-2"}"#).await;
        assert_eq!(body["dead_letter"]["failed_node"], "draft", "{body}");
        let (_, body) = send(&app, "POST", "/case-review/runs", r#"{"run_id": "ctl-2"}"#).await;
        assert_eq!(body["notified"], true, "{body}");
        let (_, all) = send(&app, "GET", "/side-effects", "").await;
        assert_eq!(all["ctl-2"]["send_notice"], 1, "{all}");
        let (_, none) = send(&app, "GET", "/side-effects?run_id=nobody", "").await;
        assert_eq!(none, json!({}));
    }

    #[tokio::test]
    async fn bad_case_review_requests_get_a_json_error_naming_the_field() {
        let app = case_app(&Faults::new());
        for (path, body, field) in [
            ("/case-review/runs", r#"{"run_id": "a/b"}"#, "run_id"),
            ("/case-review/runs", r#"{"run_id": ""}"#, "run_id"),
            (
                "/case-review/runs",
                r#"{"run_id": "r", "fail_at": "close_case"}"#,
                "fail_at",
            ),
            (
                "/case-review/fail-once",
                r#"{"run_id": "r", "node": "nowhere"}"#,
                "node",
            ),
        ] {
            let (status, err) = send(&app, "POST", path, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
            assert_eq!(err["error"]["field"], field, "{body}: {err}");
        }
        let (status, err) = send(&app, "POST", "/case-review/fail-once", r#"{"run": "r"}"#).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err["error"]["code"], "invalid_json");
        let (_, armed) = send(&app, "GET", "/case-review/fail-once", "").await;
        assert_eq!(armed, json!({}), "nothing invalid is armed");
    }
}
