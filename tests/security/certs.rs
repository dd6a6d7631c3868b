//! Bad certificates: each is refused with its reason, by the client (the server's
//! certificate) or by the server (the client's), and a workload whose own certificate files
//! are bad does not start.

use std::error::Error as _;

use mesh::core::config::{CertificateLayout, MtlsMode};
use mesh::tower::server::ServerBuildError;
use mesh::tower::tls::{CertError, DevCa, HandshakeReason, Identity, IssuedCert};
use mesh::tower::{BuildError, ConnectError, MeshClient, MeshError, MeshServer};
use metrics_util::debugging::DebuggingRecorder;

use crate::support::{
    Answer, Mesh, Metrics, Server, TD, TempDir, expired, get, id, identity_of, ip, not_yet_valid,
    uri,
};

/// A STRICT server for `reviews` on `127.0.93.<host>` presenting `identity`.
async fn strict_reviews(mesh: &Mesh, identity: Identity, host: u8) -> Server {
    let config = mesh
        .config("reviews")
        .mtls(MtlsMode::Strict)
        .build()
        .expect("config");
    let server = Server::start(
        ip(93, host),
        MeshServer::new(config.inbound())
            .name("reviews")
            .identity(identity),
    )
    .await;
    mesh.name("reviews", server.addr.ip());
    server
}

/// The reason of the failed handshake behind a local reply, found in its error's chain.
fn handshake_reason(answer: &Answer) -> &HandshakeReason {
    let reply = answer.reply.as_ref().expect("a local reply");
    let MeshError::Connect { source, .. } = reply.error.as_ref() else {
        panic!("not a connect failure: {:?}", reply.error);
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(e) = cause {
        if let Some(ConnectError::Tls { source, .. }) = e.downcast_ref::<ConnectError>() {
            return &source.reason;
        }
        cause = e.source();
    }
    panic!("no TLS handshake error in {:?}", reply.error)
}

#[tokio::test(start_paused = true)]
async fn the_client_refuses_bad_server_certificates_with_the_reason() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    let other_ca = DevCa::new(TD).expect("CA");
    let productpage = ca.identity(&id("productpage")).expect("identity");

    let cases: [(&str, IssuedCert, &DevCa, &str, &str); 3] = [
        (
            "expired",
            expired(&ca, &id("reviews")),
            &ca,
            "expired",
            "the peer's certificate has expired",
        ),
        (
            "not yet valid",
            not_yet_valid(&ca, &id("reviews")),
            &ca,
            "not_yet_valid",
            "the peer's certificate is not valid yet",
        ),
        (
            "another CA",
            other_ca.issue(&id("reviews")).expect("certificate"),
            &other_ca,
            "unknown_issuer",
            "the peer's certificate is not issued by a trusted CA",
        ),
    ];
    for (host, (case, cert, issuer, label, message)) in (1..).zip(cases) {
        let server = strict_reviews(&mesh, identity_of(&cert, issuer), host).await;
        let client = mesh.client(mesh.config("productpage"), Some(&productpage));
        let answer = get(&client, &uri("reviews", server.port())).await;
        assert_eq!(answer.status, 503, "{case}: {}", answer.body);
        assert_eq!(answer.flag(), "UF", "{case}: {}", answer.body);
        assert!(answer.body.contains(message), "{case}: {}", answer.body);
        let reason = handshake_reason(&answer);
        assert_eq!(reason.label(), label, "{case}: {reason:?}");
        assert!(
            metrics.handshake_failures("client", label) > 0,
            "{case}: counted"
        );
        assert!(
            metrics.handshake_failures("server", "rejected_by_peer") >= u64::from(host),
            "{case}: the server hears of it as the client's alert"
        );
        assert_eq!(server.calls(), 0, "{case}");
        assert!(matches!(
            (case, reason),
            ("expired", HandshakeReason::CertificateExpired)
                | ("not yet valid", HandshakeReason::CertificateNotYetValid)
                | ("another CA", HandshakeReason::UnknownIssuer)
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn the_server_refuses_bad_client_certificates_with_the_reason() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    let other_ca = DevCa::new(TD).expect("CA");

    // The case, the client's identity, the server's reason and the alert it sends (TLS has
    // one alert for both ends of the validity period).
    let cases: [(&str, Identity, &str, &str); 3] = [
        (
            "expired",
            identity_of(&expired(&ca, &id("productpage")), &ca),
            "expired",
            "CertificateExpired",
        ),
        (
            "not yet valid",
            identity_of(&not_yet_valid(&ca, &id("productpage")), &ca),
            "not_yet_valid",
            "CertificateExpired",
        ),
        (
            // Its own trust bundle holds both CAs, so that it accepts the server.
            "another CA",
            {
                let cert = other_ca.issue(&id("productpage")).expect("certificate");
                let roots = format!("{}{}", other_ca.roots_pem(), ca.roots_pem());
                Identity::from_pem(
                    cert.chain_pem.as_bytes(),
                    cert.key_pem.as_bytes(),
                    roots.as_bytes(),
                )
                .expect("identity")
            },
            "unknown_issuer",
            "UnknownCA",
        ),
    ];
    for (host, (case, client_identity, label, alert)) in (11..).zip(cases) {
        let server = strict_reviews(&mesh, ca.identity(&id("reviews")).expect("id"), host).await;
        let client = mesh.client(mesh.config("productpage"), Some(&client_identity));
        let answer = get(&client, &uri("reviews", server.port())).await;
        // With TLS 1.3 the client's handshake is over before the server judges its
        // certificate: the refusal arrives as an alert on the first read, and the
        // connection counts as reset (UC), not as a failed connect.
        assert_eq!(answer.status, 503, "{case}: {}", answer.body);
        assert_eq!(answer.flag(), "UC", "{case}: {}", answer.body);
        assert!(
            answer
                .body
                .contains(&format!("received fatal alert: {alert}")),
            "{case}: {}",
            answer.body
        );
        assert!(
            metrics.handshake_failures("server", label) > 0,
            "{case}: counted by the server as {label}"
        );
        assert_eq!(server.calls(), 0, "{case}");
    }
}

/// A directory of Istio's layout holding `cert` (CA `ca`) with `key_pem` as its key.
fn cert_dir(dir: &TempDir, name: &str, cert: &IssuedCert, ca: &DevCa, key_pem: &str) -> CertDir {
    let path = dir.dir(name);
    let files = cert
        .write(&path, CertificateLayout::Istio, &ca.roots_pem())
        .expect("write");
    std::fs::write(&files.key, key_pem).expect("write key");
    CertDir {
        chain: files.chain.display().to_string(),
        key: files.key.display().to_string(),
        files,
    }
}

/// A certificate directory: its files, and the chain's and the key's paths as text.
struct CertDir {
    chain: String,
    key: String,
    files: mesh::core::config::CertificateFiles,
}

#[tokio::test(start_paused = true)]
async fn bad_workload_certificate_files_stop_the_server_and_the_client_from_starting() {
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    let dir = TempDir::new();
    let reviews = ca.issue(&id("reviews")).expect("certificate");
    let someone_else = ca.issue(&id("reviews")).expect("certificate");
    let mismatched = cert_dir(&dir, "mismatched", &reviews, &ca, &someone_else.key_pem);
    let old = expired(&ca, &id("reviews"));
    let expired = cert_dir(&dir, "expired", &old, &ca, &old.key_pem);

    let server = |paths: &CertDir| {
        let config = mesh
            .config("reviews")
            .certificates(paths.files.clone())
            .build()
            .expect("config");
        MeshServer::from_config(&config)
    };
    let client = |paths: &CertDir| {
        let config = mesh
            .config("reviews")
            .certificates(paths.files.clone())
            .build()
            .expect("config");
        MeshClient::builder().config(config).build()
    };

    // A key that is not the certificate's.
    let Err(ServerBuildError::Certificates(err @ CertError::KeyMismatch { .. })) =
        server(&mismatched)
    else {
        panic!("the server started with a mismatched key");
    };
    let text = err.to_string();
    assert!(text.contains(&mismatched.key), "{text}");
    assert!(text.contains("does not match"), "{text}");
    let Err(BuildError::Certificates(err @ CertError::KeyMismatch { .. })) = client(&mismatched)
    else {
        panic!("the client started with a mismatched key");
    };
    assert!(err.to_string().contains(&mismatched.key), "{err}");

    // An expired certificate.
    let Err(BuildError::Certificates(err @ CertError::Expired { .. })) = client(&expired) else {
        panic!("the client started with an expired certificate");
    };
    let text = err.to_string();
    assert!(text.contains(&expired.chain), "{text}");
    assert!(text.contains("expired at"), "{text}");
    let Err(ServerBuildError::Certificates(err @ CertError::Expired { .. })) = server(&expired)
    else {
        panic!("the server started with an expired certificate");
    };
    assert!(err.to_string().contains(&expired.chain), "{err}");
    // The error says what the whole build was about.
    let err = client(&expired).expect_err("expired");
    assert!(
        err.to_string().starts_with("workload certificates: "),
        "{err}"
    );
    assert!(err.source().is_some());
}

#[tokio::test(start_paused = true)]
async fn strict_without_an_identity_does_not_serve() {
    let mesh = Mesh::start();
    let config = mesh
        .config("reviews")
        .mtls(MtlsMode::Strict)
        .build()
        .expect("config");
    let server = MeshServer::from_config(&config).expect("no certificates configured");
    let listener = tokio::net::TcpListener::bind((ip(93, 21), 0))
        .await
        .expect("bind");
    let app = tower::service_fn(|_req: http::Request<hyper::body::Incoming>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(
            http_body_util::Empty::<bytes::Bytes>::new(),
        ))
    });
    let result = server.serve(listener, app, std::future::pending()).await;
    let Err(ServerBuildError::Certificates(CertError::NoIdentity)) = result else {
        panic!("STRICT served without an identity: {result:?}");
    };
}
