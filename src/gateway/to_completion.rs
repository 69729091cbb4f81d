//! A request that finishes even when its caller hangs up, without a task hand-off
//! per request: it is polled in place, on its connection's task, and moved to
//! a task of its own only if hyper drops it unfinished.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// The request's work panicked; the message is the panic's own (never the caller's bytes: no
/// handler formats them into a panic).
#[derive(Debug, thiserror::Error)]
#[error("request handler panicked: {0}")]
pub(crate) struct Panicked(String);

impl Panicked {
    /// From what `catch_unwind` caught.
    pub(crate) fn from_payload(payload: &(dyn Any + Send)) -> Panicked {
        Panicked(panic_message(payload))
    }
}

/// Drives `work` where it is awaited. Dropped unfinished (the connection closed
/// while Connect was being called), the work is spawned onto the runtime and
/// runs to its end there: the call completes, its audit line is written and the
/// gauges come back, with no one left to read the answer. A request that runs to
/// its end in place — nearly all of them — never pays for a task of its own.
pub(crate) struct ToCompletion<T: Send + 'static> {
    work: Option<Pin<Box<dyn Future<Output = T> + Send>>>,
}

impl<T: Send + 'static> ToCompletion<T> {
    pub(crate) fn new(work: impl Future<Output = T> + Send + 'static) -> Self {
        ToCompletion {
            work: Some(Box::pin(work)),
        }
    }
}

impl<T: Send + 'static> Future for ToCompletion<T> {
    type Output = Result<T, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let work = self.work.as_mut().expect("ToCompletion polled after it completed");
        // A panic is this request's failure, answered as one: it must not take
        // the connection (and the other requests queued on it) down with it.
        let polled = catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(done)) => {
                self.work = None;
                Poll::Ready(Ok(done))
            }
            Err(payload) => {
                self.work = None;
                Poll::Ready(Err(Panicked::from_payload(payload.as_ref())))
            }
        }
    }
}

impl<T: Send + 'static> Drop for ToCompletion<T> {
    fn drop(&mut self) {
        let Some(unfinished) = self.work.take() else {
            return;
        };
        // Outside a runtime (it is being torn down) nothing could run it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = unfinished.await;
            });
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with no message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn work_that_finishes_in_place_is_answered_in_place() {
        let done = ToCompletion::new(async { 7 }).await;
        assert_eq!(done.unwrap(), 7);
    }

    #[tokio::test]
    async fn work_dropped_unfinished_runs_to_its_end_on_a_task_of_its_own() {
        let (release, released) = oneshot::channel::<()>();
        let (finished_tx, finished_rx) = oneshot::channel::<()>();
        let reached_end = Arc::new(AtomicBool::new(false));
        let flag = reached_end.clone();
        let mut work = ToCompletion::new(async move {
            let _ = released.await;
            flag.store(true, Ordering::SeqCst);
            let _ = finished_tx.send(());
        });
        // Polled once (the call under way), then dropped: the caller hung up.
        assert!(futures_poll_once(&mut work).is_pending());
        drop(work);
        release.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), finished_rx)
            .await
            .expect("the dropped work finished within 10 s")
            .expect("the dropped work ran to its end");
        assert!(reached_end.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panic_in_the_work_is_an_error_not_a_lost_connection() {
        let failed = ToCompletion::new(async { panic!("the policy broke") }).await;
        let e: Result<(), _> = failed;
        assert_eq!(e.unwrap_err().to_string(), "request handler panicked: the policy broke");
    }

    fn futures_poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        Pin::new(f).poll(&mut cx)
    }
}
