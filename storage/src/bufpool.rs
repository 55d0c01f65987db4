//! Read buffers that outlive a read. A chunk read hands its buffer to the consumer (the
//! HTTP body) and gets it back when the last `Bytes` pointing into it is dropped, so warm
//! reads reuse resident memory: no fresh 1 MiB allocation (with its page faults and zeroing)
//! per chunk, which is what made many concurrent readers of warm data slow.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers kept for reuse; beyond this they are freed.
const KEEP: usize = 64;
/// Buffers larger than this are not kept (an unusual chunk size).
const KEEP_MAX_CAPACITY: usize = 8 << 20;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A buffer of `len` bytes, from the pool when one is free. Its contents are whatever the
/// last user left: callers overwrite all of it.
pub fn take(len: usize) -> Vec<u8> {
    let reused = FREE.lock().map(|mut f| f.pop()).unwrap_or(None);
    match reused {
        Some(mut buf) => {
            // Only a longer length than the buffer last had is zero-filled (once).
            buf.resize(len, 0);
            buf
        }
        None => vec![0u8; len],
    }
}

/// Freezes a filled buffer into `Bytes` that return it to the pool when dropped.
pub fn freeze(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Pooled(buf))
}

struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        if buf.capacity() > KEEP_MAX_CAPACITY {
            return;
        }
        if let Ok(mut free) = FREE.lock() {
            if free.len() < KEEP {
                free.push(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back() {
        let mut b = take(1000);
        b.iter_mut().for_each(|x| *x = 7);
        let frozen = freeze(b);
        let part = frozen.slice(10..20);
        drop(frozen);
        assert_eq!(&part[..], &[7u8; 10]);
        drop(part);
        let again = take(500);
        assert_eq!(again.len(), 500);
    }
}
