//! Who is calling, in noauth mode: the identity headers or a `USER:PROJECT[:ROLES]` token
//! are trusted as given (Keystone mode validates tokens instead: `keystone.rs`).

use super::Caller;
use crate::images::caller::expand_roles;

/// noauth identity, first match wins: the `X-Project-Id` (or `X-Tenant-Id`) header
/// with `X-User-Id` and `X-Roles` (default `member`); a token `USER:PROJECT[:ROLES]`
/// (user `admin` defaults to the admin role); otherwise the admin of project `admin`.
/// The same convention as the reference Glance's noauth filter, so the same clients
/// and golden requests work against both.
pub fn noauth_caller(headers: &http::HeaderMap, request_id: &str) -> Caller {
    let request_id = request_id.to_string();
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let roles_hdr = h("x-roles");
    let roles_from = |default: &str| {
        let list = roles_hdr.clone().unwrap_or_else(|| default.to_string());
        expand_roles(list.split(','))
    };
    if let Some(project) = h("x-project-id").or_else(|| h("x-tenant-id")) {
        return Caller {
            request_id,
            user: Some(h("x-user-id").unwrap_or_else(|| format!("user-{project}"))),
            project: Some(project),
            roles: roles_from("member"),
            ..Default::default()
        };
    }
    let token = h("x-auth-token")
        .map(|t| {
            percent_encoding::percent_decode_str(&t)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let parts: Vec<&str> = token.split(':').collect();
    if parts.len() >= 2 && !parts[0].is_empty() && !parts[1].is_empty() {
        let default = match parts.get(2) {
            Some(r) if !r.is_empty() => r.to_string(),
            _ if parts[0] == "admin" => "admin".into(),
            _ => "member".into(),
        };
        return Caller {
            request_id,
            user: Some(parts[0].to_string()),
            project: Some(parts[1].to_string()),
            roles: roles_from(&default),
            ..Default::default()
        };
    }
    Caller {
        request_id,
        user: Some("admin".into()),
        project: Some("admin".into()),
        roles: roles_from("admin"),
        ..Default::default()
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn caller(pairs: &[(&'static str, &'static str)]) -> Caller {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        noauth_caller(&h, "req-test")
    }

    #[test]
    fn noauth_identity() {
        let c = caller(&[("x-auth-token", "demo:demo")]);
        assert_eq!(c.project.as_deref(), Some("demo"));
        assert_eq!(c.roles, vec!["member", "reader"]);
        let c = caller(&[("x-auth-token", "demo_reader%3Ademo%3Areader")]);
        assert_eq!((c.project.as_deref(), c.is_admin()), (Some("demo"), false));
        assert!(!c.has_role("member"));
        let c = caller(&[("x-auth-token", "admin:admin")]);
        assert!(c.is_admin() && c.has_role("reader"));
        let c = caller(&[("x-project-id", "p1"), ("x-roles", "reader")]);
        assert_eq!(c.roles, vec!["reader"]);
        assert!(caller(&[]).is_admin());
    }
}
