//! `GET /v2/images`: upstream's filters, sorting and marker pagination (API.md §6).
//! The query is parsed into a `Query` first, so every malformed parameter is a 400 before
//! anything is read.

use crate::images::ImageStatus;
use std::cmp::Ordering;

use time::OffsetDateTime;

use super::record::{ImageRecord, Member};
use super::{ApiError, Caller};
use crate::config::GlanceOptions;
pub use crate::images::record::parse_time;

const SORT_KEYS: &[&str] = &[
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
];
/// Filters that accept `in:a,b` and compare against one base attribute.
const IN_FILTERS: &[&str] = &["name", "id", "status", "container_format", "disk_format"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Asc,
    Desc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DateOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug)]
enum Filter {
    /// Base attribute (as its JSON value) or custom property equals one of the values.
    OneOf(String, Vec<String>),
    Date(String, DateOp, OffsetDateTime),
    SizeMin(u64),
    SizeMax(u64),
    Tag(String),
    Protected(bool),
}

#[derive(Debug)]
pub struct Query {
    pub limit: usize,
    pub marker: Option<String>,
    sort: Vec<(String, Dir)>,
    visibility: Option<String>,
    member_status: String,
    os_hidden: bool,
    filters: Vec<Filter>,
    /// The request's parameters minus `marker`, to build `first` and `next`.
    passthrough: Vec<(String, String)>,
}

pub fn parse(raw_query: &str, opts: &GlanceOptions) -> Result<Query, ApiError> {
    let params = crate::http_util::query_params(raw_query);
    let mut q = Query {
        limit: opts.limit_param_default,
        marker: None,
        sort: Vec::new(),
        visibility: None,
        member_status: "accepted".into(),
        os_hidden: false,
        filters: Vec::new(),
        passthrough: Vec::new(),
    };
    let mut sort = SortParams::default();
    for (k, v) in &params {
        if k != "marker" {
            q.passthrough.push((k.clone(), v.clone()));
        }
        match k.as_str() {
            "limit" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| ApiError::bad("limit param must be an integer"))?;
                if n < 0 {
                    return Err(ApiError::bad("limit param must be positive"));
                }
                q.limit = (n as usize).min(opts.api_limit_max);
            }
            "marker" => q.marker = Some(v.clone()),
            "sort_key" | "sort_dir" | "sort" => sort.add(k, v)?,
            "visibility" => {
                if !["public", "private", "shared", "community", "all"].contains(&v.as_str()) {
                    return Err(ApiError::bad(format!("Invalid visibility value: {v}")));
                }
                q.visibility = Some(v.clone());
            }
            "member_status" => {
                if !["accepted", "pending", "rejected", "all"].contains(&v.as_str()) {
                    return Err(ApiError::bad(format!("Invalid status value: {v}")));
                }
                q.member_status = v.clone();
            }
            "os_hidden" => q.os_hidden = boolean(k, v)?,
            key => q.filters.push(filter(key, v)?),
        }
    }
    q.sort = sort.resolve()?;
    Ok(q)
}

/// A filter parameter other than the listing's own (limit, marker, sort, visibility,
/// member status, os_hidden).
fn filter(k: &str, v: &str) -> Result<Filter, ApiError> {
    Ok(match k {
        "protected" => Filter::Protected(boolean(k, v)?),
        "size_min" | "size_max" => {
            let n: u64 = v.parse().map_err(|_| {
                ApiError::bad(format!(
                    "Unable to filter on a range with a non-numeric value: {k}={v}"
                ))
            })?;
            if k == "size_min" {
                Filter::SizeMin(n)
            } else {
                Filter::SizeMax(n)
            }
        }
        "created_at" | "updated_at" => {
            let (op, when) = date_filter(v)?;
            Filter::Date(k.to_string(), op, when)
        }
        "changes-since" => {
            return Err(ApiError::bad(
                "The 'changes-since' filter is no longer available on v2.",
            ))
        }
        "tag" => Filter::Tag(v.to_string()),
        key if IN_FILTERS.contains(&key) => {
            let values = match v.split_once(':') {
                Some(("in", list)) => split_in_list(list)?,
                Some((op, _)) if is_operator(op) => {
                    return Err(ApiError::bad(format!(
                        "Unable to filter by unknown operator '{op}'."
                    )))
                }
                _ => vec![v.to_string()],
            };
            Filter::OneOf(key.to_string(), values)
        }
        key => Filter::OneOf(key.to_string(), vec![v.to_string()]),
    })
}

/// Both sort syntaxes as given: `sort_key` / `sort_dir` lists, or `sort=key:dir,…`.
#[derive(Default)]
struct SortParams {
    keys: Vec<String>,
    dirs: Vec<Dir>,
    new_style: Option<String>,
}

impl SortParams {
    fn add(&mut self, k: &str, v: &str) -> Result<(), ApiError> {
        match k {
            "sort_key" => {
                for key in v.split(',') {
                    self.keys.push(sort_key(key.trim())?);
                }
            }
            "sort_dir" => {
                for d in v.split(',') {
                    self.dirs.push(sort_dir(d.trim())?);
                }
            }
            _ => self.new_style = Some(v.to_string()),
        }
        Ok(())
    }

    /// The sort order, with upstream's tie-breaks (created_at then id, newest first).
    fn resolve(self) -> Result<Vec<(String, Dir)>, ApiError> {
        let mut sort = Vec::new();
        if let Some(spec) = self.new_style {
            if !self.keys.is_empty() || !self.dirs.is_empty() {
                return Err(ApiError::bad(
                    "The 'sort' parameter cannot be used with 'sort_key' or 'sort_dir'.",
                ));
            }
            for item in spec.split(',') {
                let (key, dir) = match item.split_once(':') {
                    Some((k, d)) => (k.trim(), sort_dir(d.trim())?),
                    None => (item.trim(), Dir::Desc),
                };
                sort.push((sort_key(key)?, dir));
            }
        } else {
            match self.dirs.len() {
                0 | 1 => {
                    let dir = self.dirs.first().copied().unwrap_or(Dir::Desc);
                    sort = self.keys.into_iter().map(|k| (k, dir)).collect();
                }
                n if n == self.keys.len() => sort = self.keys.into_iter().zip(self.dirs).collect(),
                _ => {
                    return Err(ApiError::bad(
                        "Number of sort dirs does not match the number of sort keys",
                    ))
                }
            }
        }
        for key in ["created_at", "id"] {
            if !sort.iter().any(|(k, _)| k == key) {
                sort.push((key.to_string(), Dir::Desc));
            }
        }
        Ok(sort)
    }
}

fn is_operator(op: &str) -> bool {
    ["eq", "neq", "gt", "gte", "lt", "lte", "in"].contains(&op)
}

fn sort_key(key: &str) -> Result<String, ApiError> {
    if SORT_KEYS.contains(&key) {
        Ok(key.to_string())
    } else {
        Err(ApiError::bad(format!("Invalid sort key: {key}.")))
    }
}

fn sort_dir(d: &str) -> Result<Dir, ApiError> {
    match d {
        "asc" => Ok(Dir::Asc),
        "desc" => Ok(Dir::Desc),
        _ => Err(ApiError::bad(format!("Invalid sort direction: {d}"))),
    }
}

fn boolean(k: &str, v: &str) -> Result<bool, ApiError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad(format!(
            "Invalid value for {k}: {v}. It should be true or false."
        ))),
    }
}

/// `in:` lists: comma separated, a value with commas in double quotes.
fn split_in_list(list: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = list.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if !quoted && cur.is_empty() => quoted = true,
            '"' if quoted => {
                quoted = false;
                if !matches!(chars.peek(), None | Some(',')) {
                    return Err(ApiError::bad(
                        "Invalid filter value: text after a closing quote",
                    ));
                }
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(ApiError::bad(format!(
            "Invalid filter value {list}. The quote is not closed."
        )));
    }
    out.push(cur);
    Ok(out)
}

fn date_filter(v: &str) -> Result<(DateOp, OffsetDateTime), ApiError> {
    let (op, when) = match v.split_once(':') {
        Some((op, rest)) if is_operator(op) => (op, rest),
        _ => ("eq", v),
    };
    let op = match op {
        "eq" => DateOp::Eq,
        "neq" => DateOp::Neq,
        "gt" => DateOp::Gt,
        "gte" => DateOp::Gte,
        "lt" => DateOp::Lt,
        "lte" => DateOp::Lte,
        other => {
            return Err(ApiError::bad(format!(
                "Unable to filter by unknown operator '{other}'."
            )))
        }
    };
    Ok((
        op,
        parse_time(when).ok_or_else(|| {
            ApiError::bad(format!(
                "Unable to filter by date: {when} is not an ISO 8601 date"
            ))
        })?,
    ))
}

impl Query {
    /// Whether `rec` belongs on this listing for `caller` (visibility, membership, filters).
    pub fn matches(&self, rec: &ImageRecord, caller: &Caller) -> bool {
        if matches!(
            rec.status,
            ImageStatus::Deleted | ImageStatus::Killed | ImageStatus::PendingDelete
        ) || rec.os_hidden != self.os_hidden
        {
            return false;
        }
        self.visible(rec, caller) && self.filters.iter().all(|f| filter_matches(f, rec))
    }

    fn member_ok(&self, m: Option<&Member>) -> bool {
        m.is_some_and(|m| self.member_status == "all" || m.status == self.member_status)
    }

    fn visible(&self, rec: &ImageRecord, caller: &Caller) -> bool {
        let own = rec.is_owner(caller);
        let shared_with_me =
            rec.visibility == "shared" && self.member_ok(rec.member(caller.project.as_deref()));
        if caller.is_admin() {
            return match self.visibility.as_deref() {
                None | Some("all") => true,
                Some(v) => rec.visibility == v,
            };
        }
        match self.visibility.as_deref() {
            None => own || rec.visibility == "public" || shared_with_me,
            Some("all") => {
                own || matches!(rec.visibility.as_str(), "public" | "community") || shared_with_me
            }
            Some("public") => rec.visibility == "public",
            Some("community") => rec.visibility == "community",
            Some("private") => rec.visibility == "private" && own,
            Some("shared") => rec.visibility == "shared" && (own || shared_with_me),
            Some(_) => false,
        }
    }

    /// Orders by the requested keys (nulls first, as SQL sorts them ascending).
    pub fn compare(&self, a: &ImageRecord, b: &ImageRecord) -> Ordering {
        for (key, dir) in &self.sort {
            let ord = sort_value(a, key).cmp(&sort_value(b, key));
            let ord = if *dir == Dir::Desc {
                ord.reverse()
            } else {
                ord
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }

    /// `/v2/images?<the request's query without marker>`.
    pub fn first_link(&self) -> String {
        link(&self.passthrough, None)
    }

    pub fn next_link(&self, marker: &str) -> String {
        link(&self.passthrough, Some(marker))
    }
}

fn link(params: &[(String, String)], marker: Option<&str>) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut parts: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    if let Some(m) = marker {
        parts.push(format!("marker={}", enc(m)));
    }
    if parts.is_empty() {
        "/v2/images".into()
    } else {
        format!("/v2/images?{}", parts.join("&"))
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortValue<'a> {
    Null,
    Num(u64),
    Text(&'a str),
}

fn sort_value<'a>(r: &'a ImageRecord, key: &str) -> SortValue<'a> {
    let text = |s: &'a Option<String>| s.as_deref().map_or(SortValue::Null, SortValue::Text);
    match key {
        "name" => text(&r.name),
        "status" => SortValue::Text(r.status.as_str()),
        "container_format" => text(&r.container_format),
        "disk_format" => text(&r.disk_format),
        "size" => r.size.map_or(SortValue::Null, SortValue::Num),
        "id" => SortValue::Text(&r.id),
        "created_at" => SortValue::Text(&r.created_at),
        _ => SortValue::Text(&r.updated_at),
    }
}

/// A base attribute as the query compares it (its JSON text), else a custom property.
fn attribute<'a>(r: &'a ImageRecord, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    let text = |v: &'a Option<String>| v.as_deref().map(Cow::Borrowed);
    let num = |v: Option<u64>| v.map(|n| Cow::Owned(n.to_string()));
    match key {
        "id" => Some(Cow::Borrowed(&r.id)),
        "name" => text(&r.name),
        "status" => Some(Cow::Borrowed(r.status.as_str())),
        "visibility" => Some(Cow::Borrowed(&r.visibility)),
        "owner" => text(&r.owner),
        "checksum" => text(&r.checksum),
        "os_hash_algo" => text(&r.os_hash_algo),
        "os_hash_value" => text(&r.os_hash_value),
        "disk_format" => text(&r.disk_format),
        "container_format" => text(&r.container_format),
        "size" => num(r.size),
        "virtual_size" => num(r.virtual_size),
        "min_disk" => Some(Cow::Owned(r.min_disk.to_string())),
        "min_ram" => Some(Cow::Owned(r.min_ram.to_string())),
        "os_hidden" => Some(Cow::Owned(r.os_hidden.to_string())),
        _ => r.extra.get(key).map(|v| Cow::Borrowed(v.as_str())),
    }
}

fn filter_matches(f: &Filter, r: &ImageRecord) -> bool {
    match f {
        Filter::OneOf(key, values) => {
            attribute(r, key).is_some_and(|a| values.iter().any(|v| *v == a))
        }
        Filter::Date(key, op, when) => {
            let stamp = if key == "created_at" {
                &r.created_at
            } else {
                &r.updated_at
            };
            let Some(t) = parse_time(stamp) else {
                return false;
            };
            match op {
                DateOp::Eq => t == *when,
                DateOp::Neq => t != *when,
                DateOp::Gt => t > *when,
                DateOp::Gte => t >= *when,
                DateOp::Lt => t < *when,
                DateOp::Lte => t <= *when,
            }
        }
        Filter::SizeMin(n) => r.size.is_some_and(|s| s >= *n),
        Filter::SizeMax(n) => r.size.is_some_and(|s| s <= *n),
        Filter::Tag(t) => r.tags.contains(t),
        Filter::Protected(want) => r.protected == *want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists() {
        assert_eq!(split_in_list(r#""a,b",c"#).unwrap(), vec!["a,b", "c"]);
        assert!(split_in_list(r#""open"#).is_err());
    }

    #[test]
    fn bad_params_are_400() {
        let opts = crate::config::Config::defaults().glance;
        for q in [
            "limit=abc",
            "limit=-1",
            "sort_key=bogus",
            "sort_dir=up",
            "sort=name&sort_key=size",
            "visibility=bogus",
            "member_status=bogus",
            "os_hidden=maybe",
            "size_min=abc",
            "created_at=gte:yesterday",
            "changes-since=2000-01-01",
            "name=gte:x",
            "sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc",
        ] {
            assert!(parse(q, &opts).is_err(), "{q}");
        }
        let q = parse("limit=100000&sort=name:asc,size", &opts).unwrap();
        assert_eq!(q.limit, 1000);
        assert_eq!(q.sort.len(), 4);
    }
}
