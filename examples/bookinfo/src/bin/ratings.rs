//! The ratings service as a binary, configured by environment variables (see
//! `bookinfo::env`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bookinfo::env::run("ratings", |_, _| bookinfo::ratings::router()).await
}
