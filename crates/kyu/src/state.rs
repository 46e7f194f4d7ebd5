//! Application state handed to handlers: a database pool, an HTTP client, a
//! config, whatever the application registered with
//! [`Worker::state`](crate::Worker::state), found by its type.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// The values a worker's handlers can read, one per type.
#[derive(Default, Clone)]
pub(crate) struct AppState {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl AppState {
    /// Adds `value`, replacing an earlier value of the same type.
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`, if one was added.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppState({} values)", self.values.len())
    }
}
