//! The servers a worker starts: the plain hyper server every variant but `mesh-full` calls
//! (and proxies forward to), and the DNS server mesh clients discover it through.

use std::net::{IpAddr, SocketAddr};

use mesh::tower::testing::DnsServer;
use tokio::net::TcpListener;

use crate::ok_server;

pub(crate) use crate::ok_server::BODY;

/// A plain hyper HTTP/1.1 server answering `ok` on `addr`, with keep-alive; it serves until
/// the process exits.
pub(crate) async fn plain(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind the bare server on {addr}: {e}"))?;
    ok_server::spawn(listener);
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
