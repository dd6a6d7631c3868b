//! PeerAuthentication end to end: the documents that select a workload decide whether its
//! MeshServer takes plaintext, mutual TLS or both, per port. Callers are bare hyper clients
//! (plaintext) and MeshClients with DevCa identities (automatic mutual TLS).

use std::net::SocketAddr;

use mesh::tower::tls::DevCa;

use crate::support::{
    CertDir, Server, call, config_text, fixture, get, ip, listen, load, mesh_client, send, spiffe,
};

/// A server for `service` in `namespace`, running as the service's account with
/// certificates from `ca`, configured by `documents`, on `listeners`.
fn server(
    ca: &DevCa,
    service: &str,
    namespace: &str,
    documents: &[&str],
    listeners: Vec<tokio::net::TcpListener>,
) -> (Server, CertDir) {
    let certs = CertDir::issue(ca, &spiffe(namespace, service));
    let text = config_text(service, namespace, &certs.security(""), documents);
    (Server::on(&load(&text), listeners), certs)
}

/// Whether a plaintext GET to `addr` is answered (200), or refused.
async fn plaintext_served(addr: SocketAddr) -> bool {
    match send(addr, get("/", &[])).await {
        Ok(answer) => {
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_eq!(answer.echo()["mtls"], "none");
            true
        }
        Err(_) => false,
    }
}

/// Whether a GET through a MeshClient running as `default/sleep` to `service` at `addr` is
/// answered over mutual TLS with the caller's identity seen.
async fn mutual_tls_served(ca: &DevCa, service: &str, namespace: &str, addr: SocketAddr) -> bool {
    // The client qualifies `service` in its own namespace (default); other namespaces are
    // named in full.
    let host = if namespace == "default" {
        service.to_owned()
    } else {
        format!("{service}.{namespace}")
    };
    let client = mesh_client(
        ca,
        Some(&spiffe("default", "sleep")),
        &[(&host, addr)],
        false,
    );
    let answer = call(&client, "GET", &host, addr.port(), "/").await;
    if answer.status != 200 {
        return false;
    }
    let echo = answer.echo();
    assert_eq!(echo["mtls"], "mutual_tls");
    assert_eq!(echo["peer"], "cluster.local/ns/default/sa/sleep");
    true
}

#[tokio::test(start_paused = true)]
async fn the_mode_comes_from_workload_then_namespace_then_mesh() {
    let ca = DevCa::new("cluster.local").unwrap();
    let documents = fixture("policy-peer-authentication.yaml");
    let cases = [
        // (service, namespace, plaintext served, why)
        ("reviews", "default", false, "namespace-wide STRICT"),
        (
            "details",
            "default",
            true,
            "its workload selector's PERMISSIVE overrides it",
        ),
        (
            "httpbin",
            "foo",
            true,
            "foo's namespace-wide PERMISSIVE overrides the mesh",
        ),
        ("ratings", "bar", false, "the mesh-wide STRICT"),
    ];
    let mut servers = Vec::new();
    for (i, (service, namespace, plaintext, why)) in cases.into_iter().enumerate() {
        let listener = listen(95, 100 + i as u8).await;
        let (server, certs) = server(&ca, service, namespace, &[&documents], vec![listener]);
        assert_eq!(
            plaintext_served(server.addr()).await,
            plaintext,
            "{service}.{namespace}: {why}"
        );
        assert!(
            mutual_tls_served(&ca, service, namespace, server.addr()).await,
            "{service}.{namespace}: mutual TLS is always served"
        );
        servers.push((server, certs));
    }
}

#[tokio::test(start_paused = true)]
async fn strict_refuses_a_plaintext_mesh_client_and_authorizes_the_verified_principal() {
    let ca = DevCa::new("cluster.local").unwrap();
    let strict = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
";
    let only_productpage = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-productpage, namespace: default}
spec:
  rules:
  - from:
    - source:
        principals: [\"cluster.local/ns/default/sa/productpage\"]
";
    let (server, _certs) = server(
        &ca,
        "reviews",
        "default",
        &[strict, only_productpage],
        vec![listen(95, 110).await],
    );
    let dest = [("reviews", server.addr())];
    let port = server.port();
    let productpage = mesh_client(&ca, Some(&spiffe("default", "productpage")), &dest, false);
    let ratings = mesh_client(&ca, Some(&spiffe("default", "ratings")), &dest, false);
    let plaintext = mesh_client(&ca, None, &dest, false);

    assert_eq!(
        call(&productpage, "GET", "reviews", port, "/").await.status,
        200
    );
    assert_eq!(
        call(&ratings, "GET", "reviews", port, "/").await.status,
        403
    );
    // A client without an identity speaks plaintext, and STRICT closes the connection.
    let answer = call(&plaintext, "GET", "reviews", port, "/").await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(!plaintext_served(server.addr()).await);
    assert_eq!(server.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn port_level_disable_leaves_one_port_to_plaintext() {
    let ca = DevCa::new("cluster.local").unwrap();
    let (strict_port, open_port) = (listen(95, 111).await, listen(95, 111).await);
    let open = open_port.local_addr().unwrap().port();
    // Istio's reference example: the namespace is STRICT, the workload inherits it (no
    // mode of its own) except on one port.
    let documents = format!(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: default}}
spec:
  mtls: {{mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: reviews, namespace: default}}
spec:
  selector:
    matchLabels:
      app: reviews
  portLevelMtls:
    {open}:
      mode: DISABLE
"
    );
    let (server, _certs) = server(
        &ca,
        "reviews",
        "default",
        &[&documents],
        vec![strict_port, open_port],
    );
    let (strict_addr, open_addr) = (server.addrs[0], server.addrs[1]);
    assert_eq!(open_addr, SocketAddr::new(ip(95, 111), open));

    assert!(!plaintext_served(strict_addr).await, "STRICT port");
    assert!(mutual_tls_served(&ca, "reviews", "default", strict_addr).await);
    assert!(plaintext_served(open_addr).await, "DISABLE port");
    // DISABLE is plaintext only: a TLS handshake there fails.
    assert!(!mutual_tls_served(&ca, "reviews", "default", open_addr).await);
    // Both listeners served until shut down, and shut down cleanly.
    server.stop().await;
}
