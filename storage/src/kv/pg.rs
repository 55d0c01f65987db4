//! The catalog in PostgreSQL (cluster mode): the database OpenStack operators already run
//! for Glance, made highly available with their usual tooling.
//!
//! Each family is a table `glint_<family>(k bytea primary key, v …)`: bytea compares byte by
//! byte, shorter first on a tie, which is RocksDB's key order, so walks are keyset scans of
//! the primary-key index. Counter families hold typed numbers (`bigint`, `bigint[]`) that a
//! commit adds to with one `INSERT … ON CONFLICT DO UPDATE`, which takes the row lock and
//! reads the latest committed value: concurrent commits on any node add, never overwrite.
//!
//! Locks: the engine and the front ends lock *keys*, present or not (an object name about
//! to be created, a blob id), as RocksDB's pessimistic transactions do. Row locks cannot
//! lock a missing row, so `get_locked` takes a transaction-scoped advisory lock on a 64-bit
//! hash of family and key (shared or exclusive), released at commit or rollback; a hash
//! collision only makes two unrelated keys wait for each other. Isolation is READ
//! COMMITTED: a read after the lock sees every commit made before the lock was granted.
//! Deadlocks, lock timeouts and serialization failures are `Conflict` (the transaction is
//! run again); a lost connection or a database restarting is `Unavailable` (a clean 503).
//!
//! The engine's catalog calls are synchronous: `tokio-postgres` runs behind a
//! [`crate::bridge::Bridge`].

use std::collections::HashMap;
use std::future::Future;

use crate::bridge::Bridge;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{Family, Kv, KvRead, KvTxn, Op, Visit};
use crate::catalog::{decode_count, encode_count};
use crate::error::{CatalogError, Result, StoreError};
use crate::group::{decode_counts, encode_counts};

/// The schema version this build creates and expects (`glint_schema`).
/// 1: the engine's and the front ends' families. 2: `pins` and `leases` (cluster.rs).
/// 3: `image_index` (the Images API's listing index).
pub(crate) const SCHEMA_VERSION: i32 = 3;
/// Chunk group numbers a node takes from the shared sequence at a time.
const GROUP_BLOCK: u64 = 1024;
/// Rows fetched per round trip of a walk.
const WALK_PAGE: i64 = 512;
/// The first page of a walk (see `walk_on`).
const FIRST_WALK_PAGE: i64 = 8;
/// How long a lock or a pooled connection is waited for before the request fails.
const LOCK_TIMEOUT_MS: u32 = 5_000;

pub(crate) struct PgKv {
    bridge: Bridge,
    pool: Pool,
    sql: HashMap<Family, Sql>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bytes,
    /// One `bigint` (format v1 reference counts).
    Count,
    /// A `bigint[]` of per-slot counts (format v2 group references).
    Counts,
}

fn kind(fam: Family) -> Kind {
    match fam {
        Family::Chunks => Kind::Count,
        Family::GroupRefs => Kind::Counts,
        _ => Kind::Bytes,
    }
}

fn table(fam: Family) -> String {
    format!("glint_{}", fam.name())
}

/// The statements of one family.
struct Sql {
    get: String,
    walk_from: String,
    walk_after: String,
    floor: String,
    back_from_end: String,
    back_below: String,
    put: String,
    delete: String,
    add: String,
    /// Many rows in one statement (arrays unnested): puts and adds of one-value kinds, and
    /// deletes of any.
    put_many: String,
    add_many: String,
    delete_many: String,
}

impl Sql {
    fn new(fam: Family) -> Sql {
        let t = table(fam);
        let add = match kind(fam) {
            Kind::Count => format!(
                "INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = {t}.v + EXCLUDED.v"
            ),
            Kind::Counts => format!(
                "INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = glint_add_slots({t}.v, EXCLUDED.v)"
            ),
            Kind::Bytes => String::new(),
        };
        let array = match kind(fam) {
            Kind::Bytes => "bytea[]",
            _ => "bigint[]",
        };
        Sql {
            put_many: format!(
                "INSERT INTO {t} (k, v) SELECT * FROM unnest($1::bytea[], $2::{array}) \
                 ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
            ),
            add_many: format!(
                "INSERT INTO {t} (k, v) SELECT * FROM unnest($1::bytea[], $2::bigint[]) \
                 ON CONFLICT (k) DO UPDATE SET v = {t}.v + EXCLUDED.v"
            ),
            delete_many: format!("DELETE FROM {t} WHERE k = ANY($1::bytea[])"),
            get: format!("SELECT v FROM {t} WHERE k = $1"),
            walk_from: format!("SELECT k, v FROM {t} WHERE k >= $1 ORDER BY k LIMIT $2"),
            walk_after: format!("SELECT k, v FROM {t} WHERE k > $1 ORDER BY k LIMIT $2"),
            floor: format!("SELECT k, v FROM {t} WHERE k <= $1 ORDER BY k DESC LIMIT 1"),
            back_from_end: format!("SELECT k, v FROM {t} ORDER BY k DESC LIMIT $1"),
            back_below: format!("SELECT k, v FROM {t} WHERE k < $1 ORDER BY k DESC LIMIT $2"),
            put: format!(
                "INSERT INTO {t} (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v"
            ),
            delete: format!("DELETE FROM {t} WHERE k = $1"),
            add,
        }
    }
}

/// The schema, created by `PgKv::migrate` (idempotent, under an advisory lock).
fn schema_ddl() -> String {
    let mut ddl = String::from(
        "CREATE TABLE IF NOT EXISTS glint_schema (version integer NOT NULL);
         CREATE SEQUENCE IF NOT EXISTS glint_group_blocks MINVALUE 0 START 0;
         CREATE OR REPLACE FUNCTION glint_add_slots(a bigint[], b bigint[]) RETURNS bigint[]
           LANGUAGE sql IMMUTABLE AS $$
             SELECT coalesce(array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i), '{}')
             FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i) $$;\n",
    );
    for fam in Family::all() {
        let v = match kind(fam) {
            Kind::Bytes => "bytea",
            Kind::Count => "bigint",
            Kind::Counts => "bigint[]",
        };
        ddl.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {} (k bytea PRIMARY KEY, v {v} NOT NULL);\n",
            table(fam)
        ));
    }
    ddl
}

/// A value as its family's column holds it.
enum Val {
    Bytes(Vec<u8>),
    Count(i64),
    Counts(Vec<i64>),
}

impl Val {
    fn from_bytes(fam: Family, v: &[u8]) -> Val {
        match kind(fam) {
            Kind::Bytes => Val::Bytes(v.to_vec()),
            Kind::Count => Val::Count(decode_count(v)),
            Kind::Counts => Val::Counts(decode_counts(v)),
        }
    }

    fn from_deltas(fam: Family, d: &[i64]) -> Val {
        match kind(fam) {
            Kind::Count => Val::Count(d.iter().sum()),
            _ => Val::Counts(d.to_vec()),
        }
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Val::Bytes(b) => b,
            Val::Count(n) => n,
            Val::Counts(v) => v,
        }
    }
}

/// Visits one page of `(key, value)` rows of a walk: the key to continue from when the page
/// was full and `visit` wants more, else `None` (the walk is over).
fn visit_page(
    fam: Family,
    rows: &[Row],
    page: i64,
    visit: &mut Visit<'_>,
) -> Result<Option<Vec<u8>>> {
    let mut last = None;
    for r in rows {
        let k: &[u8] = r.get(0);
        if !visit(k, &read_value(fam, r, 1))? {
            return Ok(None);
        }
        last = Some(k.to_vec());
    }
    Ok(last.filter(|_| rows.len() as i64 == page))
}

fn read_value(fam: Family, row: &Row, col: usize) -> Vec<u8> {
    match kind(fam) {
        Kind::Bytes => row.get(col),
        Kind::Count => encode_count(row.get::<_, i64>(col)).to_vec(),
        Kind::Counts => encode_counts(&row.get::<_, Vec<i64>>(col)),
    }
}

fn pg_error(e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    let code = e.code().cloned();
    let msg = match e.as_db_error() {
        Some(db) => format!("postgresql: {}", db.message()),
        None => format!("postgresql: {e}"),
    };
    StoreError::Catalog(match code {
        Some(c)
            if c == SqlState::T_R_SERIALIZATION_FAILURE
                || c == SqlState::T_R_DEADLOCK_DETECTED
                || c == SqlState::LOCK_NOT_AVAILABLE =>
        {
            CatalogError::conflict(msg)
        }
        Some(c) if c.code().starts_with("08") || c.code().starts_with("57P") => {
            CatalogError::unavailable(msg)
        }
        Some(_) => CatalogError::other(msg),
        // No SQL state: the connection broke or could not be made.
        None => CatalogError::unavailable(msg),
    })
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e),
        other => StoreError::Catalog(CatalogError::unavailable(format!(
            "postgresql pool: {other}"
        ))),
    }
}

/// The advisory-lock id of a key: 64 bits of BLAKE3 over family and key.
/// Lower-case hex, for a `'\x…'::bytea` literal in a simple query (never user text).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn lock_id(fam: Family, key: &[u8]) -> i64 {
    let mut h = blake3::Hasher::new();
    h.update(fam.name().as_bytes());
    h.update(&[0]);
    h.update(key);
    i64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

type Client = Arc<deadpool_postgres::Object>;

impl PgKv {
    /// Connects to `url` (`postgresql://user:pass@host:port/db`), creating or checking the
    /// tables in `schema`.
    pub(crate) fn open(url: &str, schema: &str) -> Result<PgKv> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Config(format!(
                "[database] connection is not a PostgreSQL URL: {e}"
            ))
        })?;
        if schema.is_empty()
            || !schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(StoreError::Config(format!(
                "catalog schema {schema:?}: lowercase letters, digits and _ only"
            )));
        }
        // Every connection of this store works in its schema; tables are named unqualified.
        config.options(format!("-c search_path={schema}"));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let bridge = Bridge::new("glint-pg")?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _in_rt = bridge.runtime().enter();
            Pool::builder(manager)
                .max_size(32)
                .wait_timeout(Some(Duration::from_millis(LOCK_TIMEOUT_MS as u64)))
                .create_timeout(Some(Duration::from_secs(5)))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Config(format!("postgresql pool: {e}")))?
        };
        let kv = PgKv {
            bridge,
            pool,
            sql: Family::all().map(|f| (f, Sql::new(f))).collect(),
        };
        kv.migrate(schema)?;
        Ok(kv)
    }

    /// Creates the tables this version uses (idempotent), refusing a schema a newer Glint
    /// wrote.
    pub(crate) fn migrate(&self, schema: &str) -> Result<()> {
        let client = self.client()?;
        let ddl = format!("CREATE SCHEMA IF NOT EXISTS {schema};\n{}", schema_ddl());
        self.run(async move {
            client
                .batch_execute("BEGIN; SELECT pg_advisory_xact_lock(7213560170347040323);")
                .await?;
            client.batch_execute(&ddl).await?;
            let have: Option<i32> = client
                .query_opt("SELECT max(version) FROM glint_schema", &[])
                .await?
                .and_then(|r| r.get(0));
            // Every version so far only adds tables, which the DDL above created.
            if have.is_none_or(|v| v < SCHEMA_VERSION) {
                client.execute("DELETE FROM glint_schema", &[]).await?;
                client
                    .execute(
                        "INSERT INTO glint_schema (version) VALUES ($1)",
                        &[&SCHEMA_VERSION],
                    )
                    .await?;
            }
            client.batch_execute("COMMIT").await?;
            Ok(have)
        })
        .and_then(|have| match have {
            Some(v) if v > SCHEMA_VERSION => Err(StoreError::Config(format!(
                "the PostgreSQL catalog has schema version {v}; this Glint knows up to {SCHEMA_VERSION}"
            ))),
            _ => Ok(()),
        })
    }

    fn run<T, F>(&self, fut: F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        self.bridge.wait(fut)?.map_err(pg_error)
    }

    fn client(&self) -> Result<Client> {
        let pool = self.pool.clone();
        self.bridge
            .wait(async move { pool.get().await })?
            .map(Arc::new)
            .map_err(pool_error)
    }

    fn query(&self, c: &Client, sql: &str, params: Params) -> Result<Vec<Row>> {
        let (c, sql) = (c.clone(), sql.to_string());
        self.run(async move {
            let st = c.prepare_cached(&sql).await?;
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.param()).collect();
            c.query(&st, &refs).await
        })
    }

    fn execute(&self, c: &Client, sql: &str, params: Params) -> Result<u64> {
        let (c, sql) = (c.clone(), sql.to_string());
        self.run(async move {
            let st = c.prepare_cached(&sql).await?;
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.param()).collect();
            c.execute(&st, &refs).await
        })
    }

    fn sql(&self, fam: Family) -> &Sql {
        &self.sql[&fam]
    }

    fn get_on(&self, c: &Client, fam: Family, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let rows = self.query(c, &self.sql(fam).get, vec![P::Bytes(key.to_vec())])?;
        Ok(rows.first().map(|r| read_value(fam, r, 0)))
    }

    fn walk_on(&self, c: &Client, fam: Family, from: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        let mut from = from.to_vec();
        let mut first = true;
        // Most walks stop after a few rows (a blob's manifest, a prefix): a first page of
        // 512 rows would ship the following keys' values too (a 4 KiB GET once fetched 2 MiB
        // of other blobs' inline manifests). Pages grow to `WALK_PAGE` as a walk goes on.
        let mut page = FIRST_WALK_PAGE;
        loop {
            let sql = if first {
                &self.sql(fam).walk_from
            } else {
                &self.sql(fam).walk_after
            };
            let rows = self.query(c, sql, vec![P::Bytes(from), P::Int(page)])?;
            match visit_page(fam, &rows, page, visit)? {
                Some(k) => {
                    from = k;
                    first = false;
                    page = (page * 8).min(WALK_PAGE);
                }
                None => return Ok(()),
            }
        }
    }

    /// Like `walk_on`, backwards from below `below`, in pages that grow the same way.
    fn walk_back_on(
        &self,
        c: &Client,
        fam: Family,
        below: Option<&[u8]>,
        visit: &mut Visit<'_>,
    ) -> Result<()> {
        let mut below = below.map(<[u8]>::to_vec);
        let mut page = FIRST_WALK_PAGE;
        loop {
            let rows = match &below {
                None => self.query(c, &self.sql(fam).back_from_end, vec![P::Int(page)])?,
                Some(b) => self.query(
                    c,
                    &self.sql(fam).back_below,
                    vec![P::Bytes(b.clone()), P::Int(page)],
                )?,
            };
            match visit_page(fam, &rows, page, visit)? {
                Some(k) => {
                    below = Some(k);
                    page = (page * 8).min(WALK_PAGE);
                }
                None => return Ok(()),
            }
        }
    }

    fn floor_on(&self, c: &Client, fam: Family, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let rows = self.query(c, &self.sql(fam).floor, vec![P::Bytes(key.to_vec())])?;
        Ok(rows
            .first()
            .map(|r| (r.get::<_, Vec<u8>>(0), read_value(fam, r, 1))))
    }

    fn apply_on(&self, c: &Client, op: &Op) -> Result<()> {
        match op {
            Op::Put(f, k, v) => self.execute(
                c,
                &self.sql(*f).put,
                vec![P::Bytes(k.clone()), P::Val(Val::from_bytes(*f, v))],
            ),
            Op::Delete(f, k) => self.execute(c, &self.sql(*f).delete, vec![P::Bytes(k.clone())]),
            Op::Add(f, k, d) => self.execute(
                c,
                &self.sql(*f).add,
                vec![P::Bytes(k.clone()), P::Val(Val::from_deltas(*f, d))],
            ),
        }
        .map(drop)
    }

    /// Applies `ops` in order, each run of consecutive ops of one kind on one family as a
    /// single statement where the family's value kind allows (a key repeated in a run is
    /// folded first: the last put, the sum of adds), so an ingest's index entries or a
    /// manifest's segments cost one round trip, not one each.
    fn apply_all(&self, c: &Client, ops: &[Op]) -> Result<()> {
        let mut i = 0;
        while i < ops.len() {
            let same = |a: &Op, b: &Op| match (a, b) {
                (Op::Put(f, ..), Op::Put(g, ..)) => f == g,
                (Op::Delete(f, _), Op::Delete(g, _)) => f == g,
                (Op::Add(f, ..), Op::Add(g, ..)) => f == g,
                _ => false,
            };
            let mut j = i + 1;
            while j < ops.len() && same(&ops[i], &ops[j]) {
                j += 1;
            }
            self.apply_run(c, &ops[i..j])?;
            i = j;
        }
        Ok(())
    }

    fn apply_run(&self, c: &Client, run: &[Op]) -> Result<()> {
        let first = &run[0];
        let fam = match first {
            Op::Put(f, ..) | Op::Delete(f, _) | Op::Add(f, ..) => *f,
        };
        let batchable = run.len() > 1
            && match first {
                Op::Delete(..) => true,
                Op::Put(..) => kind(fam) != Kind::Counts,
                Op::Add(..) => kind(fam) == Kind::Count,
            };
        if !batchable {
            return run.iter().try_for_each(|op| self.apply_on(c, op));
        }
        let sql = self.sql(fam);
        match first {
            Op::Delete(..) => {
                let keys: Vec<Vec<u8>> = run
                    .iter()
                    .filter_map(|op| match op {
                        Op::Delete(_, k) => Some(k.clone()),
                        _ => None,
                    })
                    .collect();
                self.execute(c, &sql.delete_many, vec![P::ByteArrays(keys)])?;
            }
            Op::Put(..) => {
                let mut last: std::collections::BTreeMap<&[u8], &[u8]> = Default::default();
                for op in run {
                    if let Op::Put(_, k, v) = op {
                        last.insert(k, v);
                    }
                }
                let keys: Vec<Vec<u8>> = last.keys().map(|k| k.to_vec()).collect();
                let values = match kind(fam) {
                    Kind::Bytes => P::ByteArrays(last.values().map(|v| v.to_vec()).collect()),
                    _ => P::Ints(last.values().map(|v| decode_count(v)).collect()),
                };
                self.execute(c, &sql.put_many, vec![P::ByteArrays(keys), values])?;
            }
            Op::Add(..) => {
                let mut sums: std::collections::BTreeMap<&[u8], i64> = Default::default();
                for op in run {
                    if let Op::Add(_, k, d) = op {
                        *sums.entry(k).or_default() += d.iter().sum::<i64>();
                    }
                }
                let keys: Vec<Vec<u8>> = sums.keys().map(|k| k.to_vec()).collect();
                let deltas: Vec<i64> = sums.values().copied().collect();
                self.execute(c, &sql.add_many, vec![P::ByteArrays(keys), P::Ints(deltas)])?;
            }
        }
        Ok(())
    }

    fn begin_on(&self, read_only_snapshot: bool) -> Result<Client> {
        self.begin_with(read_only_snapshot, false)
    }

    /// `volatile`: the commit returns before its WAL is flushed (visible at once, durable
    /// a moment later; lost only if PostgreSQL itself crashes).
    fn begin_with(&self, read_only_snapshot: bool, volatile: bool) -> Result<Client> {
        let c = self.client()?;
        let begin = if read_only_snapshot {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".to_string()
        } else if volatile {
            format!(
                "BEGIN; SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}; \
                 SET LOCAL synchronous_commit = off"
            )
        } else {
            format!("BEGIN; SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
        };
        let c2 = c.clone();
        self.run(async move { c2.batch_execute(&begin).await })?;
        Ok(c)
    }

    /// Runs a multi-statement string (simple query protocol: one round trip) and returns
    /// the first column of every row it produced. On an error the connection's transaction
    /// is rolled back, so it goes back to the pool clean.
    fn simple(&self, sql: &str) -> Result<Vec<String>> {
        let c = self.client()?;
        let (c2, sql) = (c.clone(), sql.to_string());
        match self.run(async move { c2.simple_query(&sql).await }) {
            Ok(msgs) => Ok(msgs
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                    _ => None,
                })
                .collect()),
            Err(e) => {
                self.rollback(&c);
                Err(e)
            }
        }
    }

    fn rollback(&self, c: &Client) {
        let c = c.clone();
        if let Err(e) = self.run(async move { c.batch_execute("ROLLBACK").await }) {
            tracing::debug!(error = %e, "rollback failed (the connection is discarded)");
        }
    }
}

/// A statement parameter, owned so the statement can run on the catalog's runtime.
enum P {
    Bytes(Vec<u8>),
    Int(i64),
    Val(Val),
    ByteArrays(Vec<Vec<u8>>),
    Ints(Vec<i64>),
}

impl P {
    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            P::Bytes(b) => b,
            P::Int(n) => n,
            P::Val(v) => v.param(),
            P::ByteArrays(v) => v,
            P::Ints(v) => v,
        }
    }
}

type Params = Vec<P>;

impl KvRead for PgKv {
    fn get(&self, fam: Family, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let c = self.client()?;
        self.get_on(&c, fam, key)
    }

    fn walk(&self, fam: Family, from: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        let c = self.client()?;
        self.walk_on(&c, fam, from, visit)
    }

    fn floor(&self, fam: Family, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let c = self.client()?;
        self.floor_on(&c, fam, key)
    }

    fn walk_back(&self, fam: Family, below: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<()> {
        let c = self.client()?;
        self.walk_back_on(&c, fam, below, visit)
    }
}

impl Kv for PgKv {
    fn begin(&self) -> Result<Box<dyn KvTxn + '_>> {
        Ok(Box::new(PgTxn {
            kv: self,
            c: Some(self.begin_on(false)?),
            pending: Default::default(),
        }))
    }

    fn begin_volatile(&self) -> Result<Box<dyn KvTxn + '_>> {
        Ok(Box::new(PgTxn {
            kv: self,
            c: Some(self.begin_with(false, true)?),
            pending: Default::default(),
        }))
    }

    fn snapshot(&self) -> Result<Box<dyn KvRead + '_>> {
        Ok(Box::new(PgTxn {
            kv: self,
            c: Some(self.begin_on(true)?),
            pending: Default::default(),
        }))
    }

    fn write(&self, ops: &[Op], sync: bool) -> Result<()> {
        let c = self.begin_with(false, !sync)?;
        let mut txn = PgTxn {
            kv: self,
            c: Some(c),
            pending: Default::default(),
        };
        self.apply_all(txn.client(), ops)?;
        txn.finish()
    }

    fn shared(&self) -> bool {
        true
    }

    /// The whole lease in one simple-query round trip. Each statement of it takes a fresh
    /// snapshot (READ COMMITTED), so the existence checks run after the lock is granted,
    /// as in the generic version.
    fn take_lease(&self, blob: &[u8], row: &[u8]) -> Result<Option<Vec<u8>>> {
        let (lock, blob, row) = (lock_id(Family::Blobs, blob), hex(blob), hex(row));
        let sql = format!(
            "BEGIN; SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}; SET LOCAL synchronous_commit = off; \
             SELECT pg_advisory_xact_lock_shared({lock}); \
             INSERT INTO {leases} (k, v) SELECT '\\x{row}'::bytea, ''::bytea \
               WHERE EXISTS (SELECT 1 FROM {blobs} WHERE k = '\\x{blob}'::bytea) \
               AND NOT EXISTS (SELECT 1 FROM {doomed} WHERE k = '\\x{blob}'::bytea) \
               ON CONFLICT (k) DO NOTHING \
               RETURNING 'taken:' || encode((SELECT v FROM {blobs} WHERE k = '\\x{blob}'::bytea), 'hex'); \
             COMMIT;",
            leases = table(Family::Leases),
            blobs = table(Family::Blobs),
            doomed = table(Family::Doomed),
        );
        self.simple(&sql)?
            .iter()
            .find_map(|v| v.strip_prefix("taken:"))
            .map(|h| hex::decode(h).map_err(|_| StoreError::Malformed("hex from PostgreSQL")))
            .transpose()
    }

    fn drop_lease(&self, blob: &[u8], row: &[u8]) -> Result<bool> {
        let sql = format!(
            "BEGIN; SET LOCAL synchronous_commit = off; \
             DELETE FROM {leases} WHERE k = '\\x{row}'::bytea; COMMIT; \
             SELECT 'doomed' FROM {doomed} WHERE k = '\\x{blob}'::bytea;",
            leases = table(Family::Leases),
            doomed = table(Family::Doomed),
            row = hex(row),
            blob = hex(blob),
        );
        Ok(self.simple(&sql)?.iter().any(|v| v == "doomed"))
    }

    fn batches_reads(&self) -> bool {
        true
    }

    fn get_many(
        &self,
        fam: Family,
        keys: &[Vec<u8>],
    ) -> Result<std::collections::HashMap<Vec<u8>, Vec<u8>>> {
        if keys.is_empty() {
            return Ok(Default::default());
        }
        let c = self.client()?;
        let sql = format!("SELECT k, v FROM {} WHERE k = ANY($1::bytea[])", table(fam));
        let rows = self.query(&c, &sql, vec![P::ByteArrays(keys.to_vec())])?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, Vec<u8>>(0), read_value(fam, r, 1)))
            .collect())
    }

    fn group_block(&self) -> Result<Option<std::ops::Range<u64>>> {
        let c = self.client()?;
        let rows =
            self.run(async move { c.query("SELECT nextval('glint_group_blocks')", &[]).await })?;
        let n = rows.first().map_or(0, |r| r.get::<_, i64>(0)).max(0) as u64;
        Ok(Some(n * GROUP_BLOCK..(n + 1) * GROUP_BLOCK))
    }

    /// A session-level advisory lock on a connection of its own, kept out of the pool while
    /// held: the lock lives exactly as long as that session, so a node that dies frees it.
    fn singleton(&self, name: &str) -> Result<Option<super::Singleton>> {
        let c = self.client()?;
        let id = lock_id(Family::Meta, name.as_bytes());
        let c2 = c.clone();
        let rows =
            self.run(async move { c2.query("SELECT pg_try_advisory_lock($1)", &[&id]).await })?;
        if !rows.first().is_some_and(|r| r.get::<_, bool>(0)) {
            return Ok(None);
        }
        Ok(Some(super::Singleton {
            held: Some(Box::new(HeldLock {
                c,
                id,
                handle: self.bridge.runtime().handle().clone(),
            })),
        }))
    }

    fn stored_bytes(&self, _flush: bool) -> Result<u64> {
        let c = self.client()?;
        let tables: Vec<String> = Family::all().map(table).collect();
        let rows = self.run(async move {
            c.query(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                 FROM pg_class c WHERE c.relname = ANY($1) AND c.relkind = 'r'",
                &[&tables],
            )
            .await
        })?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)).max(0) as u64)
    }
}

/// A session advisory lock, unlocked when dropped.
struct HeldLock {
    c: Client,
    id: i64,
    handle: tokio::runtime::Handle,
}

impl super::Held for HeldLock {
    fn alive(&self) -> bool {
        !self.c.is_closed()
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let (c, id) = (self.c.clone(), self.id);
        // The connection goes back to the pool only after the unlock; if the unlock fails,
        // the broken connection is discarded and its session's locks die with it. The drop
        // waits (briefly) for the unlock, so the lock is free once the guard is gone.
        let (done, unlocked) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            if let Err(e) = c.query("SELECT pg_advisory_unlock($1)", &[&id]).await {
                tracing::warn!(error = %e, "releasing a catalog lock failed");
            }
            let _ = done.send(());
        });
        let _ = unlocked.recv_timeout(Duration::from_secs(5));
    }
}

/// A transaction (or, read-only at REPEATABLE READ, a snapshot) on one pooled connection.
struct PgTxn<'a> {
    kv: &'a PgKv,
    /// `None` once committed.
    c: Option<Client>,
    /// Writes not yet sent: sent together before the next read and at commit, so a
    /// transaction's many small writes cost a few round trips.
    pending: std::cell::RefCell<Vec<Op>>,
}

impl PgTxn<'_> {
    fn client(&self) -> &Client {
        self.c.as_ref().expect("transaction is open")
    }

    /// Sends the buffered writes (before a read, which must see them, and at commit).
    fn flush(&self) -> Result<()> {
        let ops = std::mem::take(&mut *self.pending.borrow_mut());
        if ops.is_empty() {
            return Ok(());
        }
        self.kv.apply_all(self.client(), &ops)
    }

    fn finish(&mut self) -> Result<()> {
        self.flush()?;
        let c = self.c.take().expect("transaction is open");
        let c2 = c.clone();
        match self.kv.run(async move { c2.batch_execute("COMMIT").await }) {
            Ok(()) => Ok(()),
            Err(e) => {
                // The outcome of a COMMIT whose answer was lost is unknown; the connection
                // is dropped (and discarded by the pool) either way.
                self.kv.rollback(&c);
                Err(e)
            }
        }
    }
}

impl Drop for PgTxn<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.c.take() {
            self.kv.rollback(&c);
        }
    }
}

impl KvRead for PgTxn<'_> {
    fn get(&self, fam: Family, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.flush()?;
        self.kv.get_on(self.client(), fam, key)
    }

    fn walk(&self, fam: Family, from: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        self.flush()?;
        self.kv.walk_on(self.client(), fam, from, visit)
    }

    fn floor(&self, fam: Family, key: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.flush()?;
        self.kv.floor_on(self.client(), fam, key)
    }

    fn walk_back(&self, fam: Family, below: Option<&[u8]>, visit: &mut Visit<'_>) -> Result<()> {
        self.flush()?;
        self.kv.walk_back_on(self.client(), fam, below, visit)
    }
}

impl KvTxn for PgTxn<'_> {
    fn get_locked(&self, fam: Family, key: &[u8], exclusive: bool) -> Result<Option<Vec<u8>>> {
        let lock = if exclusive {
            "SELECT pg_advisory_xact_lock($1)"
        } else {
            "SELECT pg_advisory_xact_lock_shared($1)"
        };
        self.kv
            .query(self.client(), lock, vec![P::Int(lock_id(fam, key))])?;
        self.get(fam, key)
    }

    fn lock_many(&self, fam: Family, keys: &[Vec<u8>], exclusive: bool) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // Sorted and deduplicated: every multi-key locker takes its locks in the same order.
        let mut ids: Vec<i64> = keys.iter().map(|k| lock_id(fam, k)).collect();
        ids.sort_unstable();
        ids.dedup();
        let lock = if exclusive {
            "SELECT count(pg_advisory_xact_lock(x)) FROM unnest($1::bigint[]) AS t(x)"
        } else {
            "SELECT count(pg_advisory_xact_lock_shared(x)) FROM unnest($1::bigint[]) AS t(x)"
        };
        self.kv.query(self.client(), lock, vec![P::Ints(ids)])?;
        Ok(())
    }

    fn put(&self, fam: Family, key: &[u8], value: &[u8]) -> Result<()> {
        self.pending
            .borrow_mut()
            .push(Op::Put(fam, key.to_vec(), value.to_vec()));
        Ok(())
    }

    fn delete(&self, fam: Family, key: &[u8]) -> Result<()> {
        self.pending
            .borrow_mut()
            .push(Op::Delete(fam, key.to_vec()));
        Ok(())
    }

    fn add(&self, fam: Family, key: &[u8], deltas: &[i64]) -> Result<()> {
        self.pending
            .borrow_mut()
            .push(Op::Add(fam, key.to_vec(), deltas.to_vec()));
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.finish()
    }
}

/// These run against a real PostgreSQL named by `GLINT_TEST_CATALOG_URL` (scripts/test.sh
/// starts one); without it they say so and pass.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::kv::RocksKv;
    use rand::{Rng, SeedableRng};

    fn fresh() -> Option<PgKv> {
        let Ok(admin) = std::env::var("GLINT_TEST_CATALOG_URL") else {
            eprintln!("GLINT_TEST_CATALOG_URL is not set: PostgreSQL catalog test skipped");
            return None;
        };
        let db = format!("u_{:016x}", rand::random::<u64>());
        let out = std::process::Command::new("psql")
            .args([&admin, "-q", "-c", &format!("CREATE DATABASE {db}")])
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Some(PgKv::open(&format!("{base}/{db}"), "glint").unwrap())
    }

    fn all(read: &dyn KvRead, fam: Family) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        read.walk(fam, &[], &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })
        .unwrap();
        out
    }

    /// The same random changes through RocksDB and PostgreSQL read back the same: values,
    /// key order (bytes, shorter first), walks across pages, floors, counters.
    #[test]
    fn answers_as_rocksdb_does() {
        let Some(pg) = fresh() else { return };
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksKv::open(dir.path()).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let fams = [
            Family::Front(Catalog::Objects),
            Family::Chunks,
            Family::GroupRefs,
        ];
        let key = |rng: &mut rand::rngs::StdRng| -> Vec<u8> {
            // Short keys over a small alphabet with 0x00 and 0xff: prefixes, ties and
            // extremes of byte order all happen.
            let len = rng.gen_range(0..4);
            (0..len)
                .map(|_| [0u8, 1, 0x7f, 0x80, 0xff][rng.gen_range(0..5)])
                .collect()
        };
        for round in 0..60 {
            let mut ops = Vec::new();
            for _ in 0..40 {
                let fam = fams[rng.gen_range(0..3)];
                let k = key(&mut rng);
                ops.push(match (fam, rng.gen_range(0..4)) {
                    (_, 0) => Op::Delete(fam, k),
                    (Family::Chunks, _) => Op::Add(fam, k, vec![rng.gen_range(-3..4)]),
                    (Family::GroupRefs, _) => Op::Add(
                        fam,
                        k,
                        (0..rng.gen_range(1..5))
                            .map(|_| rng.gen_range(-2..3))
                            .collect(),
                    ),
                    _ => Op::Put(fam, k, vec![rng.gen(); rng.gen_range(0..3)]),
                });
            }
            // Half the rounds through a transaction, half as a batch.
            if round % 2 == 0 {
                for kv in [&pg as &dyn Kv, &rocks] {
                    let t = kv.begin().unwrap();
                    for op in &ops {
                        match op {
                            Op::Put(f, k, v) => t.put(*f, k, v).unwrap(),
                            Op::Delete(f, k) => t.delete(*f, k).unwrap(),
                            Op::Add(f, k, d) => t.add(*f, k, d).unwrap(),
                        }
                    }
                    t.commit().unwrap();
                }
            } else {
                pg.write(&ops, true).unwrap();
                rocks.write(&ops, true).unwrap();
            }
            for fam in fams {
                assert_eq!(all(&pg, fam), all(&rocks, fam), "round {round} {fam:?}");
                let probe = key(&mut rng);
                assert_eq!(
                    pg.floor(fam, &probe).unwrap(),
                    rocks.floor(fam, &probe).unwrap(),
                    "floor {probe:?}"
                );
                assert_eq!(
                    crate::kv::scan(&pg, fam, &probe[..probe.len().min(1)], None, 5).unwrap(),
                    crate::kv::scan(&rocks, fam, &probe[..probe.len().min(1)], None, 5).unwrap()
                );
            }
        }
        // Walks longer than a page.
        let many: Vec<Op> = (0..1300u32)
            .map(|i| Op::Put(Family::Blobs, i.to_be_bytes().to_vec(), vec![1]))
            .collect();
        pg.write(&many, false).unwrap();
        rocks.write(&many, false).unwrap();
        assert_eq!(all(&pg, Family::Blobs), all(&rocks, Family::Blobs));
        assert_eq!(all(&pg, Family::Blobs).len(), 1300);
    }

    /// Locks on keys that do not exist yet serialize their read-modify-writes, as RocksDB's
    /// do: no update is lost, on any connection.
    #[test]
    fn locks_on_missing_keys_serialize_writers() {
        let Some(pg) = fresh() else { return };
        let pg = Arc::new(pg);
        let fam = Family::Front(Catalog::Objects);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let pg = pg.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        loop {
                            let t = pg.begin().unwrap();
                            let r = t.get_locked(fam, b"new", true).and_then(|v| {
                                let n = v.map_or(0, |v| decode_count(&v));
                                t.put(fam, b"new", &encode_count(n + 1))?;
                                t.add(Family::Chunks, b"c", &[1])
                            });
                            match r.and_then(|()| t.commit()) {
                                Ok(()) => break,
                                Err(StoreError::Catalog(e))
                                    if e.kind == crate::error::CatalogErrorKind::Conflict => {}
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = pg.get(fam, b"new").unwrap().map(|v| decode_count(&v));
        assert_eq!(n, Some(100));
        let c = pg
            .get(Family::Chunks, b"c")
            .unwrap()
            .map(|v| decode_count(&v));
        assert_eq!(c, Some(100));
    }

    /// A snapshot does not see what commits after it was taken.
    #[test]
    fn snapshots_are_stable() {
        let Some(pg) = fresh() else { return };
        pg.write(
            &[Op::Put(Family::Blobs, b"a".to_vec(), b"1".to_vec())],
            true,
        )
        .unwrap();
        let snap = pg.snapshot().unwrap();
        assert_eq!(
            snap.get(Family::Blobs, b"a").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        pg.write(
            &[Op::Put(Family::Blobs, b"a".to_vec(), b"2".to_vec())],
            true,
        )
        .unwrap();
        assert_eq!(
            snap.get(Family::Blobs, b"a").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        drop(snap);
        assert_eq!(
            pg.get(Family::Blobs, b"a").unwrap().as_deref(),
            Some(&b"2"[..])
        );
    }
}
