//! Authentication and authorisation.
//!
//! Two kinds of caller exist. Humans present a short-lived session JWT, as a
//! bearer token or in the `ballast_session` cookie; the JWT names a session
//! row, so logout and disabling a user take effect at once. Enforcement agents
//! present a service token (`bst_<id>_<secret>`), scoped to one service and
//! environment, that only the agent protocol accepts. Each handler names the
//! [`Permission`] it needs through [`UserPrincipal::require`]; the role matrix
//! itself lives in `shared::role`.

pub mod jwt;
pub mod password;
mod throttle;
pub mod tokens;
pub mod users;

pub use throttle::LoginThrottle;

use crate::app::AppState;
use crate::clock::Clock;
use crate::config::Secret;
use crate::error::{ApiError, ApiResult};
use crate::store::{Store, StoreError, TokenRow};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use jwt::{Claims, JwtError, JwtKeys};
use sha2::{Digest, Sha256};
use shared::api::Me;
use shared::role::Permission;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

/// The cookie that carries a browser's session token.
pub const SESSION_COOKIE: &str = "ballast_session";
/// Prefix that tells a service token from a JWT at a glance (and to secret scanners).
pub const SERVICE_TOKEN_PREFIX: &str = "bst_";

/// Everything authentication needs, built once at start-up.
pub struct Auth {
    keys: JwtKeys,
    /// Lifetime of a session, in seconds.
    pub session_ttl_secs: u64,
    /// Whether the session cookie is marked `Secure`.
    pub cookie_secure: bool,
    /// Login attempts per account and per address.
    pub throttle: LoginThrottle,
    /// Recently read service tokens, so that agents polling for policy do not
    /// cost a database read each. See [`TOKEN_CACHE_MS`].
    tokens: Mutex<HashMap<String, (TokenRow, i64)>>,
}

/// How long a service token read from the store is trusted before it is read
/// again. Revoking through this replica takes effect at once; through another
/// replica or the CLI, within this bound.
pub const TOKEN_CACHE_MS: i64 = 5_000;
/// Past this many cached tokens the cache starts over, bounding its memory.
const TOKEN_CACHE_MAX: usize = 10_000;

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("session_ttl_secs", &self.session_ttl_secs)
            .field("cookie_secure", &self.cookie_secure)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Authentication with the given signing secret, which must not be empty.
    pub fn new(
        secret: &Secret,
        session_ttl_secs: u64,
        cookie_secure: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<Auth, JwtError> {
        Ok(Auth {
            keys: JwtKeys::new(secret)?,
            session_ttl_secs,
            cookie_secure,
            throttle: LoginThrottle::new(clock),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Drops a token from the cache, after revoking it.
    pub fn forget_token(&self, id: &str) {
        self.tokens.lock().expect("token cache lock").remove(id);
    }

    async fn token(&self, store: &Store, id: &str, now_ms: i64) -> ApiResult<Option<TokenRow>> {
        if let Some((row, at)) = self.tokens.lock().expect("token cache lock").get(id)
            && now_ms.saturating_sub(*at) < TOKEN_CACHE_MS
        {
            return Ok(Some(row.clone()));
        }
        let row = match store.token_by_id(id).await {
            Ok(row) => row,
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(row) = &row {
            let mut cache = self.tokens.lock().expect("token cache lock");
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.clear();
            }
            cache.insert(id.to_owned(), (row.clone(), now_ms));
        }
        Ok(row)
    }

    /// Whether the service token `id` may still be used: it exists and is
    /// not revoked. Read past the cache, since a stream that asks has
    /// outlived any cached answer.
    pub async fn token_still_valid(&self, store: &Store, id: &str) -> ApiResult<bool> {
        match store.token_by_id(id).await {
            Ok(row) => Ok(row.is_some_and(|r| r.revoked_at.is_none())),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `user`'s session may still be used at `now_ms`: not
    /// revoked, not expired, the account not disabled, and its role not
    /// changed (a stream checks what it was opened with).
    pub async fn session_still_valid(
        &self,
        store: &Store,
        user: &UserPrincipal,
        now_ms: i64,
    ) -> ApiResult<bool> {
        Ok(match store.session_with_user(&user.session_id).await? {
            Some((session, row)) => {
                session.revoked_at.is_none()
                    && session.expires_at >= now_ms
                    && !row.disabled
                    && row.id == user.me.id
                    && row.role == user.me.role
            }
            None => false,
        })
    }

    /// The signing keys.
    pub fn keys(&self) -> &JwtKeys {
        &self.keys
    }

    /// A `Set-Cookie` value carrying `token`. HttpOnly keeps it from scripts;
    /// SameSite=Strict keeps other sites from sending it.
    pub fn session_cookie(&self, token: &str) -> HeaderValue {
        let secure = if self.cookie_secure { "; Secure" } else { "" };
        let value = format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.session_ttl_secs
        );
        HeaderValue::from_str(&value).expect("a JWT is a valid header value")
    }

    /// A `Set-Cookie` value that removes the session cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        let secure = if self.cookie_secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        ))
        .expect("constant header value")
    }
}

/// A signed-in human.
#[derive(Debug, Clone)]
pub struct UserPrincipal {
    /// Who they are and their role, read fresh from the store on each request.
    pub me: Me,
    /// The session their token names.
    pub session_id: String,
    /// Whether the token came from the cookie (a browser) rather than a header.
    pub via_cookie: bool,
}

impl UserPrincipal {
    /// Refuses with 403 unless the user's role grants `permission`.
    pub fn require(&self, permission: Permission) -> ApiResult<()> {
        if self.me.role.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the {} role may not do this",
                self.me.role
            )))
        }
    }

    /// How the audit log names this user.
    pub fn actor(&self) -> String {
        format!("user:{}", self.me.username)
    }
}

/// An enforcement agent, authenticated by a service token.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    /// The token's public id.
    pub token_id: String,
    /// The only service this caller may speak for.
    pub service: String,
    /// The only environment this caller may speak for.
    pub environment: String,
}

/// Whoever made a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A human with a session.
    User(UserPrincipal),
    /// An agent with a service token.
    Service(ServicePrincipal),
}

/// Reads one cookie's value from the request headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The credential a request carries: a bearer header wins over the cookie.
fn credential(headers: &HeaderMap) -> Option<(&str, bool)> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| (token.trim(), false));
    }
    cookie_value(headers, SESSION_COOKIE)
        .filter(|v| !v.is_empty())
        .map(|v| (v, true))
}

/// Authenticates a request from its headers. 401 for missing or bad
/// credentials, 503 when the store cannot be asked.
pub async fn authenticate(
    headers: &HeaderMap,
    store: &Store,
    auth: &Auth,
    now_ms: i64,
) -> ApiResult<Principal> {
    let Some((token, via_cookie)) = credential(headers) else {
        return Err(ApiError::unauthorized(
            "sign in first: send a bearer token or the session cookie",
        ));
    };
    if let Some(rest) = token.strip_prefix(SERVICE_TOKEN_PREFIX) {
        if via_cookie {
            return Err(ApiError::unauthorized(
                "service tokens are not accepted in cookies",
            ));
        }
        return authenticate_service(rest, store, auth, now_ms)
            .await
            .map(Principal::Service);
    }
    let claims = auth.keys.verify(token, now_ms).map_err(|e| match e {
        JwtError::Expired => ApiError::unauthorized("the session has expired; sign in again"),
        JwtError::Invalid(reason) => {
            tracing::debug!(%reason, "refused a session token");
            ApiError::unauthorized("the session token is not valid")
        }
    })?;
    authenticate_session(&claims, store, now_ms, via_cookie)
        .await
        .map(Principal::User)
}

async fn authenticate_session(
    claims: &Claims,
    store: &Store,
    now_ms: i64,
    via_cookie: bool,
) -> ApiResult<UserPrincipal> {
    let refused = || ApiError::unauthorized("the session has ended; sign in again");
    let (session, user) = store
        .session_with_user(&claims.sid)
        .await?
        .ok_or_else(refused)?;
    if session.revoked_at.is_some()
        || session.expires_at < now_ms
        || user.id.to_string() != claims.sub
    {
        return Err(refused());
    }
    if user.disabled {
        return Err(ApiError::unauthorized("this account is disabled"));
    }
    Ok(UserPrincipal {
        me: Me {
            id: user.id,
            username: user.username,
            role: user.role,
        },
        session_id: session.id,
        via_cookie,
    })
}

async fn authenticate_service(
    rest: &str,
    store: &Store,
    auth: &Auth,
    now_ms: i64,
) -> ApiResult<ServicePrincipal> {
    let refused = || ApiError::unauthorized("the service token is not valid");
    let (id, secret) = rest.split_once('_').ok_or_else(refused)?;
    let row = auth.token(store, id, now_ms).await?.ok_or_else(refused)?;
    if !constant_time_eq(row.secret_hash.as_bytes(), hash_secret(secret).as_bytes()) {
        return Err(refused());
    }
    if row.revoked_at.is_some() {
        return Err(ApiError::unauthorized("the service token has been revoked"));
    }
    Ok(ServicePrincipal {
        token_id: row.id,
        service: row.service,
        environment: row.environment,
    })
}

/// The stored form of a service token's secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` bytes from the operating system's CSPRNG, hex encoded.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    hex::encode(buf)
}

/// A new service token: its public id, the full token to hand out, and the
/// hash to store.
pub fn new_service_token() -> (String, String, String) {
    let id = random_hex(8);
    let secret = random_hex(32);
    let token = format!("{SERVICE_TOKEN_PREFIX}{id}_{secret}");
    (id, token, hash_secret(&secret))
}

/// Cross-site request forgery defence for state-changing requests: browsers
/// label every request with `Sec-Fetch-Site` (or at least `Origin`), so a
/// write that a browser sends from another site is refused. Requests without
/// either header come from non-browser clients, which cannot be forged into
/// sending a user's cookie. Same approach as OWASP's "verify origin with
/// standard headers".
pub fn check_same_origin(method: &Method, headers: &HeaderMap) -> ApiResult<()> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let forbidden = || ApiError::forbidden("cross-site request refused").with_field("origin");
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.to_str().unwrap_or("") {
            "same-origin" | "none" => Ok(()),
            _ => Err(forbidden()),
        };
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
        return if !host.is_empty() && origin_host.eq_ignore_ascii_case(host) {
            Ok(())
        } else {
            Err(forbidden())
        };
    }
    Ok(())
}

async fn principal_from_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Principal> {
    if let Some(p) = parts.extensions.get::<Principal>() {
        return Ok(p.clone());
    }
    let principal = authenticate(
        &parts.headers,
        &state.store,
        &state.auth,
        state.clock.now_ms(),
    )
    .await?;
    parts.extensions.insert(principal.clone());
    Ok(principal)
}

impl FromRequestParts<AppState> for UserPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        match principal_from_parts(parts, state).await? {
            Principal::User(user) => Ok(user),
            Principal::Service(_) => Err(ApiError::forbidden(
                "service tokens may only use the agent API (/api/v1/agent/...)",
            )),
        }
    }
}

impl FromRequestParts<AppState> for ServicePrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        match principal_from_parts(parts, state).await? {
            Principal::Service(service) => Ok(service),
            Principal::User(_) => Err(ApiError::forbidden(
                "the agent API needs a service token, not a user session",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cross_site_writes_are_refused_and_same_site_ones_pass() {
        let post = Method::POST;
        assert!(check_same_origin(&post, &headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(check_same_origin(&post, &headers(&[("sec-fetch-site", "same-site")])).is_err());
        assert!(check_same_origin(&post, &headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(
            check_same_origin(
                &post,
                &headers(&[("origin", "http://evil.test"), ("host", "127.0.0.1:3000")])
            )
            .is_err()
        );
        assert!(
            check_same_origin(
                &post,
                &headers(&[
                    ("origin", "http://127.0.0.1:3000"),
                    ("host", "127.0.0.1:3000")
                ])
            )
            .is_ok()
        );
        assert!(check_same_origin(&post, &headers(&[])).is_ok());
        assert!(
            check_same_origin(&Method::GET, &headers(&[("sec-fetch-site", "cross-site")])).is_ok()
        );
    }

    #[test]
    fn bearer_wins_over_cookie_and_cookies_are_parsed() {
        let h = headers(&[("cookie", "a=1; ballast_session=tok; b=2")]);
        assert_eq!(credential(&h), Some(("tok", true)));
        let h = headers(&[
            ("cookie", "ballast_session=tok"),
            ("authorization", "Bearer hdr"),
        ]);
        assert_eq!(credential(&h), Some(("hdr", false)));
        assert_eq!(credential(&headers(&[("authorization", "Basic x")])), None);
    }

    #[test]
    fn service_tokens_hash_and_compare() {
        let (id, token, hash) = new_service_token();
        let secret = token
            .strip_prefix(SERVICE_TOKEN_PREFIX)
            .unwrap()
            .split_once('_')
            .unwrap();
        assert_eq!(secret.0, id);
        assert_eq!(hash_secret(secret.1), hash);
        assert!(!constant_time_eq(b"abc", b"abd"));
    }
}
