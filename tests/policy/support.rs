//! Shared pieces of the policy tests: configuration loaded from YAML text (mesh's own
//! document plus Istio's), a MeshServer built from it serving an axum application that
//! echoes what the server stack told it, bare hyper clients (from a chosen source address),
//! MeshClients with DevCa identities, signing keys, tokens and a JWKS server on loopback.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use axum::Router;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mesh::core::MeshConfig;
use mesh::core::config::{CertificateLayout, Format};
use mesh::core::identity::SpiffeId;
use mesh::tower::authn::RequestAuth;
use mesh::tower::server::{Peer, ServerBuildError};
use mesh::tower::tls::DevCa;
use mesh::tower::{MeshClient, MeshServer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------
// Addresses

/// `127.0.<net>.<host>`; the policy tests use nets 94 (JWKS servers), 95 (servers and
/// client sources) and 96 (sources outside the allowed blocks).
pub(crate) fn ip(net: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, net, host))
}

/// A listener on `127.0.<net>.<host>` and a free port.
pub(crate) async fn listen(net: u8, host: u8) -> TcpListener {
    TcpListener::bind(SocketAddr::new(ip(net, host), 0))
        .await
        .expect("bind")
}

// ---------------------------------------------------------------------------------------
// Configuration

/// Mesh's own document for workload `service` in `namespace` (labels `app: <service>`,
/// `version: v1`), followed by `extra` lines of its own (such as `security:`), then
/// `documents` (Istio's, each possibly several separated by `---`).
pub(crate) fn config_text(
    service: &str,
    namespace: &str,
    extra: &str,
    documents: &[&str],
) -> String {
    let mut text =
        format!("workload: {{service: {service}, namespace: {namespace}, version: v1}}\n");
    text.push_str(extra);
    if !extra.is_empty() && !extra.ends_with('\n') {
        text.push('\n');
    }
    for document in documents {
        text.push_str("---\n");
        text.push_str(document.trim_end());
        text.push('\n');
    }
    text
}

/// The config of `text`, read by the string front door; panics with the message and text.
pub(crate) fn load(text: &str) -> MeshConfig {
    MeshConfig::from_str(text, Format::Yaml)
        .unwrap_or_else(|e| panic!("invalid config: {e}\n{text}"))
}

/// A temporary file or directory, removed when dropped.
pub(crate) struct TempPath(pub(crate) PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fresh path in the temporary directory, unique to this process and `name`.
pub(crate) fn temp_path(name: &str) -> TempPath {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    TempPath(std::env::temp_dir().join(format!("mesh-policy-{}-{n}-{name}", std::process::id())))
}

/// `text` read by the file front door, `MeshConfig::from_file` on a `.yaml` file.
pub(crate) fn load_file(text: &str) -> Result<MeshConfig, mesh::ConfigError> {
    let file = temp_path("config.yaml");
    std::fs::write(&file.0, text).expect("write config");
    MeshConfig::from_file(&file.0)
}

/// The text of `tests/fixtures/istio/<name>`.
pub(crate) fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/istio/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

// ---------------------------------------------------------------------------------------
// Identities

/// `spiffe://cluster.local/ns/<namespace>/sa/<account>`.
pub(crate) fn spiffe(namespace: &str, account: &str) -> SpiffeId {
    SpiffeId::workload("cluster.local", namespace, account).expect("SPIFFE ID")
}

/// Certificate files of a workload identity issued by a DevCa, in Istio's layout in a
/// directory of their own.
pub(crate) struct CertDir {
    pub(crate) dir: TempPath,
}

impl CertDir {
    pub(crate) fn issue(ca: &DevCa, id: &SpiffeId) -> CertDir {
        let dir = temp_path("certs");
        std::fs::create_dir_all(&dir.0).expect("cert dir");
        ca.issue(id)
            .expect("issue")
            .write(&dir.0, CertificateLayout::Istio, &ca.roots_pem())
            .expect("write certs");
        CertDir { dir }
    }

    /// Mesh's own `security:` section naming these files, followed by `more` of its lines
    /// (indented as its fields; `""` for none).
    pub(crate) fn security(&self, more: &str) -> String {
        format!(
            "security:\n  certificates: {{dir: \"{}\", layout: istio}}\n{more}",
            path_text(&self.dir.0)
        )
    }
}

fn path_text(path: &Path) -> String {
    path.display().to_string().replace('\\', "/")
}

// ---------------------------------------------------------------------------------------
// The application

/// What the application saw of one request: its body is the JSON of this.
pub(crate) fn echo_app(hits: Arc<AtomicUsize>) -> Router {
    Router::new().fallback(move |req: axum::extract::Request| {
        let hits = hits.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let auth = req.extensions().get::<RequestAuth>();
            let peer = req.extensions().get::<Peer>();
            let headers: BTreeMap<String, String> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            axum::Json(json!({
                "principal": auth.map(|a| a.principal.to_string()),
                "claims": auth.map(|a| (*a.claims).clone()),
                "peer": peer.and_then(|p| p.identity.as_ref()).map(|id| id.principal().to_owned()),
                "source": peer.map(|p| p.addr.ip().to_string()),
                "mtls": peer.map(|p| p.connection_security_policy()),
                "method": req.method().as_str(),
                "path": req.uri().path(),
                "query": req.uri().query(),
                "headers": headers,
            }))
        }
    })
}

// ---------------------------------------------------------------------------------------
// Servers

/// MeshServers built by `MeshServer::from_config` serving [`echo_app`], one per listener.
pub(crate) struct Server {
    pub(crate) addrs: Vec<SocketAddr>,
    hits: Arc<AtomicUsize>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<Result<(), ServerBuildError>>>,
}

impl Server {
    /// Serves `config` on a listener of `127.0.<net>.<host>`.
    pub(crate) async fn start(config: &MeshConfig, net: u8, host: u8) -> Server {
        Server::on(config, vec![listen(net, host).await])
    }

    /// Serves `config` on each of `listeners`.
    pub(crate) fn on(config: &MeshConfig, listeners: Vec<TcpListener>) -> Server {
        let hits = Arc::new(AtomicUsize::new(0));
        let server = MeshServer::from_config(config).expect("server from config");
        let mut addrs = Vec::new();
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        for listener in listeners {
            addrs.push(listener.local_addr().expect("bound"));
            let (stop, stopped) = oneshot::channel::<()>();
            let (server, app) = (server.clone(), echo_app(hits.clone()));
            tasks.push(tokio::spawn(async move {
                server
                    .serve(listener, app, async {
                        let _ = stopped.await;
                    })
                    .await
            }));
            stops.push(stop);
        }
        Server {
            addrs,
            hits,
            stops,
            tasks,
        }
    }

    /// The first listener's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The first listener's port.
    pub(crate) fn port(&self) -> u16 {
        self.addrs[0].port()
    }

    /// Requests the application has handled.
    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Shuts every listener down and waits for `serve` to return.
    pub(crate) async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            task.await.expect("serve panicked").expect("serve failed");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bare clients

/// A whole answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    /// A header's value as text; `""` when absent.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The echo application's JSON (panics on a local reply).
    pub(crate) fn echo(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not the application's answer ({e}): {self:?}"))
    }

    /// The request principal the application saw (`None` without one).
    pub(crate) fn principal(&self) -> Option<String> {
        self.echo()["principal"].as_str().map(str::to_owned)
    }

    /// A request header the application saw.
    pub(crate) fn seen_header(&self, name: &str) -> Option<String> {
        self.echo()["headers"][name].as_str().map(str::to_owned)
    }
}

/// A request of `method` for `path` (with its query) with `headers`; `Host: reviews`
/// unless `headers` name a host.
pub(crate) fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", "reviews");
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Empty::new()).expect("valid request")
}

/// A GET of `path` with `headers`.
pub(crate) fn get(path: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    request("GET", path, headers)
}

/// Sends `req` on a new HTTP/1.1 connection to `to` from any local address.
pub(crate) async fn send(to: SocketAddr, req: Request<Empty<Bytes>>) -> Result<Answer, String> {
    let stream = tokio::net::TcpStream::connect(to)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    exchange(stream, req).await
}

/// Sends `req` on a new HTTP/1.1 connection to `to` whose socket is bound to `from` first,
/// so the server sees that source address.
pub(crate) async fn send_from(
    from: IpAddr,
    to: SocketAddr,
    req: Request<Empty<Bytes>>,
) -> Result<Answer, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::new(from, 0))
        .map_err(|e| format!("bind {from}: {e}"))?;
    let stream = socket
        .connect(to)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    exchange(stream, req).await
}

async fn exchange(
    stream: tokio::net::TcpStream,
    req: Request<Empty<Bytes>>,
) -> Result<Answer, String> {
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"));
    let answer = match res {
        Ok(res) => Ok(read(res).await),
        Err(e) => Err(e),
    };
    drop(sender);
    conn.abort();
    answer
}

async fn read<B>(res: http::Response<B>) -> Answer
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// MeshClients

/// A MeshClient of workload `caller` in `namespace`, with the identity `id` from `ca` (none:
/// plaintext), whose destinations `(service, server)` are reached at the server's address
/// as `http://<service>:<port>`, with Bookinfo's `bookinfo-{service}` accounts expected of
/// the servers when `bookinfo` (else `{service}`).
pub(crate) fn mesh_client(
    ca: &DevCa,
    id: Option<&SpiffeId>,
    destinations: &[(&str, SocketAddr)],
    bookinfo: bool,
) -> MeshClient {
    let mut text = String::from("workload: {service: caller, namespace: default}\n");
    if bookinfo {
        text.push_str(
            "security: {identityTemplate: \"spiffe://{trust_domain}/ns/{namespace}/sa/bookinfo-{service}\"}\n",
        );
    }
    // No retries: a refused request is seen as it is.
    text.push_str("defaults: {retries: {attempts: 0}}\ndestinations:\n");
    for (service, addr) in destinations {
        text.push_str(&format!(
            "  - {{host: {service}, port: {}, endpoints: [\"{addr}\"]}}\n",
            addr.port()
        ));
    }
    let config = load(&text);
    let mut builder = MeshClient::builder().config(config);
    if let Some(id) = id {
        builder = builder.identity(ca.identity(id).expect("identity"));
    }
    builder.build().expect("client")
}

/// Sends `method` `http://<service>:<port><path>` through `client`.
pub(crate) async fn call(
    client: &MeshClient,
    method: &str,
    service: &str,
    port: u16,
    path: &str,
) -> Answer {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{service}:{port}{path}"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let res = client.request(req).await.expect("mesh client answers");
    read(res).await
}

// ---------------------------------------------------------------------------------------
// Keys and tokens

/// The issuer of Istio's JWT tasks.
pub(crate) const ISSUER: &str = "testing@secure.istio.io";

/// A signing key and what its JWK needs.
pub(crate) struct TestKey {
    enc: EncodingKey,
    alg: Algorithm,
    /// The public key's PEM (the "secret" of the HMAC confusion attack).
    pub(crate) public_pem: String,
    public_raw: Vec<u8>,
}

impl TestKey {
    fn generate(alg: &'static rcgen::SignatureAlgorithm, jwt_alg: Algorithm) -> Self {
        let pair = rcgen::KeyPair::generate_for(alg).expect("key");
        let pem = pair.serialize_pem();
        let enc = match jwt_alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("encoding key");
        TestKey {
            enc,
            alg: jwt_alg,
            public_pem: pair.public_key_pem(),
            public_raw: pair.public_key_raw().to_vec(),
        }
    }

    /// The public JWK with `kid`.
    pub(crate) fn jwk(&self, kid: &str) -> Jwk {
        let mut jwk = if self.alg == Algorithm::EdDSA {
            // By hand: `from_encoding_key` reads PKCS#8 v1 only, and rcgen writes v2.
            serde_json::from_value(json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&self.public_raw),
                "alg": "EdDSA",
            }))
            .expect("Ed25519 JWK")
        } else {
            Jwk::from_encoding_key(&self.enc, self.alg).expect("JWK")
        };
        jwk.common.key_id = Some(kid.to_owned());
        jwk
    }

    /// A token of `claims` with `kid`, signed with this key.
    pub(crate) fn sign(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.enc).expect("sign")
    }
}

/// The keys of the tests: RSA, P-256 and Ed25519 ones in the JWKS, and keys it does not
/// hold (another RSA key, and one only published later).
pub(crate) struct Keys {
    pub(crate) rsa: TestKey,
    pub(crate) ec: TestKey,
    pub(crate) ed: TestKey,
    pub(crate) other_rsa: TestKey,
    pub(crate) later: TestKey,
}

/// RSA keys are slow to generate: once per test binary.
pub(crate) static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    rsa: TestKey::generate(&rcgen::PKCS_RSA_SHA256, Algorithm::RS256),
    ec: TestKey::generate(&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256),
    ed: TestKey::generate(&rcgen::PKCS_ED25519, Algorithm::EdDSA),
    other_rsa: TestKey::generate(&rcgen::PKCS_RSA_SHA256, Algorithm::RS256),
    later: TestKey::generate(&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256),
});

/// A JWKS of `keys` with their ids.
pub(crate) fn jwks(keys: &[(&TestKey, &str)]) -> String {
    let keys = keys.iter().map(|(key, kid)| key.jwk(kid)).collect();
    serde_json::to_string(&JwkSet { keys }).expect("JWKS")
}

/// The JWKS of the tests: `rsa`, `ec` and `ed`.
pub(crate) fn test_jwks() -> String {
    let k = &*KEYS;
    jwks(&[(&k.rsa, "rsa"), (&k.ec, "ec"), (&k.ed, "ed")])
}

/// Unix seconds now, by the wall clock the server's JWT check reads.
pub(crate) fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Claims of a valid token of [`ISSUER`] for `sub`, audience `reviews`, valid for an hour.
pub(crate) fn claims(sub: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "sub": sub,
        "aud": ["reviews", "ratings"],
        "exp": now + 3600,
        "nbf": now - 10,
        "iat": now - 10,
    })
}

/// `base` with the fields of `changes` replaced.
pub(crate) fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().expect("an object") {
        base[k] = v.clone();
    }
    base
}

/// A valid RS256 token for `sub`.
pub(crate) fn token(sub: &str) -> String {
    KEYS.rsa.sign("rsa", &claims(sub))
}

/// A valid RS256 token of `claims` (merged into a valid token's).
pub(crate) fn token_with(sub: &str, changes: Value) -> String {
    KEYS.rsa.sign("rsa", &with(claims(sub), changes))
}

/// base64url without padding.
pub(crate) fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// An inline `jwks:` value for YAML: the JSON on one line, single-quoted.
pub(crate) fn inline_jwks(json: &str) -> String {
    format!("'{}'", json.replace('\'', "''"))
}

// ---------------------------------------------------------------------------------------
// A JWKS server

/// An HTTP server on `127.0.94.<host>` answering `GET /jwks` with a key set the test can
/// change, counting fetches.
pub(crate) struct JwksServer {
    pub(crate) addr: SocketAddr,
    body: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl JwksServer {
    pub(crate) async fn start(host: u8, jwks: String) -> JwksServer {
        let listener = listen(94, host).await;
        let addr = listener.local_addr().expect("bound");
        let body = Arc::new(Mutex::new(jwks));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (b, f) = (body.clone(), fetches.clone());
        let task = tokio::spawn(mesh::tower::testing::serve_connections(
            listener,
            move || {
                let (body, fetches) = (b.clone(), f.clone());
                hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (body, fetches) = (body.clone(), fetches.clone());
                    async move {
                        let res = if req.uri().path() == "/jwks" {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            let text = body.lock().expect("jwks").clone();
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(text)))
                        } else {
                            http::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::new()))
                        };
                        Ok::<_, Infallible>(res.expect("response"))
                    }
                })
            },
        ));
        JwksServer {
            addr,
            body,
            fetches,
            task,
        }
    }

    /// `http://127.0.94.<host>:<port>/jwks`.
    pub(crate) fn uri(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// Serves `jwks` from now on.
    pub(crate) fn publish(&self, jwks: String) {
        *self.body.lock().expect("jwks") = jwks;
    }

    /// How often the set was fetched.
    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
