//! The one decision on who may read an image's bytes, whichever door they come through: the
//! Images API download (`GET /v2/images/{id}/file`) and the S3 `images` bucket (GET, HEAD,
//! presigned URLs). Both apply the same policy rules, so an operator's `etc/policy.yaml`
//! (`get_image`, `download_image`) holds on every path.

use http::StatusCode;

use super::policy::Policy;
use super::{image_target, ApiError, Caller, ImageRecord};

/// Whether `caller` may see `rec` at all: it is visible to them (owner, public, community,
/// a member of a shared image, or admin) and `get_image` allows it. Images one may not see
/// are answered as absent, never as forbidden.
pub fn may_see(policy: &Policy, caller: &Caller, rec: &ImageRecord) -> bool {
    rec.visible_to(caller) && policy.allows("get_image", caller, &image_target(rec, caller))
}

/// May `caller` read `rec`'s data? 404 for an image they may not see, 403 when
/// `download_image` refuses or the image is deactivated (admins excepted), as upstream.
pub fn check_download(policy: &Policy, caller: &Caller, rec: &ImageRecord) -> Result<(), ApiError> {
    if !may_see(policy, caller, rec) {
        return Err(ApiError::not_found(&rec.id));
    }
    if !policy.allows("download_image", caller, &image_target(rec, caller)) {
        return Err(ApiError::forbidden(
            "You are not authorized to complete download_image action.",
        ));
    }
    if rec.status == "deactivated" && !caller.is_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    Ok(())
}
