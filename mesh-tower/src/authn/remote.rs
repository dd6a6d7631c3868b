//! Remote JWKS (`jwksUri`): fetched in the background, cached, refreshed, fetched again on
//! an unknown `kid`, kept when a fetch fails.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{ACCEPT, HOST, USER_AGENT};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::keys::KeySet;

/// The first back-off after a failed fetch; it doubles up to the refresh interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The least time between two fetches caused by unknown `kid`s.
pub(crate) const KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// The largest JWKS accepted.
const MAX_BODY: usize = 1 << 20;

/// A future that resolves when a fetch the request waits for is over (or its time is up).
pub(crate) type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the fetch task and the requests share.
#[derive(Debug)]
struct Store {
    /// The last set fetched successfully.
    keys: ArcSwapOption<KeySet>,
    /// The number of fetches finished, well or not.
    attempts: watch::Sender<u64>,
}

/// One `jwksUri`, shared by the rules that name it.
#[derive(Debug)]
pub(crate) struct RemoteJwks {
    uri: Arc<str>,
    timeout: Duration,
    refresh: Duration,
    store: Arc<Store>,
    /// Asks the fetch task to fetch now; the task ends when this is dropped.
    kick: mpsc::Sender<()>,
    kid_refetch: Mutex<KidRefetch>,
}

#[derive(Debug, Default)]
struct KidRefetch {
    /// When the last fetch for an unknown `kid` was asked for.
    last: Option<Instant>,
    /// The attempt count that ends it.
    until: u64,
}

/// How a fetch connects: plain TCP, or TLS with these settings for `https`.
#[derive(Clone, Debug)]
pub(crate) struct Fetcher {
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) timeout: Duration,
}

impl RemoteJwks {
    /// Starts fetching `uri` at once and every `refresh`. Must be called inside a tokio
    /// runtime.
    pub(crate) fn start(uri: Uri, fetcher: Fetcher, refresh: Duration) -> Arc<Self> {
        let (attempts, _) = watch::channel(0);
        let store = Arc::new(Store {
            keys: ArcSwapOption::empty(),
            attempts,
        });
        let (kick, kicks) = mpsc::channel(1);
        let remote = Arc::new(RemoteJwks {
            uri: Arc::from(uri.to_string()),
            timeout: fetcher.timeout,
            refresh,
            store: store.clone(),
            kick,
            kid_refetch: Mutex::new(KidRefetch::default()),
        });
        tokio::spawn(run(store, uri, fetcher, refresh, kicks));
        remote
    }

    /// Whether this is fetched as a rule with `timeout` and `refresh` needs: a reload keeps
    /// it, with its cached set and its fetch task, instead of starting another.
    pub(crate) fn fetches_as(&self, timeout: Duration, refresh: Duration) -> bool {
        self.timeout == timeout && self.refresh == refresh
    }

    /// The URI fetched, as the parsed `jwksUri` prints.
    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    /// The last set fetched successfully.
    pub(crate) fn keys(&self) -> Option<Arc<KeySet>> {
        self.store.keys.load_full()
    }

    /// Whether the first fetch is over (well or not).
    pub(crate) fn first_fetch_done(&self) -> bool {
        *self.store.attempts.borrow() > 0
    }

    /// Resolves when the first fetch is over, at the latest after the fetch timeout.
    pub(crate) fn wait_first(&self) -> Wait {
        self.wait_until(1)
    }

    /// Asks for a fetch because a token names a `kid` the set does not have: at most one
    /// such fetch per [`KID_REFETCH_INTERVAL`]. Returns a future that resolves when the
    /// fetch (asked for now, or earlier and still running) is over; none when the limit
    /// holds the request back.
    pub(crate) fn refetch_for_unknown_kid(&self) -> Option<Wait> {
        let done = *self.store.attempts.borrow();
        let mut state = self
            .kid_refetch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if done < state.until {
            return Some(self.wait_until(state.until));
        }
        let now = Instant::now();
        if state
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < KID_REFETCH_INTERVAL)
        {
            return None;
        }
        state.last = Some(now);
        state.until = done + 1;
        tracing::debug!(uri = %self.uri, "unknown kid: fetching the JWKS again");
        let _ = self.kick.try_send(());
        Some(self.wait_until(state.until))
    }

    fn wait_until(&self, attempts: u64) -> Wait {
        let mut rx = self.store.attempts.subscribe();
        let timeout = self.timeout;
        Box::pin(async move {
            let _ = tokio::time::timeout(timeout, rx.wait_for(|n| *n >= attempts)).await;
        })
    }
}

/// The fetch task: fetch, then sleep until the refresh (or the back-off after a failure),
/// or until asked to fetch now; ends when the [`RemoteJwks`] is dropped.
async fn run(
    store: Arc<Store>,
    uri: Uri,
    fetcher: Fetcher,
    refresh: Duration,
    mut kicks: mpsc::Receiver<()>,
) {
    let label = uri.to_string();
    let refresh = refresh.max(FIRST_BACKOFF);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let next = match fetcher.fetch(&uri).await {
            Ok(keys) => {
                tracing::debug!(uri = %label, ?keys, "fetched JWKS");
                store.keys.store(Some(Arc::new(keys)));
                metrics::counter!("mesh_jwks_fetches_total", "uri" => label.clone(), "result" => "ok")
                    .increment(1);
                backoff = FIRST_BACKOFF;
                refresh
            }
            Err(error) => {
                let kept = store.keys.load().is_some();
                tracing::warn!(uri = %label, %error, kept, "JWKS fetch failed; retrying");
                metrics::counter!("mesh_jwks_fetches_total", "uri" => label.clone(), "result" => "error")
                    .increment(1);
                let wait = backoff.min(refresh);
                backoff = (backoff * 2).min(refresh);
                wait
            }
        };
        store.attempts.send_modify(|n| *n += 1);
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            kick = kicks.recv() => if kick.is_none() { return },
        }
    }
}

impl Fetcher {
    /// Fetches and parses the set at `uri`, within the timeout.
    pub(crate) async fn fetch(&self, uri: &Uri) -> Result<KeySet, String> {
        let body = tokio::time::timeout(self.timeout, self.get(uri))
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))??;
        KeySet::parse(&body)
    }

    /// The body of a `GET uri` answered with 2xx, over one new HTTP/1.1 connection.
    async fn get(&self, uri: &Uri) -> Result<String, String> {
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().ok_or("no host")?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match (&self.tls, https) {
            (Some(tls), true) => {
                let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| format!("server name: {e}"))?;
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                self.exchange(TokioIo::new(stream), uri).await
            }
            (None, true) => Err("https without trust roots".into()),
            (_, false) => self.exchange(TokioIo::new(tcp), uri).await,
        }
    }

    async fn exchange<IO>(&self, io: IO, uri: &Uri) -> Result<String, String>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        // The connection ends when the answer is read and `sender` dropped, or at the
        // latest after the timeout.
        tokio::spawn(tokio::time::timeout(self.timeout, conn));
        let authority = uri.authority().map_or("", |a| a.as_str());
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let req = Request::get(path)
            .header(HOST, authority)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, "mesh")
            .body(Empty::new())
            .map_err(|e| format!("request: {e}"))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("status {}", res.status()));
        }
        let body = Limited::new(res.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".to_owned())
    }
}
