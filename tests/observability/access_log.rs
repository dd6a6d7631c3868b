//! Access logs end to end: a mesh client and a mesh server each write theirs to a file in a
//! temporary directory (text and JSON); every line parses back and carries the request's
//! method, path, code, flags and request id. An access-log file that cannot be opened is a
//! typed error naming it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh::core::config::{AccessLogConfig, AccessLogFormat, AccessLogOutput};
use mesh::core::telemetry::AccessLogRecord;
use mesh::core::telemetry::access_log::parse_text_line;
use mesh::tower::MeshClient;
use mesh::tower::server::MeshServer;
use mesh::tower::telemetry::{Telemetry, TelemetryError};

use crate::support::{Mesh, Seen, get, ip, prometheus, serve, uri};

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "mesh-observability-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn log(format: AccessLogFormat, path: PathBuf) -> Option<AccessLogConfig> {
    Some(AccessLogConfig {
        format,
        output: AccessLogOutput::File(path),
    })
}

/// The lines of `path` once it has `want` of them: `telemetry`'s logs are flushed, and the
/// (paused) clock moved on a little between tries, for a server line written as its
/// response body ends.
async fn lines(telemetry: &Telemetry, path: &Path, want: usize) -> Vec<String> {
    for _ in 0..100 {
        telemetry.flush_access_logs().await;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= want {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{} has fewer than {want} lines", path.display());
}

#[tokio::test(start_paused = true)]
async fn client_text_and_server_json_lines() {
    prometheus();
    let dir = TempDir::new();
    let mesh = Mesh::start();

    let mut server_config = mesh.config("reviews", "v1").build().expect("config");
    let server_log = dir.path().join("server.json");
    server_config.telemetry.server_access_log = log(AccessLogFormat::Json, server_log.clone());
    let server_telemetry = Telemetry::from_config(&server_config).expect("telemetry");
    let server = MeshServer::new(server_config.inbound())
        .name("reviews")
        .telemetry(server_telemetry.clone());
    let reviews = serve(server, ip(11), Seen::default()).await;
    mesh.name("reviews", reviews.addr.ip());

    // Its own source workload, so the metrics test's counts see none of these calls.
    let mut client_config = mesh
        .config("productpage", "v4")
        .timeout(Duration::from_secs(1))
        .build()
        .expect("config");
    let client_log = dir.path().join("client.log");
    client_config.telemetry.client_access_log = log(AccessLogFormat::Text, client_log.clone());
    let client_telemetry = Telemetry::from_config(&client_config).expect("telemetry");
    let client = MeshClient::builder()
        .config(client_config)
        .telemetry(client_telemetry.clone())
        .build()
        .expect("client");
    let port = reviews.addr.port();

    let headers = [("x-request-id", "req-ok"), ("user-agent", "tester/1.0")];
    assert_eq!(
        get(&client, &uri("reviews", port, "/?q=1"), &headers)
            .await
            .status,
        200
    );
    let headers = [("x-request-id", "req-missing")];
    assert_eq!(
        get(&client, &uri("reviews", port, "/missing"), &headers)
            .await
            .status,
        404
    );
    let headers = [("x-request-id", "req-slow")];
    assert_eq!(
        get(&client, &uri("reviews", port, "/slow/3000"), &headers)
            .await
            .status,
        504
    );

    // The client's lines, in Istio's text format.
    let records: Vec<AccessLogRecord> = lines(&client_telemetry, &client_log, 3)
        .await
        .iter()
        .map(|line| parse_text_line(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(records.len(), 3, "{records:#?}");
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r.request_id.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no line for {id}: {records:#?}"))
    };
    let ok = by_id("req-ok");
    assert_eq!(ok.method.as_deref(), Some("GET"));
    assert_eq!(ok.path.as_deref(), Some("/?q=1"));
    assert_eq!(ok.response_code, 200);
    assert_eq!(ok.response_flags, "");
    assert_eq!(ok.response_code_details.as_deref(), Some("via_upstream"));
    assert_eq!(ok.user_agent.as_deref(), Some("tester/1.0"));
    assert_eq!(
        ok.upstream_host.as_deref(),
        Some(reviews.addr.to_string().as_str())
    );
    assert_eq!(
        ok.upstream_cluster.as_deref(),
        Some(format!("outbound|{port}||reviews.default.svc.cluster.local").as_str())
    );
    assert!(ok.bytes_sent >= 5, "{ok:?}");
    assert!(ok.start_time_ms > 1_600_000_000_000, "{ok:?}");
    let missing = by_id("req-missing");
    assert_eq!(
        (missing.response_code, missing.path.as_deref()),
        (404, Some("/missing"))
    );
    let slow = by_id("req-slow");
    assert_eq!(slow.response_code, 504);
    assert_eq!(slow.response_flags, "UT");
    assert_eq!(
        slow.response_code_details.as_deref(),
        Some("upstream_response_timeout")
    );
    assert_eq!(slow.duration_ms, 1000);

    // The server's lines, as JSON (the slow request's is written when its handler ends).
    let lines = lines(&server_telemetry, &server_log, 2).await;
    let json: Vec<serde_json::Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let line = |id: &str| {
        json.iter()
            .find(|v| v["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {json:#?}"))
    };
    let ok = line("req-ok");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/?q=1");
    assert_eq!(ok["response_code"], 200);
    assert_eq!(ok["response_flags"], "-");
    assert_eq!(ok["user_agent"], "tester/1.0");
    assert_eq!(ok["downstream_local_address"], reviews.addr.to_string());
    assert_eq!(ok["upstream_cluster"], format!("inbound|{port}||"));
    let missing = line("req-missing");
    assert_eq!(missing["response_code"], 404);
    assert_eq!(missing["path"], "/missing");
}

#[tokio::test(start_paused = true)]
async fn an_unwritable_log_is_an_error_naming_the_file() {
    let dir = TempDir::new();
    let mesh = Mesh::start();
    let path = dir.path().join("no-such-dir").join("access.log");
    let mut config = mesh.config("productpage", "v1").build().expect("config");
    config.telemetry.client_access_log = log(AccessLogFormat::Text, path.clone());

    let err = Telemetry::from_config(&config).expect_err("unwritable");
    let shown = path.display().to_string();
    assert!(
        matches!(&err, TelemetryError::AccessLog { path: named, .. } if *named == shown),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    let err = MeshClient::new(config).expect_err("unwritable");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}
