//! The index against the reference: every listing answered through the index must be the
//! page `ListQuery::page` selects from every record (the pre-index implementation), for
//! random catalogs, callers and queries, after inserts, changes and removals, and after a
//! rebuild. With `GLINT_TEST_CATALOG_URL` the catalog is PostgreSQL's.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::images::listing::MemberStatus;
use crate::images::record::Member;
use crate::images::status::ImageStatus;

const OWNERS: [&str; 4] = ["p0", "p1", "p2", "p3"];
const VISIBILITIES: [&str; 4] = ["public", "private", "shared", "community"];
const NAMES: [&str; 3] = ["cirros", "debian", "ubuntu"];
const STATUSES: [ImageStatus; 5] = [
    ImageStatus::Active,
    ImageStatus::Queued,
    ImageStatus::Killed,
    ImageStatus::PendingDelete,
    ImageStatus::Deactivated,
];

fn pick<T: Copy>(rng: &mut StdRng, of: &[T]) -> T {
    of[rng.gen_range(0..of.len())]
}

fn random_id(rng: &mut StdRng) -> String {
    crate::glance::format_uuid(rng.gen())
}

fn shuffle_fields(rng: &mut StdRng, r: &mut ImageRecord) {
    r.owner = (rng.gen_range(0..8) > 0).then(|| pick(rng, &OWNERS).to_string());
    r.visibility = pick(rng, &VISIBILITIES).into();
    r.name = (rng.gen_range(0..4) > 0).then(|| pick(rng, &NAMES).to_string());
    r.status = pick(rng, &STATUSES);
    r.os_hidden = rng.gen_range(0..6) == 0;
    r.size = (rng.gen_range(0..3) > 0).then(|| rng.gen_range(0..1000));
    r.members.clear();
    for p in OWNERS {
        if rng.gen_range(0..4) == 0 {
            r.members.push(Member {
                member_id: p.to_string(),
                status: pick(rng, &["accepted", "pending", "rejected"]).into(),
                created_at: String::new(),
                updated_at: String::new(),
            });
        }
    }
}

fn random_record(rng: &mut StdRng) -> ImageRecord {
    // Few distinct creation times, so the id tie-break decides often.
    let stamp = format!(
        "2026-01-0{}T00:00:0{}Z",
        rng.gen_range(1..4),
        rng.gen_range(0..3)
    );
    let mut r = ImageRecord::new(random_id(rng), None, stamp);
    shuffle_fields(rng, &mut r);
    r
}

fn random_caller(rng: &mut StdRng) -> Caller {
    let mut c = Caller::default();
    match rng.gen_range(0..6) {
        0 => c.roles = vec!["admin".into(), "member".into(), "reader".into()],
        1 => {}
        _ => {}
    }
    if rng.gen_range(0..6) > 0 {
        c.project = Some(pick(rng, &OWNERS).to_string());
        if c.roles.is_empty() {
            c.roles = vec!["member".into(), "reader".into()];
        }
    }
    c
}

fn random_query(rng: &mut StdRng, ids: &[String]) -> ListQuery {
    let mut q = ListQuery::new(rng.gen_range(0..12));
    q.visibility = match rng.gen_range(0..8) {
        0 => Some(Visibility::Public),
        1 => Some(Visibility::Private),
        2 => Some(Visibility::Shared),
        3 => Some(Visibility::Community),
        4 => Some(Visibility::All),
        _ => None,
    };
    q.member_status = pick(
        rng,
        &[
            MemberStatus::Accepted,
            MemberStatus::Accepted,
            MemberStatus::Pending,
            MemberStatus::Rejected,
            MemberStatus::All,
        ],
    );
    q.os_hidden = rng.gen_range(0..6) == 0;
    match rng.gen_range(0..8) {
        0 => q.filters.push(Filter::OneOf(
            "name".into(),
            vec![pick(rng, &NAMES).into(), pick(rng, &NAMES).into()],
        )),
        1 => q.filters.push(Filter::OneOf(
            "owner".into(),
            vec![pick(rng, &OWNERS).into()],
        )),
        2 => q
            .filters
            .push(Filter::OneOf("status".into(), vec!["active".into()])),
        3 => q.filters.push(Filter::SizeMin(rng.gen_range(0..1000))),
        _ => {}
    }
    q.sort = match rng.gen_range(0..6) {
        0 => vec![(SortKey::CreatedAt, Dir::Asc), (SortKey::Id, Dir::Asc)],
        1 => vec![(SortKey::Name, Dir::Asc)],
        2 => vec![(SortKey::CreatedAt, Dir::Asc)],
        _ => vec![],
    };
    q.resolve_sort();
    if !ids.is_empty() && rng.gen_range(0..3) == 0 {
        q.marker = Some(ids[rng.gen_range(0..ids.len())].clone());
    }
    q
}

fn summary(p: Option<Page>) -> Option<(Vec<String>, bool)> {
    p.map(|p| (p.images.into_iter().map(|r| r.id).collect(), p.full))
}

/// Compares `queries` random listings (and, for some, every following page) with the
/// reference over the store's current records.
async fn compare(store: &Store, rng: &mut StdRng, queries: usize) {
    let all = repo::all(store).await.unwrap();
    let ids: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
    for _ in 0..queries {
        let caller = random_caller(rng);
        let mut query = random_query(rng, &ids);
        let walk_on = rng.gen_range(0..4) == 0 && query.limit > 0;
        for _page in 0..50 {
            let want = summary(query.page(all.clone(), &caller));
            let got = summary(page(store, query.clone(), caller.clone()).await.unwrap());
            assert_eq!(got, want, "caller {caller:?}\nquery {query:?}");
            // Every page of a listing, as a client following `next` links does.
            match got {
                Some((ids, true)) if walk_on => query.marker = ids.last().cloned(),
                _ => break,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_answers_as_a_full_scan_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let mut cfg = glint_storage::StoreConfig::single(dir.path());
    cfg.catalog_url = glint_storage::testing::catalog_url_for(dir.path());
    let store = tokio::task::spawn_blocking(move || Store::open(cfg))
        .await
        .unwrap()
        .unwrap();
    assert!(
        ensure(&store).await.unwrap(),
        "a new catalog gets its index"
    );
    assert!(!ensure(&store).await.unwrap(), "and keeps it");
    let mut rng = StdRng::seed_from_u64(0x1d3);
    let records: Vec<ImageRecord> = (0..300).map(|_| random_record(&mut rng)).collect();
    for chunk in records.chunks(50) {
        let chunk = chunk.to_vec();
        store
            .transact(move |tx| {
                for r in &chunk {
                    assert!(repo::insert(tx, r)?);
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    compare(&store, &mut rng, 400).await;

    // Changes of every indexed attribute, and removals.
    for (i, r) in records.iter().enumerate() {
        let id = r.id.clone();
        let seed = rng.gen::<u64>();
        store
            .transact(move |tx| {
                let mut rng = StdRng::seed_from_u64(seed);
                if i % 5 == 0 {
                    return repo::remove(tx, &id);
                }
                let mut rec = repo::read_locked(tx, &id)?.unwrap();
                if i % 2 == 0 {
                    shuffle_fields(&mut rng, &mut rec);
                }
                repo::write(tx, &mut rec)
            })
            .await
            .unwrap();
    }
    compare(&store, &mut rng, 400).await;

    // A catalog whose index an older build wrote (or none) is rebuilt, to the same answers.
    store
        .transact(|tx| {
            tx.delete(Catalog::ImageIndex, VERSION_KEY)?;
            let rows = tx.scan(Catalog::ImageIndex, b"a", None, 10)?;
            for (k, _) in rows {
                tx.delete(Catalog::ImageIndex, &k)?;
            }
            tx.put(Catalog::ImageIndex, b"o\0\0\0\x02zzstale", &[])
        })
        .await
        .unwrap();
    assert!(ensure(&store).await.unwrap());
    compare(&store, &mut rng, 200).await;
}
