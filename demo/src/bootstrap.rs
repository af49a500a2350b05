//! The quick start's set-up, over the server's REST API as a person would
//! do it: sign in as admin, register the two services (already there is
//! fine), create their service tokens, and publish the example policies.
//!
//! Both example policies are high or regulated risk, so each publish files
//! a publish request that someone other than its author must approve.
//! Given an approver's password, the bootstrap signs in as that second
//! person (creating the account if needed) and approves; without one it
//! leaves the requests pending, says so, and the agents run their
//! conservative default until someone approves in the dashboard.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use shared::paths;
use shared::policy::Policy;

/// The services the demo runs, with their example policies.
pub const SERVICES: &[(&str, &str, &str)] = &[
    (
        crate::rag::SERVICE,
        "prod",
        include_str!("../../examples/policies/rag-answer.yaml"),
    ),
    (
        crate::case_review::SERVICE,
        "prod",
        include_str!("../../examples/policies/case-review-agent.yaml"),
    ),
];

/// A REST call failed.
#[derive(Debug)]
pub struct BootstrapError(pub String);

impl std::fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BootstrapError {}

/// Who signs in.
#[derive(Clone)]
pub struct Credentials {
    /// The admin's username.
    pub admin_user: String,
    /// The admin's password.
    pub admin_password: String,
    /// The approver's username.
    pub approver_user: String,
    /// The approver's password; `None` leaves publish requests pending.
    pub approver_password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords never reach a log.
        f.debug_struct("Credentials")
            .field("admin_user", &self.admin_user)
            .field("approver_user", &self.approver_user)
            .finish_non_exhaustive()
    }
}

/// A small JSON client for the REST API.
#[derive(Clone)]
pub struct Rest {
    http: Client<HttpConnector, Full<Bytes>>,
    base: String,
    session: Option<String>,
}

impl Rest {
    /// A client for the server at `base`, not signed in.
    pub fn new(base: &str) -> Rest {
        Rest {
            http: Client::builder(TokioExecutor::new()).build_http(),
            base: base.trim_end_matches('/').to_owned(),
            session: None,
        }
    }

    /// A JSON call; the status and the parsed body (`null` if none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), BootstrapError> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(s) = &self.session {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {s}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                Full::from(b.to_string())
            }
            None => Full::default(),
        };
        let req = req
            .body(body)
            .map_err(|e| BootstrapError(format!("{method} {path}: {e}")))?;
        let resp = self
            .http
            .request(req)
            .await
            .map_err(|e| BootstrapError(format!("{method} {}{path}: {e}", self.base)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| BootstrapError(format!("{method} {path}: {e}")))?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<(u16, Value), BootstrapError> {
        let (status, value) = self.call(method, path, body).await?;
        if ok.contains(&status) {
            Ok((status, value))
        } else {
            Err(BootstrapError(format!(
                "{method} {path} answered {status}: {}",
                value["error"]["message"].as_str().unwrap_or("no message")
            )))
        }
    }

    /// Signs in; later calls carry the session.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), BootstrapError> {
        let (_, body) = self
            .expect(
                "POST",
                paths::LOGIN,
                Some(&json!({ "username": user, "password": password })),
                &[200],
            )
            .await
            .map_err(|e| BootstrapError(format!("signing in as {user}: {e}")))?;
        self.session = body["token"].as_str().map(str::to_owned);
        Ok(())
    }
}

/// The service tokens the bootstrap created, in [`SERVICES`] order.
#[derive(Clone)]
pub struct Tokens {
    /// `rag-answer/prod`.
    pub rag: String,
    /// `case-review-agent/prod`.
    pub case: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(<redacted>)")
    }
}

/// Registers the services, creates their tokens and publishes the example
/// policies (approving them if an approver's password is given).
pub async fn bootstrap(base: &str, creds: &Credentials) -> Result<Tokens, BootstrapError> {
    let mut admin = Rest::new(base);
    admin
        .login(&creds.admin_user, &creds.admin_password)
        .await?;
    let mut tokens = Vec::new();
    let mut pending = Vec::new();
    for (name, env, yaml) in SERVICES {
        let policy = Policy::from_yaml(yaml)
            .map_err(|e| BootstrapError(format!("the example policy of {name}: {e}")))?;
        let (status, _) = admin
            .expect(
                "POST",
                paths::SERVICES,
                Some(&json!({ "name": name, "environment": env, "owner": policy.service.owner })),
                &[201, 409],
            )
            .await?;
        if status == 201 {
            tracing::info!(service = %name, environment = %env, "service registered");
        }
        let (_, created) = admin
            .expect(
                "POST",
                paths::TOKENS,
                Some(&json!({ "service": name, "environment": env })),
                &[201],
            )
            .await?;
        let token = created["token"]
            .as_str()
            .ok_or_else(|| BootstrapError("the token response has no token".into()))?;
        tokens.push(token.to_owned());
        tracing::info!(service = %name, token_id = %created["info"]["id"], "service token created");
        if let Some(request) = publish(&admin, name, env, &policy).await? {
            pending.push(request);
        }
    }
    if !pending.is_empty() {
        approve(base, creds, &admin, &pending).await?;
    }
    let mut tokens = tokens.into_iter();
    Ok(Tokens {
        rag: tokens.next().unwrap_or_default(),
        case: tokens.next().unwrap_or_default(),
    })
}

/// Publishes `policy` unless it is already active or already waiting;
/// returns the id of a publish request that needs an approver.
async fn publish(
    admin: &Rest,
    name: &str,
    env: &str,
    policy: &Policy,
) -> Result<Option<String>, BootstrapError> {
    let document = serde_json::to_value(policy).map_err(|e| BootstrapError(e.to_string()))?;
    let (_, check) = admin
        .expect(
            "POST",
            &paths::service(name, env).validate(),
            Some(&document),
            &[200],
        )
        .await?;
    if check["against_version"].is_u64() && check["changes"].as_array().is_some_and(Vec::is_empty) {
        tracing::info!(service = %name, version = %check["against_version"], "the example policy is already active");
        return Ok(None);
    }
    let (_, waiting) = admin
        .expect(
            "GET",
            &format!("{}?status=pending", paths::PUBLISH_REQUESTS),
            None,
            &[200],
        )
        .await?;
    if let Some(r) = waiting.as_array().and_then(|rs| {
        rs.iter()
            .find(|r| r["service"] == name && r["environment"] == env)
    }) {
        let id = r["id"].as_str().unwrap_or_default().to_owned();
        tracing::warn!(service = %name, request = %id, "a publish request is already waiting for an approver");
        return Ok(Some(id));
    }
    let (status, outcome) = admin
        .expect(
            "POST",
            &paths::service(name, env).publish(),
            Some(&json!({ "message": "the demo's example policy", "document": document })),
            &[201, 202],
        )
        .await?;
    if status == 201 {
        tracing::info!(service = %name, version = %outcome["version"], "example policy published");
        return Ok(None);
    }
    let id = outcome["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    tracing::warn!(
        service = %name,
        request = %id,
        reasons = %outcome["reasons"],
        "PUBLISH REQUEST FILED: this policy needs a second person's approval before agents receive it"
    );
    Ok(Some(id))
}

/// Approves the requests as the approver, or says how to.
async fn approve(
    base: &str,
    creds: &Credentials,
    admin: &Rest,
    requests: &[String],
) -> Result<(), BootstrapError> {
    let Some(password) = &creds.approver_password else {
        for id in requests {
            tracing::warn!(
                request = %id,
                "LEFT PENDING: no --approver-password, so nobody approves it; until an approver does \
                 (dashboard, or POST /api/v1/publish-requests/{id}/approve), the agents enforce their \
                 last-known-good copy or the conservative default"
            );
        }
        return Ok(());
    };
    // Four eyes: the approver must not be the author, so a second account.
    let (status, _) = admin
        .expect(
            "POST",
            paths::USERS,
            Some(&json!({ "username": creds.approver_user, "password": password, "role": "approver" })),
            &[201, 409],
        )
        .await?;
    if status == 201 {
        tracing::info!(user = %creds.approver_user, "approver account created");
    }
    let mut approver = Rest::new(base);
    approver.login(&creds.approver_user, password).await?;
    for id in requests {
        let (_, decided) = approver
            .expect(
                "POST",
                &paths::approve_publish(id),
                Some(&json!({ "comment": "approved by the demo bootstrap" })),
                &[200],
            )
            .await?;
        tracing::info!(
            request = %id,
            service = %decided["service"],
            version = %decided["version"],
            approver = %creds.approver_user,
            "publish request approved; the agents receive it over their streams"
        );
    }
    Ok(())
}
