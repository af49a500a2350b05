//! Login, logout and who-am-I.

use crate::app::AppState;
use crate::auth::jwt::Claims;
use crate::auth::{UserPrincipal, password, random_hex};
use crate::error::{ApiError, ApiJson, ApiResult, body_rejection};
use crate::store::{AuditRecord, SessionRow};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::json;
use shared::api::{LoginRequest, LoginResponse, Me};
use std::net::{IpAddr, SocketAddr};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/me", get(me))
}

/// Longest username or password considered; anything longer is refused
/// before it reaches the (deliberately slow) password hash.
const MAX_CREDENTIAL_LEN: usize = 1024;

/// Sign in. Answers JSON to JSON, and a redirect to a plain HTML form post so
/// that the login page works before (or without) JavaScript.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; also sets the session cookie", body = LoginResponse),
        (status = 401, description = "Wrong username or password", body = shared::api::ErrorBody),
        (status = 422, description = "A field is missing or malformed", body = shared::api::ErrorBody),
        (status = 429, description = "Too many attempts for this account or address", body = shared::api::ErrorBody),
    )
)]
pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let address = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip());
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        let outcome = match Bytes::from_request(req, &state).await {
            Ok(body) => match serde_urlencoded::from_bytes::<LoginRequest>(&body) {
                Ok(creds) => sign_in(&state, creds, address).await,
                Err(_) => Err(ApiError::invalid(
                    "username",
                    "username and password are required",
                )),
            },
            Err(rejection) => Err(body_rejection(rejection.status())),
        };
        return match outcome {
            Ok((cookie, _)) => {
                let mut response = Redirect::to("/").into_response();
                response.headers_mut().insert(header::SET_COOKIE, cookie);
                response
            }
            Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
                Redirect::to("/login?error=throttled").into_response()
            }
            Err(e) if e.status.is_server_error() => e.into_response(),
            Err(_) => Redirect::to("/login?error=invalid").into_response(),
        };
    }
    let creds = match ApiJson::<LoginRequest>::from_request(req, &state).await {
        Ok(ApiJson(creds)) => creds,
        Err(e) => return e.into_response(),
    };
    match sign_in(&state, creds, address).await {
        Ok((cookie, body)) => {
            let mut response = axum::Json(body).into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn sign_in(
    state: &AppState,
    creds: LoginRequest,
    address: Option<IpAddr>,
) -> ApiResult<(axum::http::HeaderValue, LoginResponse)> {
    if creds.username.is_empty() || creds.username.len() > MAX_CREDENTIAL_LEN {
        return Err(ApiError::invalid(
            "username",
            "username must be 1 to 1024 bytes",
        ));
    }
    if creds.password.is_empty() || creds.password.len() > MAX_CREDENTIAL_LEN {
        return Err(ApiError::invalid(
            "password",
            "password must be 1 to 1024 bytes",
        ));
    }
    if let Err(wait) = state.auth.throttle.check(&creds.username, address) {
        tracing::warn!(username = %creds.username, ?address, "login throttled");
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!("too many sign-in attempts; try again in {wait} s"),
        );
        e.retry_after_secs = Some(wait);
        return Err(e);
    }
    let user = state.store.user_by_username(&creds.username).await?;
    let ok = password::verify(
        user.as_ref().map(|u| u.password_hash.clone()),
        creds.password,
    )
    .await;
    let now = state.clock.now_ms();
    let user = match user {
        Some(user) if ok && !user.disabled => user,
        other => {
            let reason = match other {
                None => "unknown user",
                Some(u) if u.disabled && ok => "account disabled",
                Some(_) => "wrong password",
            };
            state
                .store
                .append_audit(
                    now,
                    &AuditRecord::new(
                        "anonymous",
                        "auth.login_failed",
                        format!("user:{}", creds.username),
                        json!({ "reason": reason, "address": address.map(|a| a.to_string()) }),
                    ),
                )
                .await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong username or password",
            ));
        }
    };
    let ttl_ms = i64::try_from(state.auth.session_ttl_secs).unwrap_or(3600) * 1000;
    let session = SessionRow {
        id: random_hex(16),
        user_id: user.id,
        created_at: now,
        expires_at: now + ttl_ms,
        revoked_at: None,
    };
    state
        .store
        .create_session(
            &session,
            &AuditRecord::new(
                format!("user:{}", user.username),
                "auth.login",
                format!("user:{}", user.username),
                json!({ "session": session.id, "address": address.map(|a| a.to_string()) }),
            ),
        )
        .await?;
    let claims = Claims {
        sub: user.id.to_string(),
        sid: session.id.clone(),
        iat: now / 1000,
        exp: session.expires_at / 1000,
        iss: "ballast".into(),
    };
    let token = state
        .auth
        .keys()
        .sign(&claims)
        .map_err(|e| ApiError::internal(&e))?;
    let cookie = state.auth.session_cookie(&token);
    Ok((
        cookie,
        LoginResponse {
            token,
            expires_in: state.auth.session_ttl_secs,
            user: Me {
                id: user.id,
                username: user.username,
                role: user.role,
            },
        },
    ))
}

/// Sign out: ends the session everywhere its token is used, and clears the cookie.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = shared::api::ErrorBody),
    )
)]
pub async fn logout(State(state): State<AppState>, user: UserPrincipal) -> ApiResult<Response> {
    let now = state.clock.now_ms();
    state
        .store
        .revoke_session(
            &user.session_id,
            now,
            &AuditRecord::new(
                user.actor(),
                "auth.logout",
                user.actor(),
                json!({ "session": user.session_id }),
            ),
        )
        .await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::SET_COOKIE, state.auth.clear_cookie());
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// The signed-in user and their role.
#[utoipa::path(
    get, path = "/api/v1/me", tag = "auth",
    responses(
        (status = 200, description = "The signed-in user", body = Me),
        (status = 401, description = "Not signed in", body = shared::api::ErrorBody),
    )
)]
pub async fn me(user: UserPrincipal) -> axum::Json<Me> {
    axum::Json(user.me)
}
