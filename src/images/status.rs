//! An image's status and the one table of legal transitions (upstream Glance's
//! `glance/domain`, plus the scrubber's restore of a pending delete).
//!
//! | from | to |
//! | --- | --- |
//! | queued | saving, uploading, importing, active, deleted |
//! | saving | active, killed, queued, deleted |
//! | uploading | importing, queued, deleted |
//! | importing | active, queued, deleted |
//! | active | pending_delete, deactivated, deleted |
//! | deactivated | active, pending_delete, deleted |
//! | pending_delete | deleted, active |
//! | killed | deleted |
//! | deleted | — |
//!
//! `deactivated → pending_delete` is a delayed delete of a deactivated image (its data waits
//! for the scrubber like an active one's); `pending_delete → active` is `glint scrubber
//! --restore` (upstream's scrubber restore).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageStatus {
    Queued,
    Saving,
    Uploading,
    Importing,
    Active,
    Deactivated,
    Killed,
    Deleted,
    PendingDelete,
}

/// A transition the table does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an image cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: ImageStatus,
    pub to: ImageStatus,
}

impl ImageStatus {
    /// The name upstream writes in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Uploading => "uploading",
            ImageStatus::Importing => "importing",
            ImageStatus::Active => "active",
            ImageStatus::Deactivated => "deactivated",
            ImageStatus::Killed => "killed",
            ImageStatus::Deleted => "deleted",
            ImageStatus::PendingDelete => "pending_delete",
        }
    }

    pub const ALL: [ImageStatus; 9] = [
        ImageStatus::Queued,
        ImageStatus::Saving,
        ImageStatus::Uploading,
        ImageStatus::Importing,
        ImageStatus::Active,
        ImageStatus::Deactivated,
        ImageStatus::Killed,
        ImageStatus::Deleted,
        ImageStatus::PendingDelete,
    ];

    /// Whether the table allows `self → to`.
    pub fn can_become(self, to: ImageStatus) -> bool {
        use ImageStatus::*;
        matches!(
            (self, to),
            (Queued, Saving | Uploading | Importing | Active | Deleted)
                | (Saving, Active | Killed | Queued | Deleted)
                | (Uploading, Importing | Queued | Deleted)
                | (Importing, Active | Queued | Deleted)
                | (Active, PendingDelete | Deactivated | Deleted)
                | (Deactivated, Active | PendingDelete | Deleted)
                | (PendingDelete, Deleted | Active)
                | (Killed, Deleted)
        )
    }

    /// Moves to `to` if the table allows it.
    pub fn become_(&mut self, to: ImageStatus) -> Result<(), IllegalTransition> {
        if self.can_become(to) {
            *self = to;
            Ok(())
        } else {
            Err(IllegalTransition { from: *self, to })
        }
    }

    /// Gone for everyone but the scrubber: listed nowhere, shown to nobody.
    pub fn is_deleted(self) -> bool {
        matches!(self, ImageStatus::Deleted | ImageStatus::PendingDelete)
    }
}

impl std::fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ImageStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<ImageStatus, ()> {
        ImageStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for s in ImageStatus::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<ImageStatus>(&json).unwrap(), s);
            assert_eq!(s.as_str().parse::<ImageStatus>(), Ok(s));
        }
    }

    #[test]
    fn the_table() {
        use ImageStatus::*;
        let mut s = Queued;
        s.become_(Saving).unwrap();
        s.become_(Active).unwrap();
        assert_eq!(
            s.become_(Saving),
            Err(IllegalTransition {
                from: Active,
                to: Saving
            })
        );
        assert!(!Deleted.can_become(Active));
        assert!(!Killed.can_become(Active));
        for from in ImageStatus::ALL {
            assert!(!from.can_become(from), "{from} to itself is no transition");
        }
    }
}
