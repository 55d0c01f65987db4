//! Policy: upstream Glance's default secure-RBAC rules, each overridable from a policy file
//! (`[oslo_policy] policy_file`, YAML or JSON) in oslo.policy's rule language:
//! `role:R`, `rule:NAME`, `KEY:%(target_field)s` (`project_id`, `user_id` from the caller),
//! `'literal':%(target_field)s`, `is_admin:True`, `@` (always), `!` (never), `and`, `or`,
//! `not` and parentheses; an empty rule allows.

use std::collections::{BTreeMap, HashMap};

use super::caller::{Caller, Scope};
use super::record::ImageRecord;

/// The fields image rules see: the owner as `project_id`, the caller's project as
/// `member_id` when the image is shared with it, and the visibility.
pub fn image_target(rec: &ImageRecord, caller: &Caller) -> Target {
    let mut t = Target::new();
    if let Some(o) = &rec.owner {
        t.insert("project_id", o.clone());
    }
    if let Some(m) = rec.member(caller.project.as_deref()) {
        t.insert("member_id", m.member_id.clone());
    }
    t.insert("visibility", rec.visibility.clone());
    t
}

/// The fields metadef rules see: the namespace's owner as `project_id`, its visibility.
pub fn namespace_target(owner: Option<&str>, visibility: &str) -> Target {
    let mut t = Target::new();
    if let Some(o) = owner {
        t.insert("project_id", o.to_string());
    }
    t.insert("visibility", visibility.to_string());
    t
}

/// The defaults (glance/policies/*.py of Glance 33, secure RBAC with scope enforcement).
const DEFAULTS: &[(&str, &str)] = &[
    ("context_is_admin", "role:admin"),
    ("default", "rule:context_is_admin"),
    ("admin_or_member", "role:admin or (role:member and project_id:%(project_id)s)"),
    ("admin_or_reader", "role:admin or (role:reader and project_id:%(project_id)s)"),
    // Images.
    ("add_image", "role:admin or (role:member and project_id:%(project_id)s)"),
    ("get_images", "rule:admin_or_reader"),
    ("get_image", "role:admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))"),
    ("modify_image", "rule:admin_or_member"),
    ("delete_image", "rule:admin_or_member"),
    ("upload_image", "rule:admin_or_member"),
    ("download_image", "role:admin or (role:member and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))"),
    ("publicize_image", "rule:context_is_admin"),
    ("communitize_image", "rule:admin_or_member"),
    ("deactivate", "rule:admin_or_member"),
    ("reactivate", "rule:admin_or_member"),
    ("copy_image", "rule:context_is_admin"),
    ("set_image_owner", "rule:context_is_admin"),
    // Members.
    ("add_member", "rule:admin_or_member"),
    ("delete_member", "rule:admin_or_member"),
    ("get_member", "role:admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))"),
    ("get_members", "role:admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))"),
    ("modify_member", "role:admin or (role:member and project_id:%(member_id)s)"),
    // Tasks, discovery, cache.
    ("tasks_api_access", "role:admin"),
    ("get_task", "rule:default"),
    ("get_tasks", "rule:default"),
    ("add_task", "rule:default"),
    ("stores_info_detail", "role:admin"),
    ("delete_image_location", "rule:context_is_admin"),
    ("add_image_location", "role:service or rule:admin_or_member"),
    ("fetch_image_location", "role:service"),
    ("cache_list", "rule:context_is_admin"),
    ("cache_image", "rule:context_is_admin"),
    ("cache_delete", "rule:context_is_admin"),
    ("cache_clean", "rule:context_is_admin"),
    ("cache_prune", "rule:context_is_admin"),
    ("list_cached_nodes", "rule:context_is_admin"),
    // Metadata definitions (glance/policies/metadef.py): reading needs a reader of the
    // owning project or a public namespace; every change is admin-only.
    ("metadef_default", ""),
    ("metadef_admin", "rule:context_is_admin"),
    ("get_metadef_namespace", METADEF_READ),
    ("get_metadef_namespaces", "rule:context_is_admin or (role:reader and project_id:%(project_id)s)"),
    ("modify_metadef_namespace", "rule:metadef_admin"),
    ("add_metadef_namespace", "rule:metadef_admin"),
    ("delete_metadef_namespace", "rule:metadef_admin"),
    ("get_metadef_object", METADEF_READ),
    ("get_metadef_objects", METADEF_READ),
    ("modify_metadef_object", "rule:metadef_admin"),
    ("add_metadef_object", "rule:metadef_admin"),
    ("delete_metadef_object", "rule:metadef_admin"),
    ("list_metadef_resource_types", METADEF_READ),
    ("get_metadef_resource_type", METADEF_READ),
    ("add_metadef_resource_type_association", "rule:metadef_admin"),
    ("remove_metadef_resource_type_association", "rule:metadef_admin"),
    ("get_metadef_property", METADEF_READ),
    ("get_metadef_properties", METADEF_READ),
    ("modify_metadef_property", "rule:metadef_admin"),
    ("add_metadef_property", "rule:metadef_admin"),
    ("remove_metadef_property", "rule:metadef_admin"),
    ("get_metadef_tag", METADEF_READ),
    ("get_metadef_tags", METADEF_READ),
    ("modify_metadef_tag", "rule:metadef_admin"),
    ("add_metadef_tag", "rule:metadef_admin"),
    ("add_metadef_tags", "rule:metadef_admin"),
    ("delete_metadef_tag", "rule:metadef_admin"),
    ("delete_metadef_tags", "rule:metadef_admin"),
];

/// Upstream's ADMIN_OR_PROJECT_READER_GET_NAMESPACE.
const METADEF_READ: &str =
    "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";

#[derive(Debug, Clone, PartialEq)]
enum Rule {
    Always,
    Never,
    Role(String),
    Ref(String),
    /// `KEY:%(field)s` (KEY a credential) or `'literal':%(field)s`.
    Match {
        left: Left,
        field: String,
    },
    /// `KEY:value` with a constant right-hand side (`is_admin:True`).
    Const {
        key: String,
        value: String,
    },
    Not(Box<Rule>),
    And(Vec<Rule>),
    Or(Vec<Rule>),
}

#[derive(Debug, Clone, PartialEq)]
enum Left {
    Credential(String),
    Literal(String),
}

/// What a rule is checked against: the object's fields (`project_id` = the image owner,
/// `member_id` = the caller's project when it is a member of the image, `visibility`).
pub type Target = HashMap<&'static str, String>;

pub struct Policy {
    rules: BTreeMap<String, Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file: {0}")]
    Read(#[from] std::io::Error),
    #[error("policy file: {0}")]
    Parse(String),
    #[error("policy rule {name:?}: {reason}")]
    Rule { name: String, reason: String },
}

impl Policy {
    /// The defaults with the file's rules over them.
    pub fn load(path: Option<&std::path::Path>) -> Result<Policy, PolicyError> {
        let mut text: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(p) = path {
            let raw = std::fs::read_to_string(p)?;
            // A file of comments only (the shipped one) is YAML null: no overrides.
            let doc: BTreeMap<String, serde_yaml_ng::Value> =
                match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&raw) {
                    Ok(serde_yaml_ng::Value::Null) => BTreeMap::new(),
                    Ok(v) => serde_yaml_ng::from_value(v)
                        .map_err(|e| PolicyError::Parse(e.to_string()))?,
                    Err(e) => return Err(PolicyError::Parse(e.to_string())),
                };
            for (k, v) in doc {
                let rule = match v {
                    serde_yaml_ng::Value::String(s) => s,
                    serde_yaml_ng::Value::Null => String::new(),
                    other => {
                        return Err(PolicyError::Rule {
                            name: k,
                            reason: format!("not a string: {other:?}"),
                        })
                    }
                };
                text.insert(k, rule);
            }
        }
        let mut rules = BTreeMap::new();
        for (name, src) in text {
            let rule = parse(&src).map_err(|reason| PolicyError::Rule {
                name: name.clone(),
                reason,
            })?;
            rules.insert(name, rule);
        }
        Ok(Policy { rules })
    }

    /// Whether `caller` may do `action` on `target`. An unknown action falls back to
    /// `default`, as oslo.policy does. Every API rule of upstream's defaults is registered
    /// with `scope_types=['project']` and oslo.policy enforces scope (`enforce_scope`, on by
    /// default): a system- or domain-scoped token is refused them whatever the rule text
    /// says, an operator's override included (an override changes the check, not the scope).
    pub fn allows(&self, action: &str, caller: &Caller, target: &Target) -> bool {
        if caller.scope() != Scope::Project && project_scoped(action) {
            return false;
        }
        let rule = self.rules.get(action).or_else(|| self.rules.get("default"));
        rule.is_some_and(|r| self.eval(r, caller, target, 0))
    }

    fn eval(&self, rule: &Rule, c: &Caller, t: &Target, depth: usize) -> bool {
        if depth > 32 {
            return false; // a rule that refers to itself
        }
        match rule {
            Rule::Always => true,
            Rule::Never => false,
            Rule::Role(r) => c.roles.iter().any(|x| x.eq_ignore_ascii_case(r)),
            Rule::Ref(name) => self
                .rules
                .get(name)
                .is_some_and(|r| self.eval(r, c, t, depth + 1)),
            Rule::Match { left, field } => {
                let Some(want) = t.get(field.as_str()) else {
                    return false;
                };
                match left {
                    Left::Literal(l) => l == want,
                    Left::Credential(k) => credential(c, k).is_some_and(|v| v == *want),
                }
            }
            Rule::Const { key, value } => {
                if key == "is_admin" {
                    c.is_admin() == value.eq_ignore_ascii_case("true")
                } else {
                    credential(c, key).is_some_and(|v| v == *value)
                }
            }
            Rule::Not(r) => !self.eval(r, c, t, depth + 1),
            Rule::And(rs) => rs.iter().all(|r| self.eval(r, c, t, depth + 1)),
            Rule::Or(rs) => rs.iter().any(|r| self.eval(r, c, t, depth + 1)),
        }
    }
}

/// The rules upstream registers without a scope: the building blocks other rules refer to.
/// Every other rule (all API actions) is project-scoped.
const SCOPE_FREE: &[&str] = &[
    "context_is_admin",
    "default",
    "admin_or_member",
    "admin_or_reader",
    "service_api",
    "manage_image_cache",
    "metadef_default",
    "metadef_admin",
];

fn project_scoped(action: &str) -> bool {
    !SCOPE_FREE.contains(&action)
}

fn credential(c: &Caller, key: &str) -> Option<String> {
    match key {
        "project_id" | "tenant" | "tenant_id" => c.project.clone(),
        "user_id" | "user" => c.user.clone(),
        "system_scope" => c.system_scope.clone(),
        "domain_id" | "project_domain_id" if c.project.is_none() => c.domain.clone(),
        _ => None,
    }
}

/// Parses oslo.policy's rule language (precedence: not, and, or).
fn parse(src: &str) -> Result<Rule, String> {
    let tokens = tokenize(src)?;
    if tokens.is_empty() {
        return Ok(Rule::Always);
    }
    let mut p = Parser { tokens, pos: 0 };
    let rule = p.or()?;
    if p.pos != p.tokens.len() {
        return Err(format!("unexpected {:?}", p.tokens[p.pos]));
    }
    Ok(rule)
}

/// oslo.policy's tokens: whitespace-separated words (quotes keep spaces), with leading
/// `(` and trailing `)` split off (a `%(field)s` inside a check stays whole).
fn tokenize(src: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for ch in src.chars() {
        match quote {
            Some(q) => {
                cur.push(ch);
                if ch == q {
                    quote = None;
                }
            }
            None if ch == '\'' || ch == '"' => {
                quote = Some(ch);
                cur.push(ch);
            }
            None if ch.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(ch),
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out = Vec::new();
    for w in words {
        let mut w = w.as_str();
        while let Some(rest) = w.strip_prefix('(') {
            out.push("(".to_string());
            w = rest;
        }
        let mut closing = 0;
        while let Some(rest) = w.strip_suffix(')') {
            if rest.ends_with("%(") || (rest.contains("%(") && !rest.contains(")s")) {
                break;
            }
            closing += 1;
            w = rest;
        }
        if !w.is_empty() {
            out.push(w.to_string());
        }
        out.extend(std::iter::repeat_n(")".to_string(), closing));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn or(&mut self) -> Result<Rule, String> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some("or") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Rule::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Rule, String> {
        let mut parts = vec![self.not()?];
        while self.peek() == Some("and") {
            self.pos += 1;
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one")
        } else {
            Rule::And(parts)
        })
    }

    fn not(&mut self) -> Result<Rule, String> {
        if self.peek() == Some("not") {
            self.pos += 1;
            return Ok(Rule::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Rule, String> {
        let tok = self
            .tokens
            .get(self.pos)
            .cloned()
            .ok_or("the rule ends too early")?;
        self.pos += 1;
        match tok.as_str() {
            "(" => {
                let inner = self.or()?;
                if self.peek() != Some(")") {
                    return Err("missing ')'".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            "@" => Ok(Rule::Always),
            "!" => Ok(Rule::Never),
            t => check(t),
        }
    }
}

fn check(t: &str) -> Result<Rule, String> {
    let (kind, value) = t
        .split_once(':')
        .ok_or_else(|| format!("{t:?} is not KIND:VALUE"))?;
    let field = value
        .strip_prefix("%(")
        .and_then(|v| v.strip_suffix(")s"))
        .map(str::to_string);
    let literal = |s: &str| {
        (s.len() >= 2
            && (s.starts_with('\'') && s.ends_with('\'') || s.starts_with('"') && s.ends_with('"')))
        .then(|| s[1..s.len() - 1].to_string())
    };
    Ok(match (kind, field) {
        ("role", None) => Rule::Role(value.to_string()),
        ("rule", None) => Rule::Ref(value.to_string()),
        (k, Some(field)) => Rule::Match {
            left: match literal(k) {
                Some(l) => Left::Literal(l),
                None => Left::Credential(k.to_string()),
            },
            field,
        },
        (k, None) => Rule::Const {
            key: k.to_string(),
            value: value.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(project: &str, roles: &[&str]) -> Caller {
        Caller {
            request_id: String::new(),
            user: Some("u".into()),
            project: Some(project.into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        }
    }

    fn target(owner: &str, visibility: &str) -> Target {
        let mut t = Target::new();
        t.insert("project_id", owner.into());
        t.insert("visibility", visibility.into());
        t
    }

    #[test]
    fn defaults() {
        let p = Policy::load(None).unwrap();
        let member = caller("p1", &["member", "reader"]);
        let reader = caller("p1", &["reader"]);
        let admin = caller("x", &["admin", "member", "reader"]);
        assert!(p.allows("modify_image", &member, &target("p1", "private")));
        assert!(!p.allows("modify_image", &member, &target("p2", "private")));
        assert!(!p.allows("modify_image", &reader, &target("p1", "private")));
        assert!(p.allows("modify_image", &admin, &target("p2", "private")));
        assert!(p.allows("get_image", &reader, &target("p2", "public")));
        assert!(!p.allows("get_image", &reader, &target("p2", "private")));
        assert!(!p.allows("download_image", &reader, &target("p1", "private")));
        assert!(!p.allows("publicize_image", &member, &target("p1", "private")));
        assert!(
            !p.allows("no_such_action", &member, &target("p1", "private")),
            "default: admin"
        );
    }

    #[test]
    fn syntax() {
        for (src, ok) in [
            ("", true),
            ("@", true),
            ("!", true),
            ("role:a or (role:b and not role:c)", true),
            ("'public':%(visibility)s", true),
            ("is_admin:True", true),
            ("(role:a", false),
            ("role:a and", false),
            ("junk", false),
            ("'open:%(x)s", false),
        ] {
            assert_eq!(parse(src).is_ok(), ok, "{src}");
        }
        let r = parse("not role:a or role:b and role:c").unwrap();
        assert_eq!(
            r,
            Rule::Or(vec![
                Rule::Not(Box::new(Rule::Role("a".into()))),
                Rule::And(vec![Rule::Role("b".into()), Rule::Role("c".into())]),
            ])
        );
    }

    #[test]
    fn the_shipped_file_loads() {
        let f = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/etc/policy.yaml"));
        let p = Policy::load(Some(f)).unwrap();
        assert_eq!(p.rules.len(), DEFAULTS.len());
    }

    #[test]
    fn file_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("policy.yaml");
        std::fs::write(&f, "\"publicize_image\": \"role:member and project_id:%(project_id)s\"\n\"delete_image\": \"!\"\n").unwrap();
        let p = Policy::load(Some(&f)).unwrap();
        let member = caller("p1", &["member"]);
        assert!(p.allows("publicize_image", &member, &target("p1", "private")));
        assert!(!p.allows(
            "delete_image",
            &caller("x", &["admin"]),
            &target("p1", "private")
        ));
        std::fs::write(&f, "\"x\": \"(role:a\"\n").unwrap();
        assert!(Policy::load(Some(&f)).is_err());
    }
}
