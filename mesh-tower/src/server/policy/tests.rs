//! Swapping a server's policy: over a real loopback `MeshServer`, and on a `ServerLayer`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mesh_core::config::{
    AuthorizationPolicy, AuthzAction, AuthzRule, AuthzSource, ClientTls, ClientTlsMode, JwksSource,
    JwtRule, Matcher, MtlsMode, ServerConfig,
};
use mesh_core::identity::SpiffeId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tower::{Layer, ServiceExt};

use crate::server::{MeshServer, ServerBuildError, ServerLayer, ServerPolicy};
use crate::tls::{CertError, DevCa, Identity, TlsConnector};

const TD: &str = "cluster.local";

/// Istio's `deny-all`: an ALLOW policy without rules, which matches nothing.
fn deny_all() -> AuthorizationPolicy {
    AuthorizationPolicy {
        name: "deny-all".into(),
        namespace: Some("default".into()),
        selector: None,
        action: AuthzAction::Allow,
        rules: vec![],
    }
}

/// Allows only callers whose original address (`remote.ip`) is `ip`.
fn allow_remote(ip: &str) -> AuthorizationPolicy {
    AuthorizationPolicy {
        name: "allow-office".into(),
        namespace: Some("default".into()),
        selector: None,
        action: AuthzAction::Allow,
        rules: vec![AuthzRule {
            from: vec![AuthzSource {
                remote_ip_blocks: Matcher {
                    values: vec![ip.into()],
                    not_values: vec![],
                },
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A policy that cannot be compiled: `ipBlocks` holds no address.
fn bad_policy() -> AuthorizationPolicy {
    AuthorizationPolicy {
        name: "typo".into(),
        namespace: Some("default".into()),
        selector: None,
        action: AuthzAction::Deny,
        rules: vec![AuthzRule {
            from: vec![AuthzSource {
                ip_blocks: Matcher {
                    values: vec!["10.0.0.300".into()],
                    not_values: vec![],
                },
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A JWT rule whose inline JWKS is not JSON.
fn bad_jwt_rule() -> JwtRule {
    JwtRule {
        issuer: "https://issuer.example.com".into(),
        audiences: vec![],
        keys: JwksSource::Inline("{not json".into()),
        from_headers: vec![],
        from_params: vec![],
        from_cookies: vec![],
        forward_original_token: false,
        output_claim_to_headers: vec![],
        output_payload_to_header: None,
    }
}

fn config(mtls: MtlsMode, policies: Vec<AuthorizationPolicy>) -> ServerConfig {
    let mut config = ServerConfig::default();
    config.security.mtls = mtls;
    config.security.authorization = policies;
    config
}

/// The application: answers `ok`; `/slow` first says it `entered`, then waits for `gate`.
#[derive(Clone, Default)]
struct App {
    entered: Arc<Notify>,
    gate: Arc<Notify>,
}

impl tower::Service<Request<Incoming>> for App {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let (entered, gate) = (self.entered.clone(), self.gate.clone());
        Box::pin(async move {
            if req.uri().path() == "/slow" {
                entered.notify_one();
                gate.notified().await;
            }
            Ok(Response::new(Full::new(Bytes::from("ok"))))
        })
    }
}

/// A `MeshServer` serving on loopback.
struct Running {
    addr: SocketAddr,
    policy: ServerPolicy,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerBuildError>>,
}

impl Running {
    async fn start(server: MeshServer, app: App) -> Running {
        let policy = server.policy().expect("a usable policy");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, app, async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            policy,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
        self.task.await.unwrap().unwrap();
    }
}

type Sender = SendRequest<Empty<Bytes>>;

/// An HTTP/1.1 connection to `addr`, over mutual TLS when `tls` is given.
async fn connect(addr: SocketAddr, tls: Option<&TlsConnector>) -> Option<Sender> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let sender = match tls {
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .ok()?;
            tokio::spawn(conn);
            sender
        }
        Some(tls) => {
            let stream = tls.connect("productpage", tcp).await.ok()?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .ok()?;
            tokio::spawn(conn);
            sender
        }
    };
    Some(sender)
}

/// The status of `GET path` on `sender`; `None` when the connection failed.
async fn status(sender: &mut Sender, path: &str) -> Option<StatusCode> {
    sender.ready().await.ok()?;
    let req = Request::get(path)
        .header("host", "productpage")
        .body(Empty::new())
        .unwrap();
    Some(sender.send_request(req).await.ok()?.status())
}

/// The status of `GET path` on a new connection.
async fn fresh(addr: SocketAddr, tls: Option<&TlsConnector>, path: &str) -> Option<StatusCode> {
    status(&mut connect(addr, tls).await?, path).await
}

/// Productpage's identity, and a client (reviews) that trusts it over ISTIO_MUTUAL.
fn identities() -> (Identity, TlsConnector) {
    let ca = DevCa::new(TD).unwrap();
    let id = |sa: &str| SpiffeId::workload(TD, "default", sa).unwrap();
    let server = ca.identity(&id("bookinfo-productpage")).unwrap();
    let client = ca.identity(&id("bookinfo-reviews")).unwrap();
    let connector = TlsConnector::new(
        &ClientTls::mode(ClientTlsMode::IstioMutual),
        Some(&client),
        vec![id("bookinfo-productpage").to_string()],
        vec![b"http/1.1".to_vec()],
    )
    .unwrap();
    (server, connector)
}

#[tokio::test(start_paused = true)]
async fn allow_then_deny_then_allow_on_a_running_server() {
    let app = App::default();
    let running = Running::start(
        MeshServer::new(config(MtlsMode::Permissive, vec![])),
        app.clone(),
    )
    .await;
    let addr = running.addr;
    let mut kept = connect(addr, None).await.unwrap();
    assert_eq!(status(&mut kept, "/").await, Some(StatusCode::OK));

    // A request in flight when the policy changes finishes on the old one.
    let mut slow = connect(addr, None).await.unwrap();
    let in_flight = tokio::spawn(async move { status(&mut slow, "/slow").await });
    app.entered.notified().await;

    running
        .policy
        .reload(&config(MtlsMode::Permissive, vec![deny_all()]))
        .unwrap();
    // Denied on a new connection and on one opened before.
    assert_eq!(fresh(addr, None, "/").await, Some(StatusCode::FORBIDDEN));
    assert_eq!(status(&mut kept, "/").await, Some(StatusCode::FORBIDDEN));
    app.gate.notify_one();
    assert_eq!(in_flight.await.unwrap(), Some(StatusCode::OK));
    assert_eq!(running.policy.security().authorization, vec![deny_all()]);

    running
        .policy
        .reload(&config(MtlsMode::Permissive, vec![]))
        .unwrap();
    assert_eq!(fresh(addr, None, "/").await, Some(StatusCode::OK));
    assert_eq!(status(&mut kept, "/").await, Some(StatusCode::OK));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_invalid_reload_keeps_the_old_policy_and_names_the_field() {
    let running = Running::start(
        MeshServer::new(config(MtlsMode::Permissive, vec![deny_all()])),
        App::default(),
    )
    .await;
    let addr = running.addr;
    assert_eq!(fresh(addr, None, "/").await, Some(StatusCode::FORBIDDEN));

    // A policy that does not compile.
    let error = running
        .policy
        .reload(&config(MtlsMode::Permissive, vec![bad_policy()]))
        .unwrap_err();
    let ServerBuildError::Authz(error) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(error.policy, "default/typo");
    assert_eq!(error.field, "rules[0].from[0].source.ipBlocks[0]");

    // Good policies with a bad JWT rule: the policies are not taken either.
    let mut bad_jwt = config(MtlsMode::Permissive, vec![]);
    bad_jwt.security.jwt_rules = vec![bad_jwt_rule()];
    let error = running.policy.reload(&bad_jwt).unwrap_err();
    assert!(matches!(error, ServerBuildError::Authn(_)), "{error:?}");
    assert!(error.to_string().contains("jwtRules[0]"), "{error}");

    // STRICT on a server without an identity: named, and nothing changes.
    let error = running
        .policy
        .reload(&config(MtlsMode::Strict, vec![]))
        .unwrap_err();
    let ServerBuildError::Mtls {
        field,
        mode,
        source: CertError::NoIdentity,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((field.as_str(), *mode), ("mtls.mode", MtlsMode::Strict));
    let mut port_strict = config(MtlsMode::Permissive, vec![]);
    port_strict
        .security
        .port_mtls
        .insert(addr.port(), MtlsMode::Strict);
    let error = running.policy.reload(&port_strict).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("portLevelMtls[{}].mode STRICT", addr.port())),
        "{error}"
    );

    assert_eq!(fresh(addr, None, "/").await, Some(StatusCode::FORBIDDEN));
    assert_eq!(running.policy.security().authorization, vec![deny_all()]);
    assert_eq!(running.policy.security().mtls, MtlsMode::Permissive);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn strict_to_permissive_lets_plaintext_in_on_new_connections() {
    let (identity, mtls) = identities();
    let server = MeshServer::new(config(MtlsMode::Strict, vec![])).identity(identity);
    let running = Running::start(server, App::default()).await;
    let addr = running.addr;
    assert_eq!(
        fresh(addr, None, "/").await,
        None,
        "STRICT refuses plaintext"
    );
    let mut kept = connect(addr, Some(&mtls)).await.expect("mutual TLS");
    assert_eq!(status(&mut kept, "/").await, Some(StatusCode::OK));

    running
        .policy
        .reload(&config(MtlsMode::Permissive, vec![]))
        .unwrap();
    assert_eq!(fresh(addr, None, "/").await, Some(StatusCode::OK));
    assert_eq!(fresh(addr, Some(&mtls), "/").await, Some(StatusCode::OK));

    // DISABLE: new connections are plaintext only, while the TLS connection accepted under
    // STRICT carries on.
    running
        .policy
        .reload(&config(MtlsMode::Disable, vec![]))
        .unwrap();
    assert_eq!(fresh(addr, None, "/").await, Some(StatusCode::OK));
    assert_ne!(
        fresh(addr, Some(&mtls), "/").await,
        Some(StatusCode::OK),
        "DISABLE does not speak TLS"
    );
    assert_eq!(status(&mut kept, "/").await, Some(StatusCode::OK));

    // And back to STRICT.
    running
        .policy
        .reload(&config(MtlsMode::Strict, vec![]))
        .unwrap();
    assert_eq!(fresh(addr, None, "/").await, None);
    assert_eq!(fresh(addr, Some(&mtls), "/").await, Some(StatusCode::OK));
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_layer_reload_swaps_trusted_proxies_in_every_clone() {
    let office = "203.0.113.7";
    let mut config = config(MtlsMode::Permissive, vec![allow_remote(office)]);
    let layer = ServerLayer::new("productpage", &config).unwrap();
    let policy = layer.policy();
    let app = tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
    });
    let services = [layer.clone().layer(app), layer.layer(app)];
    let from_office = || {
        Request::get("/")
            .header("x-forwarded-for", office)
            .body(())
            .unwrap()
    };
    // No trusted proxy: remote.ip is the connection's source, not the header's.
    for service in &services {
        let res = service.clone().oneshot(from_office()).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    config.security.num_trusted_proxies = 1;
    policy.reload(&config).unwrap();
    for service in &services {
        let res = service.clone().oneshot(from_office()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(policy.security().num_trusted_proxies, 1);
}
