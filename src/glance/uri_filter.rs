//! `[import_filtering_opts]`: the URIs web-download and legacy import tasks may fetch, as
//! upstream Glance 33 checks them: scheme, host and port allow/deny lists (a non-empty allow
//! list wins), no numerically encoded IP hosts, and (the SSRF guard) a host that resolves to
//! a loopback, link-local or unspecified address is refused unless it is allowed by name.
//! The address checked is the one connected to (`Target::addr`), so a DNS answer cannot
//! change between the check and the fetch.

use std::net::{IpAddr, SocketAddr};

use crate::config::ImportFilter;

/// A URI that passed the filter, with the address to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: url::Url,
    pub host: String,
    pub addr: SocketAddr,
}

/// The static checks (no DNS): scheme, host and port lists, encoded IPs.
pub fn check_static(uri: &str, f: &ImportFilter) -> Option<(url::Url, String, u16)> {
    let url = url::Url::parse(uri).ok()?;
    let scheme = url.scheme().to_string();
    if !listed(&scheme, &f.allowed_schemes, &f.disallowed_schemes) {
        return None;
    }
    let host = url
        .host_str()?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    // The URL parser turns `2130706433`, `0x7f.1` or `127.1` into 127.0.0.1; upstream refuses
    // such spellings outright, so the host as written must be what was parsed.
    let written = uri
        .split_once("://")
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .map(|auth| auth.rsplit('@').next().unwrap_or(auth))
        .map(|hp| {
            if hp.starts_with('[') {
                hp.split(']').next().unwrap_or(hp).trim_start_matches('[')
            } else {
                hp.split(':').next().unwrap_or(hp)
            }
        })
        .unwrap_or_default()
        .to_ascii_lowercase();
    if written != host.to_ascii_lowercase() {
        return None;
    }
    if !listed(&host, &f.allowed_hosts, &f.disallowed_hosts) {
        return None;
    }
    let port = url.port_or_known_default()?;
    let allowed_ports: Vec<String> = f.allowed_ports.iter().map(u16::to_string).collect();
    let disallowed_ports: Vec<String> = f.disallowed_ports.iter().map(u16::to_string).collect();
    if !listed(&port.to_string(), &allowed_ports, &disallowed_ports) {
        return None;
    }
    Some((url, host, port))
}

/// Every check, resolving the host. `None` when the URI does not pass.
pub async fn check(uri: &str, f: &ImportFilter) -> Option<Target> {
    let (url, host, port) = check_static(uri, f)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .ok()?
        .collect();
    let named = f
        .allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&host));
    let addr = *addrs.first()?;
    if !named && addrs.iter().any(|a| internal(a.ip())) {
        return None;
    }
    Some(Target { url, host, addr })
}

fn listed(value: &str, allowed: &[String], disallowed: &[String]) -> bool {
    if !allowed.is_empty() {
        return allowed.iter().any(|a| a.eq_ignore_ascii_case(value));
    }
    !disallowed.iter().any(|d| d.eq_ignore_ascii_case(value))
}

/// Addresses a fetch must not reach unless an operator allowed the host by name.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| internal(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(hosts: &[&str], ports: &[u16]) -> ImportFilter {
        ImportFilter {
            allowed_schemes: vec!["http".into(), "https".into()],
            disallowed_schemes: vec![],
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            disallowed_hosts: vec![],
            allowed_ports: ports.to_vec(),
            disallowed_ports: vec![],
        }
    }

    #[test]
    fn static_rules() {
        let f = filter(&[], &[80, 443]);
        assert!(check_static("http://example.com/x.img", &f).is_some());
        assert!(check_static("https://example.com:443/x", &f).is_some());
        assert!(
            check_static("http://example.com:8080/x", &f).is_none(),
            "port"
        );
        assert!(check_static("ftp://example.com/x", &f).is_none(), "scheme");
        assert!(check_static("file:///etc/passwd", &f).is_none());
        assert!(
            check_static("http://2130706433/x", &f).is_none(),
            "decimal IP"
        );
        assert!(check_static("http://0x7f.1/x", &f).is_none(), "hex IP");
        assert!(check_static("http://127.1/x", &f).is_none(), "short IP");
        assert!(check_static("not a uri", &f).is_none());
        let only = filter(&["images.example.com"], &[80]);
        assert!(check_static("http://images.example.com/x", &only).is_some());
        assert!(check_static("http://other.example.com/x", &only).is_none());
    }

    #[tokio::test]
    async fn loopback_needs_naming() {
        let f = filter(&[], &[80, 8080]);
        assert!(check("http://127.0.0.1:8080/x", &f).await.is_none());
        assert!(check("http://localhost:8080/x", &f).await.is_none());
        assert!(check("http://[::1]:8080/x", &f).await.is_none());
        assert!(check("http://169.254.169.254/latest", &f).await.is_none());
        let allowed = filter(&["127.0.0.1"], &[8080]);
        let t = check("http://127.0.0.1:8080/x", &allowed).await.unwrap();
        assert_eq!(t.addr.to_string(), "127.0.0.1:8080");
    }
}
