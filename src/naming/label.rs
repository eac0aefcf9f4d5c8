//! `sanitizeLabelValue` (upstream `imagepull_kubernetes_utils.go`): how the webhook turns a secret
//! id's components into the values of the image-pull Secret's `union.ai/*` labels.

/// At most this many bytes survive (the Kubernetes label value limit).
const MAX_LEN: usize = 63;

fn keeps(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Reproduces the upstream function byte for byte: empty becomes `none`; every character outside
/// `[a-zA-Z0-9._-]` (one per code point, whatever its UTF-8 length) becomes `-`; a first or last
/// character that is not alphanumeric is replaced by `x`; then the value is cut to 63 characters
/// and, if the cut left a non-alphanumeric last character, that one becomes `x` too.
///
/// The result is always a valid label value, but distinct inputs can share one (`a@b`, `a!b`).
pub fn sanitize_label_value(value: &str) -> String {
    if value.is_empty() {
        return "none".to_owned();
    }
    // After the replacement every character is ASCII, so byte offsets are character offsets.
    let mut out: Vec<u8> = value
        .chars()
        .map(|c| if keeps(c) { c as u8 } else { b'-' })
        .collect();
    let fix_last = |out: &mut Vec<u8>| {
        if let Some(last) = out.last_mut().filter(|b| !b.is_ascii_alphanumeric()) {
            *last = b'x';
        }
    };
    if !out[0].is_ascii_alphanumeric() {
        out[0] = b'x';
    }
    fix_last(&mut out);
    if out.len() > MAX_LEN {
        out.truncate(MAX_LEN);
        fix_last(&mut out);
    }
    String::from_utf8(out).expect("ASCII by construction")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    // The upstream unit test's cases.
    #[rstest]
    #[case("", "none")]
    #[case("myorg", "myorg")]
    #[case("my@org", "my-org")]
    #[case("dev.domain!", "dev.domainx")]
    #[case("project_123&", "project_123x")]
    #[case("-", "x")]
    #[case("_a_", "xax")]
    #[case("café", "cafx")]
    #[case("a😀b", "a-b")]
    fn cleans_like_the_webhook(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(sanitize_label_value(input), expected);
    }

    #[test]
    fn cuts_to_63_and_fixes_the_new_end() {
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        assert_eq!(sanitize_label_value(&long), format!("{}x", "a".repeat(62)));
        assert_eq!(sanitize_label_value(&"é".repeat(100)).len(), 63);
    }
}
