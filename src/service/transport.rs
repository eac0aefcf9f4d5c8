//! Which RPC system carried the request being served, for the span's `rpc.system`. The server's
//! pipeline runs each request inside [`scope`]; the service only reads it, so it stays free of
//! any transport type. Outside a scope (in-process calls, tests) it is unknown.

use std::future::Future;
use tokio::task::futures::TaskLocalFuture;

/// An RPC system, as OpenTelemetry's `rpc.system` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcSystem {
    /// gRPC, and gRPC-Web (the same RPC system over HTTP/1.1 framing).
    Grpc,
    Connect,
    /// The `google.api.http` routes.
    Rest,
}

impl RpcSystem {
    pub fn otel_name(self) -> &'static str {
        match self {
            RpcSystem::Grpc => "grpc",
            RpcSystem::Connect => "connect_rpc",
            RpcSystem::Rest => "http",
        }
    }
}

tokio::task_local! {
    static SYSTEM: RpcSystem;
}

/// Runs `fut` as a request carried by `system`.
pub fn scope<F: Future>(system: RpcSystem, fut: F) -> TaskLocalFuture<RpcSystem, F> {
    SYSTEM.scope(system, fut)
}

/// The `rpc.system` of the request being served (`"unknown"` outside a request).
pub fn current_name() -> &'static str {
    SYSTEM.try_with(|s| s.otel_name()).unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn visible_inside_the_scope_only() {
        assert_eq!(current_name(), "unknown");
        scope(RpcSystem::Grpc, async {
            assert_eq!(current_name(), "grpc")
        })
        .await;
        scope(RpcSystem::Connect, async {
            assert_eq!(current_name(), "connect_rpc")
        })
        .await;
    }
}
