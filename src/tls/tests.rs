use super::*;

fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, cert.pem())
}

fn served(tls: &Tls) -> Vec<u8> {
    tls.certificate.current.read().unwrap().cert[0].to_vec()
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[test]
fn loads_reloads_and_keeps_the_pair_in_use_when_a_reload_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (c1, k1, pem1) = write_pair(dir.path(), "one.test");
    let (c2, k2, pem2) = write_pair(dir.path(), "two.test");
    let tls = Tls::new(&c1, &k1).unwrap();
    assert_eq!(served(&tls), der(&pem1));

    // A certificate renewed in place without its key: refused, the old pair stays.
    std::fs::copy(&c2, &c1).unwrap();
    assert!(matches!(tls.reload(), Err(TlsError::Mismatch(_))));
    assert_eq!(served(&tls), der(&pem1));

    // Both renewed: the new certificate is served.
    std::fs::copy(&k2, &k1).unwrap();
    tls.reload().unwrap();
    assert_eq!(served(&tls), der(&pem2));

    // Files gone or garbage: an error naming the file, nothing changes.
    std::fs::write(&c1, "not a certificate").unwrap();
    let e = tls.reload().unwrap_err().to_string();
    assert!(e.contains("cert_file"), "{e}");
    std::fs::remove_file(&k1).unwrap();
    std::fs::copy(&c2, &c1).unwrap();
    let e = tls.reload().unwrap_err().to_string();
    assert!(e.contains("key_file"), "{e}");
    assert_eq!(served(&tls), der(&pem2));
}

#[test]
fn refuses_a_mismatched_pair_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (c1, _, _) = write_pair(dir.path(), "one.test");
    let (_, k2, _) = write_pair(dir.path(), "two.test");
    assert!(matches!(Tls::new(&c1, &k2), Err(TlsError::Mismatch(_))));
}
