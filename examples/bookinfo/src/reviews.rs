//! The reviews service, in its three versions.

use axum::Router;
use mesh::MeshClient;

use crate::books::Upstreams;

/// Which reviews: v1 shows no stars, v2 black stars, v3 red stars (v2 and v3 call ratings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// No ratings.
    V1,
    /// Black stars.
    V2,
    /// Red stars.
    V3,
}

/// The reviews service's routes; `client` calls ratings (v2 and v3).
pub fn router(version: Version, client: MeshClient, upstreams: Upstreams) -> Router {
    let _ = (version, client, upstreams);
    Router::new()
}
