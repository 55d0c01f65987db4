//! The images domain, shared by both front ends and free of protocol types: the image
//! record and its encoding, the status machine, who is calling, the policy engine and the
//! decisions built on it (who may see an image, who may read its bytes). The Images API
//! (`glance`) and the S3 `images` bucket (`s3::images_view`) translate their requests into
//! these terms and answer in their own protocol.

pub mod access;
pub mod caller;
pub mod index;
pub mod inspect;
pub mod listing;
pub mod metadefs;
pub mod policy;
pub mod record;
pub mod repo;
pub mod status;
pub mod stores;

pub use caller::Caller;
pub use record::ImageRecord;
pub use repo::ImageRepo;
pub use status::ImageStatus;
