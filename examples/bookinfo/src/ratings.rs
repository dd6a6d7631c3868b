//! The ratings service.

use axum::Router;

/// The ratings service's routes.
pub fn router() -> Router {
    Router::new()
}
