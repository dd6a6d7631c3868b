//! Access-log writing: one line per request in Istio's text format or as JSON, to stdout or
//! a file.
//!
//! A line is formatted on the request path when the response ends (or the request is given
//! up) and handed to a writer thread over a bounded queue of [`QUEUE_LINES`] lines; the
//! request never waits for I/O. A line that finds the queue full, or that the writer cannot
//! write, is dropped and counted in `mesh_access_log_dropped_total{reason="full"|"io"}`.
//! [`AccessLog::flush`] waits until every line queued before it is written.

use std::fmt;
use std::io::Write;
use std::sync::Arc;

use mesh_core::config::{AccessLogConfig, AccessLogFormat, AccessLogOutput};
use mesh_core::telemetry::AccessLogRecord;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::TelemetryError;

/// Lines waiting for the writer at most; more are dropped (and counted).
pub const QUEUE_LINES: usize = 8192;

/// The counter of lines dropped: `reason` `full` (the queue was full) or `io` (the write
/// failed).
pub const ACCESS_LOG_DROPPED_TOTAL: &str = "mesh_access_log_dropped_total";

enum Message {
    Line(String),
    Flush(oneshot::Sender<()>),
}

/// Where one stack's access-log lines go, in which format. Cheap to clone; the writer thread
/// ends when the last clone is dropped, after writing what is queued.
#[derive(Clone)]
pub struct AccessLog {
    inner: Arc<Inner>,
}

struct Inner {
    config: AccessLogConfig,
    queue: mpsc::Sender<Message>,
    /// Unix milliseconds at `origin`, for start times that follow tokio's clock.
    unix_ms: u64,
    origin: Instant,
}

impl fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLog")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn output_name(output: &AccessLogOutput) -> String {
    match output {
        AccessLogOutput::Stdout => "/dev/stdout".to_owned(),
        AccessLogOutput::File(path) => path.display().to_string(),
    }
}

impl AccessLog {
    /// Opens the log `config` describes (a file is created when missing and appended to) and
    /// starts its writer thread. Fails, naming the file, when it cannot be opened.
    pub fn open(config: &AccessLogConfig) -> Result<Self, TelemetryError> {
        let error = |source| TelemetryError::AccessLog {
            path: output_name(&config.output),
            source,
        };
        let out: Box<dyn Write + Send> = match &config.output {
            AccessLogOutput::Stdout => Box::new(std::io::stdout()),
            AccessLogOutput::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)
                    .map_err(error)?,
            ),
        };
        let (queue, lines) = mpsc::channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("mesh-access-log".to_owned())
            .spawn(move || write_lines(lines, std::io::BufWriter::new(out)))
            .map_err(error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                queue,
                unix_ms: crate::clock::unix_now_millis(),
                origin: Instant::now(),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &AccessLogConfig {
        &self.inner.config
    }

    /// Queues `record`'s line without waiting; a line the queue has no room for is dropped
    /// and counted.
    pub fn write(&self, record: &AccessLogRecord) {
        let line = match self.inner.config.format {
            AccessLogFormat::Text => record.to_text(),
            AccessLogFormat::Json => record.to_json(),
        };
        if self.inner.queue.try_send(Message::Line(line)).is_err() {
            metrics::counter!(ACCESS_LOG_DROPPED_TOTAL, "reason" => "full").increment(1);
        }
    }

    /// Resolves once every line queued before the call is written and flushed.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.inner.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Milliseconds since the unix epoch now, by tokio's clock from the wall-clock time the
    /// log was opened (so paused tests get consistent times).
    pub(crate) fn now_unix_ms(&self) -> u64 {
        let since = Instant::now().saturating_duration_since(self.inner.origin);
        self.inner
            .unix_ms
            .saturating_add(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The writer thread: writes lines as they come, flushing whenever the queue is empty.
fn write_lines(mut lines: mpsc::Receiver<Message>, mut out: impl Write) {
    let mut failed = false;
    let mut handle = |message: Message, out: &mut dyn Write| match message {
        Message::Line(mut line) => {
            line.push('\n');
            if let Err(e) = out.write_all(line.as_bytes()) {
                metrics::counter!(ACCESS_LOG_DROPPED_TOTAL, "reason" => "io").increment(1);
                if !failed {
                    tracing::warn!(error = %e, "access log write failed; dropping lines");
                    failed = true;
                }
            }
        }
        Message::Flush(done) => {
            let _ = out.flush();
            let _ = done.send(());
        }
    };
    while let Some(message) = lines.blocking_recv() {
        handle(message, &mut out);
        while let Ok(message) = lines.try_recv() {
            handle(message, &mut out);
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "mesh-access-log-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test(start_paused = true)]
    async fn writes_lines_in_both_formats() {
        let dir = dir();
        let text = AccessLog::open(&AccessLogConfig {
            format: AccessLogFormat::Text,
            output: AccessLogOutput::File(dir.join("text.log")),
        })
        .unwrap();
        let json = AccessLog::open(&AccessLogConfig {
            format: AccessLogFormat::Json,
            output: AccessLogOutput::File(dir.join("json.log")),
        })
        .unwrap();
        let record = AccessLogRecord {
            method: Some("GET".into()),
            path: Some("/a".into()),
            response_code: 200,
            ..AccessLogRecord::default()
        };
        text.write(&record);
        text.write(&record);
        json.write(&record);
        text.flush().await;
        json.flush().await;
        let lines = std::fs::read_to_string(dir.join("text.log")).unwrap();
        assert_eq!(lines.lines().count(), 2);
        for line in lines.lines() {
            let parsed = mesh_core::telemetry::access_log::parse_text_line(line).unwrap();
            assert_eq!(parsed, record);
        }
        let line = std::fs::read_to_string(dir.join("json.log")).unwrap();
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["path"], "/a");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unwritable_file_is_named() {
        let dir = dir();
        let path = dir.join("missing").join("x.log");
        let err = AccessLog::open(&AccessLogConfig {
            format: AccessLogFormat::Text,
            output: AccessLogOutput::File(path.clone()),
        })
        .unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
