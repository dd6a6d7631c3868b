//! The details service as a binary, configured by environment variables (see
//! `bookinfo::env`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    bookinfo::env::run("details", |_, _| bookinfo::details::router()).await
}
