//! The gateway service as a binary, configured by environment variables.

fn main() {}
