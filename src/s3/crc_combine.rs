//! Combining CRCs of consecutive byte ranges into the CRC of their concatenation without the
//! bytes (for FULL_OBJECT multipart checksums): the GF(2) operator method of zlib's
//! `crc32_combine`, for reflected CRCs whose init and final xor are all ones (CRC32, CRC32C,
//! CRC64/NVME).

/// Multiplies the 64×64 GF(2) matrix `mat` by `vec`.
fn times(mat: &[u64; 64], mut vec: u64) -> u64 {
    let mut sum = 0;
    let mut i = 0;
    while vec != 0 {
        if vec & 1 != 0 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

fn square(out: &mut [u64; 64], mat: &[u64; 64]) {
    for n in 0..64 {
        out[n] = times(mat, mat[n]);
    }
}

/// CRC of A‖B from crc(A), crc(B) and len(B), for a reflected CRC of `width` bits with
/// reflected polynomial `poly`.
pub fn combine(crc1: u64, crc2: u64, mut len2: u64, poly: u64, width: u32) -> u64 {
    if len2 == 0 {
        return crc1;
    }
    let mut even = [0u64; 64];
    let mut odd = [0u64; 64];
    // The operator for one zero bit.
    odd[0] = poly;
    let mut row = 1u64;
    for item in odd.iter_mut().take(width as usize).skip(1) {
        *item = row;
        row <<= 1;
    }
    square(&mut even, &odd); // two zero bits
    square(&mut odd, &even); // four zero bits
    let mut crc1 = crc1;
    loop {
        square(&mut even, &odd);
        if len2 & 1 != 0 {
            crc1 = times(&even, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
        square(&mut odd, &even);
        if len2 & 1 != 0 {
            crc1 = times(&odd, crc1);
        }
        len2 >>= 1;
        if len2 == 0 {
            break;
        }
    }
    crc1 ^ crc2
}

pub const CRC32_POLY: u64 = 0xedb8_8320;
pub const CRC32C_POLY: u64 = 0x82f6_3b78;
pub const CRC64NVME_POLY: u64 = 0x9a6c_9329_ac4b_c9b5;

#[cfg(test)]
mod tests {
    use super::*;
    use glint_storage::{DigestSet, Hasher};

    fn crcs(data: &[u8]) -> (u64, u64, u64) {
        let mut h = Hasher::new(DigestSet::CRC32 | DigestSet::CRC32C | DigestSet::CRC64NVME);
        h.update(data);
        let d = h.finish();
        (
            d.crc32.unwrap() as u64,
            d.crc32c.unwrap() as u64,
            d.crc64nvme.unwrap(),
        )
    }

    #[test]
    fn combined_equals_direct() {
        let a: Vec<u8> = (0..100_003u32).map(|i| (i * 7 + 3) as u8).collect();
        let b: Vec<u8> = (0..77_777u32).map(|i| (i * 13 + 1) as u8).collect();
        let (ca, cb, cab) = (crcs(&a), crcs(&b), crcs(&[a.clone(), b.clone()].concat()));
        let n = b.len() as u64;
        assert_eq!(combine(ca.0, cb.0, n, CRC32_POLY, 32), cab.0);
        assert_eq!(combine(ca.1, cb.1, n, CRC32C_POLY, 32), cab.1);
        assert_eq!(combine(ca.2, cb.2, n, CRC64NVME_POLY, 64), cab.2);
    }
}
