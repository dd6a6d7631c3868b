//! Building a [`MeshConfig`](super::MeshConfig) in code.

/// Builds a [`MeshConfig`](super::MeshConfig).
#[derive(Debug, Default)]
pub struct MeshConfigBuilder {}

/// Builds one destination's settings.
#[derive(Debug, Default)]
pub struct DestinationBuilder {}
