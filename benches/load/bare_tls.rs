//! The `bare-tls` variant: the physical limit with mutual TLS, for `mesh-full` to be
//! compared with.
//!
//! A plain hyper-util pooled client calls a plain hyper HTTP/1.1 server over mutual TLS and
//! nothing else: no `MeshClient`, no `MeshServer`, no discovery, metrics or tracing. The TLS
//! is mesh-full's, so the two differ only by the mesh's layers: the same development CA and
//! SPIFFE identities (`load-client` calling `secure`), and mesh's rustls configurations
//! (aws-lc-rs, session resumption off, the server's SPIFFE ID checked by the client, a
//! client certificate required by the server in STRICT mode), with `http/1.1` by ALPN as
//! mesh-full negotiates.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh::core::config::{ClientTls, ClientTlsMode, MtlsMode};
use mesh::core::identity::SpiffeId;
use mesh::tower::tls::{DevCa, Identity, MaybeTls, ServerIo, TlsAcceptor, TlsConnector};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::caller::{Caller, uri};
use crate::servers::BODY;
use crate::tls_connector::TlsConnect;

const TRUST_DOMAIN: &str = "cluster.local";
/// The bare TLS server's address (the bare server is on .1, proxies on .2 and up, the mesh
/// server on .9).
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 170, 10);
/// The server name the client sends, as mesh-full's client does for `secure`.
const SERVER_NAME: &str = "secure.default.svc.cluster.local";
/// What both sides agree by ALPN: HTTP/1.1, as in mesh-full.
const ALPN: &[u8] = b"http/1.1";

/// What the server saw: proof that every connection was mutual TLS.
#[derive(Default)]
struct Seen {
    handshakes: AtomicU64,
    failed_handshakes: AtomicU64,
    plaintext: AtomicU64,
    requests: AtomicU64,
    /// The protocol version, ALPN and client identity of the first handshake.
    first: OnceLock<Value>,
}

/// What a `bare-tls` worker holds while it runs, and what it reports at the end.
pub(crate) struct BareTls {
    seen: Arc<Seen>,
}

impl BareTls {
    /// Issues the identities, starts the TLS server and builds the client (returned as the
    /// caller). Call inside the runtime.
    pub(crate) async fn start() -> Result<(Self, Caller), String> {
        let ca = DevCa::new(TRUST_DOMAIN).map_err(|e| format!("CA: {e}"))?;
        let server_id = spiffe_id("secure")?;
        let identity = |id: &SpiffeId| {
            ca.identity(id)
                .map_err(|e| format!("identity {}: {e}", id.as_str()))
        };

        let seen = Arc::new(Seen::default());
        let acceptor = TlsAcceptor::new(
            MtlsMode::Strict,
            Some(identity(&server_id)?),
            vec![TRUST_DOMAIN.to_owned()],
            vec![ALPN.to_vec()],
        )
        .map_err(|e| format!("TLS acceptor: {e}"))?;
        let listener = TcpListener::bind((SERVER_IP, 0))
            .await
            .map_err(|e| format!("bind the bare TLS server on {SERVER_IP}: {e}"))?;
        let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
        serve(listener, acceptor, seen.clone());

        let client_identity: Identity = identity(&spiffe_id("load-client")?)?;
        let tls = TlsConnector::new(
            &ClientTls::mode(ClientTlsMode::IstioMutual),
            Some(&client_identity),
            vec![server_id.as_str().to_owned()],
            vec![ALPN.to_vec()],
        )
        .map_err(|e| format!("TLS connector: {e}"))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .build(TlsConnect::new(tls, SERVER_NAME));
        let caller = Caller::BareTls {
            client,
            uri: uri(&format!("https://{addr}/"))?,
        };
        Ok((Self { seen }, caller))
    }

    /// Handshakes, failures, plaintext attempts and requests served over TLS so far, with
    /// the first handshake's protocol version, ALPN and client identity.
    pub(crate) fn evidence(&self) -> Value {
        let s = &self.seen;
        json!({
            "tls_handshakes": s.handshakes.load(Ordering::Relaxed),
            "tls_handshake_failures": s.failed_handshakes.load(Ordering::Relaxed),
            "plaintext_connections": s.plaintext.load(Ordering::Relaxed),
            "requests_over_tls": s.requests.load(Ordering::Relaxed),
            "first_handshake": s.first.get(),
        })
    }
}

fn spiffe_id(sa: &str) -> Result<SpiffeId, String> {
    SpiffeId::workload(TRUST_DOMAIN, "default", sa).map_err(|e| format!("SPIFFE ID {sa}: {e}"))
}

/// Serves `listener` until the process exits: each connection's handshake and HTTP/1.1
/// with keep-alive in a task of its own, answering `ok`.
fn serve(listener: TcpListener, acceptor: TlsAcceptor, seen: Arc<Seen>) {
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let accepted = match acceptor.accept(tcp).await {
                    Ok(a) => a,
                    Err(e) => {
                        seen.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                        eprintln!("load: bare TLS server: {e}");
                        return;
                    }
                };
                if !accepted.tls {
                    seen.plaintext.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                seen.handshakes.fetch_add(1, Ordering::Relaxed);
                let _ = seen
                    .first
                    .get_or_init(|| describe(&accepted.io, accepted.identity.as_ref()));
                let service = hyper::service::service_fn(|_req| {
                    seen.requests.fetch_add(1, Ordering::Relaxed);
                    async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(BODY),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(accepted.io), service)
                    .await;
            });
        }
    });
}

/// The negotiated protocol version, ALPN and the client's SPIFFE ID of a connection.
fn describe(io: &ServerIo, client: Option<&SpiffeId>) -> Value {
    let version = match io {
        MaybeTls::Tls(tls) => tls.get_ref().1.protocol_version().map(|v| format!("{v:?}")),
        MaybeTls::Plain(_) => None,
    };
    json!({
        "protocol_version": version,
        "alpn": io.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
        "client_identity": client.map(SpiffeId::as_str),
    })
}
