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
//!
//! Errors are JSON in the server's shape: `{"error": {"code", "message", "field"?}}`.

use crate::faults::{FaultSpec, Faults};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Produces the `GET /status` document.
pub type StatusFn = Arc<dyn Fn() -> Value + Send + Sync>;

/// What the control API works on.
#[derive(Clone)]
pub struct ControlState {
    faults: Faults,
    known: Arc<BTreeSet<String>>,
    status: StatusFn,
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
        }
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

/// The control API.
pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/faults", get(list))
        .route(
            "/faults/{dependency}",
            axum::routing::post(set).delete(clear),
        )
        .route("/status", get(status))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint; see GET /faults and GET /status".into(),
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
                outage: false
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
    }
}
