//! The checker's own statement of the two naming rules it verifies Kubernetes objects against.
//!
//! Deliberately independent of the implementation under test (`flytesecret::naming`): if the
//! service's encoder drifted, expectations computed with that same encoder would drift with it
//! and the object checks would still pass. This module is written from the rule as the golden
//! vectors state it, and `tests/golden.rs` holds it to every `encode` and `k8s_name` record.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// The organization the open-source service always encodes.
pub const ORGANIZATION: &str = "flyte";

/// The data key of a secret: `u__org__<org>__domain__<d>__project__<p>__key__<name>`.
pub fn data_key(org: &str, domain: &str, project: &str, name: &str) -> String {
    format!("u__org__{org}__domain__{domain}__project__{project}__key__{name}")
}

/// The Kubernetes Secret's name: the lower-case MD5 hex of the data key's UTF-8 bytes.
pub fn object_name(data_key: &str) -> String {
    Md5::digest(data_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The image-pull Secret the pod webhook looks for: `img-pull-` and the first 16 hex digits of
/// sha256(`<org>:<domain>:<project>:<name>`).
pub fn image_pull_name(org: &str, domain: &str, project: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{org}:{domain}:{project}:{name}").as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("img-pull-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_applied_by_hand() {
        let key = data_key(ORGANIZATION, "development", "flytesnacks", "my_secret");
        assert_eq!(
            key,
            "u__org__flyte__domain__development__project__flytesnacks__key__my_secret"
        );
        let name = object_name(&key);
        assert_eq!(name.len(), 32);
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        // MD5 of the empty string: the classic check value.
        assert_eq!(object_name(""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
