//! Cluster URLs: `etcd://host:port[,host:port...]/prefix[?option=value&...]`.
//!
//! The grammar follows RFC 3986 where it applies: the scheme is case-insensitive
//! (`ETCD://` is `etcd://`), the authority is a comma-separated list of `host[:port]` with
//! ports 1–65535 (2379 when omitted), the path is the prefix, and the query carries the
//! engine's [`Options`] (`?session_ttl=2s&timeout=3s`). Anything else is refused with a reason
//! — in particular `etcd:/host/prefix` (one slash) and unknown options, which would otherwise
//! silently become part of a host or of the prefix.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::net::Options;

/// The options a URL's query may set, with the [`Options`] field each one sets.
pub const QUERY_OPTIONS: [&str; 8] = [
    "session_ttl",
    "safety_margin",
    "ack_timeout",
    "timeout",
    "request_timeout",
    "detach_timeout",
    "log_records",
    "log_buffer",
];

/// Where a cluster is, which part of its key space is ours, and the settings the URL gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// gRPC endpoints, `http://host:port`.
    pub endpoints: Vec<String>,
    /// The prefix named in the URL (no leading or trailing `/`).
    pub prefix: String,
    /// `name=value` pairs of the query, in order, already checked by [`apply`].
    pub query: Vec<(String, String)>,
}

impl Target {
    /// `options` with every setting of the URL's query applied over it.
    pub fn options(&self, options: Options) -> Result<Options> {
        let mut options = options;
        for (name, value) in &self.query {
            apply(&mut options, name, value)?;
        }
        Ok(options)
    }
}

/// Parse `etcd://h1:2379,h2:2379/prefix?session_ttl=2s`. A host without a port gets 2379. The
/// prefix is required (it keeps teams apart on one cluster) and may contain `/`.
pub fn parse(url: &str) -> Result<Target> {
    let bad = |reason: &str| Error::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url
        .split_once(':')
        .ok_or_else(|| bad("it must start with etcd://"))?;
    if !scheme.eq_ignore_ascii_case("etcd") {
        return Err(bad("it must start with etcd://"));
    }
    let rest = rest.strip_prefix("//").ok_or_else(|| {
        bad("the scheme must be followed by // and the hosts (etcd://host/prefix)")
    })?;
    if rest.contains('#') {
        return Err(bad("a URL of a cluster has no #fragment"));
    }
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
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
        endpoints.push(endpoint(host.trim()).map_err(|reason| bad(&reason))?);
    }
    let mut pairs = Vec::new();
    let mut check = Options::default();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| bad(&format!("the option `{pair}` has no =value")))?;
        apply(&mut check, name, value).map_err(|e| match e {
            Error::InvalidConfig(why) => bad(&why),
            other => other,
        })?;
        pairs.push((name.to_owned(), value.to_owned()));
    }
    Ok(Target {
        endpoints,
        prefix: prefix.to_owned(),
        query: pairs,
    })
}

/// `http://host:port` for `host[:port]`, or why not.
fn endpoint(host: &str) -> std::result::Result<String, String> {
    if host.is_empty() {
        return Err("an empty host".to_owned());
    }
    if host.contains(['/', '@', '?', '#']) {
        return Err(format!("`{host}`: a host may only be host[:port]"));
    }
    let (name, port) = match host.rsplit_once(':') {
        // `[::1]` is an IPv6 address without a port.
        Some((name, port)) if !host.ends_with(']') => (name, Some(port)),
        _ => (host, None),
    };
    if name.is_empty() {
        return Err(format!("`{host}`: the host name is empty"));
    }
    let port = match port {
        None => 2379,
        Some(port) => match port.parse::<u16>() {
            Ok(p) if p >= 1 => p,
            _ => return Err(format!("`{host}`: a port is a number 1-65535")),
        },
    };
    Ok(format!("http://{name}:{port}"))
}

/// Set the option `name` of `options` from its URL form: durations as `500ms`, `2s`, `1m`
/// (or bare seconds), counts as integers.
fn apply(options: &mut Options, name: &str, value: &str) -> Result<()> {
    let invalid = |why: String| Error::InvalidConfig(format!("option `{name}={value}`: {why}"));
    let count = || {
        value
            .parse::<u32>()
            .map_err(|_| invalid("expected a whole number".to_owned()))
    };
    let duration = || {
        duration(value)
            .ok_or_else(|| invalid("expected a duration such as 500ms, 2s or 1m".to_owned()))
    };
    match name {
        "session_ttl" => options.session_ttl = duration()?,
        "safety_margin" => options.safety_margin = duration()?,
        "ack_timeout" => options.ack_timeout = duration()?,
        "timeout" => options.op_timeout = duration()?,
        "request_timeout" => options.request_timeout = duration()?,
        "detach_timeout" => options.detach_timeout = duration()?,
        "log_records" => options.log_records = count()?,
        "log_buffer" => options.log_buffer = count()?,
        _ => {
            return Err(invalid(format!(
                "unknown option; the options are {}",
                QUERY_OPTIONS.join(", ")
            )));
        }
    }
    Ok(())
}

/// `500ms`, `2s`, `1m`, or a bare number of seconds.
fn duration(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        _ => None,
    }
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
        assert!(t.query.is_empty());
        assert_eq!(
            parse("ETCD://a:1/p").expect("the scheme is case-insensitive"),
            parse("etcd://a:1/p").expect("valid")
        );
        assert_eq!(
            parse("etcd://[::1]:5/p").expect("IPv6").endpoints,
            ["http://[::1]:5"]
        );
        assert_eq!(
            parse("etcd://a:65535/p").expect("top port").endpoints,
            ["http://a:65535"]
        );
        for bad in [
            "http://a/x",
            "etcd://a",
            "etcd://a/",
            "etcd://a:x/p",
            "etcd://,a/p",
            "etcd://a:0/p",
            "etcd://a:65536/p",
            "etcd://:1/p",
            "etcd:/a:1/p",
            "etcd:a:1/p",
            "etcd://a:1/p#frag",
            "etcd://a:1/p?session_ttl",
            "etcd://a:1/p?bogus=1",
            "etcd://a:1/p?session_ttl=2x",
            "etcd://a:1/p?log_records=-1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            url_for("http://127.0.0.1:1,http://127.0.0.1:2", "p"),
            "etcd://127.0.0.1:1,127.0.0.1:2/p"
        );
    }

    #[test]
    fn the_query_sets_options_and_is_not_part_of_the_prefix() {
        let t =
            parse("etcd://a:1/team?session_ttl=2s&timeout=3s&request_timeout=500ms&log_records=0")
                .expect("valid");
        assert_eq!(t.prefix, "team");
        let o = t.options(Options::default()).expect("valid options");
        assert_eq!(o.session_ttl, Duration::from_secs(2));
        assert_eq!(o.op_timeout, Duration::from_secs(3));
        assert_eq!(o.request_timeout, Duration::from_millis(500));
        assert_eq!(o.log_records, 0);
        assert_eq!(o.ack_timeout, Options::default().ack_timeout);
        assert_eq!(duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(duration("s"), None);
    }
}
