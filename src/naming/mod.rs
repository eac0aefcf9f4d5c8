//! The naming rules that tie a secret identifier to a Kubernetes object, pinned to the Go
//! `flytesecret` package (`flyteplugins/go/tasks/pluginmachinery/secret/`).
//!
//! Pure functions, no I/O. Every task pod finds its secrets through these rules, so each function
//! here reproduces one upstream function byte for byte, including its accidents (the encoding is not
//! escaped and therefore not injective, see [`decode`]). `golden/` holds the vectors that prove it.

mod hash;
mod id;
mod label;
mod scope;

pub use hash::{ImagePullName, ObjectName, image_pull_name, object_name};
pub use id::{DecodeError, EncodedId, SecretId, component_round_trips, decode, encode_prefix};
pub use label::sanitize_label_value;
pub use scope::{ScopeError, check_scope};

/// The organization the Go service always encodes with; the request's `organization` is ignored.
pub const DEFAULT_ORGANIZATION: &str = "flyte";
