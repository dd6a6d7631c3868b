//! What the service binaries read from the environment, and how they start.
//!
//! Each binary reads the mesh config ([`MeshConfig::from_env`], the `MESH_*`, `POD_*` and
//! `OTEL_*` variables) plus:
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `BOOKINFO_ADDR` | `0.0.0.0:9080` | The address the service listens on. |
//! | `REVIEWS_VERSION` | `MESH_VERSION`, else `v1` | Which reviews (`v1`, `v2`, `v3`); reviews only. |
//! | `DETAILS_URL` | `http://details:9080` | Where details is called. |
//! | `REVIEWS_URL` | `http://reviews:9080` | Where reviews is called. |
//! | `RATINGS_URL` | `http://ratings:9080` | Where ratings is called. |
//! | `PRODUCTPAGE_URL` | `http://productpage:9080` | Where productpage is called. |
//!
//! When `MESH_SERVICE` is unset the workload is named after the binary, and when no version
//! is set it is `v1` (reviews: its `REVIEWS_VERSION`), as Bookinfo labels its pods. The
//! `end-user` header and the `user` cookie are always propagated (added to
//! `MESH_PROPAGATE_HEADERS` / `MESH_PROPAGATE_COOKIES` when absent), since Bookinfo's
//! routing rules match on them.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use mesh::{ConfigError, MeshClient, MeshConfig, MeshServer, Telemetry};

use crate::books::Upstreams;
use crate::reviews::Version;

/// The default listen address, Bookinfo's port on every interface.
pub const DEFAULT_ADDR: &str = "0.0.0.0:9080";

/// Everything a service binary is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The mesh config of the workload.
    pub mesh: MeshConfig,
    /// Where to listen (`BOOKINFO_ADDR`).
    pub addr: SocketAddr,
    /// The upstream URLs (`DETAILS_URL` ...).
    pub upstreams: Upstreams,
    /// Which reviews to serve (`REVIEWS_VERSION`; only the reviews binary uses it).
    pub reviews_version: Version,
}

impl Settings {
    /// The settings of service `service` from the process environment.
    pub fn from_env(service: &str) -> Result<Self, ConfigError> {
        let mesh = MeshConfig::from_env()?;
        Self::from_lookup(service, mesh, |name| std::env::var(name).ok())
    }

    /// The settings of `service` with the mesh config `mesh` (as read from the environment)
    /// and the other variables looked up by `var`.
    pub fn from_lookup(
        service: &str,
        mut mesh: MeshConfig,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let addr = match var("BOOKINFO_ADDR") {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| invalid("BOOKINFO_ADDR", &v, "is not an ip:port socket address"))?,
            None => DEFAULT_ADDR.parse().expect("the default address parses"),
        };
        let defaults = Upstreams::default();
        let url = |name: &str, default: String| match var(name) {
            Some(v) => check_url(name, v),
            None => Ok(default),
        };
        let upstreams = Upstreams {
            details: url("DETAILS_URL", defaults.details)?,
            reviews: url("REVIEWS_URL", defaults.reviews)?,
            ratings: url("RATINGS_URL", defaults.ratings)?,
            productpage: url("PRODUCTPAGE_URL", defaults.productpage)?,
        };
        // Only reviews reads its version: the other services ignore REVIEWS_VERSION.
        let reviews_version = match (service, var("REVIEWS_VERSION"), &mesh.workload.version) {
            ("reviews", Some(v), _) => v.parse().map_err(|e: crate::reviews::UnknownVersion| {
                invalid("REVIEWS_VERSION", &v, e.to_string())
            })?,
            ("reviews", None, Some(v)) => {
                v.parse().map_err(|e: crate::reviews::UnknownVersion| {
                    invalid("MESH_VERSION", v, e.to_string())
                })?
            }
            _ => Version::V1,
        };
        if var("MESH_SERVICE").is_none() {
            mesh.workload.service = service.to_owned();
        }
        if mesh.workload.version.is_none() {
            let version = if service == "reviews" {
                reviews_version.as_str()
            } else {
                "v1"
            };
            mesh.workload.version = Some(version.to_owned());
        }
        let telemetry = &mut mesh.telemetry;
        if !telemetry.propagate_headers.iter().any(|h| h == "end-user") {
            telemetry.propagate_headers.push("end-user".to_owned());
        }
        if !telemetry.propagate_cookies.iter().any(|c| c == "user") {
            telemetry.propagate_cookies.push("user".to_owned());
        }
        mesh.validate()?;
        Ok(Self {
            mesh,
            addr,
            upstreams,
            reviews_version,
        })
    }
}

/// The error of variable `name` holding the bad `value`.
fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: name.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// `value` when it is an absolute `http` URL with a host (and no query), else an error
/// naming the variable `name`.
fn check_url(name: &str, value: String) -> Result<String, ConfigError> {
    let uri: http::Uri = value
        .trim()
        .parse()
        .map_err(|_| invalid(name, &value, "is not a URL"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() || uri.query().is_some() {
        return Err(invalid(
            name,
            &value,
            "must be an http URL with a host, such as http://details:9080",
        ));
    }
    Ok(value.trim().trim_end_matches('/').to_owned())
}

/// Runs service `service`: reads [`Settings::from_env`], builds one [`Telemetry`], a
/// [`MeshClient`] and a [`MeshServer`] sharing it (and the workload identity, when the
/// config names certificates), and serves `app` on `BOOKINFO_ADDR` until Ctrl-C, then shuts
/// down gracefully. A bad setting is exit code 2 with its message, a failure to start 1.
pub async fn run(service: &str, app: impl FnOnce(&Settings, MeshClient) -> Router) -> ExitCode {
    let settings = match Settings::from_env(service) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{service}: configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(service, settings, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(message)) => {
            eprintln!("{service}: configuration: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Start(message)) => {
            eprintln!("{service}: {message}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Config(String),
    Start(String),
}

async fn serve(
    service: &str,
    settings: Settings,
    app: impl FnOnce(&Settings, MeshClient) -> Router,
) -> Result<(), Failure> {
    let config = &settings.mesh;
    let telemetry = Telemetry::from_config(config).map_err(|e| Failure::Config(e.to_string()))?;
    let identity = match &config.security.certificates {
        Some(files) => Some(
            mesh::Identity::from_files(files)
                .map_err(|e| Failure::Config(format!("workload certificates: {e}")))?,
        ),
        None => None,
    };
    let mut client = MeshClient::builder()
        .config(config.clone())
        .telemetry(telemetry.clone());
    // The same as `MeshServer::from_config`, with the telemetry and identity shared.
    let mut server = MeshServer::new(config.inbound())
        .name(config.workload.service.clone())
        .telemetry(telemetry);
    if let Some(identity) = identity {
        client = client.identity(identity.clone());
        server = server.identity(identity);
    }
    let client = client.build().map_err(|e| Failure::Config(e.to_string()))?;
    let router = app(&settings, client);
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|e| Failure::Start(format!("cannot listen on {}: {e}", settings.addr)))?;
    let addr = listener.local_addr().unwrap_or(settings.addr);
    println!(
        "{service} {} listening on {addr}",
        config.workload.version.as_deref().unwrap_or("")
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server
        .serve(listener, router, shutdown)
        .await
        .map_err(|e| Failure::Config(e.to_string()))
}
