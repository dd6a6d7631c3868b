//! Configuration errors that name the field path and the bad value.

/// A configuration value that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A field holds a bad value.
    #[error("{path}: invalid value `{value}`: {reason}")]
    Invalid {
        /// The field path, such as `destinations[0].retries.attempts` or `MESH_TIMEOUT`.
        path: String,
        /// The bad value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}
