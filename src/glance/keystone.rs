//! Keystone identity (`[paste_deploy] flavor = keystone`): what keystonemiddleware's
//! auth_token does for upstream Glance. Each request's `X-Auth-Token` is validated against
//! Keystone v3 (`GET /v3/auth/tokens` with Glint's own service token), and the result is
//! cached until the token expires or `token_cache_time` passes, whichever comes first. No
//! token, or one Keystone rejects, is a 401 carrying
//! `WWW-Authenticate: Keystone uri="<www_authenticate_uri>"`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;

use super::{expand_roles, ApiError, Caller};
use crate::config::KeystoneOptions;

/// How long a Keystone token has left (its `expires_at`), if it says.
fn lifetime(token: &Value) -> Option<Duration> {
    let at = time::OffsetDateTime::parse(
        token["expires_at"].as_str()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    let left = (at - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(0);
    Some(Duration::from_secs(left as u64))
}

/// Most tokens cached at once; beyond it expired entries are dropped, then the cache is
/// cleared (validations are cheap to redo).
const CACHE_LIMIT: usize = 10_000;

struct Cached {
    /// The token's identity and scope (without a request id).
    caller: Caller,
    until: Instant,
}

pub struct Keystone {
    opts: KeystoneOptions,
    http: reqwest::Client,
    service_token: tokio::sync::Mutex<Option<(String, Instant)>>,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl Keystone {
    pub fn new(opts: KeystoneOptions) -> Keystone {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(opts.http_connect_timeout.max(1)))
            .build()
            .expect("an HTTP client");
        Keystone {
            opts,
            http,
            service_token: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn unauthorized(&self) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
        .with_header(
            "www-authenticate",
            format!("Keystone uri=\"{}\"", self.opts.www_authenticate_uri),
        )
    }

    fn unavailable(&self, why: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %why, "Keystone is unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The identity service is unavailable; try again later.",
        )
    }

    /// The caller a request's token stands for.
    pub async fn caller(
        &self,
        headers: &http::HeaderMap,
        request_id: &str,
    ) -> Result<Caller, ApiError> {
        let token = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.unauthorized())?;
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(c) = self.cache.lock().expect("token cache").get(&key) {
            if c.until > Instant::now() {
                return Ok(Caller {
                    request_id: request_id.to_string(),
                    ..c.caller.clone()
                });
            }
        }
        let validated = self.validate(token).await?;
        let caller = Caller {
            request_id: request_id.to_string(),
            ..validated.caller.clone()
        };
        let mut cache = self.cache.lock().expect("token cache");
        if cache.len() >= CACHE_LIMIT {
            let now = Instant::now();
            cache.retain(|_, c| c.until > now);
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
        }
        cache.insert(key, validated);
        Ok(caller)
    }

    async fn validate(&self, token: &str) -> Result<Cached, ApiError> {
        for attempt in 0..2 {
            let service = self.service_token(attempt > 0).await?;
            let resp = self
                .http
                .get(format!("{}/v3/auth/tokens", self.opts.auth_url))
                .header("x-auth-token", &service)
                .header("x-subject-token", token)
                .send()
                .await
                .map_err(|e| self.unavailable(e))?;
            match resp.status().as_u16() {
                200 => {
                    let body: Value = resp.json().await.map_err(|e| self.unavailable(e))?;
                    return Ok(self.identity(&body["token"]));
                }
                // Our own service token may have expired: renew it once.
                401 | 403 if attempt == 0 => continue,
                404 | 401 | 403 => return Err(self.unauthorized()),
                other => return Err(self.unavailable(format!("token validation answered {other}"))),
            }
        }
        Err(self.unauthorized())
    }

    fn identity(&self, token: &Value) -> Cached {
        let s = |v: &Value| v.as_str().map(str::to_string);
        let roles = token["roles"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| r["name"].as_str())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let cache_for = Duration::from_secs(self.opts.token_cache_time);
        let until = lifetime(token).map_or(cache_for, |left| left.min(cache_for));
        // Scope as keystonemiddleware passes it on (X-System-Scope, X-Domain-Id): a
        // system-scoped token names `"system": {"all": true}`, a domain-scoped one a domain.
        let system_scope = (token["system"]["all"] == Value::Bool(true)).then(|| "all".to_string());
        Cached {
            caller: Caller {
                user: s(&token["user"]["id"]),
                project: s(&token["project"]["id"]),
                roles: expand_roles(roles),
                system_scope,
                domain: s(&token["domain"]["id"]),
                ..Default::default()
            },
            until: Instant::now() + until,
        }
    }

    /// Glint's own token (password auth scoped to its service project), renewed when
    /// `renew` is set or it is close to expiry.
    async fn service_token(&self, renew: bool) -> Result<String, ApiError> {
        let mut slot = self.service_token.lock().await;
        if let Some((t, until)) = slot.as_ref() {
            if !renew && *until > Instant::now() + Duration::from_secs(60) {
                return Ok(t.clone());
            }
        }
        let o = &self.opts;
        let domain = |id: &Option<String>, name: &Option<String>| match (id, name) {
            (Some(id), _) => json!({"id": id}),
            (None, Some(name)) => json!({"name": name}),
            (None, None) => json!({"id": "default"}),
        };
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": o.username, "password": o.password,
                "domain": domain(&o.user_domain_id, &o.user_domain_name)}}},
            "scope": {"project": {"name": o.project_name,
                "domain": domain(&o.project_domain_id, &o.project_domain_name)}}}});
        let resp = self
            .http
            .post(format!("{}/v3/auth/tokens", o.auth_url))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unavailable(e))?;
        if resp.status().as_u16() != 201 {
            return Err(self.unavailable(format!(
                "Glint's service user could not authenticate: {}",
                resp.status()
            )));
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| self.unavailable("no X-Subject-Token in Keystone's answer"))?;
        let body: Value = resp.json().await.map_err(|e| self.unavailable(e))?;
        // The service token's own lifetime, not the user-token cache time.
        let left =
            lifetime(&body["token"]).unwrap_or(Duration::from_secs(self.opts.token_cache_time));
        *slot = Some((token.clone(), Instant::now() + left));
        Ok(token)
    }
}
