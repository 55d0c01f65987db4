//! The listing index (catalog family `image_index`): which images a listing may hold, in
//! listing order, so that a page of a listing reads a page of index entries and the records
//! they name instead of decoding every record (100,000 images: a page in a few ms, not a
//! scan of the whole family).
//!
//! An entry is `scope ‖ created_at ‖ 0x00 ‖ id` with an empty value. A scope is one way a
//! listing narrows the images it can hold: every image (`a`), an owner (`o`), a visibility
//! (`v`), a project the image is shared with (`m`), a name (`n`), a status (`s`); each is a
//! tag byte and a length-prefixed value, so no value can run into the next part. Within a
//! scope the entries are in `created_at, id` order: upstream's default order
//! (`created_at desc, id desc`) is a backward walk, its ascending twin a forward one.
//! `created_at` never changes, so an entry's place never does.
//!
//! The index only proposes: a listing reads the records the entries name and applies the
//! whole query to them (visibility, membership, filters, status), so an entry a concurrent
//! change made stale is skipped, never shown. Entries are written in the same transaction
//! as their record (`repo::write`, `insert`, `remove`); [`ensure`] rebuilds the family once
//! when it was written by an older build (or never).

use std::collections::{BTreeSet, HashSet, VecDeque};

use glint_storage::{Catalog, CatalogReader, Store, StoreError, Tx};

use super::caller::Caller;
use super::listing::{Dir, Filter, ListQuery, Page, SortKey, Visibility};
use super::record::ImageRecord;
use super::repo;

/// Bumped whenever `entries` changes: the family is then rebuilt at start.
const VERSION: u32 = 1;
/// Holds `VERSION`; sorts after every scope (scope tags are ASCII letters).
const VERSION_KEY: &[u8] = b"\xffversion";
/// Records read per round trip when a listing must read a scope whole.
const READ_BATCH: usize = 512;

/// One scope's key prefix.
fn scope(tag: u8, value: &str) -> Vec<u8> {
    let v = value.as_bytes();
    let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
    let mut k = Vec::with_capacity(5 + v.len());
    k.push(tag);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(v);
    k
}

/// The part of an entry after its scope: the record's place in listing order.
fn place(rec: &ImageRecord) -> Vec<u8> {
    let mut p = Vec::with_capacity(rec.created_at.len() + 1 + rec.id.len());
    p.extend_from_slice(rec.created_at.as_bytes());
    p.push(0);
    p.extend_from_slice(rec.id.as_bytes());
    p
}

/// The image id at the end of an entry.
fn id_of(entry: &[u8]) -> Option<&str> {
    let at = entry.iter().rposition(|b| *b == 0)?;
    std::str::from_utf8(&entry[at + 1..]).ok()
}

/// Every entry `rec` has.
fn entries(rec: &ImageRecord) -> BTreeSet<Vec<u8>> {
    let mut scopes = vec![
        scope(b'a', ""),
        scope(b'v', &rec.visibility),
        scope(b's', rec.status.as_str()),
    ];
    if let Some(owner) = &rec.owner {
        scopes.push(scope(b'o', owner));
    }
    if let Some(name) = &rec.name {
        scopes.push(scope(b'n', name));
    }
    for m in &rec.members {
        scopes.push(scope(b'm', &m.member_id));
    }
    let place = place(rec);
    scopes
        .into_iter()
        .map(|mut k| {
            k.extend_from_slice(&place);
            k
        })
        .collect()
}

/// Inside the transaction that changes an image record from `old` to `new` (`None`: no
/// record): the index entries that change with it.
pub fn sync(
    tx: &Tx<'_>,
    old: Option<&ImageRecord>,
    new: Option<&ImageRecord>,
) -> glint_storage::Result<()> {
    let before = old.map(entries).unwrap_or_default();
    let after = new.map(entries).unwrap_or_default();
    for gone in before.difference(&after) {
        tx.delete(Catalog::ImageIndex, gone)?;
    }
    for added in after.difference(&before) {
        tx.put(Catalog::ImageIndex, added, &[])?;
    }
    Ok(())
}

/// Rebuilds the index from the records unless this build's version of it is there (one
/// transaction: a node that starts at the same time waits for it, then finds it done).
/// Whether it rebuilt.
pub async fn ensure(store: &Store) -> Result<bool, StoreError> {
    store
        .transact(|tx| {
            let have = tx.get_for_update(Catalog::ImageIndex, VERSION_KEY)?;
            if have.as_deref() == Some(&VERSION.to_le_bytes()[..]) {
                return Ok(false);
            }
            let mut after: Option<Vec<u8>> = None;
            loop {
                let rows = tx.scan(Catalog::ImageIndex, b"", after.as_deref(), 4096)?;
                let Some((last, _)) = rows.last() else { break };
                after = Some(last.clone());
                for (k, _) in &rows {
                    tx.delete(Catalog::ImageIndex, k)?;
                }
            }
            let mut after: Option<Vec<u8>> = None;
            loop {
                let rows = tx.scan(Catalog::Images, b"", after.as_deref(), 1024)?;
                let Some((last, _)) = rows.last() else { break };
                after = Some(last.clone());
                for (k, v) in &rows {
                    // A record that does not decode stays out of listings, as it always has.
                    if let Ok(rec) = repo::decode(k, v) {
                        sync(tx, None, Some(&rec))?;
                    }
                }
            }
            tx.put(Catalog::ImageIndex, VERSION_KEY, &VERSION.to_le_bytes())?;
            Ok(true)
        })
        .await
}

/// The scopes whose union holds every image `query` can list for `caller`.
fn scopes(query: &ListQuery, caller: &Caller) -> Vec<Vec<u8>> {
    // A filter on one of these attributes names the few scopes its images are in; the
    // most selective first (a name is the usual lookup: `openstack image show NAME`).
    for (attr, tag) in [("name", b'n'), ("owner", b'o'), ("status", b's')] {
        for f in &query.filters {
            if let Filter::OneOf(key, values) = f {
                if key == attr {
                    return values.iter().map(|v| scope(tag, v)).collect();
                }
            }
        }
    }
    let vis = |v: &str| scope(b'v', v);
    if caller.is_admin() {
        return vec![match query.visibility {
            None | Some(Visibility::All) => scope(b'a', ""),
            Some(Visibility::Public) => vis("public"),
            Some(Visibility::Private) => vis("private"),
            Some(Visibility::Shared) => vis("shared"),
            Some(Visibility::Community) => vis("community"),
        }];
    }
    let own = caller.project.as_deref().map(|p| scope(b'o', p));
    let shared = caller.project.as_deref().map(|p| scope(b'm', p));
    let list = match query.visibility {
        None => vec![own, Some(vis("public")), shared],
        Some(Visibility::All) => vec![own, Some(vis("public")), Some(vis("community")), shared],
        Some(Visibility::Public) => vec![Some(vis("public"))],
        Some(Visibility::Community) => vec![Some(vis("community"))],
        Some(Visibility::Private) => vec![own],
        Some(Visibility::Shared) => vec![own, shared],
    };
    list.into_iter().flatten().collect()
}

/// Whether the index's order is the listing's: `created_at, id`, both one way.
fn index_order(query: &ListQuery) -> Option<Dir> {
    match query.sort.as_slice() {
        [(SortKey::CreatedAt, a), (SortKey::Id, b)] if a == b => Some(*a),
        _ => None,
    }
}

/// The images of `statuses`, in no particular order (recovery's and the scrubber's scans).
pub async fn with_status(store: &Store, statuses: &[&str]) -> Result<Vec<ImageRecord>, StoreError> {
    read_scopes_of(store, statuses.iter().map(|s| scope(b's', s)).collect()).await
}

/// The images of `scopes`, read in one hop off the runtime.
async fn read_scopes_of(
    store: &Store,
    scopes: Vec<Vec<u8>>,
) -> Result<Vec<ImageRecord>, StoreError> {
    store.read_catalog(move |r| read_scopes(r, &scopes)).await
}

/// How many images are in each of `statuses` (metrics).
pub async fn count_by_status(
    store: &Store,
    statuses: &'static [&'static str],
) -> Result<Vec<(&'static str, u64)>, StoreError> {
    store
        .read_catalog(move |r| {
            statuses
                .iter()
                .map(|s| Ok((*s, r.count(Catalog::ImageIndex, &scope(b's', s))?)))
                .collect()
        })
        .await
}

/// The images of `owner`, whatever their status (quota usage).
pub async fn owned_by(store: &Store, owner: &str) -> Result<Vec<ImageRecord>, StoreError> {
    read_scopes_of(store, vec![scope(b'o', owner)]).await
}

/// Every image `query` could list for `caller`, unordered and unchecked (a superset: the
/// caller applies its own test).
pub async fn candidates(
    store: &Store,
    query: &ListQuery,
    caller: &Caller,
) -> Result<Vec<ImageRecord>, StoreError> {
    read_scopes_of(store, scopes(query, caller)).await
}

/// One page of `query` for `caller`; None when the marker is not an image `caller` sees.
pub async fn page(
    store: &Store,
    query: ListQuery,
    caller: Caller,
) -> Result<Option<Page>, StoreError> {
    store
        .read_catalog(move |r| {
            let marker = match &query.marker {
                None => None,
                Some(id) => match read_record(r, id)? {
                    Some(m) if m.visible_to(&caller) => Some(m),
                    _ => return Ok(None),
                },
            };
            let scopes = scopes(&query, &caller);
            match index_order(&query) {
                Some(dir) => ordered_page(r, &query, &caller, scopes, dir, marker).map(Some),
                None => {
                    // Another order: the scopes' records, sorted here (never the whole
                    // catalog unless the caller may list all of it).
                    let mut records = read_scopes(r, &scopes)?;
                    if let Some(m) = marker {
                        if !records.iter().any(|r| r.id == m.id) {
                            records.push(m);
                        }
                    }
                    Ok(query.page(records, &caller))
                }
            }
        })
        .await
}

fn read_record(r: &CatalogReader<'_>, id: &str) -> glint_storage::Result<Option<ImageRecord>> {
    r.get(Catalog::Images, id.as_bytes())?
        .map(|v| repo::decode(id.as_bytes(), &v))
        .transpose()
}

/// The records `ids` name that exist and decode (one round trip per batch), in `ids` order.
fn read_records(r: &CatalogReader<'_>, ids: &[String]) -> glint_storage::Result<Vec<ImageRecord>> {
    let keys: Vec<Vec<u8>> = ids.iter().map(|id| id.as_bytes().to_vec()).collect();
    let mut found = r.get_many(Catalog::Images, &keys)?;
    Ok(keys
        .iter()
        .filter_map(|k| found.remove(k).and_then(|v| repo::decode(k, &v).ok()))
        .collect())
}

/// Every record in the union of `scopes`.
fn read_scopes(
    r: &CatalogReader<'_>,
    scopes: &[Vec<u8>],
) -> glint_storage::Result<Vec<ImageRecord>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for prefix in scopes {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = r.scan(Catalog::ImageIndex, prefix, after.as_deref(), READ_BATCH)?;
            let Some((last, _)) = rows.last() else { break };
            after = Some(last.clone());
            let ids: Vec<String> = rows
                .iter()
                .filter_map(|(k, _)| id_of(k))
                .filter(|id| seen.insert(id.to_string()))
                .map(str::to_string)
                .collect();
            out.extend(read_records(r, &ids)?);
        }
    }
    Ok(out)
}

/// One scope's entries from a starting place on, a batch at a time.
struct Cursor {
    prefix: Vec<u8>,
    /// The last entry taken (the next batch starts strictly beyond it).
    beyond: Vec<u8>,
    /// Entries fetched, not yet taken: places (the key minus the scope).
    ahead: VecDeque<Vec<u8>>,
    exhausted: bool,
    batch: usize,
}

impl Cursor {
    fn head(&mut self, r: &CatalogReader<'_>, dir: Dir) -> glint_storage::Result<Option<&[u8]>> {
        if self.ahead.is_empty() && !self.exhausted {
            let rows = match dir {
                Dir::Desc => r.scan_back(
                    Catalog::ImageIndex,
                    &self.prefix,
                    Some(&self.beyond),
                    self.batch,
                )?,
                Dir::Asc => r.scan(
                    Catalog::ImageIndex,
                    &self.prefix,
                    Some(&self.beyond),
                    self.batch,
                )?,
            };
            self.exhausted = rows.len() < self.batch;
            self.batch = (self.batch * 4).min(READ_BATCH);
            if let Some((last, _)) = rows.last() {
                self.beyond = last.clone();
            }
            let skip = self.prefix.len();
            self.ahead = rows.into_iter().map(|(k, _)| k[skip..].to_vec()).collect();
        }
        Ok(self.ahead.front().map(Vec::as_slice))
    }
}

/// A page in the index's order: the scopes' entries merged (each image once), their records
/// read a batch at a time and checked against the whole query, until the page is full or
/// the scopes run out.
fn ordered_page(
    r: &CatalogReader<'_>,
    query: &ListQuery,
    caller: &Caller,
    scopes: Vec<Vec<u8>>,
    dir: Dir,
    marker: Option<ImageRecord>,
) -> glint_storage::Result<Page> {
    let limit = query.limit;
    let mut images = Vec::new();
    if limit == 0 {
        return Ok(Page {
            images,
            full: false,
        });
    }
    let start = match &marker {
        Some(m) => place(m),
        // Before every place (forward) or after every place (backward: created_at is
        // ASCII, so 0xff sorts after all of it).
        None if dir == Dir::Asc => Vec::new(),
        None => vec![0xff],
    };
    let first_batch = (limit + 1).min(READ_BATCH);
    let mut cursors: Vec<Cursor> = scopes
        .into_iter()
        .map(|prefix| {
            let mut beyond = prefix.clone();
            beyond.extend_from_slice(&start);
            Cursor {
                prefix,
                beyond,
                ahead: VecDeque::new(),
                exhausted: false,
                batch: first_batch,
            }
        })
        .collect();
    let mut last: Option<Vec<u8>> = None;
    loop {
        let want = limit - images.len();
        let mut ids = Vec::with_capacity(want);
        while ids.len() < want {
            // The next place over all cursors (the greatest walking back, the least forward).
            let mut best: Option<(usize, Vec<u8>)> = None;
            for (i, c) in cursors.iter_mut().enumerate() {
                if let Some(h) = c.head(r, dir)? {
                    let better = best.as_ref().is_none_or(|(_, b)| match dir {
                        Dir::Desc => h > b.as_slice(),
                        Dir::Asc => h < b.as_slice(),
                    });
                    if better {
                        best = Some((i, h.to_vec()));
                    }
                }
            }
            let Some((i, place)) = best else { break };
            cursors[i].ahead.pop_front();
            // The same image in two scopes (an owner's public image) comes up twice in a row.
            if last.as_ref() == Some(&place) {
                continue;
            }
            if let Some(id) = id_of(&place) {
                ids.push(id.to_string());
            }
            last = Some(place);
        }
        if ids.is_empty() {
            return Ok(Page {
                images,
                full: false,
            });
        }
        for rec in read_records(r, &ids)? {
            if query.matches(&rec, caller) {
                images.push(rec);
            }
        }
        if images.len() >= limit {
            images.truncate(limit);
            return Ok(Page { images, full: true });
        }
    }
}

#[cfg(test)]
mod tests;
