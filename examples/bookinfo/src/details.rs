//! The details service.

use axum::Router;

/// The details service's routes.
pub fn router() -> Router {
    Router::new()
}
