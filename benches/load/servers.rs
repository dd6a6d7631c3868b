//! The servers a worker starts: the plain hyper server every variant but `mesh-full` calls
//! (and proxies forward to), and the DNS server mesh clients discover it through.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use mesh::tower::testing::DnsServer;
use tokio::net::TcpListener;

/// The answer body of every server.
pub(crate) const BODY: &[u8] = b"ok";

/// A plain hyper HTTP/1.1 server answering `ok` on `addr`, with keep-alive; it serves until
/// the process exits.
pub(crate) async fn plain(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind the bare server on {addr}: {e}"))?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(BODY))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

/// A DNS server (on 127.0.0.1, a free port) answering `name` (relative to `cluster.local.`)
/// with `ip`.
pub(crate) fn dns(name: &str, ip: IpAddr) -> Result<DnsServer, String> {
    let dns = DnsServer::start().map_err(|e| format!("start the DNS server: {e}"))?;
    dns.set_hosts(name, &[ip], 300)
        .map_err(|e| format!("DNS record {name}: {e}"))?;
    Ok(dns)
}
