//! S3 errors: every failure the gateway answers is one of these, rendered as S3 error XML with
//! its status. Engine errors map here in one place (`From<StoreError>`).

use glint_storage::StoreError;
use http::StatusCode;

#[derive(Debug, Clone)]
pub struct S3Error {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra elements some errors carry (e.g. `<BucketName>`).
    pub extra: Vec<(&'static str, String)>,
}

macro_rules! errors {
    ($($fn:ident => $status:ident, $code:literal, $msg:literal;)*) => {
        impl S3Error {
            $(pub fn $fn() -> S3Error {
                S3Error { status: StatusCode::$status, code: $code, message: $msg.to_string(), extra: Vec::new() }
            })*
        }
    };
}

errors! {
    access_denied => FORBIDDEN, "AccessDenied", "Access Denied";
    bad_digest => BAD_REQUEST, "BadDigest", "The Content-MD5 or checksum you specified did not match what we received.";
    bucket_already_owned => CONFLICT, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you already own it.";
    bucket_already_exists => CONFLICT, "BucketAlreadyExists", "The requested bucket name is not available.";
    bucket_not_empty => CONFLICT, "BucketNotEmpty", "The bucket you tried to delete is not empty.";
    entity_too_large => BAD_REQUEST, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.";
    entity_too_small => BAD_REQUEST, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.";
    incomplete_body => BAD_REQUEST, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.";
    internal => INTERNAL_SERVER_ERROR, "InternalError", "We encountered an internal error. Please try again.";
    invalid_access_key => FORBIDDEN, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.";
    invalid_argument => BAD_REQUEST, "InvalidArgument", "Invalid Argument";
    invalid_bucket_name => BAD_REQUEST, "InvalidBucketName", "The specified bucket is not valid.";
    invalid_digest => BAD_REQUEST, "InvalidDigest", "The Content-MD5 you specified is not valid.";
    invalid_storage_class => BAD_REQUEST, "InvalidStorageClass", "The storage class you specified is not valid.";
    key_too_long => BAD_REQUEST, "KeyTooLongError", "Your key is too long.";
    invalid_range => RANGE_NOT_SATISFIABLE, "InvalidRange", "The requested range is not satisfiable";
    invalid_request => BAD_REQUEST, "InvalidRequest", "Invalid Request";
    malformed_acl => BAD_REQUEST, "MalformedACLError", "The XML you provided was not well-formed or did not validate against our published schema.";
    unresolvable_grant_by_email => BAD_REQUEST, "UnresolvableGrantByEmailAddress", "Glint names grantees by project id, not by e-mail address.";
    malformed_xml => BAD_REQUEST, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.";
    method_not_allowed => METHOD_NOT_ALLOWED, "MethodNotAllowed", "The specified method is not allowed against this resource.";
    missing_content_length => LENGTH_REQUIRED, "MissingContentLength", "You must provide the Content-Length HTTP header.";
    no_such_bucket => NOT_FOUND, "NoSuchBucket", "The specified bucket does not exist";
    no_such_key => NOT_FOUND, "NoSuchKey", "The specified key does not exist.";
    no_such_upload => NOT_FOUND, "NoSuchUpload", "The specified multipart upload does not exist.";
    not_implemented => NOT_IMPLEMENTED, "NotImplemented", "A header or query you provided implies functionality that is not implemented.";
    not_modified => NOT_MODIFIED, "NotModified", "Not Modified";
    precondition_failed => PRECONDITION_FAILED, "PreconditionFailed", "At least one of the preconditions you specified did not hold.";
    request_time_too_skewed => FORBIDDEN, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.";
    signature_mismatch => FORBIDDEN, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.";
    sha256_mismatch => BAD_REQUEST, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.";
    expired => FORBIDDEN, "AccessDenied", "Request has expired";
    insufficient_storage => INSUFFICIENT_STORAGE, "InsufficientStorage", "Insufficient storage to complete the request.";
    invalid_part => BAD_REQUEST, "InvalidPart", "One or more of the specified parts could not be found.";
    invalid_part_number => BAD_REQUEST, "InvalidPart", "The requested partnumber is not satisfiable";
    invalid_part_order => BAD_REQUEST, "InvalidPartOrder", "The list of parts was not in ascending order.";
    request_timeout => BAD_REQUEST, "RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period.";
    slow_down => SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate.";
    service_unavailable => SERVICE_UNAVAILABLE, "ServiceUnavailable", "The service is unavailable. Please retry.";
}

impl S3Error {
    pub fn with_message(mut self, m: impl Into<String>) -> S3Error {
        self.message = m.into();
        self
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> S3Error {
        self.extra.push((name, value.into()));
        self
    }

    /// What a failed read of the request body means: the decoder's own S3 error (bad
    /// chunk signature, framing), a stalled client (RequestTimeout), or a body that ended
    /// early (IncompleteBody).
    pub fn from_body(e: Box<dyn std::error::Error + Send + Sync>) -> S3Error {
        match e.downcast::<S3Error>() {
            Ok(s3) => *s3,
            Err(other) if other.is::<crate::request_body::BodyStalled>() => {
                S3Error::request_timeout()
            }
            Err(other) => {
                tracing::info!(error = %other, "request body ended early");
                S3Error::incomplete_body()
            }
        }
    }

    pub fn render(&self, resource: &str, request_id: &str) -> String {
        let mut w = crate::s3::xml::Writer::new();
        w.open("Error");
        w.elem("Code", self.code);
        w.elem("Message", &self.message);
        for (k, v) in &self.extra {
            w.elem(k, v);
        }
        w.elem("Resource", resource);
        w.elem("RequestId", request_id);
        w.close("Error");
        w.finish()
    }
}

impl From<StoreError> for S3Error {
    fn from(e: StoreError) -> S3Error {
        match e {
            StoreError::TooLarge { .. } => S3Error::entity_too_large(),
            StoreError::StorageFull { .. } => S3Error::insufficient_storage(),
            StoreError::InvalidRange { .. } => S3Error::invalid_range(),
            StoreError::Input(inner) => S3Error::from_body(inner),
            e if e.is_transient() => {
                tracing::warn!(error = %e, "catalog unavailable");
                S3Error::service_unavailable()
            }
            other => {
                tracing::error!(error = %other, "storage error");
                S3Error::internal()
            }
        }
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for S3Error {}
