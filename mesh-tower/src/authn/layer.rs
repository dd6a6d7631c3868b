//! [`AuthnLayer`], its builder, its service and its future.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Uri};
use mesh_core::config::{JwksSource, JwtRule};
use mesh_core::jwt::{Extractor, Jwt, JwtError, TokenLocation, claims};

use super::keys::KeySet;
use super::remote::{Fetcher, RemoteJwks, Wait};
use super::{AuthnError, RequestAuth, count_rejection};
use crate::server::ServerError;

/// "Now" in unix seconds, for the `exp` and `nbf` checks.
pub type UnixClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock in unix seconds.
fn system_clock() -> u64 {
    u64::try_from(crate::clock::unix_now()).unwrap_or(0)
}

/// Builds an [`AuthnLayer`] with options: the clock and the trust roots of `https`
/// `jwksUri`s.
pub struct AuthnBuilder {
    rules: Vec<JwtRule>,
    clock: UnixClock,
    roots: Option<Arc<rustls::RootCertStore>>,
    /// The remote JWKS of the rules in force, by URI, kept when a reload names them again.
    reuse: HashMap<String, Arc<RemoteJwks>>,
}

impl fmt::Debug for AuthnBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthnBuilder")
            .field("rules", &self.rules)
            .field("roots", &self.roots.as_ref().map(|r| r.len()))
            .finish_non_exhaustive()
    }
}

impl AuthnBuilder {
    /// "Now" for the `exp` and `nbf` checks, in unix seconds (default: the system clock).
    pub fn clock(mut self, clock: UnixClock) -> Self {
        self.clock = clock;
        self
    }

    /// The roots `https` `jwksUri`s are verified against (default: the system's CA
    /// bundle, read when the layer is built).
    pub fn https_roots(mut self, roots: impl Into<Arc<rustls::RootCertStore>>) -> Self {
        self.roots = Some(roots.into());
        self
    }

    /// Builds the layer: parses the inline JWKS and header names, and starts fetching the
    /// `jwksUri`s (which needs a tokio runtime). An error names the rule and its issuer.
    pub fn build(self) -> Result<AuthnLayer, AuthnError> {
        let authn = self.compile()?;
        Ok(AuthnLayer {
            authn: Arc::new(ArcSwapOption::new(authn.0)),
            clock: self.clock,
            roots: self.roots,
        })
    }

    /// Checks every rule, then starts fetching the `jwksUri`s that [`AuthnBuilder::reuse`]
    /// does not hold already; nothing is started when a rule is bad.
    fn compile(&self) -> Result<AuthnRules, AuthnError> {
        if self.rules.is_empty() {
            return Ok(AuthnRules(None));
        }
        let mut remotes: HashMap<String, Remote> = HashMap::new();
        let mut rules = Vec::with_capacity(self.rules.len());
        let mut strip: Vec<HeaderName> = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let bad = |reason: String| AuthnError::Rule {
                index,
                issuer: rule.issuer.clone(),
                reason,
            };
            if rule.issuer.is_empty() {
                return Err(bad("issuer must not be empty".into()));
            }
            TokenLocation::for_rule(rule).map_err(|e| bad(e.to_string()))?;
            let mut claim_headers = Vec::new();
            for (i, out) in rule.output_claim_to_headers.iter().enumerate() {
                let name = header_name(&out.header).map_err(|reason| {
                    bad(format!(
                        "outputClaimToHeaders[{i}].header {:?}: {reason}",
                        out.header
                    ))
                })?;
                if out.claim.is_empty() {
                    return Err(bad(format!("outputClaimToHeaders[{i}].claim is empty")));
                }
                claim_headers.push((name, out.claim.clone()));
            }
            let payload_header = match &rule.output_payload_to_header {
                None => None,
                Some(h) => Some(
                    header_name(h)
                        .map_err(|reason| bad(format!("outputPayloadToHeader {h:?}: {reason}")))?,
                ),
            };
            for name in claim_headers
                .iter()
                .map(|(n, _)| n)
                .chain(payload_header.as_ref())
            {
                if !strip.contains(name) {
                    strip.push(name.clone());
                }
            }
            let keys = match &rule.keys {
                JwksSource::Inline(json) => Keys::Inline(Arc::new(
                    KeySet::parse(json).map_err(|e| bad(format!("jwks: {e}")))?,
                )),
                JwksSource::Remote {
                    uri,
                    timeout,
                    refresh,
                } => {
                    let parsed =
                        remote_uri(uri).map_err(|e| bad(format!("jwksUri {uri:?}: {e}")))?;
                    if timeout.is_zero() {
                        return Err(bad(format!(
                            "jwksUri {uri:?}: the timeout must not be zero"
                        )));
                    }
                    let remote = remotes.entry(uri.clone()).or_insert_with(|| Remote {
                        uri: parsed,
                        timeout: *timeout,
                        refresh: *refresh,
                        rules: Vec::new(),
                    });
                    remote.timeout = remote.timeout.max(*timeout);
                    remote.refresh = remote.refresh.min(*refresh);
                    remote.rules.push(index);
                    Keys::Pending(uri.clone())
                }
            };
            rules.push(Rule {
                issuer: rule.issuer.clone(),
                audiences: rule.audiences.clone(),
                keys,
                forward: rule.forward_original_token,
                claim_headers,
                payload_header,
            });
        }
        let extractor = Extractor::new(&self.rules).map_err(|e| AuthnError::Rule {
            index: 0,
            issuer: self.rules[0].issuer.clone(),
            reason: e.to_string(),
        })?;

        // Only now, with every rule valid, start the fetches.
        if !remotes.is_empty() {
            if tokio::runtime::Handle::try_current().is_err() {
                return Err(AuthnError::NoRuntime);
            }
            let mut tls = None;
            let mut started = HashMap::new();
            for (uri, remote) in remotes {
                if let Some(kept) = self.reuse.get(&remote.uri.to_string())
                    && kept.fetches_as(remote.timeout, remote.refresh)
                {
                    tracing::debug!(%uri, "JWKS kept across the reload");
                    started.insert(uri, kept.clone());
                    continue;
                }
                let https = remote.uri.scheme_str() == Some("https");
                if https && tls.is_none() {
                    let index = remote.rules[0];
                    tls = Some(tls_config(self.roots.clone()).map_err(|reason| {
                        AuthnError::Rule {
                            index,
                            issuer: self.rules[index].issuer.clone(),
                            reason: format!("jwksUri {uri:?}: {reason}"),
                        }
                    })?);
                }
                let fetcher = Fetcher {
                    tls: if https { tls.clone() } else { None },
                    timeout: remote.timeout,
                };
                started.insert(uri, RemoteJwks::start(remote.uri, fetcher, remote.refresh));
            }
            for rule in &mut rules {
                if let Keys::Pending(uri) = &rule.keys
                    && let Some(remote) = started.get(uri)
                {
                    rule.keys = Keys::Remote(remote.clone());
                }
            }
        }
        Ok(AuthnRules(Some(Arc::new(Authn {
            extractor,
            rules,
            strip,
        }))))
    }
}

/// Checked JWT rules with their key sets, ready to be swapped in ([`AuthnLayer::store`]).
pub(crate) struct AuthnRules(Option<Arc<Authn>>);

/// A `jwksUri` being set up: the rules naming it and the settings of its fetches.
struct Remote {
    uri: Uri,
    timeout: Duration,
    refresh: Duration,
    rules: Vec<usize>,
}

fn header_name(name: &str) -> Result<HeaderName, &'static str> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| "not a valid header name")
}

fn remote_uri(uri: &str) -> Result<Uri, String> {
    let parsed: Uri = uri.parse().map_err(|e| format!("not a URI: {e}"))?;
    match parsed.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("the scheme must be http or https".into()),
    }
    if parsed.host().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(parsed)
}

/// The TLS settings of `https` fetches: `roots`, else the system's CA bundle.
fn tls_config(
    roots: Option<Arc<rustls::RootCertStore>>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let roots = match roots {
        Some(roots) => roots,
        None => Arc::new(system_roots().ok_or(
            "https needs trust roots: none were given (AuthnBuilder::https_roots) and no system CA bundle was found",
        )?),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The system's CA bundle: the file `SSL_CERT_FILE` names, else the first of the usual
/// places of Linux distributions and macOS that holds certificates.
fn system_roots() -> Option<rustls::RootCertStore> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    const BUNDLES: [&str; 5] = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    let from_env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    from_env
        .into_iter()
        .chain(BUNDLES.iter().map(std::path::PathBuf::from))
        .find_map(|path| {
            let certs = CertificateDer::pem_file_iter(&path)
                .ok()?
                .filter_map(Result::ok);
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certs);
            (added > 0).then_some(roots)
        })
}

/// Applies [`AuthnService`]: checks the JWTs of requests against `jwtRules` (see the
/// [module](super) documentation). Clones share the rules and the fetched key sets.
///
/// The rules in force may be swapped by the server's
/// [`ServerPolicy`](crate::server::ServerPolicy) while requests flow: each request is checked
/// with the rules current when it arrives, and one waiting for a JWKS fetch finishes on them.
#[derive(Clone)]
pub struct AuthnLayer {
    authn: Arc<ArcSwapOption<Authn>>,
    clock: UnixClock,
    roots: Option<Arc<rustls::RootCertStore>>,
}

impl fmt::Debug for AuthnLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthnLayer")
            .field(
                "rules",
                &self.authn.load().as_ref().map_or(0, |a| a.rules.len()),
            )
            .finish_non_exhaustive()
    }
}

impl AuthnLayer {
    /// A layer checking tokens against `rules`, with the system clock and the system's CA
    /// bundle for `https` `jwksUri`s. No rules: every request passes untouched. Must be
    /// called inside a tokio runtime when a rule has a `jwksUri`.
    pub fn new(rules: &[JwtRule]) -> Result<Self, AuthnError> {
        Self::builder(rules).build()
    }

    /// A builder, for the clock and trust roots.
    pub fn builder(rules: &[JwtRule]) -> AuthnBuilder {
        AuthnBuilder {
            rules: rules.to_vec(),
            clock: Arc::new(system_clock),
            roots: None,
            reuse: HashMap::new(),
        }
    }

    /// Checks `rules` as [`AuthnLayer::new`] does, with this layer's trust roots; a
    /// `jwksUri` the rules in force fetch already with the same timeout and refresh keeps its
    /// cached set and its fetch task. Nothing changes until [`AuthnLayer::store`].
    pub(crate) fn prepare(&self, rules: &[JwtRule]) -> Result<AuthnRules, AuthnError> {
        let mut reuse = HashMap::new();
        if let Some(authn) = &*self.authn.load() {
            for rule in &authn.rules {
                if let Keys::Remote(remote) = &rule.keys {
                    reuse.insert(remote.uri().to_owned(), remote.clone());
                }
            }
        }
        AuthnBuilder {
            rules: rules.to_vec(),
            clock: self.clock.clone(),
            roots: self.roots.clone(),
            reuse,
        }
        .compile()
    }

    /// Makes `rules` check every request arriving from now on, in every service of this
    /// layer and its clones; a key set no rule names any more stops being fetched once the
    /// requests using it are done.
    pub(crate) fn store(&self, rules: AuthnRules) {
        self.authn.store(rules.0);
    }

    /// The same layer with another clock: "now" in unix seconds, for the `exp` and `nbf`
    /// checks.
    pub fn clock(mut self, clock: UnixClock) -> Self {
        self.clock = clock;
        self
    }
}

impl<S> tower_layer::Layer<S> for AuthnLayer {
    type Service = AuthnService<S>;

    fn layer(&self, inner: S) -> AuthnService<S> {
        AuthnService {
            inner,
            authn: self.authn.clone(),
            clock: self.clock.clone(),
        }
    }
}

/// Checks the JWTs of each request; a request with an invalid one fails with
/// [`ServerError::Unauthenticated`] and never reaches the inner service.
#[derive(Clone)]
pub struct AuthnService<S> {
    inner: S,
    authn: Arc<ArcSwapOption<Authn>>,
    clock: UnixClock,
}

impl<S: fmt::Debug> fmt::Debug for AuthnService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthnService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> AuthnService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> tower_service::Service<Request<B>> for AuthnService<S>
where
    S: tower_service::Service<Request<B>> + Clone,
    S::Error: Into<ServerError>,
{
    type Response = S::Response;
    type Error = ServerError;
    type Future = AuthnFuture<S::Future, S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ServerError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // One atomic load: the rules current now check this request.
        let rules = self.authn.load();
        let Some(authn) = &*rules else {
            drop(rules);
            return AuthnFuture::called(self.inner.call(req));
        };
        match authn.authenticate(&mut req, &self.clock, true) {
            Verdict::Pass => {
                drop(rules);
                AuthnFuture::called(self.inner.call(req))
            }
            Verdict::Reject(error) => AuthnFuture::rejected(error),
            Verdict::Wait(wait) => {
                // Take the service that is ready; leave a clone for the next call.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                AuthnFuture {
                    state: State::Waiting {
                        wait,
                        pending: Some((req, inner)),
                        authn: authn.clone(),
                        clock: self.clock.clone(),
                    },
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`AuthnService`].
    pub struct AuthnFuture<F, S, B> {
        #[pin]
        state: State<F, S, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, S, B> {
        Called { #[pin] future: F },
        Rejected { error: Option<JwtError> },
        // Waiting for a remote JWKS fetch; then the request is checked again.
        Waiting {
            wait: Wait,
            pending: Option<(Request<B>, S)>,
            authn: Arc<Authn>,
            clock: UnixClock,
        },
    }
}

impl<F, S, B> AuthnFuture<F, S, B> {
    fn called(future: F) -> Self {
        Self {
            state: State::Called { future },
        }
    }

    fn rejected(error: JwtError) -> Self {
        count_rejection(&error);
        Self {
            state: State::Rejected { error: Some(error) },
        }
    }
}

impl<F, S, B, T, E> Future for AuthnFuture<F, S, B>
where
    S: tower_service::Service<Request<B>, Future = F, Response = T, Error = E>,
    F: Future<Output = Result<T, E>>,
    E: Into<ServerError>,
{
    type Output = Result<T, ServerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Called { future } => return future.poll(cx).map_err(Into::into),
                StateProj::Rejected { error } => {
                    let error = error.take().unwrap_or(JwtError::JwksFetchFailed);
                    return Poll::Ready(Err(ServerError::Unauthenticated(error)));
                }
                StateProj::Waiting {
                    wait,
                    pending,
                    authn,
                    clock,
                } => {
                    ready!(wait.as_mut().poll(cx));
                    let Some((mut req, mut inner)) = pending.take() else {
                        return Poll::Ready(Err(JwtError::JwksFetchFailed.into()));
                    };
                    match authn.authenticate(&mut req, clock, false) {
                        Verdict::Pass => AuthnFuture::called(inner.call(req)),
                        Verdict::Reject(error) => AuthnFuture::rejected(error),
                        Verdict::Wait(_) => AuthnFuture::rejected(JwtError::JwksFetchFailed),
                    }
                }
            };
            self.set(next);
        }
    }
}

/// The rules, their keys and where their tokens are.
struct Authn {
    extractor: Extractor,
    rules: Vec<Rule>,
    /// Every header the rules output: removed from each request before anything else.
    strip: Vec<HeaderName>,
}

struct Rule {
    issuer: String,
    audiences: Vec<String>,
    keys: Keys,
    forward: bool,
    claim_headers: Vec<(HeaderName, String)>,
    payload_header: Option<HeaderName>,
}

enum Keys {
    Inline(Arc<KeySet>),
    Remote(Arc<RemoteJwks>),
    /// A `jwksUri` while the layer is built.
    Pending(String),
}

/// What to do with a request.
enum Verdict {
    Pass,
    Reject(JwtError),
    /// Check it again once this resolves (a remote JWKS fetch it needs is running).
    Wait(Wait),
}

impl Authn {
    /// Checks every token of `req`; when all are valid, adds the [`RequestAuth`] of the
    /// first and the output headers, and removes the token headers that are not forwarded.
    /// Nothing but the spoofable output headers is changed unless the verdict is `Pass`.
    fn authenticate<B>(&self, req: &mut Request<B>, clock: &UnixClock, may_wait: bool) -> Verdict {
        for name in &self.strip {
            if req.headers().contains_key(name) {
                req.headers_mut().remove(name);
            }
        }
        let mut now = None;
        let mut valid: Vec<(usize, &Rule, Jwt)> = Vec::new();
        for found in self.extractor.extract(req.headers(), req.uri().query()) {
            let now = *now.get_or_insert_with(|| clock());
            match self.check(&found.token, found.location, now, may_wait) {
                Ok((rule, jwt)) => valid.push((found.location, rule, jwt)),
                Err(verdict) => return verdict,
            }
        }
        if valid.is_empty() {
            return Verdict::Pass;
        }

        let headers = req.headers_mut();
        for (location, rule, _) in &valid {
            if !rule.forward
                && let Some(name) = self.extractor.location(*location).header()
            {
                headers.remove(name);
            }
        }
        for (_, rule, jwt) in &valid {
            for (name, claim) in &rule.claim_headers {
                if headers.contains_key(name) {
                    continue;
                }
                let value = claims::lookup(jwt.claims(), claim).and_then(claims::text);
                if let Some(value) = value.and_then(|v| HeaderValue::try_from(v).ok()) {
                    headers.insert(name.clone(), value);
                }
            }
            if let Some(name) = &rule.payload_header
                && !headers.contains_key(name)
                && let Ok(value) = HeaderValue::from_str(jwt.payload_b64())
            {
                headers.insert(name.clone(), value);
            }
        }
        let Some((_, _, jwt)) = valid.into_iter().next() else {
            return Verdict::Pass;
        };
        let principal = claims::principal(jwt.issuer(), jwt.subject()).unwrap_or_default();
        req.extensions_mut().insert(RequestAuth {
            principal: Arc::from(principal),
            claims: Arc::new(jwt.into_claims()),
        });
        Verdict::Pass
    }

    /// Checks one token found at `location`.
    fn check(
        &self,
        token: &str,
        location: usize,
        now: u64,
        may_wait: bool,
    ) -> Result<(&Rule, Jwt), Verdict> {
        let jwt = Jwt::parse(token).map_err(Verdict::Reject)?;
        let rule = jwt
            .issuer()
            .and_then(|iss| {
                self.extractor
                    .rules_at(location)
                    .iter()
                    .map(|&i| &self.rules[i])
                    .find(|rule| rule.issuer == iss)
            })
            .ok_or(Verdict::Reject(JwtError::UnknownIssuer))?;
        jwt.check_time(now).map_err(Verdict::Reject)?;
        jwt.check_audiences(&rule.audiences)
            .map_err(Verdict::Reject)?;
        match &rule.keys {
            Keys::Inline(keys) => keys.verify(&jwt).map_err(Verdict::Reject)?,
            Keys::Pending(_) => return Err(Verdict::Reject(JwtError::JwksFetchFailed)),
            Keys::Remote(remote) => {
                let Some(keys) = remote.keys() else {
                    return Err(if may_wait && !remote.first_fetch_done() {
                        Verdict::Wait(remote.wait_first())
                    } else {
                        Verdict::Reject(JwtError::JwksFetchFailed)
                    });
                };
                if let Err(error) = keys.verify(&jwt) {
                    // A key the set does not have yet: fetch it again (rate-limited).
                    if let Some(kid) = jwt.kid()
                        && !keys.has_kid(kid)
                        && let Some(wait) = remote.refetch_for_unknown_kid()
                        && may_wait
                    {
                        return Err(Verdict::Wait(wait));
                    }
                    return Err(Verdict::Reject(error));
                }
            }
        }
        Ok((rule, jwt))
    }
}
