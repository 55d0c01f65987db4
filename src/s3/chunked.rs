//! The `aws-chunked` body encoding: `<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n` … a
//! zero-size chunk, then (with trailers) `name:value\r\n` lines and a blank line. Decoded
//! bytes flow on as they arrive (the engine only stages them: a bad signature found later
//! fails the upload before anything is committed); each chunk's signature is checked against
//! the chain from the seed signature, and trailers are handed to the handler through a slot.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures::Stream;
use sha2::{Digest, Sha256};

use super::auth::ChunkChain;
use super::error::S3Error;

/// Trailer lines received after the last chunk (lower-case names).
pub type Trailers = Arc<Mutex<Vec<(String, String)>>>;

const MAX_LINE: usize = 4096;
/// Trailer lines kept at most (SDKs send one checksum and perhaps a signature); more is an
/// error, so a body of endless trailer lines cannot grow memory.
const MAX_TRAILERS: usize = 16;

enum State {
    Header,
    Data {
        left: u64,
        signature: Option<String>,
        hasher: Sha256,
    },
    DataEnd {
        signature: Option<String>,
        hash: String,
    },
    Trailers,
    Done,
}

pub struct ChunkedDecoder<S> {
    inner: S,
    buf: BytesMut,
    state: State,
    chain: Option<ChunkChain>,
    previous: String,
    trailers: Trailers,
    inner_done: bool,
}

impl<S> ChunkedDecoder<S> {
    pub fn new(inner: S, chain: Option<ChunkChain>, trailers: Trailers) -> Self {
        let previous = chain
            .as_ref()
            .map(|c| c.seed_signature.clone())
            .unwrap_or_default();
        ChunkedDecoder {
            inner,
            buf: BytesMut::new(),
            state: State::Header,
            chain,
            previous,
            trailers,
            inner_done: false,
        }
    }

    fn take_line(&mut self) -> Result<Option<String>, S3Error> {
        match self.buf.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                let line = self.buf.split_to(i + 2);
                Ok(Some(String::from_utf8_lossy(&line[..i]).into_owned()))
            }
            None if self.buf.len() > MAX_LINE => Err(bad("chunk header line too long")),
            None => Ok(None),
        }
    }

    /// Makes progress on buffered bytes: `Some(item)` to yield, `None` when more input is needed.
    fn step(&mut self) -> Option<Result<Option<Bytes>, S3Error>> {
        loop {
            match &mut self.state {
                State::Header => {
                    let line = match self.take_line() {
                        Ok(Some(l)) => l,
                        Ok(None) => return None,
                        Err(e) => return Some(Err(e)),
                    };
                    let (size, ext) = line.split_once(';').unwrap_or((line.as_str(), ""));
                    let Ok(size) = u64::from_str_radix(size.trim(), 16) else {
                        return Some(Err(bad("chunk size is not hexadecimal")));
                    };
                    let signature = ext
                        .trim()
                        .strip_prefix("chunk-signature=")
                        .map(str::to_string);
                    if self.chain.is_some() && signature.is_none() {
                        return Some(Err(
                            S3Error::signature_mismatch().with_message("chunk signature missing")
                        ));
                    }
                    if size == 0 {
                        if let Err(e) = self.check_signature(signature.as_deref(), EMPTY_HASH) {
                            return Some(Err(e));
                        }
                        self.state = State::Trailers;
                    } else {
                        self.state = State::Data {
                            left: size,
                            signature,
                            hasher: Sha256::new(),
                        };
                    }
                }
                State::Data {
                    left,
                    signature,
                    hasher,
                } => {
                    if self.buf.is_empty() {
                        return None;
                    }
                    let n = (*left).min(self.buf.len() as u64) as usize;
                    let data = self.buf.split_to(n).freeze();
                    if self.chain.is_some() {
                        hasher.update(&data);
                    }
                    *left -= n as u64;
                    if *left == 0 {
                        let hash = hex::encode(std::mem::take(hasher).finalize());
                        self.state = State::DataEnd {
                            signature: signature.take(),
                            hash,
                        };
                    }
                    return Some(Ok(Some(data)));
                }
                State::DataEnd { signature, hash } => {
                    if self.buf.len() < 2 {
                        return None;
                    }
                    if &self.buf[..2] != b"\r\n" {
                        return Some(Err(bad("chunk data is not followed by CRLF")));
                    }
                    self.buf.advance(2);
                    let (sig, hash) = (signature.take(), std::mem::take(hash));
                    if let Err(e) = self.check_signature(sig.as_deref(), &hash) {
                        return Some(Err(e));
                    }
                    self.state = State::Header;
                }
                State::Trailers => {
                    let line = match self.take_line() {
                        Ok(Some(l)) => l,
                        Ok(None) if self.inner_done && self.buf.is_empty() => {
                            // Some clients end without the final blank line.
                            self.state = State::Done;
                            continue;
                        }
                        Ok(None) => return None,
                        Err(e) => return Some(Err(e)),
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                        continue;
                    }
                    let Some((name, value)) = line.split_once(':') else {
                        return Some(Err(bad("malformed trailer")));
                    };
                    let name = name.trim().to_ascii_lowercase();
                    let value = value.trim().to_string();
                    if name == "x-amz-trailer-signature" {
                        if let Some(chain) = &self.chain {
                            let text: String = self
                                .trailers
                                .lock()
                                .expect("trailers")
                                .iter()
                                .map(|(n, v)| format!("{n}:{v}\n"))
                                .collect();
                            let want = chain.trailer_signature(&self.previous, &text);
                            if want != value {
                                return Some(Err(S3Error::signature_mismatch()
                                    .with_message("trailer signature does not match")));
                            }
                        }
                    } else {
                        let mut trailers = self.trailers.lock().expect("trailers");
                        if trailers.len() == MAX_TRAILERS {
                            return Some(Err(bad("too many trailers")));
                        }
                        trailers.push((name, value));
                    }
                }
                State::Done => return Some(Ok(None)),
            }
        }
    }

    fn check_signature(&mut self, got: Option<&str>, chunk_hash: &str) -> Result<(), S3Error> {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        let want = chain.chunk_signature(&self.previous, chunk_hash);
        if got != Some(want.as_str()) {
            return Err(
                S3Error::signature_mismatch().with_message("chunk signature does not match")
            );
        }
        self.previous = want;
        Ok(())
    }
}

const EMPTY_HASH: &str = super::auth::EMPTY_SHA256;

fn bad(msg: &str) -> S3Error {
    S3Error::incomplete_body().with_message(format!("malformed aws-chunked body: {msg}"))
}

impl<S, E> Stream for ChunkedDecoder<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let State::Done = this.state {
                return Poll::Ready(None);
            }
            match this.step() {
                Some(Ok(Some(data))) => return Poll::Ready(Some(Ok(data))),
                Some(Ok(None)) => return Poll::Ready(None),
                Some(Err(e)) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                None => {}
            }
            if this.inner_done {
                this.state = State::Done;
                return Poll::Ready(Some(Err(Box::new(bad("body ended inside a chunk")))));
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(b))) => this.buf.extend_from_slice(&b),
                Poll::Ready(Some(Err(e))) => {
                    this.state = State::Done;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => this.inner_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    async fn decode(body: &'static [u8]) -> (Result<Vec<u8>, String>, Vec<(String, String)>) {
        let trailers = Trailers::default();
        let pieces: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(3)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut d = ChunkedDecoder::new(futures::stream::iter(pieces), None, trailers.clone());
        let mut out = Vec::new();
        while let Some(item) = d.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (Err(e.to_string()), vec![]),
            }
        }
        let t = trailers.lock().unwrap().clone();
        (Ok(out), t)
    }

    #[tokio::test]
    async fn decodes_chunks_and_trailers() {
        let (data, trailers) =
            decode(b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n").await;
        assert_eq!(data.unwrap(), b"hello world");
        assert_eq!(
            trailers,
            vec![("x-amz-checksum-crc32".to_string(), "AAAA".to_string())]
        );
        let (data, _) = decode(b"5\r\nhel").await;
        assert!(data.is_err());
        let (data, _) = decode(b"zz\r\n").await;
        assert!(data.is_err());
    }

    /// The AWS documentation's streaming example (64 KiB chunks of 'a'), first chunk.
    #[test]
    fn documented_chunk_signature() {
        let key = super::super::auth::signing_key(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "20130524",
            "us-east-1",
            "s3",
        );
        let chain = ChunkChain {
            signing_key: key,
            amz_date: "20130524T000000Z".into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
            seed_signature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
                .into(),
        };
        let chunk = vec![b'a'; 65536];
        let sig =
            chain.chunk_signature(&chain.seed_signature, &hex::encode(Sha256::digest(&chunk)));
        assert_eq!(
            sig,
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
        );
    }
}
