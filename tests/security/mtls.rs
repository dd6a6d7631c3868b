//! Mutual TLS between workloads: both sides verify each other's SPIFFE identity, and either
//! side refuses a peer that is not who it should be.

use mesh::core::config::{ClientTls, ClientTlsMode, DestinationBuilder, MtlsMode, Protocol};
use mesh::core::identity::SpiffeId;
use mesh::tower::MeshServer;
use mesh::tower::tls::DevCa;
use metrics_util::debugging::DebuggingRecorder;

use crate::support::{Mesh, Metrics, Server, TD, get, id, ip, seen, uri};

/// A STRICT server for `reviews` of workload config `mesh.config("reviews")`, presenting
/// `server_id` from `ca`.
async fn strict_reviews(mesh: &Mesh, ca: &DevCa, server_id: &SpiffeId, host: u8) -> Server {
    let config = mesh
        .config("reviews")
        .mtls(MtlsMode::Strict)
        .build()
        .expect("config");
    let server = MeshServer::new(config.inbound())
        .name("reviews")
        .identity(ca.identity(server_id).expect("identity"));
    let server = Server::start(ip(91, host), server).await;
    mesh.name("reviews", server.addr.ip());
    server
}

#[tokio::test(start_paused = true)]
async fn productpage_calls_reviews_over_mutual_tls_on_http1_and_http2() {
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    let reviews = strict_reviews(&mesh, &ca, &id("reviews"), 1).await;
    let productpage = ca.identity(&id("productpage")).expect("identity");

    // Automatic mTLS: the client has an identity and reviews is a host of the cluster.
    let client = mesh.client(mesh.config("productpage"), Some(&productpage));
    let answer = get(&client, &uri("reviews", reviews.port())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        seen(Some(&id("productpage")), "mutual_tls", true, "HTTP/1.1")
    );

    // HTTP/2, agreed by ALPN on the TLS connection.
    let h2 = mesh.client(
        mesh.config("productpage")
            .destination(DestinationBuilder::new("reviews").protocol(Protocol::Http2)),
        Some(&productpage),
    );
    for _ in 0..3 {
        let answer = get(&h2, &uri("reviews", reviews.port())).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(
            answer.body,
            seen(Some(&id("productpage")), "mutual_tls", true, "HTTP/2.0")
        );
    }
    assert_eq!(reviews.calls(), 4);
    reviews.stop().await.expect("serve");
}

#[tokio::test(start_paused = true)]
async fn the_client_refuses_a_server_of_another_identity() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    // What answers for reviews is ratings.
    let impostor = strict_reviews(&mesh, &ca, &id("ratings"), 2).await;
    let productpage = ca.identity(&id("productpage")).expect("identity");

    let client = mesh.client(mesh.config("productpage"), Some(&productpage));
    let answer = get(&client, &uri("reviews", impostor.port())).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.flag(), "UF", "{}", answer.body);
    assert!(
        answer.body.contains(
            "the peer presented [spiffe://cluster.local/ns/default/sa/ratings]; \
             expected one of [spiffe://cluster.local/ns/default/sa/reviews]"
        ),
        "{}",
        answer.body
    );
    assert!(metrics.handshake_failures("client", "wrong_identity") > 0);
    // The server hears of it as the client's alert.
    assert!(metrics.handshake_failures("server", "rejected_by_peer") > 0);
    assert_eq!(impostor.calls(), 0, "the request was never sent");

    // The destination's subjectAltNames replace the convention.
    let mut tls = ClientTls::mode(ClientTlsMode::IstioMutual);
    tls.subject_alt_names = vec![id("ratings").to_string()];
    let client = mesh.client(
        mesh.config("productpage")
            .destination(DestinationBuilder::new("reviews").tls(tls)),
        Some(&productpage),
    );
    let answer = get(&client, &uri("reviews", impostor.port())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        seen(Some(&id("productpage")), "mutual_tls", true, "HTTP/1.1")
    );
    assert_eq!(impostor.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_server_refuses_a_client_of_another_trust_domain_unless_aliased() {
    let recorder = DebuggingRecorder::new();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut metrics = Metrics::new(&recorder);
    let mesh = Mesh::start();
    // One CA, so the chain verifies; the client's SPIFFE ID is of another trust domain.
    let ca = DevCa::new(TD).expect("CA");
    let stranger_id = SpiffeId::workload("other.domain", "default", "productpage").expect("id");
    let stranger = ca.identity(&stranger_id).expect("identity");
    let server_identity = ca.identity(&id("reviews")).expect("identity");

    let config = mesh
        .config("reviews")
        .mtls(MtlsMode::Strict)
        .build()
        .expect("config");
    assert_eq!(config.inbound().security.trust_domains, [TD]);
    let reviews = Server::start(
        ip(91, 3),
        MeshServer::new(config.inbound())
            .name("reviews")
            .identity(server_identity.clone()),
    )
    .await;
    mesh.name("reviews", reviews.addr.ip());

    let client = mesh.client(mesh.config("productpage"), Some(&stranger));
    let answer = get(&client, &uri("reviews", reviews.port())).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(metrics.handshake_failures("server", "untrusted_domain") > 0);
    assert_eq!(reviews.calls(), 0);
    reviews.stop().await.expect("serve");

    // trustDomainAliases: the server accepts other.domain too.
    let config = mesh
        .config("reviews")
        .mtls(MtlsMode::Strict)
        .trust_domain_aliases(["other.domain"])
        .build()
        .expect("config");
    let reviews = Server::start(
        ip(91, 4),
        MeshServer::new(config.inbound())
            .name("reviews")
            .identity(server_identity),
    )
    .await;
    mesh.name("reviews", reviews.addr.ip());
    let client = mesh.client(mesh.config("productpage"), Some(&stranger));
    let answer = get(&client, &uri("reviews", reviews.port())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        seen(Some(&stranger_id), "mutual_tls", true, "HTTP/1.1")
    );
    assert_eq!(reviews.calls(), 1);
}
