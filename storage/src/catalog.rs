//! What the catalog holds, backend-neutral: the front ends' families ([`Catalog`]) and the
//! encoding of a format v1 reference count. The engine's own families and the backends are
//! in `kv/`.

/// Column families the front ends keep their records in. Each write to them goes through a
/// [`crate::Tx`], in the same atomic batch as the blob changes it goes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Catalog {
    Buckets,
    Objects,
    Uploads,
    Parts,
    Credentials,
    Images,
    Tasks,
    /// Metadata definitions (namespaces and what they hold, resource types).
    Metadefs,
    /// Which images a listing may hold, in listing order (the Images API's secondary
    /// index: written in the same transactions as the records it points at).
    ImageIndex,
}

impl Catalog {
    pub const ALL: [Catalog; 9] = [
        Catalog::Buckets,
        Catalog::Objects,
        Catalog::Uploads,
        Catalog::Parts,
        Catalog::Credentials,
        Catalog::Images,
        Catalog::Tasks,
        Catalog::Metadefs,
        Catalog::ImageIndex,
    ];

    pub(crate) fn cf_name(self) -> &'static str {
        match self {
            Catalog::Buckets => "s3_buckets",
            Catalog::Objects => "s3_objects",
            Catalog::Uploads => "s3_uploads",
            Catalog::Parts => "s3_parts",
            Catalog::Credentials => "credentials",
            Catalog::Images => "images",
            Catalog::Tasks => "tasks",
            Catalog::Metadefs => "metadefs",
            Catalog::ImageIndex => "image_index",
        }
    }
}

pub(crate) fn decode_count(v: &[u8]) -> i64 {
    v.try_into().map(i64::from_le_bytes).unwrap_or(0)
}

pub(crate) fn encode_count(n: i64) -> [u8; 8] {
    n.to_le_bytes()
}
