//! Configuration errors that name the field path and the bad value.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Format;

/// A configuration value that could not be read or is invalid.
///
/// Every variant about a value names where it is: a field path in the configuration model
/// (such as `destinations[1].retries.attempts`, with the keys files use) or the name of an
/// environment variable (such as `MESH_TIMEOUT`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field holds a bad value.
    #[error("{path}: invalid value {value:?}: {reason}")]
    Invalid {
        /// The field path, such as `destinations[0].retries.attempts` or `MESH_TIMEOUT`.
        path: String,
        /// The bad value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file has a field the configuration does not know (a typo, usually).
    #[error("{path}: unknown field {field:?}{}{}", expected_suffix(expected), Line(*line))]
    UnknownField {
        /// The path of the unknown field, ending with its name.
        path: String,
        /// The unknown field's name.
        field: String,
        /// The fields allowed there, as the format's parser words them (may be empty).
        expected: String,
        /// The 1-based line of the field, when the format reports one.
        line: Option<u64>,
    },
    /// An environment variable starts with `MESH_` but is not one mesh reads (a typo, usually).
    #[error(
        "{name}: unknown MESH_ variable (value {value:?}){}",
        suggestion.map(|s| format!("; did you mean {s}?")).unwrap_or_default()
    )]
    UnknownVariable {
        /// The variable's name.
        name: String,
        /// The variable's value.
        value: String,
        /// The known variable whose name is closest, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A file is not well-formed, or a value has the wrong type (a list for a string, say).
    #[error("{}{message} ({format}{})", path_prefix(path), Position(*line, *column))]
    Parse {
        /// The file's format.
        format: Format,
        /// The field path where reading stopped; empty at the top level.
        path: String,
        /// The parser's message, which usually quotes the bad value.
        message: String,
        /// The 1-based line, when the format reports one.
        line: Option<u64>,
        /// The 1-based column, when the format reports one.
        column: Option<u64>,
    },
    /// Two destinations have the same host and port, so the second could never apply.
    #[error(
        "{path}: duplicate destination {destination:?}: same host and port as destinations[{first}]"
    )]
    DuplicateDestination {
        /// The path of the later destination, `destinations[N]`.
        path: String,
        /// The index of the earlier destination.
        first: usize,
        /// The index of the later destination.
        second: usize,
        /// The destination's host and port, as `host` or `host:port`.
        destination: String,
    },
    /// A configuration file could not be read.
    #[error("cannot read config file {}: {source}", file.display())]
    Read {
        /// The file's path.
        file: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A configuration file's extension names no known format.
    #[error(
        "config file {}: unknown format (expected a .yaml, .yml, .toml or .json extension)",
        file.display()
    )]
    UnknownFormat {
        /// The file's path.
        file: PathBuf,
    },
    /// An error in a configuration file, with the file's path.
    #[error("config file {}: {source}", file.display())]
    File {
        /// The file's path.
        file: PathBuf,
        /// The error in the file.
        source: Box<ConfigError>,
    },
}

impl ConfigError {
    /// The field path or environment variable the error is about, if it is about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { path, .. }
            | ConfigError::UnknownField { path, .. }
            | ConfigError::DuplicateDestination { path, .. } => Some(path),
            ConfigError::Parse { path, .. } => (!path.is_empty()).then_some(path.as_str()),
            ConfigError::UnknownVariable { name, .. } => Some(name),
            ConfigError::File { source, .. } => source.path(),
            ConfigError::Read { .. } | ConfigError::UnknownFormat { .. } => None,
        }
    }

    /// The configuration file the error is about, if it is about one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            ConfigError::Read { file, .. }
            | ConfigError::UnknownFormat { file }
            | ConfigError::File { file, .. } => Some(file),
            _ => None,
        }
    }

    /// Builds an [`ConfigError::Invalid`].
    pub(crate) fn invalid(
        path: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            path: path.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Wraps an error found in `file` so that its message names the file.
    pub(crate) fn in_file(self, file: &Path) -> Self {
        match self {
            e @ (ConfigError::Read { .. }
            | ConfigError::UnknownFormat { .. }
            | ConfigError::File { .. }) => e,
            e => ConfigError::File {
                file: file.to_owned(),
                source: Box::new(e),
            },
        }
    }
}

fn expected_suffix(expected: &str) -> String {
    if expected.is_empty() {
        String::new()
    } else {
        format!(", expected {expected}")
    }
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Renders ` at line L` when a line is known.
struct Line(Option<u64>);

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, " (line {line})"),
            None => Ok(()),
        }
    }
}

/// Renders `, line L, column C` when they are known.
struct Position(Option<u64>, Option<u64>);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.0 {
            write!(f, ", line {line}")?;
            if let Some(column) = self.1 {
                write!(f, ", column {column}")?;
            }
        }
        Ok(())
    }
}
