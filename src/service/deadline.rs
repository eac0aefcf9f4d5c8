//! The request deadline as the RPC code sees it. The server's deadline layer runs each request
//! future inside [`scope`]; the rate limiter reads it (never wait past the deadline) and the
//! metrics guard reads it (was an RPC dropped because its time ran out, or because the client
//! went away?). Outside a scope (tests, background chores) there is no deadline.

use std::future::Future;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `fut` with `deadline` as the request deadline.
pub fn scope<F: Future>(deadline: Instant, fut: F) -> TaskLocalFuture<Instant, F> {
    DEADLINE.scope(deadline, fut)
}

/// The deadline of the request being served, if any.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// True when the current request's deadline has passed.
pub fn expired() -> bool {
    current().is_some_and(|d| Instant::now() >= d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn visible_inside_the_scope_only() {
        assert_eq!(current(), None);
        let d = Instant::now() + Duration::from_secs(1);
        scope(d, async move {
            assert_eq!(current(), Some(d));
            assert!(!expired());
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert!(expired());
        })
        .await;
        assert_eq!(current(), None);
    }
}
