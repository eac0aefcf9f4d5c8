//! Where invalidation requests go: the configured `webhookURL` is normalised and parsed the way
//! the Go service does it (`invalidationTargets`, with Go `net/url` rules), then fanned out to every
//! address its host resolves to. Parsing and target construction are pure; resolution is the
//! caller's, so the same code serves the running service and the golden vectors.

use crate::gostr::quote;
use std::fmt;
use std::net::IpAddr;

/// The port used when the webhook URL names none (the webhook's `cacheInvalidationPort` default).
pub const DEFAULT_WEBHOOK_PORT: &str = "9444";
const PATH: &str = "/invalidate-secret";

/// Why no invalidation target could be built. Go only logs these; the texts follow Go's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetError {
    Parse { url: String, reason: String },
    NoHost { url: String },
    Resolve { host: String, reason: String },
    NoAddresses { host: String },
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::Parse { url, reason } => {
                write!(f, "parsing {}: parse {}: {reason}", quote(url), quote(url))
            }
            TargetError::NoHost { url } => write!(f, "no host in {}", quote(url)),
            TargetError::Resolve { host, reason } => {
                write!(f, "resolving {}: {reason}", quote(host))
            }
            TargetError::NoAddresses { host } => {
                write!(f, "no webhook pods resolved for {}", quote(host))
            }
        }
    }
}

impl std::error::Error for TargetError {}

/// A parsed webhook URL: everything but the addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Lower-cased scheme, kept as configured (`https` stays `https`).
    pub scheme: String,
    /// Host name without brackets; an IP literal or a name to resolve.
    pub host: String,
    pub port: String,
}

impl WebhookEndpoint {
    /// Steps 1-4 of docs/go-service.md §6: drop one trailing `/`, default the scheme to `http://`, parse,
    /// require a host, default the port to 9444.
    pub fn parse(webhook_url: &str) -> Result<Self, TargetError> {
        let trimmed = webhook_url.strip_suffix('/').unwrap_or(webhook_url);
        let url = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("http://{trimmed}")
        };
        let (scheme, authority) = split_url(&url).map_err(|reason| TargetError::Parse {
            url: url.clone(),
            reason,
        })?;
        let (host, port) = split_host_port(authority);
        if host.is_empty() {
            return Err(TargetError::NoHost { url });
        }
        Ok(WebhookEndpoint {
            scheme,
            host: host.to_owned(),
            port: if port.is_empty() {
                DEFAULT_WEBHOOK_PORT
            } else {
                port
            }
            .to_owned(),
        })
    }

    /// The host as an IP address when it is a literal (then no resolution happens).
    pub fn ip_literal(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// Step 6: one URL per address, in resolver order. An empty list is an error, as in Go.
    pub fn targets(&self, addrs: &[IpAddr]) -> Result<Vec<String>, TargetError> {
        if addrs.is_empty() {
            return Err(TargetError::NoAddresses {
                host: self.host.clone(),
            });
        }
        Ok(addrs
            .iter()
            .map(|ip| match go_ip(*ip) {
                IpAddr::V4(v4) => format!("{}://{v4}:{}{PATH}", self.scheme, self.port),
                IpAddr::V6(v6) => format!("{}://[{v6}]:{}{PATH}", self.scheme, self.port),
            })
            .collect())
    }

    /// The whole pipeline with a caller-supplied resolver (used where resolution is synchronous).
    pub fn resolve_targets(
        webhook_url: &str,
        resolve: impl FnOnce(&str) -> Result<Vec<IpAddr>, String>,
    ) -> Result<Vec<String>, TargetError> {
        let endpoint = Self::parse(webhook_url)?;
        let addrs = match endpoint.ip_literal() {
            Some(ip) => vec![ip],
            None => resolve(&endpoint.host).map_err(|reason| TargetError::Resolve {
                host: endpoint.host.clone(),
                reason,
            })?,
        };
        endpoint.targets(&addrs)
    }
}

/// Go prints an IPv4-mapped IPv6 address as plain IPv4.
fn go_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The subset of Go's `url.Parse` this needs: scheme, then the authority's host part, with Go's
/// validation of the host and port. Returns the lower-cased scheme and `host[:port]`.
fn split_url(url: &str) -> Result<(String, &str), String> {
    if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".to_owned());
    }
    let without_fragment = url.split_once('#').map_or(url, |(u, _)| u);
    let (scheme, rest) = split_scheme(without_fragment)?;
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    let Some(after_slashes) = rest.strip_prefix("//") else {
        // No authority (an opaque URL or a path): no host.
        return Ok((scheme, ""));
    };
    let authority = after_slashes
        .split_once('/')
        .map_or(after_slashes, |(a, _)| a);
    let host = authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..]);
    validate_host(host)?;
    Ok((scheme, host))
}

/// Go's `getScheme`: letters, then letters, digits, `+`, `-`, `.` up to the first `:`.
fn split_scheme(url: &str) -> Result<(String, &str), String> {
    for (i, c) in url.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme".to_owned()),
            ':' => return Ok((url[..i].to_ascii_lowercase(), &url[i + 1..])),
            _ => break,
        }
    }
    Err("first path segment in URL cannot contain colon".to_owned())
}

fn valid_optional_port(port: &str) -> bool {
    match port.strip_prefix(':') {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
        None => port.is_empty(),
    }
}

/// Go's `parseHost` checks: bracketed IPv6 closed, port numeric, no character that Go would have
/// to escape in a host name.
fn validate_host(host: &str) -> Result<(), String> {
    let port_part = if host.starts_with('[') {
        let close = host
            .rfind(']')
            .ok_or_else(|| "missing ']' in host".to_owned())?;
        &host[close + 1..]
    } else {
        host.rfind(':').map_or("", |i| &host[i..])
    };
    if !valid_optional_port(port_part) {
        return Err(format!("invalid port {} after host", quote(port_part)));
    }
    let bytes = host.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escape = host.get(i..i + 3).unwrap_or(&host[i..]);
            let ok = escape.len() == 3 && escape.bytes().skip(1).all(|h| h.is_ascii_hexdigit());
            if !ok {
                return Err(format!("invalid URL escape {}", quote(escape)));
            }
            i += 3;
            continue;
        }
        if b < 0x80 && !host_byte_allowed(b) {
            return Err(format!(
                "invalid character {} in host name",
                quote(&host[i..i + 1])
            ));
        }
        i += 1;
    }
    Ok(())
}

fn host_byte_allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&b)
}

/// Go's `URL.Hostname` and `URL.Port`.
fn split_host_port(authority: &str) -> (&str, &str) {
    let (host, port) = match authority.rfind(':') {
        Some(i) if valid_optional_port(&authority[i..]) => (&authority[..i], &authority[i + 1..]),
        _ => (authority, ""),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (host, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(host: &str) -> Result<Vec<IpAddr>, String> {
        match host {
            "two.example" => Ok(vec![
                "10.0.0.1".parse().unwrap(),
                "fd00::1".parse().unwrap(),
            ]),
            "none.example" => Ok(vec![]),
            other => Err(format!("lookup {other}: no such host")),
        }
    }

    #[test]
    fn ip_literals_skip_resolution_and_default_the_port() {
        let got = WebhookEndpoint::resolve_targets("http://[::1]", |_| panic!("resolved")).unwrap();
        assert_eq!(got, ["http://[::1]:9444/invalidate-secret"]);
        let got = WebhookEndpoint::resolve_targets("::ffff:10.1.2.3", |_| panic!()).unwrap_err();
        assert!(matches!(got, TargetError::Parse { .. }), "{got}");
    }

    #[test]
    fn names_fan_out_in_resolver_order() {
        let got = WebhookEndpoint::resolve_targets("HTTPS://two.example:7/x?y#z", table).unwrap();
        assert_eq!(
            got,
            [
                "https://10.0.0.1:7/invalidate-secret",
                "https://[fd00::1]:7/invalidate-secret"
            ]
        );
    }

    #[test]
    fn failures_carry_go_texts() {
        let err = WebhookEndpoint::resolve_targets("none.example", table).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"no webhook pods resolved for "none.example""#
        );
        let err = WebhookEndpoint::resolve_targets("http://", table).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"resolving "http": lookup http: no such host"#
        );
        let err = WebhookEndpoint::resolve_targets("http://h:8x", table).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"parsing "http://h:8x": parse "http://h:8x": invalid port ":8x" after host"#
        );
    }

    #[test]
    fn ipv4_mapped_addresses_print_as_ipv4() {
        let endpoint = WebhookEndpoint::parse("h").unwrap();
        let got = endpoint
            .targets(&["::ffff:10.1.2.3".parse().unwrap()])
            .unwrap();
        assert_eq!(got, ["http://10.1.2.3:9444/invalidate-secret"]);
    }
}
