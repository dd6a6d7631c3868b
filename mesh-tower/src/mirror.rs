//! Mirroring: sends a copy of a share of requests to a shadow destination, as Istio's
//! `mirror` / `mirrors` do.
//!
//! The copy's authority has `-shadow` appended to its host (`reviews:9080` becomes
//! `reviews-shadow:9080`), its answer is read and dropped, and its failure never touches the
//! real response. Copies run in background tasks, at most `max_in_flight` per shadow; a copy
//! past that bound, or of a request whose body streams (it cannot be sent twice), is skipped
//! and counted in `mesh_mirror_skipped_total`.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use mesh_core::route::Percentage;
//! use mesh_tower::mirror::{MirrorLayer, Shadow};
//! use mesh_tower::{RequestBody, ResponseBody};
//!
//! let shadow_service = tower::service_fn(|_req: Request<RequestBody>| async {
//!     Ok::<_, Infallible>(Response::new(ResponseBody::local("ignored")))
//! });
//! let layer = MirrorLayer::new(vec![Shadow::new("reviews-v2", shadow_service, Percentage::ALL, 100)]);
//! # let _ = layer;
//! ```

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::Authority;
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::BodyExt;
use mesh_core::route::{Percentage, shadow_authority};
use tokio::sync::Semaphore;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use crate::body::{RequestBody, ResponseBody};

type ShadowService = BoxCloneSyncService<Request<RequestBody>, Response<ResponseBody>, Infallible>;

/// One shadow destination and the share of requests it gets.
#[derive(Clone)]
pub struct Shadow {
    name: Arc<str>,
    service: ShadowService,
    percentage: Percentage,
    permits: Arc<Semaphore>,
}

impl Shadow {
    /// Mirrors `percentage` of requests to `service` (named `name` in metrics and logs), at
    /// most `max_in_flight` at a time.
    pub fn new<S>(
        name: impl Into<Arc<str>>,
        service: S,
        percentage: Percentage,
        max_in_flight: usize,
    ) -> Self
    where
        S: Service<Request<RequestBody>, Response = Response<ResponseBody>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self {
            name: name.into(),
            service: BoxCloneSyncService::new(service),
            percentage,
            permits: Arc::new(Semaphore::new(max_in_flight)),
        }
    }

    /// Sends a copy of `req` in the background, if the share and the bound allow.
    fn mirror(&self, req: &Request<RequestBody>) {
        if !self.percentage.sample(&mut rand::rng()) {
            return;
        }
        let Some(body) = req.body().try_clone() else {
            return self.skip("streaming_body");
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return self.skip("concurrency");
        };
        let Some(copy) = shadow_request(req, body) else {
            return self.skip("bad_authority");
        };
        let service = self.service.clone();
        let name = self.name.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(response) = service.oneshot(copy).await;
            let status = response.status();
            // Read the answer to its end so the connection can be reused, then drop it.
            let _ = response.into_body().collect().await;
            tracing::trace!(shadow = %name, %status, "mirror answered");
        });
    }

    fn skip(&self, reason: &'static str) {
        tracing::debug!(shadow = %self.name, reason, "mirror skipped");
        metrics::counter!("mesh_mirror_skipped_total", "shadow" => self.name.to_string(), "reason" => reason)
            .increment(1);
    }
}

impl fmt::Debug for Shadow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shadow")
            .field("name", &self.name)
            .field("percentage", &self.percentage)
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

/// The copy of `req` a shadow gets: same method, path, headers and body, `-shadow` authority.
fn shadow_request(req: &Request<RequestBody>, body: RequestBody) -> Option<Request<RequestBody>> {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok())?;
    let shadow = shadow_authority(authority);
    let mut parts = req.uri().clone().into_parts();
    parts.authority = Some(shadow.parse::<Authority>().ok()?);
    if parts.scheme.is_none() {
        parts.scheme = Some(http::uri::Scheme::HTTP);
    }
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    let mut copy = Request::new(body);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = Uri::from_parts(parts).ok()?;
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy.headers_mut()
        .insert(header::HOST, HeaderValue::from_str(&shadow).ok()?);
    Some(copy)
}

/// Applies [`MirrorService`].
#[derive(Clone, Debug, Default)]
pub struct MirrorLayer {
    shadows: Arc<[Shadow]>,
}

impl MirrorLayer {
    /// Mirrors to each of `shadows`; none means the layer passes requests through.
    pub fn new(shadows: Vec<Shadow>) -> Self {
        Self {
            shadows: shadows.into(),
        }
    }

    /// Whether the layer mirrors nowhere (and so passes requests through).
    pub fn is_empty(&self) -> bool {
        self.shadows.is_empty()
    }
}

impl<S> tower_layer::Layer<S> for MirrorLayer {
    type Service = MirrorService<S>;

    fn layer(&self, inner: S) -> MirrorService<S> {
        MirrorService {
            inner,
            shadows: self.shadows.clone(),
        }
    }
}

/// Sends each request on to the inner service and copies of it to the shadows.
#[derive(Clone, Debug)]
pub struct MirrorService<S> {
    inner: S,
    shadows: Arc<[Shadow]>,
}

impl<S> MirrorService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<Request<RequestBody>> for MirrorService<S>
where
    S: Service<Request<RequestBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RequestBody>) -> S::Future {
        for shadow in self.shadows.iter() {
            shadow.mirror(&req);
        }
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Mutex;
    use std::time::Duration;

    use tower::{ServiceExt, service_fn};

    use super::*;

    type Seen = Arc<Mutex<Vec<String>>>;

    /// A shadow that records the `Host` it was sent to, then answers after `pause`.
    fn recording_shadow(seen: Seen, pause: Duration) -> Shadow {
        let service = service_fn(move |req: Request<RequestBody>| {
            let seen = seen.clone();
            async move {
                let host = req.headers()[header::HOST]
                    .to_str()
                    .unwrap_or("")
                    .to_owned();
                seen.lock().unwrap().push(host);
                tokio::time::sleep(pause).await;
                Ok::<_, Infallible>(Response::new(ResponseBody::local("shadow")))
            }
        });
        Shadow::new("reviews-v2", service, Percentage::ALL, 2)
    }

    fn primary() -> impl Service<
        Request<RequestBody>,
        Response = Response<ResponseBody>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send,
    > + Clone {
        service_fn(|_req: Request<RequestBody>| async {
            Ok::<_, Infallible>(Response::new(ResponseBody::local("primary")))
        })
    }

    fn get(uri: &str) -> Request<RequestBody> {
        Request::get(uri).body(RequestBody::empty()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn copies_go_to_the_shadow_authority_and_are_bounded() {
        let seen = Seen::default();
        let layer = MirrorLayer::new(vec![recording_shadow(seen.clone(), Duration::from_secs(1))]);
        let svc = tower_layer::Layer::layer(&layer, primary());
        for _ in 0..5 {
            let response = svc
                .clone()
                .oneshot(get("http://reviews:9080/reviews/1"))
                .await
                .unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "primary");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        // Two permits: the other three copies were skipped while the first two waited.
        assert_eq!(
            *seen.lock().unwrap(),
            ["reviews-shadow:9080", "reviews-shadow:9080"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn streaming_bodies_are_not_mirrored() {
        let seen = Seen::default();
        let layer = MirrorLayer::new(vec![recording_shadow(seen.clone(), Duration::ZERO)]);
        let svc = tower_layer::Layer::layer(&layer, primary());
        let body = RequestBody::new(http_body_util::StreamBody::new(futures_util::stream::iter(
            [Ok::<_, Infallible>(http_body::Frame::data(
                bytes::Bytes::from_static(b"x"),
            ))],
        )));
        let req = Request::post("http://reviews:9080/").body(body).unwrap();
        svc.oneshot(req).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(seen.lock().unwrap().is_empty());
    }
}
