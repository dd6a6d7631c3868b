//! Certificate rotation under load: workload certificates read from files are replaced while
//! requests flow, new connections present the new ones, and no request fails; a bad rewrite
//! is counted and ignored.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mesh::core::config::{
    CertificateFiles, CertificateLayout, ClientTls, ClientTlsMode, ConnectionPool,
    DestinationBuilder, MtlsMode,
};
use mesh::core::identity::SpiffeId;
use mesh::tower::tls::{self, DevCa, HandshakeReason, IssueOptions, IssuedCert, TlsConnector};
use mesh::tower::{MeshClient, MeshServer};
use metrics_util::debugging::DebuggingRecorder;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::support::{Mesh, Metrics, Server, TD, TempDir, eventually, get, id, ip, uri};

const CALLERS: usize = 8;
const PER_CALLER: usize = 250;
/// Each caller's pause between two requests (tokio time), so the load spans several
/// certificate checks: 250 requests take at least 2.5 s.
const PAUSE: Duration = Duration::from_millis(10);
/// How often the certificate files are checked.
const REFRESH: Duration = Duration::from_secs(1);

/// The certificate of generation `generation` (1, 2, ...) for `id`: valid for
/// `generation` days, and for the server a DNS name saying which generation it is.
fn generation(ca: &DevCa, id: &SpiffeId, generation: u64, dns: bool) -> (IssuedCert, i64) {
    let mut options = IssueOptions::new(id.clone());
    options.not_after = options.not_before + Duration::from_secs(generation * 24 * 3600);
    if dns {
        options.dns_names = vec![generation_name(generation)];
    }
    let not_after = options.not_after.unix_timestamp();
    (ca.issue_with(options).expect("certificate"), not_after)
}

fn generation_name(generation: u64) -> String {
    format!("generation-{generation}.reviews.test")
}

/// A fresh MUTUAL handshake with the server at `addr`, accepting only a certificate that
/// names `san`: the server's SPIFFE ID, or why the handshake failed.
async fn fresh_handshake(
    addr: SocketAddr,
    client: &CertificateFiles,
    roots: &Path,
    san: &str,
) -> Result<Option<SpiffeId>, HandshakeReason> {
    let mut settings = ClientTls::mode(ClientTlsMode::Mutual);
    settings.client_certificate = Some(client.chain.clone());
    settings.private_key = Some(client.key.clone());
    settings.ca_certificates = Some(roots.to_owned());
    let connector = TlsConnector::new(
        &settings,
        None,
        vec![san.to_owned()],
        vec![b"http/1.1".to_vec()],
    )
    .expect("connector");
    let tcp = TcpStream::connect(addr).await.expect("connect");
    match connector
        .connect("reviews.default.svc.cluster.local", tcp)
        .await
    {
        Ok(stream) => Ok(tls::peer_identity(&stream)),
        Err(e) => Err(e.reason),
    }
}

/// `callers x per_caller` GETs of `uri`, `callers` at a time, each caller pausing
/// [`PAUSE`] between two; counts answers in `done` and returns every failure.
async fn load(
    client: &MeshClient,
    uri: &str,
    callers: usize,
    per_caller: usize,
    done: Arc<AtomicUsize>,
) -> Vec<(u16, String)> {
    let mut tasks = JoinSet::new();
    for _ in 0..callers {
        let (client, uri, done) = (client.clone(), uri.to_owned(), done.clone());
        tasks.spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..per_caller {
                let answer = get(&client, &uri).await;
                if answer.status != 200 {
                    failures.push((answer.status, answer.body));
                }
                done.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(PAUSE).await;
            }
            failures
        });
    }
    let mut failures = Vec::new();
    while let Some(caller) = tasks.join_next().await {
        failures.extend(caller.expect("caller panicked"));
    }
    failures
}

#[tokio::test(start_paused = true)]
async fn certificates_rotate_under_load_without_a_failed_request() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    let dir = TempDir::new();
    let roots = ca.roots_pem();

    let (server_cert, server_expiry_1) = generation(&ca, &id("reviews"), 1, true);
    let (client_cert, client_expiry_1) = generation(&ca, &id("productpage"), 1, false);
    let mut server_files = server_cert
        .write(dir.dir("reviews"), CertificateLayout::Istio, &roots)
        .expect("write");
    server_files.refresh = REFRESH;
    let mut client_files = client_cert
        .write(dir.dir("productpage"), CertificateLayout::Istio, &roots)
        .expect("write");
    client_files.refresh = REFRESH;

    // Both workloads load their certificates from the files of their config.
    let config = mesh
        .config("reviews")
        .mtls(MtlsMode::Strict)
        .certificates(server_files.clone())
        .build()
        .expect("config");
    let server = Server::start(
        ip(93, 31),
        MeshServer::from_config(&config).expect("server"),
    )
    .await;
    mesh.name("reviews", server.addr.ip());
    // Connections are retired every 25 requests, so handshakes go on through the load.
    let config = mesh
        .config("productpage")
        .certificates(client_files.clone())
        .destination(
            DestinationBuilder::new("reviews").connection_pool(ConnectionPool {
                max_requests_per_connection: Some(25),
                ..ConnectionPool::default()
            }),
        )
        .build()
        .expect("config");
    let client = MeshClient::builder()
        .config(config)
        .build()
        .expect("client");
    assert_eq!(metrics.expiry(&id("reviews")), Some(server_expiry_1));
    assert_eq!(metrics.expiry(&id("productpage")), Some(client_expiry_1));

    let done = Arc::new(AtomicUsize::new(0));
    let total = CALLERS * PER_CALLER;
    let uri = uri("reviews", server.port());
    let running = {
        let (client, uri, done) = (client.clone(), uri.clone(), done.clone());
        tokio::spawn(async move { load(&client, &uri, CALLERS, PER_CALLER, done).await })
    };

    // Midway, both leaf certificates are replaced (same CA, new keys).
    assert!(
        eventually(Duration::from_secs(60), || done.load(Ordering::Relaxed)
            >= total / 2)
        .await
    );
    let (server_cert, server_expiry_2) = generation(&ca, &id("reviews"), 2, true);
    let (client_cert, client_expiry_2) = generation(&ca, &id("productpage"), 2, false);
    server_cert
        .write(dir.path().join("reviews"), CertificateLayout::Istio, &roots)
        .expect("rewrite");
    client_cert
        .write(
            dir.path().join("productpage"),
            CertificateLayout::Istio,
            &roots,
        )
        .expect("rewrite");
    // The next check of the files swaps them in, while the load goes on.
    assert!(
        eventually(REFRESH * 2, || {
            metrics.expiry(&id("reviews")) == Some(server_expiry_2)
                && metrics.expiry(&id("productpage")) == Some(client_expiry_2)
        })
        .await,
        "both workloads reloaded their certificates"
    );
    let at = done.load(Ordering::Relaxed);
    assert!(at < total, "rotated with {at} of {total} requests answered");

    let failures = running.await.expect("load");
    assert_eq!(done.load(Ordering::Relaxed), total);
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(server.calls(), total);
    assert_eq!(metrics.counter(tls::RELOAD_FAILURES, &[]), 0);

    // A new connection meets the new server certificate, not the old one.
    let names = |generation| generation_name(generation);
    let new = fresh_handshake(server.addr, &client_files, &server_files.roots, &names(2)).await;
    assert_eq!(new.expect("the new certificate"), Some(id("reviews")));
    let old = fresh_handshake(server.addr, &client_files, &server_files.roots, &names(1)).await;
    assert!(
        matches!(&old, Err(HandshakeReason::WrongIdentity { presented, .. })
            if presented.contains(&names(2))),
        "{old:?}"
    );

    // A bad rewrite (a key that is not the certificate's) is counted and ignored.
    let stray = ca.issue(&id("reviews")).expect("certificate");
    std::fs::write(&server_files.key, &stray.key_pem).expect("rewrite key");
    tokio::time::sleep(REFRESH * 2).await;
    assert_eq!(metrics.counter(tls::RELOAD_FAILURES, &[]), 1);
    assert_eq!(metrics.expiry(&id("reviews")), Some(server_expiry_2));
    let again = Arc::new(AtomicUsize::new(0));
    let failures = load(&client, &uri, CALLERS, 25, again.clone()).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(again.load(Ordering::Relaxed), CALLERS * 25);
    let kept = fresh_handshake(server.addr, &client_files, &server_files.roots, &names(2)).await;
    assert_eq!(kept.expect("the kept certificate"), Some(id("reviews")));
    assert_eq!(
        metrics.counter(tls::RELOAD_FAILURES, &[]),
        1,
        "counted once"
    );

    drop(client);
    server.stop().await.expect("serve");
}
