//! Cluster URLs: `etcd://host:port[,host:port...]/prefix`.

use crate::error::{Error, Result};

/// Where a cluster is and which part of its key space is ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// gRPC endpoints, `http://host:port`.
    pub endpoints: Vec<String>,
    /// The prefix named in the URL (no leading or trailing `/`).
    pub prefix: String,
}

/// Parse `etcd://h1:2379,h2:2379/prefix`. A host without a port gets 2379. The prefix is
/// required (it keeps teams apart on one cluster) and may contain `/`.
pub fn parse(url: &str) -> Result<Target> {
    let bad = |reason: &str| Error::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("etcd://")
        .ok_or_else(|| bad("it must start with etcd://"))?;
    let (hosts, prefix) = rest
        .split_once('/')
        .ok_or_else(|| bad("a /prefix is required after the hosts"))?;
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Err(bad("the prefix is empty"));
    }
    if prefix.contains('\0') {
        return Err(bad("the prefix contains a NUL byte"));
    }
    let mut endpoints = Vec::new();
    for host in hosts.split(',') {
        let host = host.trim();
        if host.is_empty() {
            return Err(bad("an empty host"));
        }
        if host.contains(['/', '@', '?', '#']) {
            return Err(bad("a host may only be host[:port]"));
        }
        let with_port = match host.rsplit_once(':') {
            Some((_, port)) if !host.ends_with(']') => {
                port.parse::<u16>()
                    .map_err(|_| bad("a port is not a number 1-65535"))?;
                host.to_owned()
            }
            _ => format!("{host}:2379"),
        };
        endpoints.push(format!("http://{with_port}"));
    }
    Ok(Target {
        endpoints,
        prefix: prefix.to_owned(),
    })
}

/// The URL of `prefix` on the cluster reached through `endpoints` (a comma-separated list of
/// `http://host:port`, as in `CCS_ETCD_ENDPOINTS`).
pub fn url_for(endpoints: &str, prefix: &str) -> String {
    let hosts: Vec<&str> = endpoints
        .split(',')
        .map(|e| e.trim().trim_start_matches("http://").trim_end_matches('/'))
        .filter(|e| !e.is_empty())
        .collect();
    format!("etcd://{}/{}", hosts.join(","), prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let t = parse("etcd://a:1,b/team/x/").expect("valid");
        assert_eq!(t.endpoints, ["http://a:1", "http://b:2379"]);
        assert_eq!(t.prefix, "team/x");
        for bad in [
            "http://a/x",
            "etcd://a",
            "etcd://a/",
            "etcd://a:x/p",
            "etcd://,a/p",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            url_for("http://127.0.0.1:1,http://127.0.0.1:2", "p"),
            "etcd://127.0.0.1:1,127.0.0.1:2/p"
        );
    }
}
