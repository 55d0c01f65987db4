//! Every request header and query parameter the S3 API reference defines for the
//! operations Glint implements, one row each: it is honoured — the row sends a value that
//! must change the answer (a failing condition, a wrong digest, a range, a filter) or checks
//! its effect on a later read — or the request is refused with S3's error for a feature the
//! endpoint lacks. None is accepted and ignored.
//!
//! Templates: `{k}` is a key of the row's own, `{u}` an upload of it started by the owner,
//! `{e}` the ETag of `hdr/src`, `{t}` its Last-Modified; `{pu}` / `{pe}` an upload of the
//! existing key `hdr/src-cond` and the ETag of its one part.

mod common;

use common::*;

#[derive(Clone, Debug)]
enum Want {
    /// This status.
    Status(u16),
    /// This status and S3 error code.
    Code(u16, &'static str),
    /// A 2xx answer carrying this header with this value.
    Header(&'static str, &'static str),
    /// A 2xx answer whose body contains this.
    Has(&'static str),
    /// A 2xx answer whose body does not contain this.
    Lacks(&'static str),
}

#[derive(Clone, Debug)]
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    who: Who,
}

fn req(method: &'static str, path: &str) -> Req {
    Req {
        method,
        path: path.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
        who: Who::Owner,
    }
}

impl Req {
    fn h(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
    fn body(mut self, b: &[u8]) -> Req {
        self.body = b.to_vec();
        self
    }
    fn anon(mut self) -> Req {
        self.who = Who::Anon;
        self
    }
}

struct Row {
    op: &'static str,
    param: &'static str,
    send: Req,
    want: Want,
    /// A follow-up read that shows the effect.
    then: Option<(Req, Want)>,
}

fn row(op: &'static str, param: &'static str, send: Req, want: Want) -> Row {
    Row {
        op,
        param,
        send,
        want,
        then: None,
    }
}

fn effect(op: &'static str, param: &'static str, send: Req, then: Req, want: Want) -> Row {
    Row {
        op,
        param,
        send,
        want: Want::Status(200),
        then: Some((then, want)),
    }
}

const NI: Want = Want::Code(501, "NotImplemented");

/// Completes the `cond` upload with its one part.
const COND_DOC: &[u8] = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{pe}</ETag></Part></CompleteMultipartUpload>";

fn put(k: &str) -> Req {
    req("PUT", &format!("/hdr/{k}")).body(b"data")
}

fn rows() -> Vec<Row> {
    vec![
        // ---- CreateBucket
        effect("CreateBucket", "x-amz-acl", req("PUT", "/hdr-acl").h("x-amz-acl", "public-read"), req("GET", "/hdr-acl").anon(), Want::Status(200)),
        effect("CreateBucket", "x-amz-grant-read", req("PUT", "/hdr-gr").h("x-amz-grant-read", "id=alt"), req("GET", "/hdr-gr?acl"), Want::Has("<ID>alt</ID>")),
        effect("CreateBucket", "x-amz-grant-write", req("PUT", "/hdr-gw").h("x-amz-grant-write", "id=alt"), req("GET", "/hdr-gw?acl"), Want::Has("<Permission>WRITE</Permission>")),
        effect("CreateBucket", "x-amz-grant-read-acp", req("PUT", "/hdr-gra").h("x-amz-grant-read-acp", "id=alt"), req("GET", "/hdr-gra?acl"), Want::Has("READ_ACP")),
        effect("CreateBucket", "x-amz-grant-write-acp", req("PUT", "/hdr-gwa").h("x-amz-grant-write-acp", "id=alt"), req("GET", "/hdr-gwa?acl"), Want::Has("WRITE_ACP")),
        effect("CreateBucket", "x-amz-grant-full-control", req("PUT", "/hdr-gfc").h("x-amz-grant-full-control", "id=alt"), req("GET", "/hdr-gfc?acl"), Want::Has("<ID>alt</ID>")),
        row("CreateBucket", "x-amz-bucket-object-lock-enabled", req("PUT", "/hdr-lock").h("x-amz-bucket-object-lock-enabled", "true"), NI),
        row("CreateBucket", "x-amz-bucket-object-lock-enabled=false", req("PUT", "/hdr-nolock").h("x-amz-bucket-object-lock-enabled", "false"), Want::Status(200)),
        row("CreateBucket", "x-amz-object-ownership", req("PUT", "/hdr-own").h("x-amz-object-ownership", "BucketOwnerEnforced"), NI),
        row("CreateBucket", "x-amz-object-ownership=ObjectWriter", req("PUT", "/hdr-own2").h("x-amz-object-ownership", "ObjectWriter"), Want::Status(200)),
        row("CreateBucket", "LocationConstraint", req("PUT", "/hdr-loc").body(b"<CreateBucketConfiguration><LocationConstraint>eu-west-9</LocationConstraint></CreateBucketConfiguration>"), Want::Code(400, "InvalidRequest")),
        // ---- every bucket-scoped operation: x-amz-expected-bucket-owner
        row("HeadBucket", "x-amz-expected-bucket-owner", req("HEAD", "/hdr").h("x-amz-expected-bucket-owner", "someone-else"), Want::Status(403)),
        row("HeadBucket", "x-amz-expected-bucket-owner=owner", req("HEAD", "/hdr").h("x-amz-expected-bucket-owner", "proj"), Want::Status(200)),
        row("GetBucketLocation", "x-amz-expected-bucket-owner", req("GET", "/hdr?location").h("x-amz-expected-bucket-owner", "x"), Want::Code(403, "AccessDenied")),
        row("GetBucketAcl", "x-amz-expected-bucket-owner", req("GET", "/hdr?acl").h("x-amz-expected-bucket-owner", "x"), Want::Code(403, "AccessDenied")),
        row("GetBucketVersioning", "x-amz-expected-bucket-owner", req("GET", "/hdr?versioning").h("x-amz-expected-bucket-owner", "x"), Want::Code(403, "AccessDenied")),
        row("DeleteBucket", "x-amz-expected-bucket-owner", req("DELETE", "/hdr").h("x-amz-expected-bucket-owner", "x"), Want::Code(403, "AccessDenied")),
        row("ListObjects", "x-amz-expected-bucket-owner", req("GET", "/hdr").h("x-amz-expected-bucket-owner", "x"), Want::Code(403, "AccessDenied")),
        row("PutObject", "x-amz-expected-bucket-owner", put("{k}").h("x-amz-expected-bucket-owner", "x"), Want::Code(403, "AccessDenied")),
        row("GetObject", "x-amz-expected-bucket-owner", req("GET", "/hdr/src").h("x-amz-expected-bucket-owner", "x"), Want::Code(403, "AccessDenied")),
        row("CopyObject", "x-amz-source-expected-bucket-owner", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-source-expected-bucket-owner", "x"), Want::Code(403, "AccessDenied")),
        row("DeleteObjects", "x-amz-expected-bucket-owner", req("POST", "/hdr?delete").h("x-amz-expected-bucket-owner", "x").body(b"<Delete><Object><Key>a</Key></Object></Delete>"), Want::Code(403, "AccessDenied")),
        row("UploadPart", "x-amz-expected-bucket-owner", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-expected-bucket-owner", "x").body(b"p"), Want::Code(403, "AccessDenied")),
        // requester pays: nothing is billed, so the acknowledgement changes nothing.
        row("GetObject", "x-amz-request-payer", req("GET", "/hdr/src").h("x-amz-request-payer", "requester"), Want::Status(200)),
        // ---- ListBuckets
        row("ListBuckets", "prefix", req("GET", "/?prefix=hdr-g"), Want::Lacks("<Name>hdr</Name>")),
        row("ListBuckets", "max-buckets", req("GET", "/?max-buckets=1"), Want::Has("<ContinuationToken>")),
        row("ListBuckets", "max-buckets (invalid)", req("GET", "/?max-buckets=0"), Want::Code(400, "InvalidArgument")),
        row("ListBuckets", "continuation-token", req("GET", "/?continuation-token=%21%21"), Want::Code(400, "InvalidArgument")),
        row("ListBuckets", "bucket-region", req("GET", "/?bucket-region=eu-west-9"), Want::Lacks("<Bucket>")),
        // ---- ListObjects (v1)
        row("ListObjects", "prefix", req("GET", "/hdr?prefix=zz"), Want::Lacks("<Contents>")),
        row("ListObjects", "delimiter", req("GET", "/hdr?delimiter=/"), Want::Has("<CommonPrefixes><Prefix>dir/</Prefix>")),
        row("ListObjects", "marker", req("GET", "/hdr?marker=src"), Want::Lacks("<Key>src</Key>")),
        row("ListObjects", "max-keys", req("GET", "/hdr?max-keys=1"), Want::Has("<IsTruncated>true</IsTruncated>")),
        row("ListObjects", "encoding-type", req("GET", "/hdr?encoding-type=url&prefix=sp"), Want::Has("<Key>sp%20ace</Key>")),
        row("ListObjects", "encoding-type (invalid)", req("GET", "/hdr?encoding-type=base64"), Want::Code(400, "InvalidArgument")),
        // Lists never hold archived objects, so there is never a RestoreStatus to add.
        row("ListObjects", "x-amz-optional-object-attributes", req("GET", "/hdr").h("x-amz-optional-object-attributes", "RestoreStatus"), Want::Status(200)),
        // ---- ListObjectsV2
        row("ListObjectsV2", "start-after", req("GET", "/hdr?list-type=2&start-after=src"), Want::Lacks("<Key>src</Key>")),
        row("ListObjectsV2", "continuation-token", req("GET", "/hdr?list-type=2&continuation-token=%21%21"), Want::Code(400, "InvalidArgument")),
        row("ListObjectsV2", "fetch-owner", req("GET", "/hdr?list-type=2&fetch-owner=true"), Want::Has("<Owner>")),
        row("ListObjectsV2", "fetch-owner (absent)", req("GET", "/hdr?list-type=2"), Want::Lacks("<Owner>")),
        row("ListObjectsV2", "max-keys", req("GET", "/hdr?list-type=2&max-keys=1"), Want::Has("<NextContinuationToken>")),
        row("ListObjectsV2", "delimiter", req("GET", "/hdr?list-type=2&delimiter=/"), Want::Has("<Prefix>dir/</Prefix>")),
        row("ListObjectsV2", "prefix", req("GET", "/hdr?list-type=2&prefix=dir/"), Want::Lacks("<Key>src</Key>")),
        row("ListObjectsV2", "encoding-type", req("GET", "/hdr?list-type=2&encoding-type=url&prefix=sp"), Want::Has("sp%20ace")),
        // ---- ListObjectVersions
        row("ListObjectVersions", "prefix", req("GET", "/hdr?versions&prefix=zz"), Want::Lacks("<Version>")),
        row("ListObjectVersions", "key-marker", req("GET", "/hdr?versions&key-marker=src"), Want::Lacks("<Key>src</Key>")),
        row("ListObjectVersions", "version-id-marker", req("GET", "/hdr?versions&key-marker=src&version-id-marker=null"), Want::Lacks("<Key>src</Key>")),
        row("ListObjectVersions", "max-keys", req("GET", "/hdr?versions&max-keys=1"), Want::Has("<IsTruncated>true</IsTruncated>")),
        row("ListObjectVersions", "delimiter", req("GET", "/hdr?versions&delimiter=/"), Want::Has("<Prefix>dir/</Prefix>")),
        row("ListObjectVersions", "encoding-type", req("GET", "/hdr?versions&encoding-type=url&prefix=sp"), Want::Has("sp%20ace")),
        // ---- ListMultipartUploads (uploads exist under "up/a" and "up/b")
        row("ListMultipartUploads", "prefix", req("GET", "/hdr?uploads&prefix=zz"), Want::Lacks("<Upload>")),
        row("ListMultipartUploads", "delimiter", req("GET", "/hdr?uploads&delimiter=/"), Want::Has("<CommonPrefixes><Prefix>up/</Prefix>")),
        row("ListMultipartUploads", "max-uploads", req("GET", "/hdr?uploads&prefix=up/&max-uploads=1"), Want::Has("<IsTruncated>true</IsTruncated>")),
        row("ListMultipartUploads", "key-marker", req("GET", "/hdr?uploads&key-marker=up/a"), Want::Lacks("<Key>up/a</Key>")),
        row("ListMultipartUploads", "upload-id-marker", req("GET", "/hdr?uploads&key-marker=up/a&upload-id-marker=0"), Want::Has("<Key>up/a</Key>")),
        row("ListMultipartUploads", "encoding-type", req("GET", "/hdr?uploads&encoding-type=url&prefix=up/sp"), Want::Has("<Key>up/sp%20ace</Key>")),
        // ---- PutObject: content headers come back on GET
        effect("PutObject", "Content-Type", put("{k}").h("content-type", "text/x-glint"), req("GET", "/hdr/{k}"), Want::Header("content-type", "text/x-glint")),
        effect("PutObject", "Cache-Control", put("{k}").h("cache-control", "max-age=9"), req("GET", "/hdr/{k}"), Want::Header("cache-control", "max-age=9")),
        effect("PutObject", "Content-Disposition", put("{k}").h("content-disposition", "attachment"), req("GET", "/hdr/{k}"), Want::Header("content-disposition", "attachment")),
        effect("PutObject", "Content-Encoding", put("{k}").h("content-encoding", "gzip"), req("GET", "/hdr/{k}"), Want::Header("content-encoding", "gzip")),
        effect("PutObject", "Content-Language", put("{k}").h("content-language", "vi"), req("GET", "/hdr/{k}"), Want::Header("content-language", "vi")),
        effect("PutObject", "Expires", put("{k}").h("expires", "Thu, 01 Dec 2094 16:00:00 GMT"), req("GET", "/hdr/{k}"), Want::Header("expires", "Thu, 01 Dec 2094 16:00:00 GMT")),
        effect("PutObject", "x-amz-meta-*", put("{k}").h("x-amz-meta-color", "blue"), req("GET", "/hdr/{k}"), Want::Header("x-amz-meta-color", "blue")),
        effect("PutObject", "x-amz-acl", put("{k}").h("x-amz-acl", "public-read"), req("GET", "/hdr/{k}").anon(), Want::Status(200)),
        effect("PutObject", "x-amz-grant-read", put("{k}").h("x-amz-grant-read", "id=alt"), req("GET", "/hdr/{k}?acl"), Want::Has("<ID>alt</ID>")),
        effect("PutObject", "x-amz-grant-read-acp", put("{k}").h("x-amz-grant-read-acp", "id=alt"), req("GET", "/hdr/{k}?acl"), Want::Has("READ_ACP")),
        effect("PutObject", "x-amz-grant-write-acp", put("{k}").h("x-amz-grant-write-acp", "id=alt"), req("GET", "/hdr/{k}?acl"), Want::Has("WRITE_ACP")),
        effect("PutObject", "x-amz-grant-full-control", put("{k}").h("x-amz-grant-full-control", "id=alt"), req("GET", "/hdr/{k}?acl"), Want::Has("FULL_CONTROL")),
        row("PutObject", "Content-MD5", put("{k}").h("content-md5", "AAAAAAAAAAAAAAAAAAAAAA=="), Want::Code(400, "BadDigest")),
        row("PutObject", "Content-MD5 (malformed)", put("{k}").h("content-md5", "nope"), Want::Code(400, "InvalidDigest")),
        row("PutObject", "x-amz-checksum-crc32", put("{k}").h("x-amz-checksum-crc32", "AAAAAA=="), Want::Code(400, "BadDigest")),
        row("PutObject", "x-amz-checksum-crc32c", put("{k}").h("x-amz-checksum-crc32c", "AAAAAA=="), Want::Code(400, "BadDigest")),
        row("PutObject", "x-amz-checksum-crc64nvme", put("{k}").h("x-amz-checksum-crc64nvme", "AAAAAAAAAAA="), Want::Code(400, "BadDigest")),
        row("PutObject", "x-amz-checksum-sha1", put("{k}").h("x-amz-checksum-sha1", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), Want::Code(400, "BadDigest")),
        row("PutObject", "x-amz-checksum-sha256", put("{k}").h("x-amz-checksum-sha256", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), Want::Code(400, "BadDigest")),
        row("PutObject", "x-amz-sdk-checksum-algorithm", put("{k}").h("x-amz-sdk-checksum-algorithm", "CRC32"), Want::Header("x-amz-checksum-crc32", "rfPzYw==")),
        row("PutObject", "x-amz-sdk-checksum-algorithm (unknown)", put("{k}").h("x-amz-sdk-checksum-algorithm", "MD4"), Want::Code(400, "InvalidRequest")),
        row("PutObject", "If-None-Match", put("src").h("if-none-match", "*"), Want::Code(412, "PreconditionFailed")),
        row("PutObject", "If-Match", put("src").h("if-match", "\"0000\""), Want::Code(412, "PreconditionFailed")),
        row("PutObject", "If-Match (absent key)", put("{k}").h("if-match", "*"), Want::Code(404, "NoSuchKey")),
        row("PutObject", "If-Modified-Since", put("{k}").h("if-modified-since", "Wed, 01 Jan 2025 00:00:00 GMT"), NI),
        row("PutObject", "If-Unmodified-Since", put("{k}").h("if-unmodified-since", "Wed, 01 Jan 2025 00:00:00 GMT"), NI),
        row("PutObject", "x-amz-storage-class=STANDARD", put("{k}").h("x-amz-storage-class", "STANDARD"), Want::Status(200)),
        row("PutObject", "x-amz-storage-class", put("{k}").h("x-amz-storage-class", "STANDARD_IA"), Want::Code(400, "InvalidStorageClass")),
        row("PutObject", "x-amz-server-side-encryption", put("{k}").h("x-amz-server-side-encryption", "AES256"), NI),
        row("PutObject", "x-amz-server-side-encryption-aws-kms-key-id", put("{k}").h("x-amz-server-side-encryption-aws-kms-key-id", "k"), NI),
        row("PutObject", "x-amz-server-side-encryption-context", put("{k}").h("x-amz-server-side-encryption-context", "e30="), NI),
        row("PutObject", "x-amz-server-side-encryption-bucket-key-enabled", put("{k}").h("x-amz-server-side-encryption-bucket-key-enabled", "true"), NI),
        row("PutObject", "x-amz-server-side-encryption-customer-algorithm", put("{k}").h("x-amz-server-side-encryption-customer-algorithm", "AES256"), NI),
        row("PutObject", "x-amz-server-side-encryption-customer-key", put("{k}").h("x-amz-server-side-encryption-customer-key", "a2V5"), NI),
        row("PutObject", "x-amz-server-side-encryption-customer-key-MD5", put("{k}").h("x-amz-server-side-encryption-customer-key-md5", "a2V5"), NI),
        row("PutObject", "x-amz-website-redirect-location", put("{k}").h("x-amz-website-redirect-location", "/x"), NI),
        row("PutObject", "x-amz-tagging", put("{k}").h("x-amz-tagging", "a=b"), NI),
        row("PutObject", "x-amz-object-lock-mode", put("{k}").h("x-amz-object-lock-mode", "GOVERNANCE"), NI),
        row("PutObject", "x-amz-object-lock-retain-until-date", put("{k}").h("x-amz-object-lock-retain-until-date", "2030-01-01T00:00:00Z"), NI),
        row("PutObject", "x-amz-object-lock-legal-hold", put("{k}").h("x-amz-object-lock-legal-hold", "ON"), NI),
        row("PutObject", "x-amz-write-offset-bytes", put("{k}").h("x-amz-write-offset-bytes", "0"), NI),
        // ---- GetObject / HeadObject
        row("GetObject", "If-Match", req("GET", "/hdr/src").h("if-match", "\"0000\""), Want::Code(412, "PreconditionFailed")),
        row("GetObject", "If-None-Match", req("GET", "/hdr/src").h("if-none-match", "{e}"), Want::Status(304)),
        row("GetObject", "If-Modified-Since", req("GET", "/hdr/src").h("if-modified-since", "{t}"), Want::Status(304)),
        row("GetObject", "If-Unmodified-Since", req("GET", "/hdr/src").h("if-unmodified-since", "Wed, 01 Jan 2020 00:00:00 GMT"), Want::Code(412, "PreconditionFailed")),
        row("GetObject", "Range", req("GET", "/hdr/src").h("range", "bytes=0-1"), Want::Header("content-range", "bytes 0-1/6")),
        row("GetObject", "partNumber", req("GET", "/hdr/src?partNumber=1"), Want::Header("x-amz-mp-parts-count", "1")),
        row("GetObject", "x-amz-checksum-mode", req("GET", "/hdr/src").h("x-amz-checksum-mode", "ENABLED"), Want::Header("x-amz-checksum-crc32", "X4p/cw==")),
        row("GetObject", "response-content-type", req("GET", "/hdr/src?response-content-type=a/b"), Want::Header("content-type", "a/b")),
        row("GetObject", "response-content-language", req("GET", "/hdr/src?response-content-language=vi"), Want::Header("content-language", "vi")),
        row("GetObject", "response-expires", req("GET", "/hdr/src?response-expires=x"), Want::Header("expires", "x")),
        row("GetObject", "response-cache-control", req("GET", "/hdr/src?response-cache-control=no-cache"), Want::Header("cache-control", "no-cache")),
        row("GetObject", "response-content-disposition", req("GET", "/hdr/src?response-content-disposition=inline"), Want::Header("content-disposition", "inline")),
        row("GetObject", "response-content-encoding", req("GET", "/hdr/src?response-content-encoding=br"), Want::Header("content-encoding", "br")),
        row("GetObject", "versionId=null", req("GET", "/hdr/src?versionId=null"), Want::Status(200)),
        row("GetObject", "versionId", req("GET", "/hdr/src?versionId=abc"), Want::Code(400, "InvalidArgument")),
        row("GetObject", "x-amz-server-side-encryption-customer-algorithm", req("GET", "/hdr/src").h("x-amz-server-side-encryption-customer-algorithm", "AES256"), NI),
        row("GetObject", "x-amz-server-side-encryption-customer-key", req("GET", "/hdr/src").h("x-amz-server-side-encryption-customer-key", "a2V5"), NI),
        row("GetObject", "x-amz-server-side-encryption-customer-key-MD5", req("GET", "/hdr/src").h("x-amz-server-side-encryption-customer-key-md5", "a2V5"), NI),
        row("HeadObject", "If-None-Match", req("HEAD", "/hdr/src").h("if-none-match", "{e}"), Want::Status(304)),
        row("HeadObject", "If-Match", req("HEAD", "/hdr/src").h("if-match", "\"0\""), Want::Status(412)),
        row("HeadObject", "Range", req("HEAD", "/hdr/src").h("range", "bytes=2-"), Want::Header("content-range", "bytes 2-5/6")),
        row("HeadObject", "partNumber", req("HEAD", "/hdr/src?partNumber=2"), Want::Status(400)),
        row("HeadObject", "versionId", req("HEAD", "/hdr/src?versionId=abc"), Want::Status(400)),
        // ---- GetObjectAttributes
        row("GetObjectAttributes", "x-amz-object-attributes", req("GET", "/hdr/src?attributes").h("x-amz-object-attributes", "ObjectSize"), Want::Has("<ObjectSize>6</ObjectSize>")),
        row("GetObjectAttributes", "x-amz-max-parts", req("GET", "/hdr/mp?attributes").h("x-amz-object-attributes", "ObjectParts").h("x-amz-max-parts", "1"), Want::Has("<IsTruncated>true</IsTruncated>")),
        row("GetObjectAttributes", "x-amz-part-number-marker", req("GET", "/hdr/mp?attributes").h("x-amz-object-attributes", "ObjectParts").h("x-amz-part-number-marker", "1"), Want::Lacks("<PartNumber>1</PartNumber>")),
        row("GetObjectAttributes", "versionId", req("GET", "/hdr/src?attributes&versionId=x").h("x-amz-object-attributes", "ETag"), Want::Code(400, "InvalidArgument")),
        row("GetObjectAttributes", "x-amz-server-side-encryption-customer-key", req("GET", "/hdr/src?attributes").h("x-amz-object-attributes", "ETag").h("x-amz-server-side-encryption-customer-key", "a2V5"), NI),
        // ---- DeleteObject
        row("DeleteObject", "If-Match", req("DELETE", "/hdr/src").h("if-match", "\"0000\""), Want::Code(412, "PreconditionFailed")),
        row("DeleteObject", "x-amz-if-match-size", req("DELETE", "/hdr/src").h("x-amz-if-match-size", "1"), Want::Code(412, "PreconditionFailed")),
        row("DeleteObject", "x-amz-if-match-last-modified-time", req("DELETE", "/hdr/src").h("x-amz-if-match-last-modified-time", "Wed, 01 Jan 2020 00:00:00 GMT"), Want::Code(412, "PreconditionFailed")),
        row("DeleteObject", "If-None-Match", req("DELETE", "/hdr/src").h("if-none-match", "*"), NI),
        row("DeleteObject", "x-amz-mfa", req("DELETE", "/hdr/src").h("x-amz-mfa", "1 2"), NI),
        row("DeleteObject", "versionId", req("DELETE", "/hdr/src?versionId=abc"), Want::Code(400, "InvalidArgument")),
        // No object is under retention, so there is none to bypass.
        row("DeleteObject", "x-amz-bypass-governance-retention", req("DELETE", "/hdr/{k}").h("x-amz-bypass-governance-retention", "true"), Want::Status(204)),
        // ---- DeleteObjects
        row("DeleteObjects", "Content-MD5", req("POST", "/hdr?delete").h("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==").body(b"<Delete><Object><Key>a</Key></Object></Delete>"), Want::Code(400, "BadDigest")),
        row("DeleteObjects", "x-amz-checksum-crc32", req("POST", "/hdr?delete").h("x-amz-sdk-checksum-algorithm", "CRC32").h("x-amz-checksum-crc32", "AAAAAA==").body(b"<Delete><Object><Key>a</Key></Object></Delete>"), Want::Code(400, "BadDigest")),
        row("DeleteObjects", "x-amz-mfa", req("POST", "/hdr?delete").h("x-amz-mfa", "1 2").body(b"<Delete><Object><Key>a</Key></Object></Delete>"), NI),
        row("DeleteObjects", "ETag", req("POST", "/hdr?delete").body(b"<Delete><Object><Key>src</Key><ETag>\"0\"</ETag></Object></Delete>"), Want::Has("<Code>PreconditionFailed</Code>")),
        row("DeleteObjects", "Size", req("POST", "/hdr?delete").body(b"<Delete><Object><Key>src</Key><Size>1</Size></Object></Delete>"), Want::Has("<Code>PreconditionFailed</Code>")),
        row("DeleteObjects", "LastModifiedTime", req("POST", "/hdr?delete").body(b"<Delete><Object><Key>src</Key><LastModifiedTime>2020-01-01T00:00:00Z</LastModifiedTime></Object></Delete>"), Want::Has("<Code>PreconditionFailed</Code>")),
        row("DeleteObjects", "VersionId", req("POST", "/hdr?delete").body(b"<Delete><Object><Key>src</Key><VersionId>abc</VersionId></Object></Delete>"), Want::Has("<Code>InvalidArgument</Code>")),
        row("DeleteObjects", "Quiet", req("POST", "/hdr?delete").body(b"<Delete><Quiet>true</Quiet><Object><Key>{k}</Key></Object></Delete>"), Want::Lacks("<Deleted>")),
        // ---- CopyObject
        row("CopyObject", "x-amz-copy-source-if-match", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-if-match", "\"0\""), Want::Code(412, "PreconditionFailed")),
        row("CopyObject", "x-amz-copy-source-if-none-match", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-if-none-match", "{e}"), Want::Code(412, "PreconditionFailed")),
        row("CopyObject", "x-amz-copy-source-if-modified-since", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-if-modified-since", "{t}"), Want::Code(412, "PreconditionFailed")),
        row("CopyObject", "x-amz-copy-source-if-unmodified-since", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-if-unmodified-since", "Wed, 01 Jan 2020 00:00:00 GMT"), Want::Code(412, "PreconditionFailed")),
        effect("CopyObject", "x-amz-metadata-directive", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-metadata-directive", "REPLACE").h("content-type", "new/type"), req("GET", "/hdr/{k}"), Want::Header("content-type", "new/type")),
        effect("CopyObject", "Cache-Control", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-metadata-directive", "REPLACE").h("cache-control", "max-age=7"), req("GET", "/hdr/{k}"), Want::Header("cache-control", "max-age=7")),
        effect("CopyObject", "x-amz-acl", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-acl", "public-read"), req("GET", "/hdr/{k}").anon(), Want::Status(200)),
        effect("CopyObject", "x-amz-grant-read", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-grant-read", "id=alt"), req("GET", "/hdr/{k}?acl"), Want::Has("<ID>alt</ID>")),
        row("CopyObject", "x-amz-tagging-directive", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-tagging-directive", "REPLACE"), NI),
        row("CopyObject", "x-amz-tagging-directive=COPY", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-tagging-directive", "COPY"), Want::Status(200)),
        row("CopyObject", "x-amz-checksum-algorithm (kept)", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-checksum-algorithm", "CRC32"), Want::Status(200)),
        row("CopyObject", "x-amz-checksum-algorithm (new)", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-checksum-algorithm", "SHA256"), NI),
        row("CopyObject", "If-None-Match", req("PUT", "/hdr/dir/a").h("x-amz-copy-source", "/hdr/src").h("if-none-match", "*"), Want::Code(412, "PreconditionFailed")),
        row("CopyObject", "If-Match", req("PUT", "/hdr/dir/a").h("x-amz-copy-source", "/hdr/src").h("if-match", "\"0\""), Want::Code(412, "PreconditionFailed")),
        row("CopyObject", "x-amz-storage-class", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-storage-class", "GLACIER"), Want::Code(400, "InvalidStorageClass")),
        row("CopyObject", "x-amz-server-side-encryption", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-server-side-encryption", "AES256"), NI),
        row("CopyObject", "x-amz-copy-source-server-side-encryption-customer-key", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-server-side-encryption-customer-key", "a2V5"), NI),
        row("CopyObject", "x-amz-website-redirect-location", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-website-redirect-location", "/x"), NI),
        row("CopyObject", "x-amz-tagging", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-tagging", "a=b"), NI),
        row("CopyObject", "x-amz-object-lock-mode", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src").h("x-amz-object-lock-mode", "GOVERNANCE"), NI),
        row("CopyObject", "x-amz-copy-source (versionId)", req("PUT", "/hdr/{k}").h("x-amz-copy-source", "/hdr/src?versionId=abc"), Want::Code(400, "InvalidArgument")),
        // ---- CreateMultipartUpload
        row("CreateMultipartUpload", "x-amz-checksum-algorithm", req("POST", "/hdr/{k}?uploads").h("x-amz-checksum-algorithm", "SHA256"), Want::Header("x-amz-checksum-algorithm", "SHA256")),
        row("CreateMultipartUpload", "x-amz-checksum-type", req("POST", "/hdr/{k}?uploads").h("x-amz-checksum-algorithm", "CRC32").h("x-amz-checksum-type", "FULL_OBJECT"), Want::Header("x-amz-checksum-type", "FULL_OBJECT")),
        row("CreateMultipartUpload", "x-amz-checksum-type (invalid)", req("POST", "/hdr/{k}?uploads").h("x-amz-checksum-algorithm", "SHA1").h("x-amz-checksum-type", "FULL_OBJECT"), Want::Code(400, "InvalidRequest")),
        row("CreateMultipartUpload", "x-amz-acl (invalid)", req("POST", "/hdr/{k}?uploads").h("x-amz-acl", "everyone"), Want::Code(400, "InvalidArgument")),
        row("CreateMultipartUpload", "x-amz-server-side-encryption", req("POST", "/hdr/{k}?uploads").h("x-amz-server-side-encryption", "AES256"), NI),
        row("CreateMultipartUpload", "x-amz-storage-class", req("POST", "/hdr/{k}?uploads").h("x-amz-storage-class", "ONEZONE_IA"), Want::Code(400, "InvalidStorageClass")),
        row("CreateMultipartUpload", "x-amz-tagging", req("POST", "/hdr/{k}?uploads").h("x-amz-tagging", "a=b"), NI),
        row("CreateMultipartUpload", "x-amz-object-lock-legal-hold", req("POST", "/hdr/{k}?uploads").h("x-amz-object-lock-legal-hold", "ON"), NI),
        row("CreateMultipartUpload", "x-amz-website-redirect-location", req("POST", "/hdr/{k}?uploads").h("x-amz-website-redirect-location", "/x"), NI),
        // ---- UploadPart / UploadPartCopy
        row("UploadPart", "Content-MD5", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==").body(b"p"), Want::Code(400, "BadDigest")),
        row("UploadPart", "x-amz-checksum-sha256", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-checksum-sha256", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").body(b"p"), Want::Code(400, "BadDigest")),
        row("UploadPart", "x-amz-sdk-checksum-algorithm", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-sdk-checksum-algorithm", "CRC32").body(b"data"), Want::Header("x-amz-checksum-crc32", "rfPzYw==")),
        row("UploadPart", "partNumber", req("PUT", "/hdr/{k}?partNumber=10001&uploadId={u}").body(b"p"), Want::Code(400, "InvalidArgument")),
        row("UploadPart", "uploadId", req("PUT", "/hdr/{k}?partNumber=1&uploadId=ffffffffffffffffffffffffffffffff").body(b"p"), Want::Code(404, "NoSuchUpload")),
        row("UploadPart", "x-amz-server-side-encryption-customer-key", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-server-side-encryption-customer-key", "a2V5").body(b"p"), NI),
        row("UploadPart", "If-Match", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("if-match", "*").body(b"p"), NI),
        row("UploadPartCopy", "x-amz-copy-source-range", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-range", "bytes=0-99"), Want::Code(416, "InvalidRange")),
        row("UploadPartCopy", "x-amz-copy-source-if-match", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-if-match", "\"0\""), Want::Code(412, "PreconditionFailed")),
        row("UploadPartCopy", "x-amz-copy-source-if-none-match", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-if-none-match", "{e}"), Want::Code(412, "PreconditionFailed")),
        row("UploadPartCopy", "x-amz-copy-source-if-modified-since", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-if-modified-since", "{t}"), Want::Code(412, "PreconditionFailed")),
        row("UploadPartCopy", "x-amz-copy-source-if-unmodified-since", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-if-unmodified-since", "Wed, 01 Jan 2020 00:00:00 GMT"), Want::Code(412, "PreconditionFailed")),
        row("UploadPartCopy", "x-amz-source-expected-bucket-owner", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-copy-source", "/hdr/src").h("x-amz-source-expected-bucket-owner", "x"), Want::Code(403, "AccessDenied")),
        row("UploadPartCopy", "x-amz-copy-source-server-side-encryption-customer-algorithm", req("PUT", "/hdr/{k}?partNumber=1&uploadId={u}").h("x-amz-copy-source", "/hdr/src").h("x-amz-copy-source-server-side-encryption-customer-algorithm", "AES256"), NI),
        // ---- CompleteMultipartUpload (the row's upload has no parts yet)
        row("CompleteMultipartUpload", "body Part/ETag", req("POST", "/hdr/{k}?uploadId={u}").body(b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"0\"</ETag></Part></CompleteMultipartUpload>"), Want::Code(400, "InvalidPart")),
        // `cond`: an upload of the existing key `src-cond` with one part ({pe}); each of
        // these fails and leaves it intact.
        row("CompleteMultipartUpload", "If-None-Match", req("POST", "/hdr/src-cond?uploadId={pu}").body(COND_DOC).h("if-none-match", "*"), Want::Code(412, "PreconditionFailed")),
        row("CompleteMultipartUpload", "If-Match", req("POST", "/hdr/src-cond?uploadId={pu}").body(COND_DOC).h("if-match", "\"0\""), Want::Code(412, "PreconditionFailed")),
        row("CompleteMultipartUpload", "x-amz-mp-object-size", req("POST", "/hdr/src-cond?uploadId={pu}").body(COND_DOC).h("x-amz-mp-object-size", "999"), Want::Code(400, "InvalidRequest")),
        row("CompleteMultipartUpload", "x-amz-checksum-type", req("POST", "/hdr/src-cond?uploadId={pu}").body(COND_DOC).h("x-amz-checksum-type", "COMPOSITE"), Want::Code(400, "BadDigest")),
        row("CompleteMultipartUpload", "x-amz-checksum-crc32", req("POST", "/hdr/src-cond?uploadId={pu}").body(COND_DOC).h("x-amz-checksum-crc32", "AAAAAA=="), Want::Code(400, "InvalidRequest")),
        row("CompleteMultipartUpload", "x-amz-server-side-encryption-customer-key", req("POST", "/hdr/{k}?uploadId={u}").h("x-amz-server-side-encryption-customer-key", "a2V5").body(b"<CompleteMultipartUpload/>"), NI),
        // ---- AbortMultipartUpload / ListParts
        row("AbortMultipartUpload", "x-amz-if-match-initiated-time", req("DELETE", "/hdr/{k}?uploadId={u}").h("x-amz-if-match-initiated-time", "Wed, 01 Jan 2020 00:00:00 GMT"), Want::Code(412, "PreconditionFailed")),
        row("AbortMultipartUpload", "uploadId", req("DELETE", "/hdr/{k}?uploadId={u}"), Want::Status(204)),
        row("ListParts", "max-parts", req("GET", "/hdr/mpopen?uploadId=MPOPEN&max-parts=1"), Want::Has("<IsTruncated>true</IsTruncated>")),
        row("ListParts", "part-number-marker", req("GET", "/hdr/mpopen?uploadId=MPOPEN&part-number-marker=1"), Want::Lacks("<PartNumber>1</PartNumber>")),
        row("ListParts", "x-amz-server-side-encryption-customer-key", req("GET", "/hdr/mpopen?uploadId=MPOPEN").h("x-amz-server-side-encryption-customer-key", "a2V5"), NI),
        // ---- ACLs
        row("GetObjectAcl", "versionId", req("GET", "/hdr/src?acl&versionId=abc"), Want::Code(400, "InvalidArgument")),
        row("PutObjectAcl", "x-amz-acl (invalid)", req("PUT", "/hdr/src?acl").h("x-amz-acl", "everyone"), Want::Code(400, "InvalidArgument")),
        row("PutObjectAcl", "Content-MD5", req("PUT", "/hdr/src?acl").h("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==").body(b"<AccessControlPolicy><AccessControlList/></AccessControlPolicy>"), Want::Code(400, "BadDigest")),
        effect("PutObjectAcl", "x-amz-grant-read", req("PUT", "/hdr/{k}?acl").h("x-amz-grant-read", "id=alt"), req("GET", "/hdr/{k}?acl"), Want::Has("<ID>alt</ID>")),
        effect("PutBucketAcl", "x-amz-grant-read", req("PUT", "/hdr-acl2?acl").h("x-amz-grant-read", "id=alt"), req("GET", "/hdr-acl2?acl"), Want::Has("<ID>alt</ID>")),
        row("PutBucketAcl", "Content-MD5", req("PUT", "/hdr?acl").h("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==").body(b"<AccessControlPolicy><AccessControlList/></AccessControlPolicy>"), Want::Code(400, "BadDigest")),
    ]
}

/// What `prepare` made that rows refer to.
struct Prepared {
    etag: String,
    modified: String,
    open: String,
    cond_upload: String,
    cond_part: String,
}

/// Objects and uploads every row may rely on.
async fn prepare(s: &Server) -> Prepared {
    for b in ["/hdr", "/hdr-acl2"] {
        assert_eq!(s.s("PUT", b, &[], vec![]).await.status, 200);
    }
    let r = s
        .s(
            "PUT",
            "/hdr/src",
            &[("x-amz-sdk-checksum-algorithm", "CRC32")],
            b"source".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    let etag = r.header("etag").to_string();
    let head = s.s("HEAD", "/hdr/src", &[], vec![]).await;
    let modified = head.header("last-modified").to_string();
    for k in ["dir/a", "sp ace", "zz-not-a-prefix-of-anything-else"] {
        let path = format!("/hdr/{}", k.replace(' ', "%20"));
        assert_eq!(s.s("PUT", &path, &[], b"x".to_vec()).await.status, 200);
    }
    s.s(
        "DELETE",
        "/hdr/zz-not-a-prefix-of-anything-else",
        &[],
        vec![],
    )
    .await;
    for k in ["up/a", "up/b", "up/sp%20ace"] {
        s.initiate(Who::Owner, "hdr", k).await;
    }
    // A completed two-part object (`mp`) and an open upload with two parts (`mpopen`).
    let id = s.initiate(Who::Owner, "hdr", "mp").await;
    let big = pattern(5 << 20, 1);
    let e1 = s
        .s(
            "PUT",
            &format!("/hdr/mp?partNumber=1&uploadId={id}"),
            &[],
            big,
        )
        .await
        .header("etag")
        .to_string();
    let e2 = s
        .s(
            "PUT",
            &format!("/hdr/mp?partNumber=2&uploadId={id}"),
            &[],
            b"tail".to_vec(),
        )
        .await
        .header("etag")
        .to_string();
    let r = s
        .s(
            "POST",
            &format!("/hdr/mp?uploadId={id}"),
            &[],
            complete_doc(&[&e1, &e2]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let open = s.initiate(Who::Owner, "hdr", "mpopen").await;
    for n in 1..=2 {
        let r = s
            .s(
                "PUT",
                &format!("/hdr/mpopen?partNumber={n}&uploadId={open}"),
                &[],
                b"p".to_vec(),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        s.s("PUT", "/hdr/src-cond", &[], b"x".to_vec()).await.status,
        200
    );
    let cond_upload = s.initiate(Who::Owner, "hdr", "src-cond").await;
    let r = s
        .s(
            "PUT",
            &format!("/hdr/src-cond?partNumber=1&uploadId={cond_upload}"),
            &[],
            b"p".to_vec(),
        )
        .await;
    let cond_part = r.header("etag").to_string();
    Prepared {
        etag,
        modified,
        open,
        cond_upload,
        cond_part,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_every_s3_header_and_parameter_is_honoured_or_refused() {
    let s = start().await;
    let p = prepare(&s).await;
    let rows = rows();
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let key = format!("row{i}");
        // Rows that read or write `{k}` before creating it get an object there; rows with
        // `{u}` an upload of their own.
        let upload = if row.send.path.contains("{u}") {
            s.initiate(Who::Owner, "hdr", &key).await
        } else {
            String::new()
        };
        let fill = |t: &str| {
            t.replace("{k}", &key)
                .replace("{u}", &upload)
                .replace("{e}", &p.etag)
                .replace("{t}", &p.modified)
                .replace("MPOPEN", &p.open)
                .replace("{pu}", &p.cond_upload)
                .replace("{pe}", &p.cond_part)
        };
        let needs_object = matches!(row.op, "PutObjectAcl" | "DeleteObjects")
            || (row.op == "DeleteObject" && row.send.path.contains("{k}"));
        if needs_object {
            s.s("PUT", &fill("/hdr/{k}"), &[], b"x".to_vec()).await;
        }
        let send = |r: &Req| {
            let headers: Vec<(String, String)> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), fill(v)))
                .collect();
            let path = fill(&r.path);
            let body = fill(&String::from_utf8_lossy(&r.body)).into_bytes();
            let who = r.who;
            let method = r.method;
            let s = &s;
            async move {
                let hs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                s.as_who(who, method, &path, &hs, body).await
            }
        };
        let check = |reply: &Reply, want: &Want| -> Option<String> {
            let ok2 = (200..300).contains(&reply.status);
            let good = match want {
                Want::Status(n) => reply.status == *n,
                Want::Code(n, c) => {
                    reply.status == *n && (reply.code() == *c || reply.body.is_empty())
                }
                Want::Header(h, v) => ok2 && reply.header(h) == *v,
                Want::Has(t) => ok2 && reply.text().contains(t),
                Want::Lacks(t) => ok2 && !reply.text().contains(t),
            };
            (!good).then(|| {
                format!(
                    "{} {}: got {} {} {:?}, want {want:?}",
                    row.op,
                    row.param,
                    reply.status,
                    reply.code(),
                    reply.text().chars().take(300).collect::<String>()
                )
            })
        };
        let reply = send(&row.send).await;
        if let Some(f) = check(&reply, &row.want) {
            failures.push(f);
            continue;
        }
        if let Some((then, want)) = &row.then {
            let reply = send(then).await;
            if let Some(f) = check(&reply, want) {
                failures.push(format!("(effect) {f}"));
            }
        }
    }
    println!("S3 header table: {} rows", rows.len());
    assert!(
        failures.is_empty(),
        "{} of {} rows:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}
