//! Format inspection of uploaded image data (API.md §18): which disk format the bytes
//! really are, their virtual size, and the safety checks behind CVE-2022-47951 (VMDK
//! descriptors naming host files), CVE-2024-32498 (qcow2 external data files) and
//! CVE-2024-44082 (format confusion).
//!
//! The inspector sees the upload stream as it passes to the engine and keeps only the
//! regions the formats need: the first 64 KiB (every header, and the ISO volume
//! descriptor at 32 KiB) plus regions found from those (a VMDK's embedded descriptor, a
//! VHDX's region and metadata tables), each capped, so memory stays small whatever the
//! image size. A region that lies before the stream position when it becomes known is lost;
//! that only costs a VHDX its virtual size, and makes a VMDK fail its safety check.

use std::collections::BTreeMap;

/// Bytes kept from the start of the stream.
const HEAD: usize = 64 * 1024;
/// Largest extra region captured (upstream caps the VMDK descriptor at 1 MiB).
const MAX_REGION: u64 = 1 << 20;
/// VMDK create types accepted (`[image_format] vmdk_allowed_types`).
const VMDK_ALLOWED: &[&str] = &["streamOptimized", "monolithicSparse"];

#[derive(Default)]
pub struct Inspector {
    head: Vec<u8>,
    /// Regions asked for, by start offset: (length, bytes captured so far).
    regions: BTreeMap<u64, (u64, Vec<u8>)>,
    seen: u64,
    planned_head: bool,
}

/// What the bytes are, once all of them have passed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Findings {
    pub size: u64,
    /// None for an empty stream.
    pub format: Option<String>,
    /// Why the detected format's safety check failed, if it did.
    pub unsafe_reason: Option<String>,
    /// The detected format's virtual size.
    pub virtual_size: Option<u64>,
}

impl Findings {
    /// Judges the bytes against the declared `disk_format` (upstream's rules: raw accepts
    /// any safe data, formats the inspector does not know accept raw-looking data, every
    /// other format must match).
    pub fn verdict(&self, declared: &str) -> Result<Verdict, Refusal> {
        self.verdict_with(declared, true)
    }

    /// `verdict` with `[image_format] require_image_format_match` as configured: when false,
    /// data of another format than declared is accepted without a virtual size, as upstream
    /// does. Unlike upstream (which skips the safety check when the format does not match),
    /// unsafe data is refused whatever was declared: a qcow2 with a backing file must not
    /// pass as a VMDK because the operator relaxed format matching.
    pub fn verdict_with(&self, declared: &str, require_match: bool) -> Result<Verdict, Refusal> {
        let Some(found) = self.format.as_deref() else {
            // Nothing to inspect: no format, no virtual size (as upstream).
            return Ok(Verdict { virtual_size: None });
        };
        if let Some(reason) = &self.unsafe_reason {
            return Err(Refusal::Unsafe {
                reason: reason.clone(),
            });
        }
        let mismatch = || Refusal::Mismatch {
            declared: declared.into(),
            found: found.into(),
        };
        match declared {
            // Raw's virtual size is the byte count.
            "raw" => Ok(Verdict {
                virtual_size: Some(self.size),
            }),
            "ami" | "ari" | "aki" | "ploop" if found == "raw" => Ok(Verdict { virtual_size: None }),
            d if d == found => Ok(Verdict {
                virtual_size: self.virtual_size,
            }),
            _ if !require_match => {
                tracing::warn!(declared, found, "image data does not match its disk_format; accepted (require_image_format_match = False)");
                Ok(Verdict { virtual_size: None })
            }
            _ => Err(mismatch()),
        }
    }
}

/// What inspection decided.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub virtual_size: Option<u64>,
}

/// Why the data was refused (both are 415 upstream).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Mismatch { declared: String, found: String },
    Unsafe { reason: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Mismatch { declared, found } => write!(
                f,
                "Image disk_format {declared} does not match stream data {found}"
            ),
            Refusal::Unsafe { reason } => write!(f, "Image failed safety checks ({reason})"),
        }
    }
}

impl Inspector {
    pub fn new() -> Inspector {
        Inspector::default()
    }

    /// Feeds the next piece of the stream.
    pub fn feed(&mut self, data: &[u8]) {
        let start = self.seen;
        let end = start + data.len() as u64;
        if self.head.len() < HEAD {
            let take = (HEAD - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
        }
        if !self.planned_head && self.head.len() >= HEAD {
            // Every header sits in the first 64 KiB: plan once they are in.
            self.planned_head = true;
            self.plan();
        }
        // Capturing a region can reveal the next one (VHDX: region table → metadata table
        // → size item), which may lie further on in this same piece.
        while self.capture(start, end, data) {
            self.plan();
        }
        self.seen = end;
    }

    /// Copies what `data` (stream bytes `[start, end)`) holds of the wanted regions;
    /// true when one of them became complete.
    fn capture(&mut self, start: u64, end: u64, data: &[u8]) -> bool {
        let mut completed = false;
        for (&rstart, (len, buf)) in self.regions.iter_mut() {
            let rend = rstart + *len;
            let have_end = rstart + buf.len() as u64;
            if have_end >= rend || end <= have_end || start > have_end {
                continue;
            }
            let from = (have_end - start) as usize;
            let to = (rend.min(end) - start) as usize;
            buf.extend_from_slice(&data[from..to]);
            completed |= rstart + buf.len() as u64 == rend;
        }
        completed
    }

    /// The bytes at `[off, off+len)` if they were kept.
    fn bytes(&self, off: u64, len: usize) -> Option<&[u8]> {
        let end = off.checked_add(len as u64)?;
        if end <= self.head.len() as u64 {
            return Some(&self.head[off as usize..end as usize]);
        }
        let (&rstart, (_, buf)) = self.regions.range(..=off).next_back()?;
        let from = usize::try_from(off - rstart).ok()?;
        buf.get(from..from.checked_add(len)?)
    }

    fn want(&mut self, off: u64, len: u64) {
        let len = len.min(MAX_REGION);
        // Offsets come from the image's own header: one past the end of the address space
        // names nothing the stream can hold.
        let Some(end) = off.checked_add(len) else {
            return;
        };
        if len == 0 || end <= self.head.len() as u64 || self.regions.contains_key(&off) {
            return;
        }
        self.regions.insert(off, (len, Vec::new()));
    }

    /// Asks for the regions the detected format needs next.
    fn plan(&mut self) {
        match self.detect() {
            Some("vmdk") if self.head.starts_with(b"KDMV") => {
                if let (Some(off), Some(len)) = (le64(&self.head, 28), le64(&self.head, 36)) {
                    self.want(off.saturating_mul(512), len.saturating_mul(512));
                }
            }
            Some("vhdx") => {
                const REGION_TABLE: u64 = 192 * 1024;
                self.want(REGION_TABLE, 64 * 1024);
                if let Some((meta, _)) = self.vhdx_metadata_region() {
                    self.want(meta, 64 * 1024);
                    if let Some(item) = self.vhdx_size_item(meta) {
                        self.want(item, 8);
                    }
                }
            }
            _ => {}
        }
    }

    /// The format the first bytes announce (`raw` when none does).
    fn detect(&self) -> Option<&'static str> {
        let h = &self.head;
        Some(if h.starts_with(b"QFI\xfb") {
            "qcow2"
        } else if h.starts_with(b"QED\0") {
            "qed"
        } else if h.starts_with(b"conectix") {
            "vhd"
        } else if h.starts_with(b"vhdxfile") {
            "vhdx"
        } else if h.starts_with(b"KDMV") || h.starts_with(b"# Disk DescriptorFile") {
            "vmdk"
        } else if le32(h, 0x40) == Some(0xbeda_107f) {
            "vdi"
        } else if h.starts_with(b"LUKS\xba\xbe") {
            "luks"
        } else if h.get(0x8001..0x8006) == Some(b"CD001") {
            "iso"
        } else if is_gpt(h) {
            "gpt"
        } else {
            "raw"
        })
    }

    /// Decides once the whole stream has passed. `declared` is the image's `disk_format`;
    /// `size` the byte count.
    #[cfg(test)]
    pub fn finish(self, declared: &str, size: u64) -> Result<Verdict, Refusal> {
        self.conclude(size).verdict(declared)
    }

    /// What the stream turned out to be, independent of what it was declared as (staged
    /// data is inspected when staged and judged at import).
    pub fn conclude(mut self, size: u64) -> Findings {
        if size == 0 {
            return Findings::default();
        }
        if !self.planned_head {
            self.planned_head = true;
            self.plan();
        }
        let found = self.detect().unwrap_or("raw");
        Findings {
            size,
            format: Some(found.to_string()),
            unsafe_reason: self.safety_check(found).err().map(|r| r.to_string()),
            virtual_size: self.virtual_size(found, size),
        }
    }

    fn safety_check(&self, format: &'static str) -> Result<(), Refusal> {
        let fail = |reason: &str| {
            Err(Refusal::Unsafe {
                reason: format!("{format}: {reason}"),
            })
        };
        let h = &self.head;
        match format {
            "qcow2" => {
                let version = be32(h, 4).unwrap_or(0);
                if !(2..=3).contains(&version) {
                    return fail("unsupported qcow2 version");
                }
                if be64(h, 8) != Some(0) {
                    return fail("image has a backing file");
                }
                if version == 3 {
                    let incompatible = be64(h, 72).unwrap_or(u64::MAX);
                    if incompatible & (1 << 2) != 0 {
                        return fail("image has an external data file");
                    }
                    // Known bits: dirty, corrupt, external data, compression type,
                    // extended L2 entries.
                    if incompatible & !0b11111 != 0 {
                        return fail("unknown incompatible feature bits");
                    }
                }
                Ok(())
            }
            "qed" => fail("QED images are not supported"),
            "vmdk" => self.vmdk_check().or_else(|r| fail(&r)),
            "luks" => {
                if be16(h, 6) == Some(1) {
                    Ok(())
                } else {
                    fail("only LUKS version 1 is supported")
                }
            }
            "gpt" => {
                // The protective MBR's entries: boot flag 0x00 or 0x80.
                for i in 0..4 {
                    let flag = h.get(446 + 16 * i).copied().unwrap_or(0);
                    if flag != 0 && flag != 0x80 {
                        return fail("invalid MBR partition entry");
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The embedded (or whole-file) descriptor: only comments, `ddb.*` and header keys,
    /// and extents whose file names carry no path; an allowed create type.
    fn vmdk_check(&self) -> Result<(), String> {
        let text = if self.head.starts_with(b"KDMV") {
            let off = le64(&self.head, 28).unwrap_or(0).saturating_mul(512);
            let len = le64(&self.head, 36).unwrap_or(0).saturating_mul(512);
            if off == 0 || len == 0 {
                return Err("no embedded descriptor".into());
            }
            let len = len.min(MAX_REGION) as usize;
            self.bytes(off, len)
                .ok_or("descriptor not found in the stream")?
                .to_vec()
        } else {
            self.head.clone()
        };
        let text = String::from_utf8_lossy(&text);
        let text = text.split('\0').next().unwrap_or("");
        let mut create_type = None;
        let mut extents = 0;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("ddb.") {
                continue;
            }
            if let Some(rest) = ["RW ", "RDONLY ", "NOACCESS "]
                .iter()
                .find_map(|p| line.strip_prefix(p))
            {
                let name = rest.split('"').nth(1).ok_or("extent without a file name")?;
                if name.contains('/') {
                    return Err(format!("extent file name {name:?} is a path"));
                }
                extents += 1;
                continue;
            }
            match line.split_once('=') {
                Some((k, v)) => {
                    if k.trim() == "createType" {
                        create_type = Some(v.trim().trim_matches('"').to_string());
                    }
                }
                None => return Err(format!("unexpected descriptor line {line:?}")),
            }
        }
        match create_type {
            Some(t) if VMDK_ALLOWED.contains(&t.as_str()) => {}
            Some(t) => return Err(format!("create type {t} is not allowed")),
            None => return Err("descriptor without createType".into()),
        }
        if extents == 0 {
            return Err("descriptor without extents".into());
        }
        Ok(())
    }

    fn virtual_size(&self, format: &str, size: u64) -> Option<u64> {
        let h = &self.head;
        match format {
            "qcow2" => be64(h, 24),
            "vhd" => be64(h, 48),
            "vdi" => le64(h, 0x170),
            "vmdk" => le64(h, 12).map(|sectors| sectors.saturating_mul(512)),
            "iso" => {
                let blocks = le32(h, 0x8050)? as u64;
                let block = le16(h, 0x8080)? as u64;
                Some(blocks * block)
            }
            "vhdx" => {
                let (meta, _) = self.vhdx_metadata_region()?;
                let item = self.vhdx_size_item(meta)?;
                le64(self.bytes(item, 8)?, 0)
            }
            "raw" => Some(size),
            _ => None,
        }
    }

    /// The metadata region (offset, length) from the VHDX region table.
    fn vhdx_metadata_region(&self) -> Option<(u64, u64)> {
        const METADATA_GUID: [u8; 16] = [
            0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f,
            0x88, 0x6e,
        ];
        let table = self.bytes(192 * 1024, 16)?;
        if &table[..4] != b"regi" {
            return None;
        }
        let count = le32(table, 8)?.min(2047) as u64;
        (0..count).find_map(|i| {
            let e = self.bytes(192 * 1024 + 16 + i * 32, 32)?;
            (e[..16] == METADATA_GUID)
                .then(|| (le64(e, 16).unwrap_or(0), le32(e, 24).unwrap_or(0) as u64))
        })
    }

    /// Where the VirtualDiskSize metadata item of a VHDX lives.
    fn vhdx_size_item(&self, meta: u64) -> Option<u64> {
        const SIZE_GUID: [u8; 16] = [
            0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b,
            0xf4, 0xb8,
        ];
        let header = self.bytes(meta, 32)?;
        if &header[..8] != b"metadata" {
            return None;
        }
        let count = le16(header, 10)?.min(2047) as u64;
        (0..count).find_map(|i| {
            let e = self.bytes(meta.checked_add(32 + i * 32)?, 32)?;
            (e[..16] == SIZE_GUID)
                .then(|| meta.checked_add(le32(e, 16).unwrap_or(0) as u64))
                .flatten()
        })
    }
}

fn is_gpt(h: &[u8]) -> bool {
    h.get(510..512) == Some(&[0x55, 0xaa]) && (0..4).any(|i| h.get(446 + 16 * i + 4) == Some(&0xee))
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn le64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}
fn be16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn be32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn be64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect(data: &[u8], declared: &str, piece: usize) -> Result<Verdict, Refusal> {
        let mut i = Inspector::new();
        for c in data.chunks(piece.max(1)) {
            i.feed(c);
        }
        i.finish(declared, data.len() as u64)
    }

    fn qcow2(version: u32, backing: u64, incompatible: u64) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[8..16].copy_from_slice(&backing.to_be_bytes());
        h[24..32].copy_from_slice(&(32u64 << 20).to_be_bytes());
        h[72..80].copy_from_slice(&incompatible.to_be_bytes());
        h
    }

    #[test]
    fn qcow2_rules() {
        let ok = qcow2(3, 0, 0);
        assert_eq!(
            inspect(&ok, "qcow2", 7).unwrap().virtual_size,
            Some(32 << 20)
        );
        assert!(matches!(
            inspect(&ok, "vmdk", 4096),
            Err(Refusal::Mismatch { .. })
        ));
        // Declared raw: accepted, virtual size = bytes, but safety still applies.
        assert_eq!(inspect(&ok, "raw", 100).unwrap().virtual_size, Some(4096));
        for bad in [
            qcow2(3, 512, 0),
            qcow2(3, 0, 1 << 2),
            qcow2(4, 0, 0),
            qcow2(3, 0, 1 << 9),
        ] {
            for declared in ["qcow2", "raw"] {
                assert!(matches!(
                    inspect(&bad, declared, 1000),
                    Err(Refusal::Unsafe { .. })
                ));
            }
        }
    }

    #[test]
    fn raw_and_unknown_formats() {
        let data = vec![7u8; 100_000];
        assert_eq!(
            inspect(&data, "raw", 333).unwrap().virtual_size,
            Some(100_000)
        );
        assert_eq!(inspect(&data, "ami", 333).unwrap().virtual_size, None);
        assert!(matches!(
            inspect(&data, "qcow2", 333),
            Err(Refusal::Mismatch { .. })
        ));
        assert!(matches!(
            inspect(&data, "iso", 333),
            Err(Refusal::Mismatch { .. })
        ));
        assert_eq!(inspect(b"", "qcow2", 1).unwrap().virtual_size, None);
    }

    #[test]
    fn vmdk_descriptors() {
        let flat = b"# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 2048 FLAT \"/etc/passwd\" 0\n";
        assert!(matches!(
            inspect(flat, "vmdk", 10),
            Err(Refusal::Unsafe { .. })
        ));
        // A sparse extent with its descriptor at sector 1.
        let mut v = vec![0u8; 128 * 1024];
        v[..4].copy_from_slice(b"KDMV");
        v[12..20].copy_from_slice(&8192u64.to_le_bytes());
        v[28..36].copy_from_slice(&1u64.to_le_bytes());
        v[36..44].copy_from_slice(&20u64.to_le_bytes());
        let desc = b"# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicSparse\"\nRW 8192 SPARSE \"d.vmdk\"\nddb.virtualHWVersion = \"4\"\n";
        v[512..512 + desc.len()].copy_from_slice(desc);
        assert_eq!(
            inspect(&v, "vmdk", 999).unwrap().virtual_size,
            Some(8192 * 512)
        );
        let evil = b"# Disk DescriptorFile\ncreateType=\"monolithicSparse\"\nRW 8192 SPARSE \"../../etc/shadow\"\n";
        v[512..512 + desc.len()].fill(0);
        v[512..512 + evil.len()].copy_from_slice(evil);
        assert!(matches!(
            inspect(&v, "vmdk", 999),
            Err(Refusal::Unsafe { .. })
        ));
    }
}
