//! The ratings service as a binary, configured by environment variables.

fn main() {}
