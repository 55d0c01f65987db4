//! Multipart uploads. Each part is its own blob; completing the upload concatenates the part
//! manifests into the object's blob in one transaction (no byte is copied) and drops the part
//! blobs, so the chunks simply change owner. UploadPartCopy clones a range of an object.

use std::collections::BTreeMap;

use crate::request_body::RequestBody;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures::StreamExt;
use glint_storage::{BlobId, Catalog, StoreError};
use http::{Response, StatusCode};
use md5::Digest as _;
use serde::{Deserialize, Serialize};

use super::acl;
use super::authz::Authorized;
use super::error::S3Error;
use super::object::{copy_preconditions, stage_body, CHECKSUM_ALGOS};
use super::records::{iso8601, now_ms, object_key, ObjectRecord};
use super::{read_complete_document, requested_acl, xml, xml_response, Ctx, S3Result, S3};
use crate::body;

/// Smallest part S3 accepts (all but the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;
const MAX_PART_NUMBER: u32 = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UploadRecord {
    pub initiated_ms: i64,
    /// The completed object's owner: the initiator's project, or the bucket owner's for an
    /// anonymous initiator.
    pub owner: String,
    /// Whether an anonymous caller initiated the upload (then anonymous callers continue
    /// it; otherwise the project `owner`).
    #[serde(default)]
    pub anonymous: bool,
    pub acl: String,
    /// `x-amz-grant-*` of the CreateMultipartUpload, for the completed object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<acl::Grant>,
    pub headers: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    /// Checksum algorithm declared at creation (lower case), if any.
    pub checksum: Option<String>,
    /// COMPOSITE (checksum of the part checksums) or FULL_OBJECT (CRC of all the bytes).
    #[serde(default)]
    pub checksum_type: Option<String>,
}

impl UploadRecord {
    /// Whether `caller` is the upload's initiator.
    pub fn initiated_by(&self, caller: &acl::Caller) -> bool {
        if self.anonymous {
            caller.project.is_none()
        } else {
            caller.project.as_deref() == Some(self.owner.as_str())
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PartRecord {
    pub blob: String,
    pub size: u64,
    pub etag: String,
    pub modified_ms: i64,
    pub checksum: Option<(String, String)>,
}

fn upload_key(bucket: &str, key: &str, upload: &str) -> Vec<u8> {
    let mut k = object_key(bucket, key);
    k.push(0);
    k.extend_from_slice(upload.as_bytes());
    k
}

fn part_key(upload: &str, n: u32) -> Vec<u8> {
    let mut k = upload.as_bytes().to_vec();
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn names(ctx: &Ctx) -> (&str, &str) {
    (
        ctx.bucket.as_deref().unwrap_or_default(),
        ctx.key.as_deref().unwrap_or_default(),
    )
}

fn upload_id(ctx: &Ctx) -> Result<String, S3Error> {
    ctx.q("uploadId")
        .filter(|u| u.len() == 32 && u.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
        .ok_or_else(S3Error::no_such_upload)
}

fn part_number(ctx: &Ctx) -> Result<u32, S3Error> {
    ctx.q("partNumber")
        .and_then(|p| p.parse().ok())
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument()
                .with_message("Part number must be an integer between 1 and 10000, inclusive")
        })
}

fn bad_record() -> StoreError {
    StoreError::Malformed("multipart record")
}

fn blob(s: &str) -> Result<BlobId, StoreError> {
    s.parse().map_err(|_| bad_record())
}

/// The upload named by the request's `uploadId`, if it exists (for authorization).
pub async fn load_upload(s3: &S3, ctx: &Ctx) -> Result<Option<UploadRecord>, S3Error> {
    let (bucket, key) = names(ctx);
    let upload = upload_id(ctx)?;
    s3.store
        .get(Catalog::Uploads, upload_key(bucket, key, &upload))
        .await?
        .map(|v| serde_json::from_slice(&v).map_err(|_| S3Error::internal()))
        .transpose()
}

/// The upload authorization found (parts, copies, abort and listing need one).
fn the_upload(az: &Authorized) -> Result<&UploadRecord, S3Error> {
    az.upload.as_ref().ok_or_else(S3Error::no_such_upload)
}

pub async fn create(s3: &S3, ctx: &Ctx, az: &Authorized) -> S3Result {
    let (bucket, key) = names(ctx);
    let brec = az.bucket();
    let checksum = ctx
        .header("x-amz-checksum-algorithm")
        .map(str::to_ascii_lowercase);
    if let Some(c) = &checksum {
        if !CHECKSUM_ALGOS.contains(&c.as_str()) {
            return Err(S3Error::invalid_request()
                .with_message("Checksum algorithm provided is unsupported."));
        }
    }
    let checksum_type = match (
        checksum.as_deref(),
        ctx.header("x-amz-checksum-type")
            .map(str::to_ascii_uppercase),
    ) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(S3Error::invalid_request()
                .with_message("x-amz-checksum-type requires x-amz-checksum-algorithm"))
        }
        (Some("crc64nvme"), None) => Some("FULL_OBJECT".to_string()),
        (Some(_), None) => Some("COMPOSITE".to_string()),
        (Some(a), Some(t)) => {
            let ok = match t.as_str() {
                "COMPOSITE" => a != "crc64nvme",
                "FULL_OBJECT" => matches!(a, "crc32" | "crc32c" | "crc64nvme"),
                _ => false,
            };
            if !ok {
                return Err(S3Error::invalid_request().with_message(format!(
                    "The {t} checksum type cannot be used with the {a} checksum algorithm."
                )));
            }
            Some(t)
        }
    };
    let (headers, meta) = super::object::collect_metadata(ctx);
    let rec = UploadRecord {
        initiated_ms: now_ms(),
        owner: ctx.project().unwrap_or(&brec.owner).to_string(),
        anonymous: ctx.identity.is_none(),
        acl: requested_acl(ctx)?,
        grants: acl::header_grants(ctx)?.unwrap_or_default(),
        headers,
        meta,
        checksum: checksum.clone(),
        checksum_type: checksum_type.clone(),
    };
    let id = format!("{:032x}", rand::random::<u128>());
    let (k, v) = (
        upload_key(bucket, key, &id),
        serde_json::to_vec(&rec).expect("serializable"),
    );
    s3.store
        .transact(move |tx| tx.put(Catalog::Uploads, &k, &v))
        .await?;
    let mut w = xml::Writer::new();
    w.open("InitiateMultipartUploadResult");
    w.elem("Bucket", bucket);
    w.elem("Key", key);
    w.elem("UploadId", &id);
    w.close("InitiateMultipartUploadResult");
    let mut resp = xml_response(StatusCode::OK, w.finish())?;
    if let Some(c) = checksum {
        if let Ok(v) = c.to_ascii_uppercase().parse() {
            resp.headers_mut().insert("x-amz-checksum-algorithm", v);
        }
    }
    if let Some(t) = checksum_type.and_then(|t| t.parse().ok()) {
        resp.headers_mut().insert("x-amz-checksum-type", t);
    }
    Ok(resp)
}

/// Stores a part record (replacing an earlier upload of the same number) with its blob.
async fn commit_part(
    s3: &S3,
    ctx: &Ctx,
    upload: &str,
    n: u32,
    part: PartRecord,
    attach: impl FnMut(&mut glint_storage::Tx<'_>) -> glint_storage::Result<()> + Send + 'static,
) -> Result<(), S3Error> {
    let (bucket, key) = names(ctx);
    let (ukey, pkey) = (upload_key(bucket, key, upload), part_key(upload, n));
    let value = serde_json::to_vec(&part).expect("serializable");
    let mut attach = attach;
    s3.store
        .transact(move |tx| {
            if tx.get_shared(Catalog::Uploads, &ukey)?.is_none() {
                return Ok(Err(S3Error::no_such_upload()));
            }
            let old = tx.get_for_update(Catalog::Parts, &pkey)?;
            attach(tx)?;
            tx.put(Catalog::Parts, &pkey, &value)?;
            if let Some(old) = old {
                let old: PartRecord = serde_json::from_slice(&old).map_err(|_| bad_record())?;
                tx.delete_blob(blob(&old.blob)?)?;
            }
            Ok(Ok(()))
        })
        .await?
}

pub async fn upload_part(s3: &S3, ctx: &Ctx, az: &Authorized, incoming: RequestBody) -> S3Result {
    let upload = upload_id(ctx)?;
    let n = part_number(ctx)?;
    let urec = the_upload(az)?;
    let checksum =
        super::object::requested_checksum(ctx)?.or(urec.checksum.clone().map(|c| (c, None)));
    let (staged, stored) = stage_body(s3, ctx, incoming, &checksum).await?;
    let etag = format!(
        "\"{}\"",
        hex::encode(staged.digests().md5.unwrap_or_default())
    );
    let part = PartRecord {
        blob: staged.id().to_hex(),
        size: staged.size(),
        etag: etag.clone(),
        modified_ms: now_ms(),
        checksum: stored.clone(),
    };
    commit_part(s3, ctx, &upload, n, part, move |tx| {
        tx.add_blob(&staged).map(|_| ())
    })
    .await?;
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header("etag", etag);
    if let Some((algo, v)) = stored {
        resp = resp.header(format!("x-amz-checksum-{algo}"), v);
    }
    Ok(resp.body(body::empty()).expect("valid"))
}

pub async fn upload_part_copy(s3: &S3, ctx: &Ctx, az: &Authorized) -> S3Result {
    let upload = upload_id(ctx)?;
    let n = part_number(ctx)?;
    the_upload(az)?;
    let (sbucket, skey, src) = az.source.as_ref().ok_or_else(S3Error::internal)?;
    copy_preconditions(ctx, src)?;
    let range = match ctx.header("x-amz-copy-source-range") {
        None => 0..src.size,
        Some(r) => {
            let spec = r
                .trim()
                .strip_prefix("bytes=")
                .ok_or_else(S3Error::invalid_range)?;
            let (a, b) = spec.split_once('-').ok_or_else(S3Error::invalid_range)?;
            let (a, b): (u64, u64) = (
                a.parse().map_err(|_| S3Error::invalid_range())?,
                b.parse().map_err(|_| S3Error::invalid_range())?,
            );
            if a > b || b >= src.size {
                return Err(S3Error::invalid_range());
            }
            a..b + 1
        }
    };
    let src_blob = blob(&src.blob)?;
    // The part's ETag is the MD5 of its bytes: read them once (no write, no copy kept).
    let (_, mut reader) = s3.store.read(src_blob, Some(range.clone())).await?;
    let mut md5 = md5::Md5::new();
    while let Some(b) = reader.next().await {
        md5.update(&b?);
    }
    let etag = format!("\"{}\"", hex::encode(md5.finalize()));
    let modified = now_ms();
    let (skey_full, src_etag) = (object_key(sbucket, skey), src.etag.clone());
    let size = range.end - range.start;
    // The part record needs the clone's id, made inside the transaction: build it there.
    let (bucket, key) = names(ctx);
    let (ukey, pkey) = (upload_key(bucket, key, &upload), part_key(&upload, n));
    let etag2 = etag.clone();
    s3.store
        .transact(move |tx| {
            if tx.get_shared(Catalog::Uploads, &ukey)?.is_none() {
                return Ok(Err(S3Error::no_such_upload()));
            }
            let Some(sv) = tx.get_shared(Catalog::Objects, &skey_full)? else {
                return Ok(Err(S3Error::no_such_key()));
            };
            let srec: ObjectRecord = serde_json::from_slice(&sv).map_err(|_| bad_record())?;
            if srec.etag != src_etag {
                return Ok(Err(S3Error::precondition_failed()
                    .with_message("the source changed during the copy")));
            }
            let id = tx.concat(&[(blob(&srec.blob)?, Some(range.clone()))])?;
            let old = tx.get_for_update(Catalog::Parts, &pkey)?;
            let part = PartRecord {
                blob: id.to_hex(),
                size,
                etag: etag2.clone(),
                modified_ms: modified,
                checksum: None,
            };
            tx.put(
                Catalog::Parts,
                &pkey,
                &serde_json::to_vec(&part).expect("serializable"),
            )?;
            if let Some(old) = old {
                let old: PartRecord = serde_json::from_slice(&old).map_err(|_| bad_record())?;
                tx.delete_blob(blob(&old.blob)?)?;
            }
            Ok(Ok(()))
        })
        .await??;
    let mut w = xml::Writer::new();
    w.open("CopyPartResult");
    w.elem("LastModified", &iso8601(modified));
    w.elem("ETag", &etag);
    w.close("CopyPartResult");
    xml_response(StatusCode::OK, w.finish())
}

async fn parts_of(s3: &S3, upload: &str) -> Result<Vec<(u32, PartRecord)>, S3Error> {
    let all = s3
        .store
        .scan(Catalog::Parts, upload.as_bytes().to_vec(), None, usize::MAX)
        .await?;
    all.into_iter()
        .map(|(k, v)| {
            let n = u32::from_be_bytes(
                k[k.len() - 4..]
                    .try_into()
                    .map_err(|_| S3Error::internal())?,
            );
            Ok((
                n,
                serde_json::from_slice(&v).map_err(|_| S3Error::internal())?,
            ))
        })
        .collect()
}

/// CompleteMultipartUpload: read the manifest, pick the parts it names, check the whole
/// object against the client's claims, then commit it by concatenating the parts' manifests.
pub async fn complete(s3: &S3, ctx: &Ctx, az: &Authorized, incoming: RequestBody) -> S3Result {
    let (bucket, key) = names(ctx);
    let upload = upload_id(ctx)?;
    let doc = read_complete_document(incoming, ctx, 4 << 20).await?;
    let manifest = Manifest::parse(&doc)?;
    let Some(urec) = az.upload.as_ref() else {
        // A retried Complete of an upload that already completed succeeds again, as in S3:
        // recognised by the object's ETag, which the part ETags determine.
        return repeat_complete(s3, bucket, key, &manifest.wanted)
            .await
            .ok_or_else(S3Error::no_such_upload)?;
    };
    let stored: BTreeMap<u32, PartRecord> = parts_of(s3, &upload).await?.into_iter().collect();
    let chosen = manifest.choose(&stored)?;
    let whole = WholeObject::check(ctx, urec, &chosen, &manifest.claimed)?;
    let rec = whole.record(urec, &chosen);
    let all_parts: Vec<(u32, String)> = stored.iter().map(|(n, p)| (*n, p.blob.clone())).collect();
    commit_completion(s3, ctx, &upload, rec, &chosen, all_parts).await?;
    completed(
        bucket,
        key,
        &whole.etag,
        &whole.checksums,
        urec.checksum_type.as_deref(),
    )
}

/// A CompleteMultipartUpload document: the parts in order, and any part checksums claimed.
struct Manifest {
    wanted: Vec<(u32, String)>,
    claimed: BTreeMap<u32, String>,
}

impl Manifest {
    fn parse(doc: &[u8]) -> Result<Manifest, S3Error> {
        let doc = xml::parse(doc).ok_or_else(S3Error::malformed_xml)?;
        let mut wanted: Vec<(u32, String)> = Vec::new();
        let mut claimed: BTreeMap<u32, String> = BTreeMap::new();
        for p in doc.root().children_named("Part") {
            let n: u32 = p
                .child_text("PartNumber")
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(S3Error::malformed_xml)?;
            if let Some(c) = p.children().find(|c| c.name().starts_with("Checksum")) {
                claimed.insert(n, c.text().trim().to_string());
            }
            let etag = p
                .child_text("ETag")
                .ok_or_else(S3Error::malformed_xml)?
                .trim_matches('"')
                .to_string();
            wanted.push((n, etag));
        }
        if wanted.is_empty() {
            return Err(S3Error::malformed_xml().with_message("You must specify at least one part"));
        }
        if wanted.windows(2).any(|w| w[0].0 > w[1].0) {
            return Err(S3Error::invalid_part_order());
        }
        // A part number listed twice in a row (a client that re-sent a part and recorded both
        // answers) means its later entry, as Ceph RGW reads the list (keyed by part number):
        // the ETag check then holds it to the part upload that finished last.
        wanted.reverse();
        wanted.dedup_by_key(|(n, _)| *n);
        wanted.reverse();
        Ok(Manifest { wanted, claimed })
    }

    /// The stored parts the manifest names, each matching its ETag; all but the last at
    /// least MIN_PART_SIZE.
    fn choose(
        &self,
        stored: &BTreeMap<u32, PartRecord>,
    ) -> Result<Vec<(u32, PartRecord)>, S3Error> {
        let mut chosen = Vec::new();
        for (i, (n, etag)) in self.wanted.iter().enumerate() {
            let part = stored
                .get(n)
                .filter(|p| p.etag.trim_matches('"') == etag)
                .ok_or_else(S3Error::invalid_part)?;
            if i + 1 < self.wanted.len() && part.size < MIN_PART_SIZE {
                return Err(S3Error::entity_too_small()
                    .with("ProposedSize", part.size.to_string())
                    .with("MinSizeAllowed", MIN_PART_SIZE.to_string())
                    .with("PartNumber", n.to_string()));
            }
            chosen.push((*n, part.clone()));
        }
        Ok(chosen)
    }
}

/// The completed object as the parts make it, checked against the client's claims.
struct WholeObject {
    size: u64,
    etag: String,
    checksums: BTreeMap<String, String>,
    part_checksums: Vec<String>,
}

impl WholeObject {
    fn check(
        ctx: &Ctx,
        urec: &UploadRecord,
        chosen: &[(u32, PartRecord)],
        claimed: &BTreeMap<u32, String>,
    ) -> Result<WholeObject, S3Error> {
        // `x-amz-checksum-type` on completion must name the type the upload was created with.
        if let Some(t) = ctx.header("x-amz-checksum-type") {
            if urec.checksum_type.as_deref() != Some(t.trim().to_ascii_uppercase().as_str()) {
                return Err(S3Error::bad_digest().with_message(format!(
                    "The upload's checksum type is {}, not {t}.",
                    urec.checksum_type.as_deref().unwrap_or("none")
                )));
            }
        }
        let size: u64 = chosen.iter().map(|(_, p)| p.size).sum();
        if let Some(v) = ctx.header("x-amz-mp-object-size") {
            let want: u64 = v.trim().parse().map_err(|_| {
                S3Error::invalid_argument().with_message("x-amz-mp-object-size is not a size")
            })?;
            if want != size {
                return Err(S3Error::invalid_request().with_message(format!(
                    "The provided x-amz-mp-object-size ({want}) does not match the object's size ({size})."
                )));
            }
        }
        let mut md5s = Vec::new();
        for (_, p) in chosen {
            md5s.extend(hex::decode(p.etag.trim_matches('"')).map_err(|_| S3Error::internal())?);
        }
        let etag = format!(
            "\"{}-{}\"",
            hex::encode(md5::Md5::digest(&md5s)),
            chosen.len()
        );
        let (checksums, part_checksums) = Self::checksums(ctx, urec, chosen, claimed)?;
        Ok(WholeObject {
            size,
            etag,
            checksums,
            part_checksums,
        })
    }

    /// The whole object's checksum in the upload's algorithm (checked against the client's
    /// claim), and each part's; a claim in another algorithm is refused, not skipped.
    #[allow(clippy::type_complexity)]
    fn checksums(
        ctx: &Ctx,
        urec: &UploadRecord,
        chosen: &[(u32, PartRecord)],
        claimed: &BTreeMap<u32, String>,
    ) -> Result<(BTreeMap<String, String>, Vec<String>), S3Error> {
        if let Some(other) = CHECKSUM_ALGOS.iter().find(|a| {
            urec.checksum.as_deref() != Some(**a)
                && ctx.header(&format!("x-amz-checksum-{a}")).is_some()
        }) {
            return Err(S3Error::invalid_request().with_message(format!(
                "The upload was created with checksum algorithm {}, not {other}.",
                urec.checksum.as_deref().unwrap_or("none")
            )));
        }
        let mut checksums = BTreeMap::new();
        let mut part_checksums = Vec::new();
        let Some(algo) = &urec.checksum else {
            return Ok((checksums, part_checksums));
        };
        for (n, p) in chosen {
            match &p.checksum {
                Some((a, v)) if a == algo => {
                    if claimed.get(n).is_some_and(|c| c != v) {
                        return Err(S3Error::invalid_part()
                            .with_message(format!("The checksum of part {n} does not match.")));
                    }
                    part_checksums.push(v.clone());
                }
                _ => {
                    return Err(S3Error::invalid_part()
                        .with_message("a part is missing the upload's checksum"))
                }
            }
        }
        let value = whole_checksum(algo, urec.checksum_type.as_deref(), chosen)?;
        if let Some(expected) = ctx.header(&format!("x-amz-checksum-{algo}")) {
            if expected != value {
                return Err(S3Error::bad_digest().with_message(format!(
                    "Value for x-amz-checksum-{algo} header is invalid."
                )));
            }
        }
        checksums.insert(algo.clone(), value);
        Ok((checksums, part_checksums))
    }

    /// The object record (its blob is set when the transaction makes it).
    fn record(&self, urec: &UploadRecord, chosen: &[(u32, PartRecord)]) -> ObjectRecord {
        ObjectRecord {
            blob: String::new(),
            size: self.size,
            etag: self.etag.clone(),
            modified_ms: now_ms(),
            owner: urec.owner.clone(),
            acl: urec.acl.clone(),
            grants: urec.grants.clone(),
            headers: urec.headers.clone(),
            meta: urec.meta.clone(),
            checksums: self.checksums.clone(),
            parts: chosen.iter().map(|(_, p)| p.size).collect(),
            checksum_type: urec.checksum_type.clone(),
            part_checksums: self.part_checksums.clone(),
        }
    }
}

/// In one transaction: the bucket and the upload still exist, the write conditions hold,
/// the object's blob is the parts' concatenation, the replaced object's blob, every part
/// (chosen or not) and the upload go.
async fn commit_completion(
    s3: &S3,
    ctx: &Ctx,
    upload: &str,
    rec: ObjectRecord,
    chosen: &[(u32, PartRecord)],
    all_parts: Vec<(u32, String)>,
) -> Result<(), S3Error> {
    let (bucket, key) = names(ctx);
    let ukey = upload_key(bucket, key, upload);
    let okey = object_key(bucket, key);
    let bname = bucket.to_string();
    let part_blobs: Vec<String> = chosen.iter().map(|(_, p)| p.blob.clone()).collect();
    let upload = upload.to_string();
    let cond = super::object::write_conditions(ctx);
    s3.store
        .transact(move |tx| {
            if tx.get_shared(Catalog::Buckets, bname.as_bytes())?.is_none() {
                return Ok(Err(S3Error::no_such_bucket()));
            }
            if tx.get_for_update(Catalog::Uploads, &ukey)?.is_none() {
                return Ok(Err(S3Error::no_such_upload()));
            }
            let current: Option<ObjectRecord> = tx
                .get_for_update(Catalog::Objects, &okey)?
                .map(|v| serde_json::from_slice(&v).map_err(|_| bad_record()))
                .transpose()?;
            if let Err(e) = cond.check(current.as_ref()) {
                return Ok(Err(e));
            }
            let sources: Vec<(BlobId, Option<std::ops::Range<u64>>)> = part_blobs
                .iter()
                .map(|b| Ok((blob(b)?, None)))
                .collect::<glint_storage::Result<_>>()?;
            let id = tx.concat(&sources)?;
            let mut rec = rec.clone();
            rec.blob = id.to_hex();
            tx.put(
                Catalog::Objects,
                &okey,
                &serde_json::to_vec(&rec).expect("serializable"),
            )?;
            if let Some(old) = current {
                tx.delete_blob(blob(&old.blob)?)?;
            }
            for (n, b) in &all_parts {
                tx.delete_blob(blob(b)?)?;
                tx.delete(Catalog::Parts, &part_key(&upload, *n))?;
            }
            tx.delete(Catalog::Uploads, &ukey)?;
            Ok(Ok(()))
        })
        .await?
}

/// The CompleteMultipartUploadResult document (also for a repeated Complete).
fn completed(
    bucket: &str,
    key: &str,
    etag: &str,
    checksums: &BTreeMap<String, String>,
    kind: Option<&str>,
) -> S3Result {
    let mut w = xml::Writer::new();
    w.open("CompleteMultipartUploadResult");
    w.elem("Location", &format!("/{bucket}/{key}"));
    w.elem("Bucket", bucket);
    w.elem("Key", key);
    w.elem("ETag", etag);
    for (algo, v) in checksums {
        w.elem(&format!("Checksum{}", algo.to_ascii_uppercase()), v);
    }
    if let Some(t) = kind.filter(|_| !checksums.is_empty()) {
        w.elem("ChecksumType", t);
    }
    w.close("CompleteMultipartUploadResult");
    xml_response(StatusCode::OK, w.finish())
}

/// The whole object's checksum: COMPOSITE = checksum of the concatenated part checksums,
/// suffixed "-N"; FULL_OBJECT = the CRC of all the bytes, combined from the parts' CRCs.
fn whole_checksum(
    algo: &str,
    kind: Option<&str>,
    parts: &[(u32, PartRecord)],
) -> Result<String, S3Error> {
    use super::crc_combine::{combine, CRC32C_POLY, CRC32_POLY, CRC64NVME_POLY};
    let mut raw = Vec::new();
    for (_, p) in parts {
        let (_, v) = p.checksum.as_ref().ok_or_else(S3Error::invalid_part)?;
        raw.push(B64.decode(v).map_err(|_| S3Error::internal())?);
    }
    if kind == Some("FULL_OBJECT") {
        let (poly, width) = match algo {
            "crc32" => (CRC32_POLY, 32),
            "crc32c" => (CRC32C_POLY, 32),
            "crc64nvme" => (CRC64NVME_POLY, 64),
            _ => {
                return Err(
                    S3Error::invalid_request().with_message("FULL_OBJECT needs a CRC algorithm")
                )
            }
        };
        let mut acc: Option<u64> = None;
        for ((_, p), r) in parts.iter().zip(&raw) {
            if r.len() > 8 {
                return Err(S3Error::internal());
            }
            let mut b = [0u8; 8];
            b[8 - r.len()..].copy_from_slice(r);
            let crc = u64::from_be_bytes(b);
            acc = Some(match acc {
                None => crc,
                Some(a) => combine(a, crc, p.size, poly, width),
            });
        }
        let v = acc.unwrap_or(0);
        return Ok(if width == 32 {
            B64.encode((v as u32).to_be_bytes())
        } else {
            B64.encode(v.to_be_bytes())
        });
    }
    let mut h = glint_storage::Hasher::new(super::object::checksum_digest(algo));
    h.update(&raw.concat());
    let v = super::object::checksum_value(algo, &h.finish()).ok_or_else(S3Error::internal)?;
    Ok(format!("{v}-{}", parts.len()))
}

async fn repeat_complete(
    s3: &S3,
    bucket: &str,
    key: &str,
    wanted: &[(u32, String)],
) -> Option<S3Result> {
    let mut md5s = Vec::new();
    for (_, etag) in wanted {
        md5s.extend(hex::decode(etag).ok()?);
    }
    let etag = format!(
        "\"{}-{}\"",
        hex::encode(md5::Md5::digest(&md5s)),
        wanted.len()
    );
    let v = s3
        .store
        .get(Catalog::Objects, object_key(bucket, key))
        .await
        .ok()??;
    let rec: ObjectRecord = serde_json::from_slice(&v).ok()?;
    if rec.etag != etag {
        return None;
    }
    Some(completed(
        bucket,
        key,
        &etag,
        &rec.checksums,
        rec.checksum_type.as_deref(),
    ))
}

pub async fn abort(s3: &S3, ctx: &Ctx, az: &Authorized) -> S3Result {
    let (bucket, key) = names(ctx);
    let upload = upload_id(ctx)?;
    let urec = the_upload(az)?;
    // `x-amz-if-match-initiated-time`: abort only the upload started at that time (to the
    // second, as S3 reports it).
    if let Some(t) = ctx.header("x-amz-if-match-initiated-time") {
        if super::object::parse_timestamp(t)? != urec.initiated_ms.div_euclid(1000) {
            return Err(S3Error::precondition_failed());
        }
    }
    let parts = parts_of(s3, &upload).await?;
    let ukey = upload_key(bucket, key, &upload);
    s3.store
        .transact(move |tx| {
            if tx.get_for_update(Catalog::Uploads, &ukey)?.is_none() {
                return Ok(Err(S3Error::no_such_upload()));
            }
            for (n, p) in &parts {
                let pkey = part_key(&upload, *n);
                if tx.get_for_update(Catalog::Parts, &pkey)?.is_some() {
                    tx.delete_blob(blob(&p.blob)?)?;
                    tx.delete(Catalog::Parts, &pkey)?;
                }
            }
            tx.delete(Catalog::Uploads, &ukey)?;
            Ok(Ok(()))
        })
        .await??;
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(body::empty())
        .expect("valid"))
}

pub async fn list_parts(s3: &S3, ctx: &Ctx, az: &Authorized) -> S3Result {
    let (bucket, key) = names(ctx);
    let upload = upload_id(ctx)?;
    let urec = the_upload(az)?;
    let max: usize = ctx
        .q("max-parts")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .min(1000);
    let marker: u32 = ctx
        .q("part-number-marker")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let parts: Vec<(u32, PartRecord)> = parts_of(s3, &upload)
        .await?
        .into_iter()
        .filter(|(n, _)| *n > marker)
        .collect();
    let truncated = parts.len() > max;
    let shown = &parts[..parts.len().min(max)];
    let mut w = xml::Writer::new();
    w.open("ListPartsResult");
    w.elem("Bucket", bucket);
    w.elem("Key", key);
    w.elem("UploadId", &upload);
    for tag in ["Initiator", "Owner"] {
        w.principal(tag, &urec.owner);
    }
    w.elem("StorageClass", "STANDARD");
    w.elem("PartNumberMarker", &marker.to_string());
    if let Some((n, _)) = shown.last() {
        w.elem("NextPartNumberMarker", &n.to_string());
    }
    w.elem("MaxParts", &max.to_string());
    w.elem("IsTruncated", if truncated { "true" } else { "false" });
    for (n, p) in shown {
        w.open("Part");
        w.elem("PartNumber", &n.to_string());
        w.elem("LastModified", &iso8601(p.modified_ms));
        w.elem("ETag", &p.etag);
        w.elem("Size", &p.size.to_string());
        if let Some((algo, v)) = &p.checksum {
            w.elem(&format!("Checksum{}", algo.to_ascii_uppercase()), v);
        }
        w.close("Part");
    }
    w.close("ListPartsResult");
    xml_response(StatusCode::OK, w.finish())
}

/// ListMultipartUploads: the bucket's uploads in key (then upload id) order, after
/// `key-marker` / `upload-id-marker`, under `prefix`, grouped by `delimiter` into common
/// prefixes, `max-uploads` entries a page, names URL-encoded with `encoding-type=url`.
pub async fn list_uploads(s3: &S3, ctx: &Ctx) -> S3Result {
    let bucket = ctx.bucket.as_deref().unwrap_or_default();
    let prefix = ctx.q("prefix").unwrap_or("");
    let delimiter = ctx.q("delimiter").filter(|d| !d.is_empty());
    let url = super::list::url_encoding(ctx)?;
    let enc = |s: &str| super::list::encode_if(url, s);
    let max: usize = ctx
        .q("max-uploads")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .min(1000);
    let key_marker = ctx.q("key-marker").unwrap_or("");
    let id_marker = ctx.q("upload-id-marker").unwrap_or("");
    let base = object_key(bucket, "").len();
    let all = s3
        .store
        .scan(
            Catalog::Uploads,
            object_key(bucket, prefix),
            None,
            usize::MAX,
        )
        .await?;
    enum Row {
        Upload(String, String, Box<UploadRecord>),
        Prefix(String),
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut truncated = false;
    for (k, v) in all {
        let rest = &k[base..];
        let Some(split) = rest.iter().rposition(|b| *b == 0) else {
            continue;
        };
        let (okey, id) = (
            String::from_utf8_lossy(&rest[..split]).into_owned(),
            String::from_utf8_lossy(&rest[split + 1..]).into_owned(),
        );
        if !key_marker.is_empty() {
            let skip = if id_marker.is_empty() {
                okey.as_str() <= key_marker
            } else {
                okey.as_str() < key_marker || (okey == key_marker && id.as_str() <= id_marker)
            };
            if skip {
                continue;
            }
        }
        let common = delimiter.and_then(|d| {
            okey[prefix.len()..]
                .find(d)
                .map(|i| okey[..prefix.len() + i + d.len()].to_string())
        });
        if let (Some(cp), Some(Row::Prefix(last))) = (&common, rows.last()) {
            if cp == last {
                continue;
            }
        }
        if rows.len() == max {
            truncated = true;
            break;
        }
        match common {
            Some(cp) => rows.push(Row::Prefix(cp)),
            None => {
                let Ok(rec) = serde_json::from_slice::<UploadRecord>(&v) else {
                    continue;
                };
                rows.push(Row::Upload(okey, id, Box::new(rec)));
            }
        }
    }
    let mut w = xml::Writer::new();
    w.open("ListMultipartUploadsResult");
    w.elem("Bucket", bucket);
    w.elem("KeyMarker", &enc(key_marker));
    w.elem("UploadIdMarker", id_marker);
    match rows.last() {
        Some(Row::Upload(k, id, _)) => {
            w.elem("NextKeyMarker", &enc(k));
            w.elem("NextUploadIdMarker", id);
        }
        Some(Row::Prefix(p)) => {
            w.elem("NextKeyMarker", &enc(p));
            w.elem("NextUploadIdMarker", "");
        }
        None => {}
    }
    w.elem("Prefix", &enc(prefix));
    if let Some(d) = delimiter {
        w.elem("Delimiter", &enc(d));
    }
    if url {
        w.elem("EncodingType", "url");
    }
    w.elem("MaxUploads", &max.to_string());
    w.elem("IsTruncated", if truncated { "true" } else { "false" });
    for row in &rows {
        if let Row::Upload(k, id, rec) = row {
            w.open("Upload");
            w.elem("Key", &enc(k));
            w.elem("UploadId", id);
            for tag in ["Initiator", "Owner"] {
                w.principal(tag, &rec.owner);
            }
            w.elem("StorageClass", "STANDARD");
            w.elem("Initiated", &iso8601(rec.initiated_ms));
            w.close("Upload");
        }
    }
    for row in &rows {
        if let Row::Prefix(p) = row {
            w.open("CommonPrefixes");
            w.elem("Prefix", &enc(p));
            w.close("CommonPrefixes");
        }
    }
    w.close("ListMultipartUploadsResult");
    xml_response(StatusCode::OK, w.finish())
}
