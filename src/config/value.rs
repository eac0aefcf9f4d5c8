//! Value parsers: how one key's text becomes a typed value. Values are weakly typed, as with
//! Go's viper (`"8093"` is a fine port); every error names the key, its value and its source.

use super::ConfigError;
use super::keys::{Host, LogFormat};
use super::settings::{Values, invalid};
use std::time::Duration;

type Result<T> = std::result::Result<T, ConfigError>;

fn raw<'v>(values: &'v Values, key: &str) -> &'v str {
    &values[key].0
}

pub(crate) fn text(values: &Values, key: &str) -> Result<String> {
    Ok(raw(values, key).to_owned())
}

/// Empty means unset (a string, or a path: any type made from a string).
pub(crate) fn non_empty<T: From<String>>(values: &Values, key: &str) -> Result<Option<T>> {
    Ok(Some(raw(values, key))
        .filter(|s| !s.is_empty())
        .map(|s| T::from(s.to_owned())))
}

pub(crate) fn boolean(values: &Values, key: &str) -> Result<bool> {
    match raw(values, key).trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" => Ok(true),
        "false" | "0" | "f" | "no" | "" => Ok(false),
        _ => Err(invalid(values, key, "expected true or false")),
    }
}

pub(crate) fn port(values: &Values, key: &str) -> Result<u16> {
    raw(values, key)
        .trim()
        .parse()
        .map_err(|_| invalid(values, key, "expected a port number (0-65535)"))
}

fn int(values: &Values, key: &str) -> Result<i64> {
    raw(values, key)
        .trim()
        .parse()
        .map_err(|_| invalid(values, key, "expected an integer"))
}

/// An integer from 1 to `max`.
pub(crate) fn count<T: TryFrom<i64>>(values: &Values, key: &str, max: i64) -> Result<T> {
    let n = int(values, key)?;
    if !(1..=max).contains(&n) {
        return Err(invalid(values, key, format!("must be between 1 and {max}")));
    }
    T::try_from(n).map_err(|_| invalid(values, key, format!("must be between 1 and {max}")))
}

/// Go's client-go turns qps <= 0 into its default (and burst <= 0 into an error at the first
/// call); both are refused here, where the mistake is made.
pub(crate) fn qps(values: &Values, key: &str) -> Result<i64> {
    let n = int(values, key)?;
    if n <= 0 {
        return Err(invalid(
            values,
            key,
            "must be more than zero (the limit protects a real API server; the embedded engine has none)",
        ));
    }
    Ok(n)
}

/// A Go duration (`30s`, `1m30s`, `0`).
pub(crate) fn duration(values: &Values, key: &str) -> Result<Duration> {
    crate::gostr::parse_go_duration(raw(values, key)).map_err(|r| invalid(values, key, r))
}

pub(crate) fn positive_duration(values: &Values, key: &str) -> Result<Duration> {
    let d = duration(values, key)?;
    if d.is_zero() {
        return Err(invalid(values, key, "must be more than zero"));
    }
    Ok(d)
}

/// Empty or zero: none (no timeout, no keepalive).
pub(crate) fn optional_duration(values: &Values, key: &str) -> Result<Option<Duration>> {
    if raw(values, key).trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(duration(values, key)?).filter(|d| !d.is_zero()))
}

/// A YAML sequence in files; elsewhere YAML/JSON text (`[a, b]`) or comma-separated.
pub(crate) fn list(values: &Values, key: &str) -> Result<Vec<String>> {
    let t = raw(values, key).trim();
    if t.is_empty() {
        return Ok(Vec::new());
    }
    if t.starts_with('[') || t.starts_with('-') {
        return serde_yaml::from_str::<Vec<String>>(t)
            .map_err(|e| invalid(values, key, format!("expected a list of strings: {e}")));
    }
    Ok(t.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

pub(crate) fn namespace(values: &Values, key: &str) -> Result<String> {
    let ns = raw(values, key);
    if !crate::k8s_rules::is_namespace_name(ns) {
        return Err(invalid(
            values,
            key,
            "not a valid namespace name (a lowercase RFC 1123 label: at most 63 characters, lower case letters, digits and '-', starting and ending with a letter or digit)",
        ));
    }
    Ok(ns.to_owned())
}

pub(crate) fn log_format(values: &Values, key: &str) -> Result<LogFormat> {
    match raw(values, key) {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(invalid(values, key, "expected text or json")),
    }
}

/// The bind host, and whether it was set at all (the embedded engine binds loopback unless it
/// was).
pub(crate) fn host(values: &Values, key: &str) -> Result<Host> {
    let (name, origin) = &values[key];
    Ok(Host {
        name: name.clone(),
        explicit: *origin != super::Source::Default,
    })
}

/// Absent or blank: no policy (every authenticated caller may do everything); `[]` allows
/// nothing.
pub(crate) fn policy(values: &Values, key: &str) -> Result<Option<Vec<crate::auth::policy::Rule>>> {
    let t = raw(values, key);
    if t.trim().is_empty() {
        return Ok(None);
    }
    crate::auth::policy::parse_rules(t)
        .map(Some)
        .map_err(|r| invalid(values, key, r))
}
