//! The application, seen from the server stack: its errors become [`ServerError::App`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::ServerError;
use crate::BoxError;

/// Applies [`AppService`] around the application (the innermost layer of the server stack).
#[derive(Clone, Copy, Debug, Default)]
pub struct AppLayer {
    _priv: (),
}

impl AppLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> tower_layer::Layer<S> for AppLayer {
    type Service = AppService<S>;

    fn layer(&self, inner: S) -> AppService<S> {
        AppService { inner }
    }
}

/// The application with its errors as [`ServerError`], so the mesh layers around it can add
/// their own (an axum `Router` never fails: its error is `Infallible`).
#[derive(Clone, Debug)]
pub struct AppService<S> {
    inner: S,
}

impl<S> AppService<S> {
    /// The application.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the application.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R> tower_service::Service<R> for AppService<S>
where
    S: tower_service::Service<R>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = ServerError;
    type Future = AppFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ServerError>> {
        self.inner.poll_ready(cx).map_err(app_error)
    }

    #[inline]
    fn call(&mut self, req: R) -> Self::Future {
        AppFuture {
            inner: self.inner.call(req),
        }
    }
}

fn app_error(error: impl Into<BoxError>) -> ServerError {
    ServerError::from(error.into())
}

pin_project_lite::pin_project! {
    /// The response future of [`AppService`].
    pub struct AppFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, T, E> Future for AppFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, ServerError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(ready!(self.project().inner.poll(cx)).map_err(app_error))
    }
}
