//! The client's TLS modes of a DestinationRule (`trafficPolicy.tls`), end to end: SIMPLE,
//! MUTUAL, DISABLE and ISTIO_MUTUAL, set from Istio's YAML or in code.

use mesh::core::config::{
    CertificateFiles, CertificateLayout, ClientTls, ClientTlsMode, DestinationBuilder, MtlsMode,
};
use mesh::tower::MeshServer;
use mesh::tower::tls::{DevCa, Identity, IssueOptions};
use mesh::tower::{MeshClient, MeshError};

use crate::support::{Mesh, Server, TD, TempDir, get, id, ip, seen, uri};

/// The name the client sends and checks for `reviews`.
const REVIEWS_FQDN: &str = "reviews.default.svc.cluster.local";

/// A PERMISSIVE server for `reviews` on `127.0.93.<host>` whose certificate carries the
/// SPIFFE ID of `reviews` and the DNS name [`REVIEWS_FQDN`], as a server reached with SIMPLE
/// or MUTUAL is checked by name.
async fn permissive_reviews(mesh: &Mesh, ca: &DevCa, host: u8) -> Server {
    let mut options = IssueOptions::new(id("reviews"));
    options.dns_names = vec![REVIEWS_FQDN.to_owned()];
    let cert = ca.issue_with(options).expect("certificate");
    let identity = Identity::from_pem(
        cert.chain_pem.as_bytes(),
        cert.key_pem.as_bytes(),
        ca.roots_pem().as_bytes(),
    )
    .expect("identity");
    let config = mesh
        .config("reviews")
        .mtls(MtlsMode::Permissive)
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

/// Files the DestinationRules name: the CA (`caCertificates`) and productpage's certificate
/// and key (`clientCertificate`, `privateKey`).
struct Files {
    _dir: TempDir,
    ca: String,
    client: CertificateFiles,
}

fn files(ca: &DevCa) -> Files {
    let dir = TempDir::new();
    let ca_file = dir.file("ca.pem", &ca.roots_pem());
    let client = ca
        .issue(&id("productpage"))
        .expect("certificate")
        .write(
            dir.dir("productpage"),
            CertificateLayout::Istio,
            &ca.roots_pem(),
        )
        .expect("write");
    Files {
        ca: ca_file.display().to_string(),
        client,
        _dir: dir,
    }
}

#[tokio::test(start_paused = true)]
async fn simple_and_mutual_from_istio_destination_rules() {
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    let files = files(&ca);
    let server = permissive_reviews(&mesh, &ca, 41).await;

    // SIMPLE: the server is verified against caCertificates and its name; the client
    // presents nothing.
    let simple = format!(
        "apiVersion: networking.istio.io/v1\n\
         kind: DestinationRule\n\
         metadata: {{name: reviews}}\n\
         spec:\n  \
           host: reviews\n  \
           trafficPolicy:\n    \
             tls:\n      \
               mode: SIMPLE\n      \
               caCertificates: {}\n",
        files.ca
    );
    let config = mesh.yaml_config("productpage", &simple);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let tls = config.destinations[0].policy.tls.as_ref().expect("tls");
    assert_eq!(tls.mode, ClientTlsMode::Simple);
    let client = MeshClient::new(config).expect("client");
    let answer = get(&client, &uri("reviews", server.port())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, seen(None, "none", true, "HTTP/1.1"));

    // MUTUAL: the same, presenting clientCertificate and privateKey.
    let mutual = format!(
        "apiVersion: networking.istio.io/v1\n\
         kind: DestinationRule\n\
         metadata: {{name: reviews}}\n\
         spec:\n  \
           host: reviews\n  \
           trafficPolicy:\n    \
             tls:\n      \
               mode: MUTUAL\n      \
               clientCertificate: {}\n      \
               privateKey: {}\n      \
               caCertificates: {}\n",
        files.client.chain.display(),
        files.client.key.display(),
        files.ca
    );
    let client = MeshClient::new(mesh.yaml_config("productpage", &mutual)).expect("client");
    let answer = get(&client, &uri("reviews", server.port())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        seen(Some(&id("productpage")), "mutual_tls", true, "HTTP/1.1")
    );
    assert_eq!(server.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn simple_refuses_a_server_without_the_configured_names() {
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    let files = files(&ca);
    let server = permissive_reviews(&mesh, &ca, 42).await;

    let mut tls = ClientTls::mode(ClientTlsMode::Simple);
    tls.ca_certificates = Some(files.ca.clone().into());
    tls.subject_alt_names = vec!["payments.example.com".to_owned()];
    let client = mesh.client(
        mesh.config("productpage")
            .destination(DestinationBuilder::new("reviews").tls(tls)),
        None,
    );
    let answer = get(&client, &uri("reviews", server.port())).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.flag(), "UF", "{}", answer.body);
    assert!(
        answer.body.contains(&format!(
            "the peer presented [{}, {REVIEWS_FQDN}]; expected one of [payments.example.com]",
            id("reviews")
        )),
        "{}",
        answer.body
    );
    assert_eq!(server.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn disable_speaks_plaintext_even_with_an_identity() {
    let mesh = Mesh::start();
    let ca = DevCa::new(TD).expect("CA");
    let server = permissive_reviews(&mesh, &ca, 43).await;
    let productpage = ca.identity(&id("productpage")).expect("identity");

    let client = mesh.client(
        mesh.config("productpage").destination(
            DestinationBuilder::new("reviews").tls(ClientTls::mode(ClientTlsMode::Disable)),
        ),
        Some(&productpage),
    );
    let answer = get(&client, &uri("reviews", server.port())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, seen(None, "none", false, "HTTP/1.1"));

    // Without the rule the same client uses mutual TLS.
    let client = mesh.client(mesh.config("productpage"), Some(&productpage));
    let answer = get(&client, &uri("reviews", server.port())).await;
    assert_eq!(
        answer.body,
        seen(Some(&id("productpage")), "mutual_tls", true, "HTTP/1.1")
    );
}

#[tokio::test(start_paused = true)]
async fn istio_mutual_without_an_identity_fails_with_the_reason() {
    let mesh = Mesh::start();
    let client = mesh.client(
        mesh.config("productpage").destination(
            DestinationBuilder::new("api.example.org")
                .tls(ClientTls::mode(ClientTlsMode::IstioMutual)),
        ),
        None,
    );
    let answer = get(&client, "http://api.example.org/").await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.flag(), "UH", "{}", answer.body);
    assert!(
        matches!(
            answer.reply.as_ref().map(|r| r.error.as_ref()),
            Some(MeshError::NoEndpoints { .. })
        ),
        "{:?}",
        answer.reply
    );
    assert!(
        answer.body.contains("needs a workload identity"),
        "{}",
        answer.body
    );
}
