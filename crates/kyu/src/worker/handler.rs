//! Handlers with their types erased, so one worker can hold many kinds.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use crate::{Job, JobContext, JobResult};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = JobResult> + Send>>;

/// Runs one attempt of one kind.
pub(crate) trait Handler: Send + Sync + 'static {
    fn call(&self, ctx: JobContext) -> BoxFuture;

    /// How long this handler takes to stop by itself after its timeout, a
    /// cancel or the worker's hard stop; the worker waits that long before it
    /// drops the handler. Zero: dropped at once.
    fn stop_grace(&self) -> Duration {
        Duration::ZERO
    }
}

/// A [`Job`] type: parse the args, then run.
pub(crate) struct TypedHandler<J>(PhantomData<fn() -> J>);

impl<J> TypedHandler<J> {
    pub(crate) fn new() -> Self {
        TypedHandler(PhantomData)
    }
}

impl<J: Job> Handler for TypedHandler<J> {
    fn call(&self, ctx: JobContext) -> BoxFuture {
        Box::pin(async move {
            let job: J = ctx.args_as()?;
            job.run(ctx).await
        })
    }
}

/// A closure over the raw context.
pub(crate) struct FnHandler<F>(pub(crate) F);

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult> + Send + 'static,
{
    fn call(&self, ctx: JobContext) -> BoxFuture {
        Box::pin((self.0)(ctx))
    }
}

/// A handler that stops by itself within `grace` (a command job: SIGTERM,
/// SIGKILL after its stop grace, then its process group reaped).
pub(crate) struct SelfStopping<H> {
    pub(crate) inner: H,
    pub(crate) grace: Duration,
}

impl<H: Handler> Handler for SelfStopping<H> {
    fn call(&self, ctx: JobContext) -> BoxFuture {
        self.inner.call(ctx)
    }

    fn stop_grace(&self) -> Duration {
        self.grace
    }
}
