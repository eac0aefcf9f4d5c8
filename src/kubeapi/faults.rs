//! Fault injection: the engine can be told to answer the next N requests of a verb with an error
//! or a delay, so the service's handling of API faults is testable.

use super::status::{ApiError, Reply, text_reply};
use http::HeaderValue;
use serde::Deserialize;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Get,
    List,
    Create,
    Update,
    Delete,
}

/// What an injected fault answers, mirroring what real API servers emit (docs/kubernetes-api.md §5.1).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// APF rejection: 429, plain text, `Retry-After`.
    TooManyRequests { retry_after: u32 },
    /// Storage failure: 500 `InternalError`, no `Retry-After`.
    InternalError,
    /// etcd unreachable: 500 `ServerTimeout` with `Retry-After`.
    ServerTimeout { retry_after: u32 },
    /// Shutting down: 503 `ServiceUnavailable`.
    ServiceUnavailable,
    /// Handler timeout: 504 `Timeout`.
    GatewayTimeout,
    /// Answer normally, but only after a pause.
    Delay { millis: u64 },
}

impl Fault {
    /// The reply for this fault, or `None` for a delay (handled by the caller).
    pub fn reply(&self, verb: Verb) -> Option<Reply> {
        let op = match verb {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
        };
        Some(match self {
            Fault::TooManyRequests { retry_after } => {
                let mut r = text_reply(429, "Too many requests, please try again later.\n");
                r.headers_mut()
                    .insert(http::header::RETRY_AFTER, HeaderValue::from(*retry_after));
                r
            }
            Fault::InternalError => ApiError::internal("injected storage failure").into_reply(),
            Fault::ServerTimeout { retry_after } => {
                ApiError::server_timeout(op, *retry_after).into_reply()
            }
            Fault::ServiceUnavailable => {
                ApiError::service_unavailable("apiserver is shutting down", Some(1)).into_reply()
            }
            Fault::GatewayTimeout => ApiError::timeout(
                "request did not complete within requested timeout - context deadline exceeded",
            )
            .into_reply(),
            Fault::Delay { .. } => return None,
        })
    }

    pub fn delay(&self) -> Option<Duration> {
        match self {
            Fault::Delay { millis } => Some(Duration::from_millis(*millis)),
            _ => None,
        }
    }
}

/// One injection rule, as accepted by the control endpoint.
#[derive(Clone, Debug, Deserialize)]
pub struct Injection {
    /// Which verb it applies to; every verb when absent.
    #[serde(default)]
    pub verb: Option<Verb>,
    pub count: u32,
    pub fault: Fault,
}

#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Injection>>,
}

impl Faults {
    pub fn inject(&self, verb: Option<Verb>, count: u32, fault: Fault) {
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Injection { verb, count, fault });
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Takes one fault for a request of `verb`, if any rule still applies.
    pub fn take(&self, verb: Verb) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let i = rules
            .iter()
            .position(|r| r.count > 0 && r.verb.is_none_or(|v| v == verb))?;
        rules[i].count -= 1;
        let fault = rules[i].fault.clone();
        if rules[i].count == 0 {
            rules.remove(i);
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_per_verb_and_run_out() {
        let f = Faults::default();
        f.inject(Some(Verb::Get), 2, Fault::InternalError);
        assert_eq!(f.take(Verb::List), None);
        assert_eq!(f.take(Verb::Get), Some(Fault::InternalError));
        assert_eq!(f.take(Verb::Get), Some(Fault::InternalError));
        assert_eq!(f.take(Verb::Get), None);
    }
}
