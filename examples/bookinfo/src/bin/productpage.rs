//! The productpage service as a binary, configured by environment variables (see
//! `bookinfo::env`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bookinfo::env::run("productpage", |settings, client| {
        bookinfo::productpage::router(client, settings.upstreams.clone())
    })
    .await
}
