//! Access control lists: the canned ACLs (`x-amz-acl`) and explicit grants (an
//! `AccessControlPolicy` document or `x-amz-grant-*` headers) on buckets and objects, the
//! access check both drive, and the `?acl` document.
//!
//! S3 principals are projects: a grant to a canonical user ID names a project. A resource
//! with explicit grants (its canned name is then `CUSTOM`) is judged by them alone, even an
//! empty list; the owner always keeps full control, whatever the grants say, so an owner
//! cannot lock itself out.

/// The `acl` of a resource whose access is its explicit grants.
pub const CUSTOM: &str = "custom";

use serde::{Deserialize, Serialize};

use super::error::S3Error;
use super::{xml, Ctx};

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grantee {
    Project(String),
    AllUsers,
    AuthenticatedUsers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    FullControl,
    Read,
    Write,
    ReadAcp,
    WriteAcp,
}

impl Permission {
    fn parse(s: &str) -> Option<Permission> {
        Some(match s {
            "FULL_CONTROL" => Permission::FullControl,
            "READ" => Permission::Read,
            "WRITE" => Permission::Write,
            "READ_ACP" => Permission::ReadAcp,
            "WRITE_ACP" => Permission::WriteAcp,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Permission::FullControl => "FULL_CONTROL",
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadAcp => "READ_ACP",
            Permission::WriteAcp => "WRITE_ACP",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: Permission,
}

/// What an access check needs to know of a bucket or an object.
pub struct Access<'a> {
    pub owner: &'a str,
    pub canned: &'a str,
    pub grants: &'a [Grant],
}

/// Who is asking, detached from the request (for checks inside a transaction).
#[derive(Clone, Debug)]
pub struct Caller {
    pub project: Option<String>,
    pub authenticated: bool,
}

impl Caller {
    pub fn of(ctx: &Ctx) -> Caller {
        Caller {
            project: ctx.project().map(str::to_string),
            authenticated: ctx.identity.is_some(),
        }
    }
}

impl Access<'_> {
    /// Whether explicit grants, not the canned ACL, decide access.
    fn explicit(&self) -> bool {
        self.canned == CUSTOM || !self.grants.is_empty()
    }

    /// Whether `caller` holds `need` (FULL_CONTROL implies every permission).
    pub fn allows(&self, caller: &Caller, need: Permission) -> bool {
        let project = caller.project.as_deref();
        if project == Some(self.owner) {
            return true;
        }
        if self.explicit() {
            return self.grants.iter().any(|g| {
                (g.permission == need || g.permission == Permission::FullControl)
                    && match &g.grantee {
                        Grantee::Project(p) => project == Some(p.as_str()),
                        Grantee::AllUsers => true,
                        Grantee::AuthenticatedUsers => caller.authenticated,
                    }
            });
        }
        match (self.canned, need) {
            ("public-read-write", Permission::Read | Permission::Write) => true,
            ("public-read", Permission::Read) => true,
            ("authenticated-read", Permission::Read) => caller.authenticated,
            _ => false,
        }
    }

    pub fn check(&self, ctx: &Ctx, need: Permission) -> Result<(), S3Error> {
        if self.allows(&Caller::of(ctx), need) {
            Ok(())
        } else {
            Err(S3Error::access_denied())
        }
    }
}

/// The ACL a `PUT ?acl` asks for: a canned `x-amz-acl`, `x-amz-grant-*` headers, or an
/// `AccessControlPolicy` body (in that order); (canned name, explicit grants).
pub fn requested(ctx: &Ctx, body: &[u8]) -> Result<(String, Vec<Grant>), S3Error> {
    if ctx.header("x-amz-acl").is_some() {
        return Ok((super::requested_acl(ctx)?, Vec::new()));
    }
    if let Some(grants) = header_grants(ctx)? {
        return Ok((CUSTOM.into(), grants));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(("private".into(), Vec::new()));
    }
    Ok((CUSTOM.into(), parse_policy(body)?))
}

/// Grants from `x-amz-grant-*` headers (`id="project", uri="group-uri"` lists); None when
/// the request has none.
pub fn header_grants(ctx: &Ctx) -> Result<Option<Vec<Grant>>, S3Error> {
    let mut grants = Vec::new();
    for (header, permission) in [
        ("x-amz-grant-read", Permission::Read),
        ("x-amz-grant-write", Permission::Write),
        ("x-amz-grant-read-acp", Permission::ReadAcp),
        ("x-amz-grant-write-acp", Permission::WriteAcp),
        ("x-amz-grant-full-control", Permission::FullControl),
    ] {
        let Some(list) = ctx.header(header) else {
            continue;
        };
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (kind, value) = item
                .split_once('=')
                .ok_or_else(|| invalid(format!("{header}: {item:?} is not type=value")))?;
            let value = value.trim().trim_matches('"');
            let grantee = match kind.trim().to_ascii_lowercase().as_str() {
                "id" => Grantee::Project(value.to_string()),
                "uri" => group(value)?,
                "emailaddress" => return Err(by_email()),
                other => return Err(invalid(format!("{header}: unknown grantee type {other}"))),
            };
            grants.push(Grant {
                grantee,
                permission,
            });
        }
    }
    Ok((!grants.is_empty()).then_some(grants))
}

/// Grants from an `AccessControlPolicy` document.
pub fn parse_policy(doc: &[u8]) -> Result<Vec<Grant>, S3Error> {
    let doc = xml::parse(doc).ok_or_else(S3Error::malformed_acl)?;
    let root = doc.root();
    if root.name() != "AccessControlPolicy" {
        return Err(S3Error::malformed_acl());
    }
    let list = root
        .child("AccessControlList")
        .ok_or_else(S3Error::malformed_acl)?;
    let mut grants = Vec::new();
    for g in list.children_named("Grant") {
        let who = g.child("Grantee").ok_or_else(S3Error::malformed_acl)?;
        // The element's xsi:type says which of these it carries.
        let grantee = if let Some(id) = who.child_text("ID") {
            Grantee::Project(id.trim().to_string())
        } else if let Some(uri) = who.child_text("URI") {
            group(uri.trim())?
        } else if who.child("EmailAddress").is_some() {
            return Err(by_email());
        } else {
            return Err(S3Error::malformed_acl());
        };
        let permission = g
            .child_text("Permission")
            .and_then(|p| Permission::parse(p.trim()))
            .ok_or_else(S3Error::malformed_acl)?;
        grants.push(Grant {
            grantee,
            permission,
        });
    }
    Ok(grants)
}

fn group(uri: &str) -> Result<Grantee, S3Error> {
    match uri {
        ALL_USERS => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
        _ => Err(invalid(format!("Unsupported grantee group {uri}"))),
    }
}

fn invalid(message: String) -> S3Error {
    S3Error::invalid_argument().with_message(message)
}

fn by_email() -> S3Error {
    S3Error::unresolvable_grant_by_email()
}

/// The `AccessControlPolicy` document of a bucket (`bucket_owner` None) or an object.
pub fn document(access: &Access<'_>, bucket_owner: Option<&str>) -> String {
    let mut w = xml::Writer::new();
    w.open("AccessControlPolicy");
    w.principal("Owner", access.owner);
    w.open("AccessControlList");
    let grant = |w: &mut xml::Writer, grantee: &Grantee, perm: Permission| {
        w.open("Grant");
        match grantee {
            Grantee::Project(p) => {
                w.raw("<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\">");
                w.elem("ID", p);
                w.elem("DisplayName", p);
            }
            Grantee::AllUsers | Grantee::AuthenticatedUsers => {
                w.raw("<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\">");
                let uri = if *grantee == Grantee::AllUsers {
                    ALL_USERS
                } else {
                    AUTHENTICATED_USERS
                };
                w.elem("URI", uri);
            }
        }
        w.close("Grantee");
        w.elem("Permission", perm.name());
        w.close("Grant");
    };
    if access.explicit() {
        // Group grants first, then the projects', each in the order given.
        let (groups, projects): (Vec<&Grant>, Vec<&Grant>) = access
            .grants
            .iter()
            .partition(|g| !matches!(g.grantee, Grantee::Project(_)));
        for g in groups.into_iter().chain(projects) {
            grant(&mut w, &g.grantee, g.permission);
        }
    } else {
        let owner = Grantee::Project(access.owner.to_string());
        // Group grants first, then the owner's, as S3 lists them.
        match access.canned {
            "public-read" => grant(&mut w, &Grantee::AllUsers, Permission::Read),
            "public-read-write" => {
                grant(&mut w, &Grantee::AllUsers, Permission::Read);
                grant(&mut w, &Grantee::AllUsers, Permission::Write);
            }
            "authenticated-read" => grant(&mut w, &Grantee::AuthenticatedUsers, Permission::Read),
            _ => {}
        }
        grant(&mut w, &owner, Permission::FullControl);
        match (access.canned, bucket_owner) {
            ("bucket-owner-read", Some(b)) if b != access.owner => {
                grant(&mut w, &Grantee::Project(b.into()), Permission::Read)
            }
            ("bucket-owner-full-control", Some(b)) if b != access.owner => {
                grant(&mut w, &Grantee::Project(b.into()), Permission::FullControl)
            }
            _ => {}
        }
    }
    w.close("AccessControlList");
    w.close("AccessControlPolicy");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_documents_round_trip() {
        // Listed group grants first, as `document` writes them.
        let grants = vec![
            Grant {
                grantee: Grantee::AllUsers,
                permission: Permission::Read,
            },
            Grant {
                grantee: Grantee::Project("alt".into()),
                permission: Permission::FullControl,
            },
        ];
        let doc = document(
            &Access {
                owner: "main",
                canned: "private",
                grants: &grants,
            },
            None,
        );
        assert_eq!(parse_policy(doc.as_bytes()).unwrap(), grants);
        assert_eq!(
            parse_policy(b"<AccessControlPolicy><AccessControlList><Grant><Grantee><URI>http://example.com/g</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>").unwrap_err().code,
            "InvalidArgument"
        );
        assert_eq!(
            parse_policy(b"<AccessControlPolicy/>").unwrap_err().code,
            "MalformedACLError"
        );
    }
}
