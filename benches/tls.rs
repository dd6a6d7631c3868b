//! The cost of mutual TLS, in one run, on loopback:
//!
//! - requests on kept-alive connections, MeshClient → MeshServer, plaintext against mutual
//!   TLS (automatic ISTIO_MUTUAL to a STRICT server), one at a time and 16 at a time;
//! - handshakes of fresh connections: `TlsConnector::connect` with `TlsAcceptor::accept`
//!   (mutual TLS, ECDSA P-256 certificates of a `DevCa`, TLS 1.3), and a plain TCP connect
//!   for reference.
//!
//! `cargo bench --bench tls`; the ratio mtls / plaintext and the handshakes per second are
//! printed at the end.

#[path = "support/rounds.rs"]
mod rounds;

use rounds::{CONCURRENCY, PER_ROUND, time_concurrent, time_sequential};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use http_body_util::{BodyExt, Empty, Full};
use mesh::core::config::{ClientTls, ClientTlsMode, MtlsMode, ServerConfig};
use mesh::core::identity::SpiffeId;
use mesh::prelude::*;
use mesh::tower::testing::DnsServer;
use mesh::tower::tls::{DevCa, Identity, TlsAcceptor, TlsConnector};
use tokio::net::{TcpListener, TcpStream};

const TD: &str = "cluster.local";

/// The plaintext server's address, the mutual-TLS server's, and the handshake listener's.
fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 91, host))
}

fn id(sa: &str) -> SpiffeId {
    SpiffeId::workload(TD, "default", sa).expect("SPIFFE ID")
}

/// A MeshServer answering `ok` on `ip`, in `mode`, with `identity` when given.
async fn serve(ip: IpAddr, mode: MtlsMode, identity: Option<Identity>) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut config = ServerConfig::default();
    config.security.mtls = mode;
    config.security.trust_domains = vec![TD.to_owned()];
    let mut server = MeshServer::new(config).name("bench");
    if let Some(identity) = identity {
        server = server.identity(identity);
    }
    let app = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
    });
    tokio::spawn(async move {
        server
            .serve(listener, app, std::future::pending())
            .await
            .expect("serve");
    });
    addr
}

/// One GET through `client`, checked and read whole.
async fn get(client: &MeshClient, uri: &str) {
    let req = http::Request::get(uri)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let res = client.request(req).await.expect("mesh request");
    assert!(res.status().is_success(), "{}", res.status());
    res.into_body().collect().await.expect("body");
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ca = DevCa::new(TD).expect("CA");
    let client_identity = ca.identity(&id("bench-client")).expect("identity");
    // The mTLS server is `secure`: automatic mTLS expects the identity .../sa/secure.
    let server_identity = ca.identity(&id("secure")).expect("identity");

    let (dns, plain_addr, secure_addr) = rt.block_on(async {
        let plain_addr = serve(ip(101), MtlsMode::Disable, None).await;
        let secure_addr = serve(ip(102), MtlsMode::Strict, Some(server_identity.clone())).await;
        let dns = DnsServer::start().expect("dns");
        dns.set_hosts("plain.default.svc", &[ip(101)], 300)
            .expect("record");
        dns.set_hosts("secure.default.svc", &[ip(102)], 300)
            .expect("record");
        (dns, plain_addr, secure_addr)
    });
    let config = || {
        MeshConfig::builder()
            .service("bench-client")
            .discovery(dns.config())
            .build()
            .expect("config")
    };
    let (plain, mtls) = rt.block_on(async {
        let plain = MeshClient::new(config()).expect("client");
        let mtls = MeshClient::builder()
            .config(config())
            .identity(client_identity.clone())
            .build()
            .expect("client");
        (plain, mtls)
    });
    let plain_uri = format!("http://plain:{}/", plain_addr.port());
    let mtls_uri = format!("http://secure:{}/", secure_addr.port());
    let plain_get = || {
        let (client, uri) = (plain.clone(), plain_uri.clone());
        async move { get(&client, &uri).await }
    };
    let mtls_get = || {
        let (client, uri) = (mtls.clone(), mtls_uri.clone());
        async move { get(&client, &uri).await }
    };
    // Warm both pools (and the first DNS answers): the requests below reuse connections.
    rt.block_on(async {
        join_all((0..CONCURRENCY).map(|_| plain_get())).await;
        join_all((0..CONCURRENCY).map(|_| mtls_get())).await;
    });

    let mut group = c.benchmark_group("requests_sequential");
    group.throughput(Throughput::Elements(1));
    group.bench_function("plaintext", |b| b.to_async(&rt).iter(plain_get));
    group.bench_function("mtls", |b| b.to_async(&rt).iter(mtls_get));
    group.finish();

    let mut group = c.benchmark_group("requests_concurrent16");
    group.throughput(Throughput::Elements(CONCURRENCY as u64));
    group.bench_function("plaintext", |b| {
        b.to_async(&rt)
            .iter(|| join_all((0..CONCURRENCY).map(|_| plain_get())))
    });
    group.bench_function("mtls", |b| {
        b.to_async(&rt)
            .iter(|| join_all((0..CONCURRENCY).map(|_| mtls_get())))
    });
    group.finish();

    // Handshakes: both ends in the same task, on a listener of their own.
    let alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::new(
        MtlsMode::Strict,
        Some(server_identity.clone()),
        vec![TD.to_owned()],
        alpn.clone(),
    )
    .expect("acceptor");
    let connector = TlsConnector::new(
        &ClientTls::mode(ClientTlsMode::IstioMutual),
        Some(&client_identity),
        vec![id("secure").to_string()],
        alpn,
    )
    .expect("connector");
    let listener = rt.block_on(async { TcpListener::bind((ip(103), 0)).await.expect("bind") });
    let addr = listener.local_addr().expect("addr");
    let handshake = || async {
        let (client, server) = tokio::join!(
            async {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                connector
                    .connect("secure.default.svc.cluster.local", tcp)
                    .await
                    .expect("client handshake")
            },
            async {
                let (tcp, _) = listener.accept().await.expect("accept");
                acceptor.accept(tcp).await.expect("server handshake")
            }
        );
        assert!(server.identity.is_some());
        // The server closes first, so the client's ports are not held in TIME_WAIT.
        drop(server);
        drop(client);
    };
    let tcp_connect = || async {
        let (client, server) = tokio::join!(
            async { TcpStream::connect(addr).await.expect("connect") },
            async { listener.accept().await.expect("accept").0 }
        );
        drop(server);
        drop(client);
    };
    let mut group = c.benchmark_group("handshakes");
    group.throughput(Throughput::Elements(1));
    group.bench_function("mtls_ecdsa_p256", |b| b.to_async(&rt).iter(handshake));
    group.bench_function("tcp_connect", |b| b.to_async(&rt).iter(tcp_connect));
    group.finish();

    // Criterion runs one function after the other, so a drift of this shared machine between
    // them skews their ratio. Here they alternate in short rounds and the median is printed.
    let rounds: Vec<[f64; 6]> = (0..ROUNDS)
        .map(|_| {
            rt.block_on(async {
                let plain_seq = time_sequential(&plain_get, PER_ROUND).await;
                let mtls_seq = time_sequential(&mtls_get, PER_ROUND).await;
                let plain_conc = time_concurrent(&plain_get).await;
                let mtls_conc = time_concurrent(&mtls_get).await;
                let tls = time_sequential(&handshake, HANDSHAKES_PER_ROUND).await;
                let tcp = time_sequential(&tcp_connect, HANDSHAKES_PER_ROUND).await;
                [plain_seq, mtls_seq, plain_conc, mtls_conc, tls, tcp]
            })
        })
        .collect();
    let median = |f: &dyn Fn(&[f64; 6]) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[ROUNDS / 2]
    };
    println!("interleaved, median of {ROUNDS} rounds:");
    for (name, plain, mtls) in [("sequential", 0, 1), ("concurrent16", 2, 3)] {
        println!(
            "  requests {name:<13} plaintext {:>7.2} us  mtls {:>7.2} us  mtls / plaintext {:.3}",
            median(&|r| r[plain]) * 1e6,
            median(&|r| r[mtls]) * 1e6,
            median(&|r| r[mtls] / r[plain]),
        );
    }
    println!(
        "  handshakes per second: mtls (both ends) {:.0}, tcp connect {:.0}",
        1.0 / median(&|r| r[4]),
        1.0 / median(&|r| r[5]),
    );
    drop(dns);
}

const ROUNDS: usize = 9;
const HANDSHAKES_PER_ROUND: usize = 200;

criterion_group!(benches, bench);
criterion_main!(benches);
