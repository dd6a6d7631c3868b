//! The product page: the HTML page and the JSON API, calling details and reviews.

use axum::Router;
use mesh::MeshClient;

use crate::books::Upstreams;

/// The productpage service's routes; `client` calls details and reviews.
pub fn router(client: MeshClient, upstreams: Upstreams) -> Router {
    let _ = (client, upstreams);
    Router::new()
}
