//! Reading a [`MeshConfig`](super::MeshConfig) from environment variables.
