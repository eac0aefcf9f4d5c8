//! The request deadline rule: the client's `grpc-timeout` (gRPC, gRPC-Web) or
//! `connect-timeout-ms` (Connect) bounded by the server's `secret.server.requestTimeout`. A
//! header that is present but malformed is refused with `invalid_argument`, as connect-go does,
//! rather than silently ignored.

use crate::service::{RpcError, echo};
use http::HeaderName;
use std::time::Duration;

/// gRPC's `grpc-timeout`: 1 to 8 ASCII digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Connect's `connect-timeout-ms`: 1 to 10 ASCII digits of milliseconds.
fn parse_connect_timeout(v: &str) -> Option<Duration> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().map(Duration::from_millis)
}

/// The time a request may run: the client's timeout when it sent one, never more than
/// `server_limit`.
pub fn effective(headers: &http::HeaderMap, server_limit: Duration) -> Result<Duration, RpcError> {
    // Names made at compile time: a lookup by `&str` parses and validates the name each time.
    const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
    const CONNECT_TIMEOUT_MS: HeaderName = HeaderName::from_static("connect-timeout-ms");
    let mut client = None;
    for (name, parse) in [
        (
            GRPC_TIMEOUT,
            parse_grpc_timeout as fn(&str) -> Option<Duration>,
        ),
        (CONNECT_TIMEOUT_MS, parse_connect_timeout),
    ] {
        let Some(raw) = headers.get(&name) else {
            continue;
        };
        let text = String::from_utf8_lossy(raw.as_bytes());
        match parse(&text) {
            Some(d) => {
                client.get_or_insert(d);
            }
            None => {
                return Err(RpcError::invalid_argument(format!(
                    "protocol error: invalid {name} value: {:?}",
                    echo(&text)
                )));
            }
        }
    }
    Ok(client.map_or(server_limit, |c| c.min(server_limit)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Code;

    fn with(name: &str, value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn client_timeouts_are_bounded_by_the_server_limit() {
        let ok = |n: &str, v: &str| effective(&with(n, v), LIMIT).unwrap();
        assert_eq!(ok("grpc-timeout", "250m"), Duration::from_millis(250));
        assert_eq!(ok("grpc-timeout", "3S"), Duration::from_secs(3));
        assert_eq!(ok("grpc-timeout", "99999999H"), LIMIT);
        assert_eq!(
            ok("connect-timeout-ms", "1500"),
            Duration::from_millis(1500)
        );
        assert_eq!(ok("connect-timeout-ms", "9999999999"), LIMIT);
        assert_eq!(effective(&http::HeaderMap::new(), LIMIT).unwrap(), LIMIT);
    }

    /// Issue 9, item 10: garbage timeouts used to be ignored (the request ran under the server's
    /// limit instead of the one the client asked for).
    #[test]
    fn garbage_timeouts_are_invalid_argument() {
        for (name, value) in [
            ("grpc-timeout", "abc"),
            ("grpc-timeout", "10"),
            ("grpc-timeout", "S"),
            ("grpc-timeout", "123456789S"),
            ("grpc-timeout", "-1S"),
            ("grpc-timeout", "1.5S"),
            ("connect-timeout-ms", "soon"),
            ("connect-timeout-ms", "-5"),
            ("connect-timeout-ms", ""),
            ("connect-timeout-ms", "12345678901"),
            ("connect-timeout-ms", " 5"),
        ] {
            let e = effective(&with(name, value), LIMIT).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{name}: {value:?}");
            assert!(e.message.contains(name), "{}", e.message);
        }
        let long = "9".repeat(5000);
        let e = effective(&with("connect-timeout-ms", &long), LIMIT).unwrap_err();
        assert!(e.message.len() < 400, "echoed input is not truncated");
    }
}
