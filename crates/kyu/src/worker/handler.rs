//! Handlers with their types erased, so one worker can hold many kinds.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use crate::{Job, JobContext, JobResult};

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = JobResult> + Send>>;

/// Runs one attempt of one kind.
pub(crate) trait Handler: Send + Sync + 'static {
    fn call(&self, ctx: JobContext) -> BoxFuture;
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
