//! Webhook cache invalidation: the byte formats (request body, target URLs) the Go service uses
//! to tell every pod-webhook replica to drop cached secret values (docs/go-service.md §6).

mod body;
mod sender;
mod targets;

pub use body::invalidation_body;
pub use sender::Invalidator;
pub use targets::{DEFAULT_WEBHOOK_PORT, TargetError, WebhookEndpoint};
