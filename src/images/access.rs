//! The one decision on who may read an image's bytes, whichever door they come through: the
//! Images API download (`GET /v2/images/{id}/file`) and the S3 `images` bucket (GET, HEAD,
//! presigned URLs). Both apply the same policy rules, so an operator's `etc/policy.yaml`
//! (`get_image`, `download_image`) holds on every path.

use super::caller::Caller;
use super::policy::{image_target, Policy};
use super::record::ImageRecord;
use super::status::ImageStatus;

/// Why a read of an image is refused; each front end answers it in its own protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// The caller may not see the image: answered as if it did not exist.
    NotFound,
    /// The caller sees it but may not read its bytes; the reason, as upstream words it.
    Forbidden(&'static str),
}

/// Whether `caller` may see `rec` at all: it is visible to them (owner, public, community,
/// a member of a shared image, or admin) and `get_image` allows it. Images one may not see
/// are answered as absent, never as forbidden.
pub fn may_see(policy: &Policy, caller: &Caller, rec: &ImageRecord) -> bool {
    rec.visible_to(caller) && policy.allows("get_image", caller, &image_target(rec, caller))
}

/// May `caller` read `rec`'s data? NotFound for an image they may not see; Forbidden when
/// `download_image` refuses or the image is deactivated (admins excepted), as upstream.
pub fn check_download(policy: &Policy, caller: &Caller, rec: &ImageRecord) -> Result<(), Denied> {
    if !may_see(policy, caller, rec) {
        return Err(Denied::NotFound);
    }
    if !policy.allows("download_image", caller, &image_target(rec, caller)) {
        return Err(Denied::Forbidden(
            "You are not authorized to complete download_image action.",
        ));
    }
    if rec.status == ImageStatus::Deactivated && !caller.is_admin() {
        return Err(Denied::Forbidden(
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    Ok(())
}
