//! Tests of the TLS module: real handshakes on loopback with DevCa certificates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mesh_core::config::{CertificateFiles, CertificateLayout, ClientTls, ClientTlsMode, MtlsMode};
use mesh_core::identity::SpiffeId;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

const TD: &str = "cluster.local";
const HOST: &str = "reviews.default.svc.cluster.local";

fn id(sa: &str) -> SpiffeId {
    SpiffeId::workload(TD, "default", sa).unwrap()
}

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

fn istio(identity: &Identity, expected: &[&SpiffeId]) -> TlsConnector {
    TlsConnector::new(
        &ClientTls::mode(ClientTlsMode::IstioMutual),
        Some(identity),
        expected.iter().map(|i| i.to_string()).collect(),
        alpn(),
    )
    .unwrap()
}

fn acceptor(mode: MtlsMode, identity: &Identity) -> TlsAcceptor {
    TlsAcceptor::new(mode, Some(identity.clone()), vec![TD.to_owned()], alpn()).unwrap()
}

/// An identity from `ca`'s certificate issued with `options`, its validity dates unchecked.
fn identity_any_time(ca: &DevCa, options: IssueOptions) -> Identity {
    let cert = ca.issue_with(options).unwrap();
    Identity::from_pem_any_time(
        cert.chain_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        ca.roots_pem().as_bytes(),
    )
    .unwrap()
}

/// One connection on a loopback listener: the server side accepted by `acceptor`, the
/// client side connected by `connector`.
async fn handshake(
    acceptor: &TlsAcceptor,
    connector: &TlsConnector,
) -> (
    Result<Accepted, HandshakeError>,
    Result<ClientStream, HandshakeError>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = acceptor.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = connector.connect(HOST, tcp).await;
    (server.await.unwrap(), client)
}

/// What a client whose TLS 1.3 handshake completed sees when the server refused its
/// certificate: the alert, on its first read.
async fn refusal_read_by(mut client: ClientStream) -> HandshakeReason {
    let mut buf = [0u8; 16];
    match client.read(&mut buf).await {
        Err(e) => HandshakeReason::from_io(e),
        Ok(n) => panic!("the client read {n} bytes instead of an alert"),
    }
}

/// Sums counters and keeps the last gauges across snapshots (a snapshot resets counters).
struct Metrics {
    snapshotter: Snapshotter,
    counters: HashMap<(String, Vec<(String, String)>), u64>,
    gauges: HashMap<(String, Vec<(String, String)>), f64>,
}

impl Metrics {
    fn new(recorder: &DebuggingRecorder) -> Self {
        Self {
            snapshotter: recorder.snapshotter(),
            counters: HashMap::new(),
            gauges: HashMap::new(),
        }
    }

    fn update(&mut self) {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let (_, key) = key.into_parts();
            let mut labels: Vec<_> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let id = (key.name().to_owned(), labels);
            match value {
                DebugValue::Counter(n) => *self.counters.entry(id).or_default() += n,
                DebugValue::Gauge(g) => {
                    self.gauges.insert(id, g.into_inner());
                }
                DebugValue::Histogram(_) => {}
            }
        }
    }

    fn counter(&mut self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.update();
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.counters
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0)
    }

    fn failures(&mut self, side: &str, reason: &str) -> u64 {
        self.counter(HANDSHAKE_FAILURES, &[("reason", reason), ("side", side)])
    }

    fn gauge(&mut self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.update();
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.gauges.get(&(name.to_owned(), labels)).copied()
    }
}

/// A directory of its own under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "mesh-tls-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(start_paused = true)]
async fn mutual_tls_exposes_both_identities_and_carries_data() {
    let ca = DevCa::new(TD).unwrap();
    let server_id = ca.identity(&id("reviews")).unwrap();
    let client_id = ca.identity(&id("productpage")).unwrap();

    let (accepted, client) = handshake(
        &acceptor(MtlsMode::Strict, &server_id),
        &istio(&client_id, &[&id("reviews")]),
    )
    .await;
    let accepted = accepted.unwrap();
    let mut client = client.unwrap();
    assert!(accepted.tls);
    assert_eq!(accepted.identity, Some(id("productpage")));
    assert_eq!(accepted.io.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(peer_identity(&client), Some(id("reviews")));
    assert!(negotiated_h2(&client));

    let mut server = accepted.io;
    client.write_all(b"ping").await.unwrap();
    client.flush().await.unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").await.unwrap();
    server.flush().await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

#[tokio::test(start_paused = true)]
async fn permissive_serves_plaintext_and_tls_on_one_listener() {
    let ca = DevCa::new(TD).unwrap();
    let server_id = ca.identity(&id("reviews")).unwrap();
    let client_id = ca.identity(&id("productpage")).unwrap();
    let dir = TempDir::new();
    let mut simple = ClientTls::mode(ClientTlsMode::Simple);
    simple.ca_certificates = Some(dir.file("ca.pem", &ca.roots_pem()));
    let simple = TlsConnector::new(&simple, None, vec![id("reviews").to_string()], alpn()).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = acceptor(MtlsMode::Permissive, &server_id);
    let server = tokio::spawn(async move {
        let mut accepted = Vec::new();
        for _ in 0..3 {
            let (tcp, _) = listener.accept().await.unwrap();
            accepted.push(acceptor.accept(tcp).await.unwrap());
        }
        accepted
    });

    // Plaintext: the peeked byte is still there for the application.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    // Mutual TLS.
    let mtls = istio(&client_id, &[&id("reviews")])
        .connect(HOST, TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    // TLS without a client certificate.
    let tls = simple
        .connect(HOST, TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    assert_eq!(peer_identity(&tls), Some(id("reviews")));

    let mut accepted = server.await.unwrap().into_iter();
    let mut first = accepted.next().unwrap();
    assert!(!first.tls);
    assert_eq!(first.identity, None);
    assert!(matches!(first.io, ServerIo::Plain(_)));
    let mut buf = [0u8; 16];
    first.io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"GET / HTTP/1.1\r\n");

    let second = accepted.next().unwrap();
    assert!(second.tls);
    assert_eq!(second.identity, Some(id("productpage")));

    let third = accepted.next().unwrap();
    assert!(third.tls);
    assert_eq!(third.identity, None);
    drop((plain, mtls, tls));
}

#[tokio::test(start_paused = true)]
async fn permissive_without_identity_and_disable_are_plaintext() {
    for acceptor in [
        TlsAcceptor::new(MtlsMode::Permissive, None, Vec::new(), alpn()).unwrap(),
        TlsAcceptor::new(MtlsMode::Disable, None, Vec::new(), alpn()).unwrap(),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.unwrap()
        });
        // Even a TLS record is handed over as plaintext.
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        let accepted = server.await.unwrap();
        assert!(!accepted.tls);
    }
}

#[tokio::test(start_paused = true)]
async fn strict_refuses_plaintext() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let ca = DevCa::new(TD).unwrap();
    let acceptor = acceptor(MtlsMode::Strict, &ca.identity(&id("reviews")).unwrap());

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let err = server.await.unwrap().unwrap_err();
    assert!(matches!(err.reason, HandshakeReason::NotTls), "{err}");
    assert_eq!(err.peer, Some(tcp.local_addr().unwrap()));
    assert!(
        err.to_string().starts_with(&format!(
            "TLS handshake with {} failed: ",
            tcp.local_addr().unwrap()
        )),
        "{err}"
    );
    assert_eq!(metrics.failures("server", "not_tls"), 1);
}

#[tokio::test(start_paused = true)]
async fn strict_refuses_a_tls_client_without_certificate() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let ca = DevCa::new(TD).unwrap();
    let dir = TempDir::new();
    let mut simple = ClientTls::mode(ClientTlsMode::Simple);
    simple.ca_certificates = Some(dir.file("ca.pem", &ca.roots_pem()));
    let simple = TlsConnector::new(&simple, None, vec![id("reviews").to_string()], alpn()).unwrap();

    let (accepted, client) = handshake(
        &acceptor(MtlsMode::Strict, &ca.identity(&id("reviews")).unwrap()),
        &simple,
    )
    .await;
    let err = accepted.unwrap_err();
    assert!(
        matches!(err.reason, HandshakeReason::NoClientCertificate),
        "{err}"
    );
    let seen = refusal_read_by(client.unwrap()).await;
    assert!(
        matches!(&seen, HandshakeReason::RejectedByPeer(alert) if alert == "certificate required"),
        "{seen}"
    );
    assert_eq!(metrics.failures("server", "no_client_certificate"), 1);
}

#[tokio::test(start_paused = true)]
async fn client_refuses_a_server_with_the_wrong_identity() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let ca = DevCa::new(TD).unwrap();
    let (accepted, client) = handshake(
        &acceptor(MtlsMode::Strict, &ca.identity(&id("reviews")).unwrap()),
        &istio(&ca.identity(&id("productpage")).unwrap(), &[&id("ratings")]),
    )
    .await;
    let err = client.unwrap_err();
    match &err.reason {
        HandshakeReason::WrongIdentity {
            expected,
            presented,
        } => {
            assert_eq!(expected, &[id("ratings").to_string()]);
            assert_eq!(presented, &[id("reviews").to_string()]);
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("sa/ratings") && text.contains("sa/reviews"),
        "{text}"
    );
    let err = accepted.unwrap_err();
    assert!(
        matches!(err.reason, HandshakeReason::RejectedByPeer(_)),
        "{err}"
    );
    assert_eq!(metrics.failures("client", "wrong_identity"), 1);
    assert_eq!(metrics.failures("server", "rejected_by_peer"), 1);
}

#[tokio::test(start_paused = true)]
async fn server_refuses_a_client_of_another_trust_domain() {
    let ca = DevCa::new(TD).unwrap();
    let foreign: SpiffeId = "spiffe://other.domain/ns/default/sa/productpage"
        .parse()
        .unwrap();
    let (accepted, client) = handshake(
        &acceptor(MtlsMode::Strict, &ca.identity(&id("reviews")).unwrap()),
        &istio(&ca.identity(&foreign).unwrap(), &[&id("reviews")]),
    )
    .await;
    let err = accepted.unwrap_err();
    match &err.reason {
        HandshakeReason::UntrustedDomain { presented, trusted } => {
            assert_eq!(presented, foreign.as_str());
            assert_eq!(trusted, &[TD.to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    let seen = refusal_read_by(client.unwrap()).await;
    assert!(matches!(seen, HandshakeReason::RejectedByPeer(_)), "{seen}");

    // Without trust domains, any identity the trust bundle verifies is accepted.
    let open = TlsAcceptor::new(
        MtlsMode::Strict,
        Some(ca.identity(&id("reviews")).unwrap()),
        Vec::new(),
        alpn(),
    )
    .unwrap();
    let (accepted, _client) = handshake(
        &open,
        &istio(&ca.identity(&foreign).unwrap(), &[&id("reviews")]),
    )
    .await;
    assert_eq!(accepted.unwrap().identity, Some(foreign));
}

#[tokio::test(start_paused = true)]
async fn another_ca_is_refused_on_both_sides() {
    let ca = DevCa::new(TD).unwrap();
    let other = DevCa::new(TD).unwrap();

    // The server's certificate is of another CA: the client refuses it.
    let (accepted, client) = handshake(
        &acceptor(MtlsMode::Strict, &other.identity(&id("reviews")).unwrap()),
        &istio(&ca.identity(&id("productpage")).unwrap(), &[&id("reviews")]),
    )
    .await;
    let err = client.unwrap_err();
    assert!(
        matches!(err.reason, HandshakeReason::UnknownIssuer),
        "{err}"
    );
    assert!(
        err.to_string().contains("not issued by a trusted CA"),
        "{err}"
    );
    let err = accepted.unwrap_err();
    assert!(
        matches!(&err.reason, HandshakeReason::RejectedByPeer(alert) if alert == "unknown CA"),
        "{err}"
    );

    // The client's certificate is of another CA (it trusts the server's): the server
    // refuses it.
    let foreign = other.issue(&id("productpage")).unwrap();
    let client_id = Identity::from_pem(
        foreign.chain_pem.as_bytes(),
        foreign.key_pem.as_bytes(),
        ca.roots_pem().as_bytes(),
    )
    .unwrap();
    let (accepted, client) = handshake(
        &acceptor(MtlsMode::Strict, &ca.identity(&id("reviews")).unwrap()),
        &istio(&client_id, &[&id("reviews")]),
    )
    .await;
    let err = accepted.unwrap_err();
    assert!(
        matches!(err.reason, HandshakeReason::UnknownIssuer),
        "{err}"
    );
    let seen = refusal_read_by(client.unwrap()).await;
    assert!(matches!(seen, HandshakeReason::RejectedByPeer(_)), "{seen}");
}

#[tokio::test(start_paused = true)]
async fn expired_and_not_yet_valid_certificates_are_refused_on_both_sides() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let ca = DevCa::new(TD).unwrap();
    let now = OffsetDateTime::from_unix_timestamp(unix_now()).unwrap();
    let day = Duration::from_secs(24 * 3600);
    let expired = |sa: &str| IssueOptions {
        not_before: now - 2 * day,
        not_after: now - day,
        ..IssueOptions::new(id(sa))
    };
    let early = |sa: &str| IssueOptions {
        not_before: now + day,
        not_after: now + 2 * day,
        ..IssueOptions::new(id(sa))
    };
    type Check = fn(&HandshakeReason) -> bool;
    let cases: [(&str, IssueOptions, IssueOptions, Check, &str); 2] = [
        (
            "expired",
            expired("reviews"),
            expired("productpage"),
            |r| matches!(r, HandshakeReason::CertificateExpired),
            "expired",
        ),
        (
            "not yet valid",
            early("reviews"),
            early("productpage"),
            |r| matches!(r, HandshakeReason::CertificateNotYetValid),
            "not_yet_valid",
        ),
    ];
    for (case, server_options, client_options, check, label) in cases {
        // The server presents the bad certificate.
        let (accepted, client) = handshake(
            &acceptor(MtlsMode::Strict, &identity_any_time(&ca, server_options)),
            &istio(&ca.identity(&id("productpage")).unwrap(), &[&id("reviews")]),
        )
        .await;
        let err = client.unwrap_err();
        assert!(check(&err.reason), "{case}: {err}");
        let err = accepted.unwrap_err();
        assert!(
            matches!(err.reason, HandshakeReason::RejectedByPeer(_)),
            "{case}: {err}"
        );

        // The client presents the bad certificate.
        let (accepted, client) = handshake(
            &acceptor(MtlsMode::Strict, &ca.identity(&id("reviews")).unwrap()),
            &istio(&identity_any_time(&ca, client_options), &[&id("reviews")]),
        )
        .await;
        let err = accepted.unwrap_err();
        assert!(check(&err.reason), "{case}: {err}");
        let seen = refusal_read_by(client.unwrap()).await;
        assert!(
            matches!(seen, HandshakeReason::RejectedByPeer(_)),
            "{case}: {seen}"
        );

        assert_eq!(metrics.failures("client", label), 1, "{case}");
        assert_eq!(metrics.failures("server", label), 1, "{case}");
    }
}

#[test]
fn every_load_error_names_the_part_and_the_cause() {
    let ca = DevCa::new(TD).unwrap();
    let good = ca.issue(&id("reviews")).unwrap();
    let other = ca.issue(&id("ratings")).unwrap();
    let roots = ca.roots_pem();
    let now = OffsetDateTime::from_unix_timestamp(unix_now()).unwrap();
    let day = Duration::from_secs(24 * 3600);
    let no_spiffe = ca
        .issue_with(IssueOptions {
            id: None,
            dns_names: vec![HOST.to_owned()],
            ..IssueOptions::new(id("reviews"))
        })
        .unwrap();
    let expired = ca
        .issue_with(IssueOptions {
            not_before: now - 2 * day,
            not_after: now - day,
            ..IssueOptions::new(id("reviews"))
        })
        .unwrap();
    let early = ca
        .issue_with(IssueOptions {
            not_before: now + day,
            not_after: now + 2 * day,
            ..IssueOptions::new(id("reviews"))
        })
        .unwrap();
    let half = &good.chain_pem[..good.chain_pem.len() / 2];
    let bad_der = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    type Check = fn(&CertError) -> bool;
    let cases: Vec<(&str, &str, &str, &str, Check, &str)> = vec![
        (
            "half-written chain",
            half,
            &good.key_pem,
            &roots,
            |e| matches!(e, CertError::Pem { .. }),
            "the certificate chain is not valid PEM",
        ),
        (
            "no certificate",
            "nothing here",
            &good.key_pem,
            &roots,
            |e| matches!(e, CertError::NoCertificate { .. }),
            "the certificate chain holds no certificate",
        ),
        (
            "no key",
            &good.chain_pem,
            &good.chain_pem,
            &roots,
            |e| matches!(e, CertError::NoKey { .. }),
            "the private key holds no private key",
        ),
        (
            "unsupported key",
            &good.chain_pem,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            &roots,
            |e| matches!(e, CertError::UnsupportedKey { .. }),
            "the private key holds an unsupported private key",
        ),
        (
            "mismatched key",
            &good.chain_pem,
            &other.key_pem,
            &roots,
            |e| matches!(e, CertError::KeyMismatch { .. }),
            "the private key does not match the public key of the leaf certificate",
        ),
        (
            "garbage certificate",
            bad_der,
            &good.key_pem,
            &roots,
            |e| matches!(e, CertError::BadCertificate { .. }),
            "the certificate chain: the leaf certificate cannot be parsed",
        ),
        (
            "no SPIFFE ID",
            &no_spiffe.chain_pem,
            &no_spiffe.key_pem,
            &roots,
            |e| matches!(e, CertError::NoSpiffeId { .. }),
            "the certificate chain: the leaf certificate has no SPIFFE ID",
        ),
        (
            "expired",
            &expired.chain_pem,
            &expired.key_pem,
            &roots,
            |e| matches!(e, CertError::Expired { .. }),
            "the certificate chain: the leaf certificate expired at ",
        ),
        (
            "not yet valid",
            &early.chain_pem,
            &early.key_pem,
            &roots,
            |e| matches!(e, CertError::NotYetValid { .. }),
            "the certificate chain: the leaf certificate is not valid before ",
        ),
        (
            "empty trust bundle",
            &good.chain_pem,
            &good.key_pem,
            "",
            |e| matches!(e, CertError::NoCertificate { .. }),
            "the trust bundle holds no certificate",
        ),
        (
            "invalid trust bundle",
            &good.chain_pem,
            &good.key_pem,
            bad_der,
            |e| matches!(e, CertError::InvalidTrustBundle { .. }),
            "the trust bundle is not a valid trust bundle: certificate 1",
        ),
    ];
    for (case, chain, key, roots, check, text) in cases {
        let err =
            Identity::from_pem(chain.as_bytes(), key.as_bytes(), roots.as_bytes()).expect_err(case);
        assert!(check(&err), "{case}: {err:?}");
        assert!(err.to_string().starts_with(text), "{case}: {err}");
    }

    // Dates are shown.
    let err = Identity::from_pem(
        expired.chain_pem.as_bytes(),
        expired.key_pem.as_bytes(),
        roots.as_bytes(),
    )
    .unwrap_err();
    let year = (now - day).year().to_string();
    assert!(err.to_string().contains(&year), "{err}");

    // A spiffe:// URI SAN that is not a SPIFFE ID, and two of them.
    for (uris, text) in [
        (vec!["spiffe://Cluster.Local/ns/a/sa/b"], "lowercase"),
        (
            vec![
                "spiffe://cluster.local/ns/a/sa/b",
                "spiffe://cluster.local/ns/a/sa/c",
            ],
            "more than one",
        ),
    ] {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::default();
        for uri in uris {
            params
                .subject_alt_names
                .push(rcgen::SanType::URI(uri.try_into().unwrap()));
        }
        let cert = params.self_signed(&key).unwrap();
        let err = Identity::from_pem(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            cert.pem().as_bytes(),
        )
        .unwrap_err();
        assert!(matches!(err, CertError::InvalidSpiffeId { .. }), "{err:?}");
        assert!(err.to_string().contains(text), "{err}");
    }
}

#[test]
fn file_errors_name_the_file() {
    let ca = DevCa::new(TD).unwrap();
    let dir = TempDir::new();
    let files = ca
        .issue(&id("reviews"))
        .unwrap()
        .write(dir.path(), CertificateLayout::Istio, &ca.roots_pem())
        .unwrap();
    std::fs::remove_file(&files.key).unwrap();
    let err = Identity::from_files(&files).unwrap_err();
    assert!(matches!(err, CertError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("key.pem"), "{err}");

    std::fs::write(&files.key, "garbage").unwrap();
    let err = Identity::from_files(&files).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "the private key {} holds no private key",
            files.key.display()
        )),
        "{err}"
    );

    // Every layout writes files that load.
    for layout in CertificateLayout::ALL {
        let files = ca
            .issue(&id("reviews"))
            .unwrap()
            .write(dir.path(), layout, &ca.roots_pem())
            .unwrap();
        assert_eq!(files, CertificateFiles::in_dir(dir.path(), layout));
        assert_eq!(Identity::from_files(&files).unwrap().id(), id("reviews"));
    }
}

#[tokio::test(start_paused = true)]
async fn rotated_files_are_picked_up_and_a_bad_rewrite_keeps_the_current_set() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let ca = DevCa::new(TD).unwrap();
    let dir = TempDir::new();
    let roots = ca.roots_pem();
    let now = OffsetDateTime::from_unix_timestamp(unix_now()).unwrap();
    let first = ca
        .issue_with(IssueOptions {
            not_after: now + Duration::from_secs(3600),
            ..IssueOptions::new(id("reviews"))
        })
        .unwrap();
    let files = first
        .write(dir.path(), CertificateLayout::Istio, &roots)
        .unwrap();
    let server_id = Identity::from_files(&files).unwrap();
    let first_not_after = server_id.not_after_unix();
    let label = [("identity", id("reviews").to_string())];
    let label: Vec<(&str, &str)> = label.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let expected_gauge = first_not_after as f64;
    assert_eq!(
        metrics.gauge(CERTIFICATE_EXPIRY, &label),
        Some(expected_gauge)
    );

    let acceptor = acceptor(MtlsMode::Strict, &server_id);
    let connector = istio(&ca.identity(&id("productpage")).unwrap(), &[&id("reviews")]);
    let (_, client) = handshake(&acceptor, &connector).await;
    let leaf = |c: &ClientStream| c.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let first_leaf = leaf(&client.unwrap());

    // A new leaf from the same CA, valid for longer.
    let second = ca.issue(&id("reviews")).unwrap();
    second
        .write(dir.path(), CertificateLayout::Istio, &roots)
        .unwrap();
    tokio::time::sleep(files.refresh + Duration::from_secs(1)).await;
    assert!(server_id.not_after_unix() > first_not_after);
    let expected_gauge = server_id.not_after_unix() as f64;
    assert_eq!(
        metrics.gauge(CERTIFICATE_EXPIRY, &label),
        Some(expected_gauge)
    );
    let (_, client) = handshake(&acceptor, &connector).await;
    let second_leaf = leaf(&client.unwrap());
    assert_ne!(first_leaf, second_leaf);
    assert_eq!(second_leaf, parse_pem_leaf(&second.chain_pem));

    // A key that is not the certificate's: counted once, the current set stays.
    let third = ca.issue(&id("reviews")).unwrap();
    std::fs::write(&files.chain, &third.chain_pem).unwrap();
    for _ in 0..3 {
        tokio::time::sleep(files.refresh).await;
    }
    assert_eq!(metrics.counter(RELOAD_FAILURES, &[]), 1);
    let (_, client) = handshake(&acceptor, &connector).await;
    assert_eq!(leaf(&client.unwrap()), second_leaf);

    // The key follows: the set is consistent again and wins.
    std::fs::write(&files.key, &third.key_pem).unwrap();
    tokio::time::sleep(files.refresh).await;
    let (_, client) = handshake(&acceptor, &connector).await;
    assert_eq!(leaf(&client.unwrap()), parse_pem_leaf(&third.chain_pem));
    assert_eq!(metrics.counter(RELOAD_FAILURES, &[]), 1);
}

fn parse_pem_leaf(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test(start_paused = true)]
async fn the_reload_task_ends_with_the_last_clone() {
    let ca = DevCa::new(TD).unwrap();
    let dir = TempDir::new();
    let files = ca
        .issue(&id("reviews"))
        .unwrap()
        .write(dir.path(), CertificateLayout::Spire, &ca.roots_pem())
        .unwrap();
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    let identity = Identity::from_files(&files).unwrap();
    let clone = identity.clone();
    assert_eq!(tasks(), before + 1);
    drop(identity);
    tokio::time::sleep(files.refresh * 2).await;
    assert_eq!(tasks(), before + 1);
    drop(clone);
    tokio::time::sleep(files.refresh * 2).await;
    assert_eq!(tasks(), before);
}

#[tokio::test(start_paused = true)]
async fn replace_pem_applies_to_new_handshakes() {
    let ca = DevCa::new(TD).unwrap();
    let client_id = ca.identity(&id("productpage")).unwrap();
    let connector = istio(&client_id, &[]);
    let server_id = ca.identity(&id("reviews")).unwrap();
    let acceptor = acceptor(MtlsMode::Strict, &server_id);
    let (accepted, client) = handshake(&acceptor, &connector).await;
    assert_eq!(peer_identity(&client.unwrap()), Some(id("reviews")));
    assert_eq!(accepted.unwrap().identity, Some(id("productpage")));

    let next = ca.issue(&id("reviews-v2")).unwrap();
    server_id
        .replace_pem(
            next.chain_pem.as_bytes(),
            next.key_pem.as_bytes(),
            ca.roots_pem().as_bytes(),
        )
        .unwrap();
    assert_eq!(server_id.id(), id("reviews-v2"));
    let (_, client) = handshake(&acceptor, &connector).await;
    assert_eq!(peer_identity(&client.unwrap()), Some(id("reviews-v2")));

    // A bad set is refused and the current one stays.
    let err = server_id
        .replace_pem(next.chain_pem.as_bytes(), b"", ca.roots_pem().as_bytes())
        .unwrap_err();
    assert!(matches!(err, CertError::NoKey { .. }), "{err:?}");
    assert_eq!(server_id.id(), id("reviews-v2"));

    // The client's trust bundle rotates too: a server of a new CA is trusted once the
    // bundle holds it.
    let new_ca = DevCa::new(TD).unwrap();
    let new_server = new_ca.identity(&id("reviews")).unwrap();
    let new_acceptor = self::acceptor(MtlsMode::Permissive, &new_server);
    let (_, client) = handshake(&new_acceptor, &connector).await;
    assert!(matches!(
        client.unwrap_err().reason,
        HandshakeReason::UnknownIssuer
    ));
    let own = ca.issue(&id("productpage")).unwrap();
    let bundle = format!("{}{}", ca.roots_pem(), new_ca.roots_pem());
    client_id
        .replace_pem(
            own.chain_pem.as_bytes(),
            own.key_pem.as_bytes(),
            bundle.as_bytes(),
        )
        .unwrap();
    assert_eq!(client_id.roots().len(), 2);
    let (_, client) = handshake(&new_acceptor, &connector).await;
    assert_eq!(peer_identity(&client.unwrap()), Some(id("reviews")));
}

#[tokio::test(start_paused = true)]
async fn simple_and_mutual_verify_names_and_present_files() {
    let ca = DevCa::new(TD).unwrap();
    let dir = TempDir::new();
    let server_cert = ca
        .issue_with(IssueOptions {
            dns_names: vec![HOST.to_owned()],
            ..IssueOptions::new(id("reviews"))
        })
        .unwrap();
    let server_id = Identity::from_pem(
        server_cert.chain_pem.as_bytes(),
        server_cert.key_pem.as_bytes(),
        ca.roots_pem().as_bytes(),
    )
    .unwrap();
    let acceptor = acceptor(MtlsMode::Permissive, &server_id);
    let ca_file = dir.file("ca.pem", &ca.roots_pem());

    // SIMPLE checks the server name.
    let mut simple = ClientTls::mode(ClientTlsMode::Simple);
    simple.ca_certificates = Some(ca_file.clone());
    let connector = TlsConnector::new(&simple, None, Vec::new(), alpn()).unwrap();
    let (accepted, client) = handshake(&acceptor, &connector).await;
    assert!(client.is_ok());
    assert_eq!(accepted.unwrap().identity, None);

    simple.sni = Some("ratings.default.svc.cluster.local".to_owned());
    let connector = TlsConnector::new(&simple, None, Vec::new(), alpn()).unwrap();
    let (_, client) = handshake(&acceptor, &connector).await;
    match client.unwrap_err().reason {
        HandshakeReason::WrongIdentity {
            expected,
            presented,
        } => {
            assert_eq!(expected, ["ratings.default.svc.cluster.local"]);
            assert_eq!(presented, [HOST]);
        }
        other => panic!("{other:?}"),
    }

    // subjectAltNames: a DNS SAN matches too.
    simple.sni = None;
    let connector = TlsConnector::new(&simple, None, vec![HOST.to_owned()], alpn()).unwrap();
    assert!(handshake(&acceptor, &connector).await.1.is_ok());

    // MUTUAL needs the client certificate and key.
    let mut mutual = ClientTls::mode(ClientTlsMode::Mutual);
    mutual.ca_certificates = Some(ca_file.clone());
    let err = TlsConnector::new(&mutual, None, Vec::new(), alpn()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "client TLS mode MUTUAL needs clientCertificate"
    );
    let client_cert = ca.issue(&id("productpage")).unwrap();
    mutual.client_certificate = Some(dir.file("client.pem", &client_cert.chain_pem));
    let err = TlsConnector::new(&mutual, None, Vec::new(), alpn()).unwrap_err();
    assert_eq!(err.to_string(), "client TLS mode MUTUAL needs privateKey");
    mutual.private_key = Some(dir.file("client-key.pem", &client_cert.key_pem));
    let connector = TlsConnector::new(&mutual, None, Vec::new(), alpn()).unwrap();
    let (accepted, client) = handshake(&acceptor, &connector).await;
    assert!(client.is_ok());
    assert_eq!(accepted.unwrap().identity, Some(id("productpage")));

    // insecureSkipVerify accepts a server of an unknown CA.
    let other = DevCa::new(TD).unwrap();
    let other_acceptor = self::acceptor(MtlsMode::Permissive, &other.identity(&id("x")).unwrap());
    let (_, client) = handshake(
        &other_acceptor,
        &TlsConnector::new(&simple, None, Vec::new(), alpn()).unwrap(),
    )
    .await;
    assert!(matches!(
        client.unwrap_err().reason,
        HandshakeReason::UnknownIssuer
    ));
    simple.insecure_skip_verify = true;
    let connector = TlsConnector::new(&simple, None, Vec::new(), alpn()).unwrap();
    assert!(handshake(&other_acceptor, &connector).await.1.is_ok());
}

#[test]
fn modes_that_need_what_is_missing_say_so() {
    let err = TlsConnector::new(
        &ClientTls::mode(ClientTlsMode::Disable),
        None,
        Vec::new(),
        alpn(),
    )
    .unwrap_err();
    assert!(matches!(err, CertError::Disabled), "{err:?}");
    let err = TlsConnector::new(
        &ClientTls::mode(ClientTlsMode::IstioMutual),
        None,
        Vec::new(),
        alpn(),
    )
    .unwrap_err();
    assert!(matches!(err, CertError::NoIdentity), "{err:?}");
    let err = TlsConnector::new(
        &ClientTls::mode(ClientTlsMode::Simple),
        None,
        Vec::new(),
        alpn(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "client TLS mode SIMPLE needs caCertificates"
    );
    let err = TlsAcceptor::new(MtlsMode::Strict, None, Vec::new(), alpn()).unwrap_err();
    assert!(matches!(err, CertError::NoIdentity), "{err:?}");
}

#[test]
fn dev_ca_certificates_carry_what_was_asked() {
    let ca = DevCa::new(TD).unwrap();
    let cert = ca
        .issue_with(IssueOptions {
            dns_names: vec![HOST.to_owned()],
            ..IssueOptions::new(id("reviews"))
        })
        .unwrap();
    let der = parse_pem_leaf(&cert.chain_pem);
    let leaf = verify::LeafInfo::parse(&der).unwrap();
    assert_eq!(leaf.uris, [id("reviews").to_string()]);
    assert_eq!(leaf.dns, [HOST]);
    assert_eq!(leaf.not_after - leaf.not_before, 24 * 3600 + 60);
    assert_eq!(leaf.spiffe_id().unwrap(), Some(id("reviews")));
    let identity = Identity::from_pem(
        cert.chain_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        ca.roots_pem().as_bytes(),
    )
    .unwrap();
    assert_eq!(identity.id(), id("reviews"));
    assert_eq!(identity.not_after_unix(), leaf.not_after);
    assert!(format!("{identity:?}").contains("sa/reviews"));
}
