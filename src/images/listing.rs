//! Which images a listing holds and in what order, as the Images API defines a listing
//! (visibility, member status, hidden images, filters, sort keys with upstream's tie-breaks,
//! marker paging), in the domain's own terms. The Images API parses its query string into a
//! [`ListQuery`] (`glance/listing.rs`); [`ImageRepo::list`](super::ImageRepo::list) applies it.

use std::borrow::Cow;
use std::cmp::Ordering;

use time::OffsetDateTime;

use super::caller::Caller;
use super::record::{parse_time, ImageRecord, Member};
use super::status::ImageStatus;

/// The attributes a listing may be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Status,
    ContainerFormat,
    DiskFormat,
    Size,
    Id,
    CreatedAt,
    UpdatedAt,
}

impl SortKey {
    /// The key as the Images API names it.
    pub fn parse(name: &str) -> Option<SortKey> {
        Some(match name {
            "name" => SortKey::Name,
            "status" => SortKey::Status,
            "container_format" => SortKey::ContainerFormat,
            "disk_format" => SortKey::DiskFormat,
            "size" => SortKey::Size,
            "id" => SortKey::Id,
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Asc,
    Desc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateOp {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Which visibility a listing asks for (none given: the caller's own, public and accepted
/// shared images).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    Public,
    Private,
    Shared,
    Community,
    All,
}

/// Which member statuses count for shared images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberStatus {
    Accepted,
    Pending,
    Rejected,
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateField {
    CreatedAt,
    UpdatedAt,
}

#[derive(Clone, Debug)]
pub enum Filter {
    /// Base attribute (as its JSON text) or custom property equals one of the values.
    OneOf(String, Vec<String>),
    Date(DateField, DateOp, OffsetDateTime),
    SizeMin(u64),
    SizeMax(u64),
    Tag(String),
    Protected(bool),
}

/// One listing request.
#[derive(Clone, Debug)]
pub struct ListQuery {
    /// At most this many images (0: none).
    pub limit: usize,
    /// Start after this image (it must be one the caller may see).
    pub marker: Option<String>,
    /// The requested order; `resolve_sort` adds upstream's tie-breaks.
    pub sort: Vec<(SortKey, Dir)>,
    pub visibility: Option<Visibility>,
    pub member_status: MemberStatus,
    pub os_hidden: bool,
    pub filters: Vec<Filter>,
}

/// One page of a listing.
pub struct Page {
    pub images: Vec<ImageRecord>,
    /// The page is full: there may be more after its last image.
    pub full: bool,
}

impl ListQuery {
    /// A listing of everything `caller` sees by default, newest first.
    pub fn new(limit: usize) -> ListQuery {
        ListQuery {
            limit,
            marker: None,
            sort: Vec::new(),
            visibility: None,
            member_status: MemberStatus::Accepted,
            os_hidden: false,
            filters: Vec::new(),
        }
    }

    /// Appends upstream's tie-breaks (created_at, then id, newest first) unless given.
    pub fn resolve_sort(&mut self) {
        for key in [SortKey::CreatedAt, SortKey::Id] {
            if !self.sort.iter().any(|(k, _)| *k == key) {
                self.sort.push((key, Dir::Desc));
            }
        }
    }

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
        m.is_some_and(|m| match self.member_status {
            MemberStatus::All => true,
            MemberStatus::Accepted => m.status == "accepted",
            MemberStatus::Pending => m.status == "pending",
            MemberStatus::Rejected => m.status == "rejected",
        })
    }

    fn visible(&self, rec: &ImageRecord, caller: &Caller) -> bool {
        let own = rec.is_owner(caller);
        let shared_with_me =
            rec.visibility == "shared" && self.member_ok(rec.member(caller.project.as_deref()));
        let is = |v: &str| rec.visibility == v;
        if caller.is_admin() {
            return match self.visibility {
                None | Some(Visibility::All) => true,
                Some(Visibility::Public) => is("public"),
                Some(Visibility::Private) => is("private"),
                Some(Visibility::Shared) => is("shared"),
                Some(Visibility::Community) => is("community"),
            };
        }
        match self.visibility {
            None => own || is("public") || shared_with_me,
            Some(Visibility::All) => own || is("public") || is("community") || shared_with_me,
            Some(Visibility::Public) => is("public"),
            Some(Visibility::Community) => is("community"),
            Some(Visibility::Private) => is("private") && own,
            Some(Visibility::Shared) => is("shared") && (own || shared_with_me),
        }
    }

    /// Orders by the requested keys (nulls first, as SQL sorts them ascending).
    pub fn compare(&self, a: &ImageRecord, b: &ImageRecord) -> Ordering {
        for (key, dir) in &self.sort {
            let ord = sort_value(a, *key).cmp(&sort_value(b, *key));
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

    /// One page out of `records` (every image record, any order): the marker is looked up
    /// among the images `caller` may see; None when it is not one of them.
    pub fn page(&self, records: Vec<ImageRecord>, caller: &Caller) -> Option<Page> {
        let marker = match &self.marker {
            None => None,
            Some(m) => Some(
                records
                    .iter()
                    .find(|r| r.id == *m && r.visible_to(caller))?,
            ),
        };
        let mut images: Vec<&ImageRecord> = records
            .iter()
            .filter(|r| self.matches(r, caller))
            .filter(|r| marker.is_none_or(|m| self.compare(r, m) == Ordering::Greater))
            .collect();
        images.sort_by(|a, b| self.compare(a, b));
        let full = self.limit > 0 && images.len() >= self.limit;
        images.truncate(self.limit);
        Some(Page {
            images: images.into_iter().cloned().collect(),
            full,
        })
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortValue<'a> {
    Null,
    Num(u64),
    Text(&'a str),
}

fn sort_value(r: &ImageRecord, key: SortKey) -> SortValue<'_> {
    fn text(s: &Option<String>) -> SortValue<'_> {
        s.as_deref().map_or(SortValue::Null, SortValue::Text)
    }
    match key {
        SortKey::Name => text(&r.name),
        SortKey::Status => SortValue::Text(r.status.as_str()),
        SortKey::ContainerFormat => text(&r.container_format),
        SortKey::DiskFormat => text(&r.disk_format),
        SortKey::Size => r.size.map_or(SortValue::Null, SortValue::Num),
        SortKey::Id => SortValue::Text(&r.id),
        SortKey::CreatedAt => SortValue::Text(&r.created_at),
        SortKey::UpdatedAt => SortValue::Text(&r.updated_at),
    }
}

/// A base attribute as a listing compares it (its JSON text), else a custom property.
fn attribute<'a>(r: &'a ImageRecord, key: &str) -> Option<Cow<'a, str>> {
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
        Filter::Date(field, op, when) => {
            let stamp = match field {
                DateField::CreatedAt => &r.created_at,
                DateField::UpdatedAt => &r.updated_at,
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
