//! Property-based fuzzing of every parser of network input, on stable Rust (proptest):
//! S3 XML documents and ACL policies, SigV4/SigV2 headers and query strings, aws-chunked
//! framing and trailers, Range and conditional headers, Glance JSON patch and bodies, image
//! list filters and sort, and the qcow2/VMDK/VHD(X)/ISO inspectors.
//!
//! Inputs are random bytes, and mutations (bit flips, insertions of protocol tokens, cuts,
//! repeats, truncation) of a corpus of requests as real clients send them. Each case asserts:
//! no panic (proptest fails the case), no stack overflow (it would abort this process), a
//! protocol answer (the facade returns the status a request would get), and bounded memory:
//! an allocator that counts this thread's live bytes checks that no case peaks above
//! `BUDGET` + 64 × its input size.
//!
//! `FUZZ_CASES` (default 10,000) sets the cases per target; each target prints its count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use glint::glance::fuzzing as glance;
use glint::s3::fuzzing as s3;

// ---------------------------------------------------------------------------------------
// Memory accounting: live bytes allocated by the current thread, and their peak.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    // try_with: the allocator also runs while thread-locals are torn down.
    let _ = LIVE.try_with(|l| {
        let now = l.get() + delta;
        l.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now)
            }
        });
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            track(l.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        track(-(l.size() as isize));
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            track(l.size() as isize);
        }
        p
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            track(new as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What any one case may hold beyond its input (the inspector keeps 64 KiB plus regions).
const BUDGET: isize = 8 << 20;

/// Runs `f` and fails if it peaked above the budget for an input of `input_len` bytes.
fn bounded<T>(input_len: usize, f: impl FnOnce() -> T) -> T {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get) - start;
    assert!(
        peak <= BUDGET + 64 * input_len as isize,
        "peak {peak} bytes for an input of {input_len}"
    );
    out
}

// ---------------------------------------------------------------------------------------
// Inputs: random bytes, and mutated seeds.

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Token(usize, usize),
    Cut(usize, usize),
    Repeat(usize, usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, t)| Mutation::Token(i, t)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Cut(i, n)),
        (any::<usize>(), 1usize..32, 1usize..200).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Protocol tokens spliced into inputs: what a parser treats specially.
const TOKENS: &[&str] = &[
    "<",
    ">",
    "</",
    "/>",
    "<a>",
    "</a>",
    "<![CDATA[",
    "]]>",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&lt",
    "<!DOCTYPE a [<!ENTITY e \"x\">]>",
    "&e;",
    "<?xml version=\"1.0\"?>",
    "xmlns:a=\"b\"",
    "\r\n",
    "\r\n\r\n",
    ";chunk-signature=",
    "0\r\n",
    "ffffffffffffffff\r\n",
    "x-amz-checksum-crc32:",
    ",",
    "=",
    "&",
    "%",
    "%zz",
    "%00",
    "+",
    "bytes=",
    "-",
    "99999999999999999999",
    "0-",
    "AWS4-HMAC-SHA256 ",
    "Credential=",
    "SignedHeaders=",
    "Signature=",
    "/aws4_request",
    "AWS ",
    "X-Amz-Expires=604800",
    "X-Amz-Date=99991231T235959Z",
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    "null",
    "1e999999",
    "\\u0000",
    "\"op\"",
    "\"path\"",
    "/~1",
    "in:",
    "gte:",
    "sort=",
    "KDMV",
    "QFI\u{fb}",
    "conectix",
    "vhdxfile",
    "CD001",
    "createType=",
];

fn apply(mut v: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match m {
            Mutation::Flip(i, b) if !v.is_empty() => {
                let i = i % v.len();
                v[i] ^= b;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(i, bytes) => {
                let i = at(*i, v.len());
                v.splice(i..i, bytes.iter().copied());
            }
            Mutation::Token(i, t) => {
                let i = at(*i, v.len());
                let tok = TOKENS[t % TOKENS.len()].as_bytes();
                v.splice(i..i, tok.iter().copied());
            }
            Mutation::Cut(i, n) => {
                let i = at(*i, v.len()).min(v.len());
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Mutation::Repeat(i, n, k) => {
                let i = at(*i, v.len()).min(v.len());
                let end = (i + n).min(v.len());
                let piece = v[i..end].to_vec();
                for _ in 0..*k {
                    v.splice(end..end, piece.iter().copied());
                }
            }
            Mutation::Truncate(n) => {
                let n = at(*n, v.len());
                v.truncate(n);
            }
        }
    }
    v
}

/// Random bytes, or a seed with up to 8 mutations.
fn input(seeds: &'static [&'static [u8]], max_random: usize) -> impl Strategy<Value = Vec<u8>> {
    let seeded = (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 0..8),
    )
        .prop_map(|(s, ms)| apply(s.to_vec(), &ms));
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..max_random),
        3 => seeded,
    ]
}

fn text(seeds: &'static [&'static [u8]]) -> impl Strategy<Value = String> {
    input(seeds, 512).prop_map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Runs `cases()` cases of `strategy` through `check`, then prints the count.
fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(S::Value)) {
    let n = cases();
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    });
    runner
        .run(&strategy, |v| {
            check(v);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("fuzz {name}: {e}"));
    println!("fuzz {name}: {n} cases, no panic, memory bounded");
}

// ---------------------------------------------------------------------------------------
// Seeds: request parts as real clients send them (boto3 / aws-cli / SDK signers, glanceclient).

const XML_SEEDS: &[&[u8]] = &[
    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><ETag>\"9b2cf535f27731c974343645a3985328\"</ETag><PartNumber>1</PartNumber></Part><Part><ETag>\"acbd18db4cc2f85cedef654fccc4a4d8\"</ETag><ChecksumCRC32>NhCmhg==</ChecksumCRC32><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>",
    b"<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Object><Key>a/b.txt</Key></Object><Object><Key>c &amp; d</Key><VersionId>null</VersionId><ETag>\"x\"</ETag></Object><Quiet>true</Quiet></Delete>",
    b"<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>",
    b"<AccessControlPolicy xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Owner><ID>proj</ID></Owner><AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>alt</ID></Grantee><Permission>READ</Permission></Grant><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>",
    b"<a><![CDATA[x]]>&#65;&lt;</a>",
];

#[test]
fn fuzz_s3_xml() {
    fuzz("s3 xml documents", input(XML_SEEDS, 4096), |doc| {
        bounded(doc.len(), || {
            let _ = s3::xml(&doc);
            let _ = s3::acl_policy(&doc).map_err(|(status, _)| assert_eq!(status, 400));
        });
    });
    // Deep and wide documents, well past the bounds, built directly.
    fuzz(
        "s3 xml nesting",
        (1usize..60_000, 0usize..3),
        |(n, shape)| {
            let doc = match shape {
                0 => format!("{}{}", "<a>".repeat(n), "</a>".repeat(n)),
                1 => format!("<r>{}</r>", "<p/>".repeat(n)),
                _ => "<a>".repeat(n),
            };
            bounded(doc.len(), || {
                let _ = s3::xml(doc.as_bytes());
            });
        },
    );
}

#[test]
fn fuzz_xml_writer_round_trip() {
    fuzz("s3 xml writer", any::<String>(), |s| {
        let back = s3::xml_round_trip(&s).expect("the writer's output parses");
        let expected: String = s
            .chars()
            .map(|c| {
                let ok = matches!(c, '\t' | '\n' | '\r')
                    || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}');
                if ok {
                    c
                } else {
                    '\u{FFFD}'
                }
            })
            .collect();
        assert_eq!(back, expected);
    });
}

const QUERY_SEEDS: &[&[u8]] = &[
    b"list-type=2&prefix=photos%2F&delimiter=%2F&max-keys=1000&encoding-type=url&continuation-token=YWJj",
    b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261202%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261202T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    b"AWSAccessKeyId=AKID&Expires=1795552497&Signature=dGVzdA%3D%3D&response-content-type=text%2Fplain",
    b"uploadId=0123456789abcdef0123456789abcdef&partNumber=3",
    b"name=cirros&visibility=public&status=in:active,queued&created_at=gte:2026-01-01T00:00:00Z&sort=name:asc,created_at:desc&limit=20&marker=abc",
    b"sort_key=name&sort_dir=desc&sort_key=size&sort_dir=asc&tag=a&tag=b&size_min=1&size_max=100&os_hidden=true&member_status=all",
    b"protected=true&updated_at=lt:2026-12-01T00:00:00Z&disk_format=in:\"qcow2\",raw&os_glance_stores=a",
];

#[test]
fn fuzz_query_strings() {
    fuzz(
        "query strings (S3 and Glance lists)",
        text(QUERY_SEEDS),
        |q| {
            bounded(q.len(), || {
                let _ = s3::query_params(&q);
                if let Err(status) = glance::list_query(&q) {
                    assert_eq!(status, 400, "{q:?}");
                }
            });
        },
    );
}

const AUTH_SEEDS: &[&[u8]] = &[
    b"AWS4-HMAC-SHA256 Credential=AKID/20261202/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
    b"AWS4-HMAC-SHA256 Credential=AKID/20261202/us-east-1/s3/aws4_request,SignedHeaders=content-md5;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length,Signature=0000",
    b"AWS AKID:frJIUN8DYpKDtOLCwo//yllqDzg=",
    b"20261202T000000Z",
    b"Wed, 02 Dec 2026 00:00:00 GMT",
    b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    b"STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    b"UNSIGNED-PAYLOAD",
];

#[test]
fn fuzz_signatures() {
    let strategy = (
        text(AUTH_SEEDS),
        text(AUTH_SEEDS),
        text(AUTH_SEEDS),
        text(QUERY_SEEDS),
        0usize..4,
    );
    fuzz(
        "sigv4/sigv2 headers and query",
        strategy,
        |(a, date, payload, query, mode)| {
            let mut headers = vec![("host".to_string(), "127.0.0.1:8080".to_string())];
            match mode {
                0 => {
                    headers.push(("authorization".into(), a.clone()));
                    headers.push(("x-amz-date".into(), date.clone()));
                    headers.push(("x-amz-content-sha256".into(), payload.clone()));
                }
                1 => {
                    headers.push(("authorization".into(), a.clone()));
                    headers.push(("date".into(), date.clone()));
                }
                _ => {}
            }
            let len = a.len() + date.len() + payload.len() + query.len();
            bounded(len, || {
                let r = s3::authenticate("GET", "/bucket/key", &query, &headers, 1_795_000_000);
                if let Err((status, code)) = r {
                    assert!(
                        (400..500).contains(&status),
                        "{code} {status} for {a:?} {query:?}"
                    );
                }
            });
        },
    );
}

const CHUNKED_SEEDS: &[&[u8]] = &[
    b"5\r\nhello\r\n0\r\n\r\n",
    b"400;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n0123\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n",
    b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n",
    b"3\r\nabc\r\n0\r\nx-amz-checksum-sha256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=\r\nx-amz-trailer-signature:63bddb248ad2590c92712055f51b8e78ab024eead08276b24f010b0efd74843f\r\n\r\n",
];

#[test]
fn fuzz_aws_chunked() {
    let strategy = (
        input(CHUNKED_SEEDS, 2048),
        prop::collection::vec(1usize..64, 1..8),
        any::<bool>(),
    );
    fuzz(
        "aws-chunked framing and trailers",
        strategy,
        |(body, cuts, signed)| {
            // Delivered in pieces of the given sizes, as a socket might.
            let mut pieces = Vec::new();
            let mut rest = &body[..];
            for c in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let n = (*c).min(rest.len());
                pieces.push(rest[..n].to_vec());
                rest = &rest[n..];
            }
            bounded(body.len(), || match s3::aws_chunked(pieces, signed) {
                Ok((decoded, trailers)) => {
                    assert!(decoded <= body.len() as u64);
                    assert!(trailers <= 16);
                }
                Err((status, _)) => assert!((400..500).contains(&status)),
            });
        },
    );
}

const RANGE_SEEDS: &[&[u8]] = &[
    b"bytes=0-9",
    b"bytes=100-",
    b"bytes=-500",
    b"bytes=5-2",
    b"bytes=0-99999999999999999999",
    b"bytes=0-1,5-6",
    b"Wed, 02 Dec 2026 05:00:00 GMT",
    b"2026-12-02T05:00:00.000Z",
];

#[test]
fn fuzz_ranges_and_conditions() {
    let strategy = (text(RANGE_SEEDS), any::<u64>());
    fuzz("range and conditional headers", strategy, |(v, size)| {
        bounded(v.len(), || {
            match s3::s3_range(&v, size) {
                Ok(Some((a, b))) => assert!(a < b && b <= size),
                Ok(None) => {}
                Err((status, _)) => assert_eq!(status, 416),
            }
            match glance::range(&v, size) {
                Ok((a, b)) => assert!(a < b && b <= size),
                Err(status) => assert!(status == 400 || status == 416),
            }
            let _ = s3::timestamp(&v).map_err(|(status, _)| assert_eq!(status, 400));
        });
    });
}

const JSON_SEEDS: &[&[u8]] = &[
    b"[{\"op\": \"replace\", \"path\": \"/name\", \"value\": \"cirros\"}, {\"op\": \"add\", \"path\": \"/hw_disk_bus\", \"value\": \"scsi\"}, {\"op\": \"remove\", \"path\": \"/os_distro\"}]",
    b"[{\"replace\": \"/tags\", \"value\": [\"a\", \"b\"]}, {\"add\": \"/~1odd~0key\", \"value\": \"x\"}]",
    b"{\"name\": \"cirros\", \"disk_format\": \"qcow2\", \"container_format\": \"bare\", \"visibility\": \"shared\", \"tags\": [\"t\"], \"min_ram\": 512}",
    b"{\"method\": {\"name\": \"web-download\", \"uri\": \"http://example.com/x.img\"}, \"stores\": [\"fast\"], \"all_stores_must_succeed\": false}",
    b"{\"member\": \"alt\"}",
];

#[test]
fn fuzz_glance_json() {
    let strategy = (input(JSON_SEEDS, 2048), 0usize..3);
    fuzz("glance json bodies and patches", strategy, |(body, ct)| {
        let content_type = [
            "application/openstack-images-v2.1-json-patch",
            "application/openstack-images-v2.0-json-patch",
            "application/json",
        ][ct];
        bounded(body.len(), || {
            if let Err(status) = glance::json_patch(&body, content_type) {
                assert!(status == 400 || status == 415, "{status}");
            }
            let _ = glance::json_object(&body);
        });
    });
    // Nesting past serde_json's recursion limit is refused, not a stack overflow.
    fuzz(
        "glance json nesting",
        (1usize..100_000, any::<bool>()),
        |(n, arr)| {
            let (o, c) = if arr { ("[", "]") } else { ("{\"a\":", "}") };
            let doc = format!("{}1{}", o.repeat(n), c.repeat(n));
            bounded(doc.len(), || {
                let _ = glance::json_patch(
                    doc.as_bytes(),
                    "application/openstack-images-v2.1-json-patch",
                );
                let _ = glance::json_object(doc.as_bytes());
            });
        },
    );
}

const METADEF_SEEDS: &[&[u8]] = &[
    br#"{"namespace": "N", "visibility": "public", "protected": true, "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "x_"}], "properties": {"p": {"type": "integer", "title": "P", "default": 3, "enum": ["a"], "items": {"type": "string"}}}, "objects": [{"name": "o", "required": ["p"], "properties": {"p": {"type": "string", "title": "P"}}}], "tags": [{"name": "t"}]}"#,
    br#"{"namespace": ""}"#,
    br#"{"objects": [{}], "namespace": "x"}"#,
];

#[test]
fn fuzz_metadef_documents() {
    fuzz(
        "metadef definition documents",
        input(METADEF_SEEDS, 2048),
        |body| {
            bounded(body.len(), || {
                if let Err(status) = glance::metadef_document(&body) {
                    assert_eq!(status, 400);
                }
            });
        },
    );
}

/// Disk-image headers: a qcow2 v3 header with a backing file, a VMDK sparse header and
/// descriptor, a VHD footer, a VHDX file identifier, an ISO volume descriptor.
fn image_seeds() -> Vec<Vec<u8>> {
    let mut qcow2 = vec![0u8; 4096];
    qcow2[..4].copy_from_slice(b"QFI\xfb");
    qcow2[4..8].copy_from_slice(&3u32.to_be_bytes());
    qcow2[8..16].copy_from_slice(&512u64.to_be_bytes()); // backing file offset
    qcow2[16..20].copy_from_slice(&8u32.to_be_bytes());
    qcow2[20..24].copy_from_slice(&16u32.to_be_bytes());
    qcow2[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
    qcow2[104..108].copy_from_slice(&112u32.to_be_bytes());
    qcow2[512..520].copy_from_slice(b"base.img");
    let mut vmdk = vec![0u8; 4096];
    vmdk[..4].copy_from_slice(b"KDMV");
    vmdk[4..8].copy_from_slice(&1u32.to_le_bytes());
    vmdk[12..20].copy_from_slice(&2048u64.to_le_bytes()); // capacity in sectors
    vmdk[28..36].copy_from_slice(&1u64.to_le_bytes()); // descriptor offset (sectors)
    vmdk[36..44].copy_from_slice(&1u64.to_le_bytes()); // descriptor size
    let desc = b"# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicSparse\"\nRW 2048 SPARSE \"disk.vmdk\"\n";
    vmdk[512..512 + desc.len()].copy_from_slice(desc);
    let mut vhd = vec![0u8; 512];
    vhd[..8].copy_from_slice(b"conectix");
    vhd[48..56].copy_from_slice(&(1u64 << 20).to_be_bytes());
    let mut vhdx = vec![0u8; 8192];
    vhdx[..8].copy_from_slice(b"vhdxfile");
    let mut iso = vec![0u8; 34 * 1024];
    iso[32768] = 1;
    iso[32769..32774].copy_from_slice(b"CD001");
    vec![qcow2, vmdk, vhd, vhdx, iso]
}

#[test]
fn fuzz_image_inspectors() {
    let seeds = image_seeds();
    let strategy = (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 0..8),
        prop::collection::vec(1usize..9000, 1..6),
        0usize..7,
    );
    fuzz(
        "qcow2/vmdk/vhd/vhdx/iso inspectors",
        strategy,
        |(seed, ms, cuts, fmt)| {
            let data = apply(seed, &ms);
            let declared = ["raw", "qcow2", "vmdk", "vhd", "vhdx", "iso", "vdi"][fmt];
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut rest = &data[..];
            for c in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let n = (*c).min(rest.len());
                pieces.push(&rest[..n]);
                rest = &rest[n..];
            }
            bounded(data.len(), || {
                let _ = glance::inspect(&pieces, declared);
            });
        },
    );
}

/// Found by this file: a presigned URL dated at the very end of year 9999 with the longest
/// expiry overflowed the calendar while checking expiry (a panic in the request task).
#[test]
fn presigned_url_dated_at_the_end_of_time_is_refused() {
    let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F99991231%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=99991231T235959Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=00";
    let headers = [("host".to_string(), "127.0.0.1".to_string())];
    let r = s3::authenticate("GET", "/b/k", q, &headers, 1_795_000_000);
    assert!(matches!(r, Err((403, _))), "{r:?}");
}
