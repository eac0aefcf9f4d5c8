//! The hashed names: the Kubernetes object name of a secret (`EncodeK8sSecretName`,
//! upstream `k8s_utils.go`) and the image-pull Secret name (`ToImagePullK8sName`,
//! `imagepull_kubernetes_utils.go`). Both live on the stack: no allocation per name.

use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::fmt;
use std::ops::Deref;

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
}

macro_rules! ascii_name {
    ($(#[$doc:meta])* $ty:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $ty([u8; $len]);

        impl $ty {
            pub const LEN: usize = $len;

            pub fn as_str(&self) -> &str {
                // Only ASCII is ever written into the buffer.
                std::str::from_utf8(&self.0).expect("ASCII by construction")
            }
        }

        impl Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.as_str())
            }
        }
    };
}

ascii_name!(
    /// A Kubernetes Secret name derived from a secret id: 32 lowercase hex characters.
    ObjectName,
    32
);

ascii_name!(
    /// An image-pull Secret name: `img-pull-` and 16 lowercase hex characters (25 in all).
    ImagePullName,
    25
);

/// `EncodeK8sSecretName`: lowercase hex MD5 of the UTF-8 bytes of `s`. The service applies it to
/// an encoded id (see [`super::EncodedId::object_name`]); the plain K8s injector applies it to a raw
/// key, which is why it takes any string.
pub fn object_name(s: &str) -> ObjectName {
    let digest = Md5::digest(s.as_bytes());
    let mut out = [0u8; 32];
    hex_into(&digest, &mut out);
    ObjectName(out)
}

/// `ToImagePullK8sName`: `img-pull-` + the first 16 hex characters of SHA-256 over
/// `‹org›:‹domain›:‹project›:‹name›` (plain `:` join, no escaping).
pub fn image_pull_name(org: &str, domain: &str, project: &str, name: &str) -> ImagePullName {
    let mut hasher = Sha256::new();
    for (i, part) in [org, domain, project, name].into_iter().enumerate() {
        if i > 0 {
            hasher.update(b":");
        }
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut out = [0u8; 25];
    out[..9].copy_from_slice(b"img-pull-");
    hex_into(&digest[..8], &mut out[9..]);
    ImagePullName(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("hello", "5d41402abc4b2a76b9719d911017c592")]
    #[case("", "d41d8cd98f00b204e9800998ecf8427e")]
    #[case(
        "u__org__flyte__domain__development__project__flytesnacks__key__my-secret",
        "209ab6535a0e009361229977898c057f"
    )]
    #[case(
        "u__org__flyte__domain__staging__project____key__café",
        "e31ba8a1e6d2ed72f45380f6cc217a6a"
    )]
    fn object_name_is_lowercase_md5_hex(#[case] input: &str, #[case] expected: &str) {
        assert_eq!(object_name(input).as_str(), expected);
    }

    #[rstest]
    #[case(("myorg", "development", "myproject", "docker-registry"), "img-pull-93ec8baf1e7d7e87")]
    #[case(("", "", "", ""), "img-pull-f1ae2a75ed1f9972")]
    #[case(("flyte", "development", "flytesnacks", "my-secret"), "img-pull-4be78d4babe90815")]
    fn image_pull_name_is_truncated_sha256(
        #[case] (o, d, p, n): (&str, &str, &str, &str),
        #[case] expected: &str,
    ) {
        assert_eq!(image_pull_name(o, d, p, n).as_str(), expected);
    }
}
