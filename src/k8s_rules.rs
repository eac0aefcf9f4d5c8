//! Kubernetes' own syntax rules for names and label values, as pure predicates. They belong to
//! neither side: the embedded engine validates objects with them (adding the API server's error
//! texts), and the service's strict mode and the configuration check inputs against them before
//! Kubernetes would refuse them later.

/// A DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (the length limit is checked apart).
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_dns1123_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` (empty allowed when `allow_empty`).
pub fn is_qualified_part(s: &str, allow_empty: bool) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return allow_empty;
    }
    b.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Label values: at most 63 bytes, empty or alphanumeric at both ends.
pub fn label_value_ok(v: &str) -> bool {
    v.len() <= 63 && is_qualified_part(v, true)
}

/// A namespace name: a DNS-1123 label of at most 63 characters.
pub fn is_namespace_name(name: &str) -> bool {
    name.len() <= 63 && is_dns1123_label(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_and_namespace_names() {
        for ok in ["", "a", "My.value_1", &"a".repeat(63)] {
            assert!(label_value_ok(ok), "{ok:?}");
        }
        for bad in ["-a", "a-", "a b", "é", &"a".repeat(64)] {
            assert!(!label_value_ok(bad), "{bad:?}");
        }
        assert!(is_namespace_name("flyte") && is_namespace_name("a-1"));
        for bad in ["", "Bad_NS", "-a", &"a".repeat(64)] {
            assert!(!is_namespace_name(bad), "{bad:?}");
        }
        assert!(is_dns1123_subdomain("a.b-c") && !is_dns1123_subdomain("a..b"));
    }
}
