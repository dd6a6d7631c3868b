//! The ingress gateway as a binary, configured by environment variables.
//!
//! The mesh reads its usual variables (`MESH_*`, `POD_*`, `OTEL_*`; see the mesh README),
//! the gateway these:
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `GATEWAY_ADDR` | `0.0.0.0:8080` | Where the gateway listens. |
//! | `GATEWAY_ADMIN_ADDR` | `0.0.0.0:15000` | The admin server (`/stats/prometheus` ...). |
//! | `GATEWAY_TLS_CERT`, `GATEWAY_TLS_KEY` | none | PEM files: terminate TLS for browsers. |
//! | `PRODUCTPAGE_URL` | `http://productpage:9080` | Where the Bookinfo paths go. |
//!
//! The gateway's inbound side never asks for mesh mTLS (callers are browsers); its calls to
//! productpage follow the mesh config (ISTIO_MUTUAL when it has a workload identity).

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use bookinfo::books::Upstreams;
use bookinfo::gateway::{self, GatewayTls};
use mesh::core::config::MtlsMode;
use mesh::tower::admin::AdminServer;
use mesh::tower::telemetry::metrics::install_prometheus;
use mesh::tower::tls::Identity;
use mesh::{MeshClient, MeshConfig, MeshServer, Telemetry};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn addr(name: &str, default: &str) -> Result<SocketAddr, String> {
    let text = var(name).unwrap_or_else(|| default.to_owned());
    text.parse()
        .map_err(|_| format!("{name}: `{text}` is not an address such as 0.0.0.0:8080"))
}

async fn run() -> Result<(), String> {
    let listen = addr("GATEWAY_ADDR", "0.0.0.0:8080")?;
    let admin_addr = addr("GATEWAY_ADMIN_ADDR", "0.0.0.0:15000")?;
    let tls = match (var("GATEWAY_TLS_CERT"), var("GATEWAY_TLS_KEY")) {
        (Some(cert), Some(key)) => Some(
            GatewayTls::from_files(Path::new(&cert), Path::new(&key)).map_err(|e| e.to_string())?,
        ),
        (None, None) => None,
        _ => return Err("GATEWAY_TLS_CERT and GATEWAY_TLS_KEY go together".to_owned()),
    };
    let mut upstreams = Upstreams::default();
    if let Some(url) = var("PRODUCTPAGE_URL") {
        upstreams.productpage = url;
    }
    let metrics = install_prometheus().map_err(|e| format!("metrics: {e}"))?;
    let config = MeshConfig::from_env().map_err(|e| e.to_string())?;
    let telemetry = Telemetry::from_config(&config).map_err(|e| e.to_string())?;
    let identity = match &config.security.certificates {
        Some(files) => Some(Identity::from_files(files).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut client = MeshClient::builder()
        .config(config.clone())
        .telemetry(telemetry.clone());
    if let Some(identity) = &identity {
        client = client.identity(identity.clone());
    }
    let client = client.build().map_err(|e| e.to_string())?;
    let mut inbound = config.inbound();
    inbound.security.mtls = MtlsMode::Disable;
    inbound.security.port_mtls.clear();
    let server = MeshServer::new(inbound)
        .name(config.workload.service.clone())
        .telemetry(telemetry);
    let mut admin = AdminServer::new()
        .metrics(metrics)
        .client(client.clone())
        .config(config);
    if let Some(identity) = identity {
        admin = admin.identity(identity);
    }
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    };
    let listener = bind(listen).await?;
    let admin_listener = bind(admin_addr).await?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let admin_task = tokio::spawn(admin.serve(admin_listener, shutdown(stopped.clone())));
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    println!("gateway: {}", gateway::describe(listen, tls.is_some()));
    let app = gateway::router(client, upstreams);
    let served = gateway::serve(server, listener, app, tls, shutdown(stopped)).await;
    let _ = admin_task.await;
    served.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
