//! [`DoximityLayer`]: wraps a service in [`DoximityService`].

use std::sync::Arc;

use tower_layer::Layer;

use crate::engine::Shared;
use crate::service::DoximityService;

/// The layer built by [`DoximityAuth::layer`](crate::DoximityAuth::layer). Cheap to clone.
#[derive(Clone)]
pub struct DoximityLayer {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for DoximityLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoximityLayer")
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S> Layer<S> for DoximityLayer {
    type Service = DoximityService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DoximityService {
            inner,
            shared: self.shared.clone(),
        }
    }
}
