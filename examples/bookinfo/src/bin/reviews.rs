//! The reviews service as a binary, configured by environment variables (see
//! `bookinfo::env`): `REVIEWS_VERSION` (else `MESH_VERSION`, else v1) picks the version.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bookinfo::env::run("reviews", |settings, client| {
        bookinfo::reviews::router(settings.reviews_version, client, settings.upstreams.clone())
    })
    .await
}
