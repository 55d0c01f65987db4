//! Request headers and query parameters that S3 defines for the operations Glint implements
//! but that ask for something Glint does not do. Each is refused with the error AWS uses for
//! an unsupported feature (`NotImplemented`, 501) or for a bad value, never accepted and
//! silently ignored: a client told its object is encrypted, locked or tagged must be right.
//!
//! Everything else S3 defines for these operations is honoured by the handlers (see the
//! header table test in `tests/s3_headers.rs`). Headers S3 does not define are ignored, as
//! S3 ignores them.

use super::authz::Op;
use super::error::S3Error;
use super::Ctx;

/// Sub-resources Glint does not implement.
const UNSUPPORTED: &[&str] = &[
    "lifecycle",
    "policy",
    "policyStatus",
    "tagging",
    "encryption",
    "object-lock",
    "retention",
    "legal-hold",
    "cors",
    "website",
    "logging",
    "notification",
    "replication",
    "requestPayment",
    "accelerate",
    "analytics",
    "inventory",
    "metrics",
    "intelligent-tiering",
    "ownershipControls",
    "publicAccessBlock",
    "restore",
    "select",
    "torrent",
];

/// Refuses a sub-resource Glint does not implement (versioning only reads: buckets are
/// never versioned, and listing their versions is answered).
pub fn subresources(ctx: &Ctx) -> Result<(), S3Error> {
    let read_only_versioning = ctx.method == http::Method::GET && ctx.key.is_none();
    let versioning = ["versioning", "versions"]
        .into_iter()
        .find(|s| ctx.has(s) && !read_only_versioning);
    match UNSUPPORTED
        .iter()
        .copied()
        .find(|s| ctx.has(s))
        .or(versioning)
    {
        Some(sub) => Err(not_implemented(&format!("The {sub} sub-resource"))),
        None => Ok(()),
    }
}

fn not_implemented(what: &str) -> S3Error {
    S3Error::not_implemented().with_message(format!("{what} is not implemented by Glint."))
}

/// S3's limit on a key: 1,024 bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// S3's key rules: at most [`MAX_KEY_BYTES`]; and a new key must be text that XML 1.0 can
/// carry, so that every listing stays well-formed with or without `encoding-type=url`
/// (AWS stores C0 control characters and then lists them in documents XML parsers reject;
/// Glint refuses them when a key is created, and still reads and deletes older ones).
pub fn check_key(op: Op, ctx: &Ctx) -> Result<(), S3Error> {
    let Some(key) = ctx.key.as_deref() else {
        return Ok(());
    };
    if key.len() > MAX_KEY_BYTES {
        return Err(S3Error::key_too_long()
            .with("Size", key.len().to_string())
            .with("MaxSizeAllowed", MAX_KEY_BYTES.to_string()));
    }
    let creates = matches!(
        op,
        Op::PutObject | Op::CopyObject | Op::CreateMultipartUpload
    );
    if creates && !key.chars().all(super::xml::xml_char) {
        return Err(S3Error::invalid_argument().with_message(
            "Object keys may not hold control characters other than TAB, LF and CR",
        ));
    }
    Ok(())
}

/// Refuses a request that asks for a feature Glint does not implement.
pub fn check(op: Op, ctx: &Ctx) -> Result<(), S3Error> {
    check_key(op, ctx)?;
    for (name, value) in &ctx.headers {
        let n = name.as_str();
        let v = value.to_str().unwrap_or("").trim();
        if n.starts_with("x-amz-server-side-encryption")
            || n.starts_with("x-amz-copy-source-server-side-encryption")
        {
            return Err(not_implemented("Server-side encryption"));
        }
        match n {
            "x-amz-object-lock-mode"
            | "x-amz-object-lock-retain-until-date"
            | "x-amz-object-lock-legal-hold" => return Err(not_implemented("Object Lock")),
            "x-amz-bucket-object-lock-enabled" if !v.eq_ignore_ascii_case("false") => {
                return Err(not_implemented("Object Lock"))
            }
            "x-amz-tagging" => return Err(not_implemented("Object tagging")),
            "x-amz-tagging-directive" if !v.eq_ignore_ascii_case("COPY") => {
                return Err(not_implemented("Object tagging"))
            }
            "x-amz-website-redirect-location" => {
                return Err(not_implemented("Website redirection"))
            }
            "x-amz-mfa" => return Err(not_implemented("MFA delete")),
            "x-amz-write-offset-bytes" => return Err(not_implemented("Appending to objects")),
            // Every object is STANDARD; S3 answers InvalidStorageClass for a class the
            // endpoint does not offer.
            "x-amz-storage-class" if v != "STANDARD" => {
                return Err(S3Error::invalid_storage_class())
            }
            // Objects belong to their writer (ACLs apply): that is "ObjectWriter".
            "x-amz-object-ownership" if v != "ObjectWriter" => {
                return Err(not_implemented("Object Ownership other than ObjectWriter"))
            }
            _ => {}
        }
    }
    // Date conditions S3 does not define for writes and deletes (it evaluates If-Match and
    // If-None-Match there only): refused rather than skipped.
    let writes = matches!(
        op,
        Op::PutObject
            | Op::CopyObject
            | Op::DeleteObject
            | Op::UploadPart
            | Op::UploadPartCopy
            | Op::CompleteMultipartUpload
    );
    if writes {
        for h in ["if-modified-since", "if-unmodified-since"] {
            if ctx.headers.contains_key(h) {
                return Err(not_implemented(&format!("The {h} condition on {op:?}")));
            }
        }
        if matches!(op, Op::UploadPart | Op::UploadPartCopy)
            && (ctx.headers.contains_key("if-match") || ctx.headers.contains_key("if-none-match"))
        {
            return Err(not_implemented(&format!("Conditions on {op:?}")));
        }
        if op == Op::DeleteObject && ctx.headers.contains_key("if-none-match") {
            return Err(not_implemented(
                "The if-none-match condition on DeleteObject",
            ));
        }
    }
    version_id(ctx)
}

/// Objects are unversioned: each has one version, `null`, which a `versionId` may name.
/// Any other version id names nothing.
fn version_id(ctx: &Ctx) -> Result<(), S3Error> {
    match ctx.q("versionId") {
        None | Some("null") => Ok(()),
        Some(_) => Err(S3Error::invalid_argument()
            .with_message("Invalid version id specified")
            .with("ArgumentName", "versionId")),
    }
}
