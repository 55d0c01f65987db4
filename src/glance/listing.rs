//! `GET /v2/images`: upstream's query language (API.md §6: filters, sorting, marker
//! pagination) parsed into the domain's [`ListQuery`], so every malformed parameter is a 400
//! before anything is read; the listing itself is `ImageRepo::list`. Also the page's links.

use time::OffsetDateTime;

use super::ApiError;
use crate::config::GlanceOptions;
use crate::images::listing::{
    DateField, DateOp, Dir, Filter, ListQuery, MemberStatus, SortKey, Visibility,
};
pub use crate::images::record::parse_time;

/// Filters that accept `in:a,b` and compare against one base attribute.
const IN_FILTERS: &[&str] = &["name", "id", "status", "container_format", "disk_format"];

/// A parsed listing request: what to list, and the request's parameters minus `marker`
/// (to build the page's `first` and `next` links).
#[derive(Debug)]
pub struct Request {
    pub query: ListQuery,
    passthrough: Vec<(String, String)>,
}

pub fn parse(raw_query: &str, opts: &GlanceOptions) -> Result<Request, ApiError> {
    let params = crate::http_util::query_params(raw_query);
    let mut q = ListQuery::new(opts.limit_param_default);
    let mut passthrough = Vec::new();
    let mut sort = SortParams::default();
    for (k, v) in &params {
        if k != "marker" {
            passthrough.push((k.clone(), v.clone()));
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
            "visibility" => q.visibility = Some(visibility(v)?),
            "member_status" => q.member_status = member_status(v)?,
            "os_hidden" => q.os_hidden = boolean(k, v)?,
            key => q.filters.push(filter(key, v)?),
        }
    }
    q.sort = sort.resolve()?;
    q.resolve_sort();
    Ok(Request {
        query: q,
        passthrough,
    })
}

fn visibility(v: &str) -> Result<Visibility, ApiError> {
    Ok(match v {
        "public" => Visibility::Public,
        "private" => Visibility::Private,
        "shared" => Visibility::Shared,
        "community" => Visibility::Community,
        "all" => Visibility::All,
        _ => return Err(ApiError::bad(format!("Invalid visibility value: {v}"))),
    })
}

fn member_status(v: &str) -> Result<MemberStatus, ApiError> {
    Ok(match v {
        "accepted" => MemberStatus::Accepted,
        "pending" => MemberStatus::Pending,
        "rejected" => MemberStatus::Rejected,
        "all" => MemberStatus::All,
        _ => return Err(ApiError::bad(format!("Invalid status value: {v}"))),
    })
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
            let field = if k == "created_at" {
                DateField::CreatedAt
            } else {
                DateField::UpdatedAt
            };
            Filter::Date(field, op, when)
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
    keys: Vec<SortKey>,
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

    /// The sort order as requested (the tie-breaks come from `ListQuery::resolve_sort`).
    fn resolve(self) -> Result<Vec<(SortKey, Dir)>, ApiError> {
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
        Ok(sort)
    }
}

fn is_operator(op: &str) -> bool {
    ["eq", "neq", "gt", "gte", "lt", "lte", "in"].contains(&op)
}

fn sort_key(key: &str) -> Result<SortKey, ApiError> {
    SortKey::parse(key).ok_or_else(|| ApiError::bad(format!("Invalid sort key: {key}.")))
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

impl Request {
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
        let q = parse("limit=100000&sort=name:asc,size", &opts)
            .unwrap()
            .query;
        assert_eq!(q.limit, 1000);
        assert_eq!(q.sort.len(), 4);
    }
}
