//! Reading a [`MeshConfig`](super::MeshConfig) from YAML, TOML or JSON.

/// A configuration file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// YAML.
    Yaml,
    /// TOML.
    Toml,
    /// JSON.
    Json,
}
