//! [`NormalizeLayer`]: the request path normalized before authorization and the application
//! see it, as Istio's default path normalization (`BASE`) does.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Request;
use http::uri::{PathAndQuery, Uri};
use mesh_core::path::{PathError, normalize};

use super::ServerError;

/// Normalizes every request's path ([`mesh_core::path::normalize`]: `.` and `..` segments
/// removed, escaped unreserved characters decoded), so that a policy on `/admin` also
/// covers `/./admin` and `/%61dmin`, and the application sees the path the policies judged.
/// A malformed escape is a 400 ([`ServerError::MalformedPath`]).
///
/// ```
/// use std::convert::Infallible;
/// use mesh_tower::server::NormalizeLayer;
/// use tower::{Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = tower::service_fn(|req: http::Request<()>| async move {
///     Ok::<_, Infallible>(req.uri().to_string())
/// });
/// let service = NormalizeLayer.layer(app);
/// let req = http::Request::get("/public/../admin?x=1").body(()).unwrap();
/// assert_eq!(service.oneshot(req).await.unwrap(), "/admin?x=1");
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NormalizeLayer;

impl<S> tower_layer::Layer<S> for NormalizeLayer {
    type Service = NormalizeService<S>;

    fn layer(&self, inner: S) -> NormalizeService<S> {
        NormalizeService { inner }
    }
}

/// The service of [`NormalizeLayer`].
#[derive(Clone, Debug)]
pub struct NormalizeService<S> {
    inner: S,
}

impl<S, B> tower_service::Service<Request<B>> for NormalizeService<S>
where
    S: tower_service::Service<Request<B>>,
    S::Error: Into<ServerError>,
{
    type Response = S::Response;
    type Error = ServerError;
    type Future = NormalizeFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ServerError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let normalized = match normalize(req.uri().path()) {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(path)) => Some(path),
            Err(error) => return NormalizeFuture::malformed(error),
        };
        if let Some(path) = normalized {
            let path_and_query = match req.uri().query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            let mut parts = req.uri().clone().into_parts();
            // The normalized path holds only characters the original held, so it parses.
            parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
            match Uri::from_parts(parts) {
                Ok(uri) => *req.uri_mut() = uri,
                Err(_) => {
                    return NormalizeFuture::malformed(PathError {
                        path: req.uri().path().chars().take(200).collect(),
                        reason: "it cannot be written back normalized",
                    });
                }
            }
        }
        NormalizeFuture {
            state: State::Called {
                future: self.inner.call(req),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`NormalizeService`].
    pub struct NormalizeFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Malformed { error: PathError },
    }
}

impl<F> NormalizeFuture<F> {
    fn malformed(error: PathError) -> Self {
        Self {
            state: State::Malformed { error },
        }
    }
}

impl<F, T, E> Future for NormalizeFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<ServerError>,
{
    type Output = Result<T, ServerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => future.poll(cx).map_err(Into::into),
            StateProj::Malformed { error } => {
                Poll::Ready(Err(ServerError::MalformedPath(error.clone())))
            }
        }
    }
}
