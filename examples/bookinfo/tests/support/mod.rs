//! What the Bookinfo end-to-end tests share.

use mesh::{MeshClient, MeshConfig, Telemetry};

/// A plaintext client for the gateway and the admin servers (outside the mesh).
pub(crate) fn outside_client() -> MeshClient {
    let config = MeshConfig::builder().service("browser").build().unwrap();
    MeshClient::builder()
        .config(config)
        .telemetry(Telemetry::disabled())
        .build()
        .unwrap()
}
