//! Who is calling, as Keystone (or the noauth convention) describes them: a user, a project,
//! roles. Front ends build it from their own credentials (a token, an S3 key's project);
//! the domain and its policy see only this.

/// Who is calling, as keystonemiddleware would describe them.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// This request's `x-openstack-request-id` (recorded in the tasks it starts).
    pub request_id: String,
    pub user: Option<String>,
    pub project: Option<String>,
    pub roles: Vec<String>,
    /// A system-scoped token's system (`all`); such a token has no project.
    pub system_scope: Option<String>,
    /// A domain-scoped token's domain id; such a token has no project.
    pub domain: Option<String>,
}

/// What a token is scoped to, as oslo.policy tells it from the credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A project, or no scope at all (oslo.policy counts both as project scope).
    Project,
    System,
    Domain,
}

/// Keystone's implied roles: admin ⇒ member ⇒ reader.
pub fn expand_roles<'a>(roles: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for role in roles {
        let role = role.trim().to_ascii_lowercase();
        let implied: &[&str] = match role.as_str() {
            "admin" => &["member", "reader"],
            "member" => &["reader"],
            _ => &[],
        };
        for r in std::iter::once(role.as_str()).chain(implied.iter().copied()) {
            if !r.is_empty() && !out.iter().any(|o| o == r) {
                out.push(r.to_string());
            }
        }
    }
    out
}

impl Caller {
    pub fn scope(&self) -> Scope {
        if self.system_scope.is_some() {
            Scope::System
        } else if self.domain.is_some() && self.project.is_none() {
            Scope::Domain
        } else {
            Scope::Project
        }
    }

    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
