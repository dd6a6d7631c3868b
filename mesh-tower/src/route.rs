//! Routing: a host's VirtualService routes applied to each request.
//!
//! The first route that matches ([`mesh_core::route::find`]) decides: a redirect or direct
//! response is answered here; a forward rewrites the request, picks one weighted destination
//! ([`mesh_core::route::Split`], once per request, so retries stay in the chosen subset)
//! and sends it down that destination's [leg](crate::leg). No route matched: 404, flag NR.

use std::sync::Arc;

use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use mesh_core::route::{self, HttpRoute, RequestInfo, RouteAction, Split};

use crate::body::{RequestBody, ResponseBody};
use crate::client::ResponseFuture;
use crate::error::MeshError;
use crate::leg::Leg;
use crate::local_reply::local_reply;

/// Where requests to one authority go.
pub(crate) enum Host {
    /// No routes: everything goes to the host itself.
    Direct(Arc<Leg>),
    /// The host has routes.
    Routed(Arc<Routed>),
}

/// A host's routes, with a leg per forward destination.
pub(crate) struct Routed {
    pub(crate) authority: Arc<str>,
    pub(crate) routes: Vec<HttpRoute>,
    pub(crate) compiled: Vec<CompiledRoute>,
}

/// A route's weighted legs (empty for redirects and direct responses).
pub(crate) struct CompiledRoute {
    pub(crate) split: Split,
    pub(crate) legs: Vec<Arc<Leg>>,
}

impl Host {
    pub(crate) fn dispatch(&self, req: Request<RequestBody>) -> ResponseFuture {
        match self {
            Host::Direct(leg) => ResponseFuture::leg(leg.call(req)),
            Host::Routed(routed) => routed.dispatch(req),
        }
    }
}

impl Routed {
    fn dispatch(&self, mut req: Request<RequestBody>) -> ResponseFuture {
        let info = RequestInfo::new(req.method(), req.uri(), req.headers());
        let Some(hit) = route::find(&self.routes, &info) else {
            return ResponseFuture::ready(local_reply(MeshError::NoRoute {
                authority: self.authority.clone(),
                method: req.method().clone(),
                path: req.uri().path().into(),
            }));
        };
        let matched_prefix = hit.matched_prefix;
        match &hit.route.action {
            RouteAction::Redirect(redirect) => {
                let location = redirect.location(req.uri(), matched_prefix);
                let status =
                    StatusCode::from_u16(redirect.code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
                let mut response = local(status, String::new());
                match HeaderValue::from_str(&location) {
                    Ok(value) => {
                        response.headers_mut().insert(header::LOCATION, value);
                    }
                    Err(_) => {
                        return ResponseFuture::ready(local_reply(MeshError::BadRequest {
                            reason: format!("redirect location {location:?} is not a valid header")
                                .into(),
                        }));
                    }
                }
                ResponseFuture::ready(response)
            }
            RouteAction::DirectResponse(direct) => {
                let status = StatusCode::from_u16(direct.status)
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                ResponseFuture::ready(local(status, direct.body.clone().unwrap_or_default()))
            }
            RouteAction::Forward(forward) => {
                let compiled = &self.compiled[hit.index];
                if let Some(rewrite) = &forward.rewrite {
                    let path = req.uri().path_and_query().map_or("/", PathAndQuery::as_str);
                    let new_path = rewrite.path(path, matched_prefix);
                    if let Err(error) =
                        rewrite_uri(&mut req, new_path.as_deref(), rewrite.authority.as_deref())
                    {
                        return ResponseFuture::ready(local_reply(error));
                    }
                }
                let index = compiled.split.pick(&mut rand::rng());
                match compiled.legs.get(index) {
                    Some(leg) => ResponseFuture::leg(leg.call(req)),
                    None => ResponseFuture::ready(local_reply(MeshError::NoEndpoints {
                        destination: self.authority.clone(),
                        reason: "the matching route has no destination".into(),
                    })),
                }
            }
        }
    }
}

/// A response the mesh makes itself, with a plain-text body.
fn local(status: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::local(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Replaces the request's path and query and its authority (the URI's and `Host`).
fn rewrite_uri(
    req: &mut Request<RequestBody>,
    path: Option<&str>,
    authority: Option<&str>,
) -> Result<(), MeshError> {
    if path.is_none() && authority.is_none() {
        return Ok(());
    }
    let bad = |what: &str, value: &str| MeshError::BadRequest {
        reason: format!("rewrite gives an invalid {what} {value:?}").into(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Some(path) = path {
        parts.path_and_query = Some(path.parse().map_err(|_| bad("path", path))?);
    }
    if let Some(authority) = authority {
        parts.authority = Some(
            authority
                .parse::<Authority>()
                .map_err(|_| bad("authority", authority))?,
        );
        let host = HeaderValue::from_str(authority).map_err(|_| bad("authority", authority))?;
        req.headers_mut().insert(header::HOST, host);
    }
    *req.uri_mut() = Uri::from_parts(parts).map_err(|e| bad("uri", &e.to_string()))?;
    Ok(())
}
