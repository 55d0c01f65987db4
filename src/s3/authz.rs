//! Authorization for every S3 operation, decided in one place before the handler runs and
//! before any byte of the request body is read.
//!
//! The router names the operation ([`Op`], from method, sub-resource and headers); each
//! operation states what it needs — a permission on the bucket, on the object, on the copy
//! source, or to be the upload's initiator — as AWS documents for ACL-based access, and
//! [`authorize`] loads those records and checks them. Handlers receive the records it loaded
//! ([`Authorized`]) and never decide access themselves.
//!
//! ACL permissions map to operations as S3 maps them: bucket READ lists (objects, versions,
//! multipart uploads); bucket WRITE creates, overwrites and deletes objects; READ_ACP and
//! WRITE_ACP read and write the ACL; object READ reads data and attributes. What ACLs cannot
//! grant stays with the bucket owner (delete the bucket, its location and versioning state).
//! A multipart upload belongs to its initiator: parts, completion, listing and abort need the
//! initiator (an anonymous initiator is matched by anonymous callers) or the bucket owner;
//! parts and completion also need bucket WRITE, so revoking WRITE stops an upload under way.

use glint_storage::Catalog;

use super::acl::{Caller, Permission};
use super::error::S3Error;
use super::multipart::{load_upload, UploadRecord};
use super::object::copy_source;
use super::records::{object_key, BucketRecord, ObjectRecord};
use super::{load_bucket, Ctx, S3};

/// Every S3 operation Glint implements (AWS's operation names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    ListBuckets,
    CreateBucket,
    HeadBucket,
    DeleteBucket,
    GetBucketLocation,
    GetBucketAcl,
    PutBucketAcl,
    GetBucketVersioning,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    DeleteObjects,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    GetObjectAttributes,
    GetObjectAcl,
    PutObjectAcl,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
}

impl Op {
    /// AWS's name of the operation (metrics, access log).
    pub fn name(self) -> &'static str {
        match self {
            Op::ListBuckets => "ListBuckets",
            Op::CreateBucket => "CreateBucket",
            Op::HeadBucket => "HeadBucket",
            Op::DeleteBucket => "DeleteBucket",
            Op::GetBucketLocation => "GetBucketLocation",
            Op::GetBucketAcl => "GetBucketAcl",
            Op::PutBucketAcl => "PutBucketAcl",
            Op::GetBucketVersioning => "GetBucketVersioning",
            Op::ListObjects => "ListObjects",
            Op::ListObjectsV2 => "ListObjectsV2",
            Op::ListObjectVersions => "ListObjectVersions",
            Op::ListMultipartUploads => "ListMultipartUploads",
            Op::DeleteObjects => "DeleteObjects",
            Op::PutObject => "PutObject",
            Op::CopyObject => "CopyObject",
            Op::GetObject => "GetObject",
            Op::HeadObject => "HeadObject",
            Op::GetObjectAttributes => "GetObjectAttributes",
            Op::GetObjectAcl => "GetObjectAcl",
            Op::PutObjectAcl => "PutObjectAcl",
            Op::DeleteObject => "DeleteObject",
            Op::CreateMultipartUpload => "CreateMultipartUpload",
            Op::UploadPart => "UploadPart",
            Op::UploadPartCopy => "UploadPartCopy",
            Op::CompleteMultipartUpload => "CompleteMultipartUpload",
            Op::AbortMultipartUpload => "AbortMultipartUpload",
            Op::ListParts => "ListParts",
        }
    }
}

impl Op {
    /// The operation a request asks for; MethodNotAllowed when the method has none there.
    pub fn of(ctx: &Ctx) -> Result<Op, S3Error> {
        use http::Method;
        let m = &ctx.method;
        let copy = ctx.header("x-amz-copy-source").is_some();
        Ok(match (&ctx.bucket, &ctx.key) {
            (None, _) if m == Method::GET => Op::ListBuckets,
            (Some(_), None) => match *m {
                Method::PUT if ctx.has("acl") => Op::PutBucketAcl,
                Method::PUT => Op::CreateBucket,
                Method::HEAD => Op::HeadBucket,
                Method::DELETE => Op::DeleteBucket,
                Method::GET if ctx.has("location") => Op::GetBucketLocation,
                Method::GET if ctx.has("acl") => Op::GetBucketAcl,
                Method::GET if ctx.has("uploads") => Op::ListMultipartUploads,
                Method::GET if ctx.has("versions") => Op::ListObjectVersions,
                Method::GET if ctx.has("versioning") => Op::GetBucketVersioning,
                Method::GET if ctx.q("list-type") == Some("2") => Op::ListObjectsV2,
                Method::GET => Op::ListObjects,
                Method::POST if ctx.has("delete") => Op::DeleteObjects,
                _ => return Err(S3Error::method_not_allowed()),
            },
            (Some(_), Some(_)) => match *m {
                Method::PUT if ctx.has("acl") => Op::PutObjectAcl,
                Method::PUT if ctx.has("uploadId") && copy => Op::UploadPartCopy,
                Method::PUT if ctx.has("uploadId") => Op::UploadPart,
                Method::PUT if copy => Op::CopyObject,
                Method::PUT => Op::PutObject,
                Method::GET if ctx.has("acl") => Op::GetObjectAcl,
                Method::GET if ctx.has("uploadId") => Op::ListParts,
                Method::GET if ctx.has("attributes") => Op::GetObjectAttributes,
                Method::GET => Op::GetObject,
                Method::HEAD => Op::HeadObject,
                Method::DELETE if ctx.has("uploadId") => Op::AbortMultipartUpload,
                Method::DELETE => Op::DeleteObject,
                Method::POST if ctx.has("uploads") => Op::CreateMultipartUpload,
                Method::POST if ctx.has("uploadId") => Op::CompleteMultipartUpload,
                _ => return Err(S3Error::method_not_allowed()),
            },
            _ => return Err(S3Error::method_not_allowed()),
        })
    }

    /// What the operation needs.
    fn needs(self) -> Need {
        use Op::*;
        use Permission::*;
        match self {
            ListBuckets | CreateBucket => Need::Authenticated,
            HeadBucket | ListObjects | ListObjectsV2 | ListObjectVersions
            | ListMultipartUploads => Need::Bucket(Read),
            GetBucketAcl => Need::Bucket(ReadAcp),
            PutBucketAcl => Need::Bucket(WriteAcp),
            DeleteBucket | GetBucketLocation | GetBucketVersioning => Need::BucketOwner,
            PutObject | DeleteObject | DeleteObjects | CreateMultipartUpload => Need::Bucket(Write),
            CopyObject => Need::BucketAndSource(Write),
            GetObject | HeadObject | GetObjectAttributes => Need::Object(Read),
            GetObjectAcl => Need::Object(ReadAcp),
            PutObjectAcl => Need::Object(WriteAcp),
            UploadPart | CompleteMultipartUpload => Need::Upload { write: true },
            UploadPartCopy => Need::UploadAndSource,
            AbortMultipartUpload | ListParts => Need::Upload { write: false },
        }
    }
}

enum Need {
    /// Any signed request (the operation acts on the caller's own project).
    Authenticated,
    Bucket(Permission),
    BucketOwner,
    /// A permission on the bucket, and READ on the `x-amz-copy-source` object.
    BucketAndSource(Permission),
    /// A permission on the object; when it is absent, READ on the bucket decides between
    /// NoSuchKey and AccessDenied (only those who may list learn that a key is absent).
    Object(Permission),
    /// The initiator or the bucket owner, plus bucket WRITE when `write`.
    Upload {
        write: bool,
    },
    UploadAndSource,
}

/// The records authorization loaded, handed to the handler.
#[derive(Default)]
pub struct Authorized {
    pub bucket: Option<BucketRecord>,
    pub object: Option<ObjectRecord>,
    /// The upload named by `uploadId`; None when it does not exist (Complete answers a
    /// retried completion from the object itself).
    pub upload: Option<UploadRecord>,
    /// The `x-amz-copy-source` object: (bucket, key, record).
    pub source: Option<(String, String, ObjectRecord)>,
}

impl Authorized {
    /// The bucket record; every bucket-scoped operation loads it.
    pub fn bucket(&self) -> &BucketRecord {
        self.bucket
            .as_ref()
            .expect("bucket-scoped operations are authorized with their bucket")
    }
}

/// Checks that the caller may perform `op`, loading what the check needs.
pub async fn authorize(s3: &S3, ctx: &Ctx, op: Op) -> Result<Authorized, S3Error> {
    let caller = Caller::of(ctx);
    let mut out = Authorized::default();
    let need = op.needs();
    if let Need::Authenticated = need {
        ctx.identity.as_ref().ok_or_else(S3Error::access_denied)?;
        return Ok(out);
    }
    let name = ctx
        .bucket
        .as_deref()
        .ok_or_else(S3Error::method_not_allowed)?;
    let bucket = load_bucket(s3, name).await?;
    expected_owner(ctx, "x-amz-expected-bucket-owner", &bucket.owner)?;
    let may = |p: Permission| bucket.access().allows(&caller, p);
    match need {
        Need::Authenticated => unreachable!("handled above"),
        Need::Bucket(p) => require(may(p))?,
        Need::BucketOwner => require(caller.project.as_deref() == Some(bucket.owner.as_str()))?,
        Need::BucketAndSource(p) => {
            require(may(p))?;
            out.source = Some(source(s3, ctx, &caller).await?);
        }
        Need::Object(p) => {
            let key = ctx.key.as_deref().unwrap_or_default();
            match load_object(s3, name, key).await? {
                Some(rec) => {
                    require(rec.access().allows(&caller, p))?;
                    out.object = Some(rec);
                }
                None => {
                    require(may(Permission::Read))?;
                    return Err(S3Error::no_such_key().with("Key", key));
                }
            }
        }
        Need::Upload { write } => {
            out.upload = upload(s3, ctx, &caller, &bucket, write).await?;
        }
        Need::UploadAndSource => {
            out.upload = upload(s3, ctx, &caller, &bucket, true).await?;
            if out.upload.is_none() {
                return Err(S3Error::no_such_upload());
            }
            out.source = Some(source(s3, ctx, &caller).await?);
        }
    }
    out.bucket = Some(bucket);
    Ok(out)
}

fn require(allowed: bool) -> Result<(), S3Error> {
    if allowed {
        Ok(())
    } else {
        Err(S3Error::access_denied())
    }
}

/// `x-amz-expected-bucket-owner` (and its copy-source twin): a request meant for another
/// owner's bucket of the same name is refused, as S3 does.
fn expected_owner(ctx: &Ctx, header: &str, owner: &str) -> Result<(), S3Error> {
    match ctx.header(header) {
        Some(expected) if expected.trim() != owner => Err(S3Error::access_denied()),
        _ => Ok(()),
    }
}

async fn load_object(s3: &S3, bucket: &str, key: &str) -> Result<Option<ObjectRecord>, S3Error> {
    s3.store
        .get(Catalog::Objects, object_key(bucket, key))
        .await?
        .map(|v| serde_json::from_slice(&v).map_err(|_| S3Error::internal()))
        .transpose()
}

/// The upload, when the caller is its initiator or the bucket owner (and holds bucket WRITE
/// when `write`). An absent upload is NoSuchUpload to those who may write or list the bucket
/// and AccessDenied to others; for CompleteMultipartUpload it is None (a retried completion
/// is recognised from the object).
async fn upload(
    s3: &S3,
    ctx: &Ctx,
    caller: &Caller,
    bucket: &BucketRecord,
    write: bool,
) -> Result<Option<UploadRecord>, S3Error> {
    let access = bucket.access();
    let bucket_owner = caller.project.as_deref() == Some(bucket.owner.as_str());
    if write {
        require(access.allows(caller, Permission::Write))?;
    }
    match load_upload(s3, ctx).await? {
        Some(rec) => {
            require(bucket_owner || rec.initiated_by(caller))?;
            Ok(Some(rec))
        }
        None => {
            require(
                access.allows(caller, Permission::Write) || access.allows(caller, Permission::Read),
            )?;
            if ctx.method == http::Method::POST {
                Ok(None)
            } else {
                Err(S3Error::no_such_upload())
            }
        }
    }
}

/// The copy source, which the caller must be able to read.
async fn source(
    s3: &S3,
    ctx: &Ctx,
    caller: &Caller,
) -> Result<(String, String, ObjectRecord), S3Error> {
    let (sbucket, skey) = copy_source(ctx)?;
    let brec = load_bucket(s3, &sbucket).await?;
    expected_owner(ctx, "x-amz-source-expected-bucket-owner", &brec.owner)?;
    match load_object(s3, &sbucket, &skey).await? {
        Some(rec) => {
            require(rec.access().allows(caller, Permission::Read))?;
            Ok((sbucket, skey, rec))
        }
        None => {
            require(brec.access().allows(caller, Permission::Read))?;
            Err(S3Error::no_such_key().with("Key", skey))
        }
    }
}
