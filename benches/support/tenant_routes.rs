//! Routes for the route-matching benches, shared by `decisions` and `scale`.

use http::HeaderName;
use mesh::core::route::{
    DirectResponse, HttpRoute, RouteAction, RouteMatch, StringMatch, ValueMatch,
};

/// `n` routes for one host: route `i` needs the path prefix `/api/` and `x-tenant: tenant-i`,
/// so every route before the matching one checks both its prefix and its header.
pub(crate) fn routes(n: usize) -> Vec<HttpRoute> {
    (0..n)
        .map(|i| HttpRoute {
            name: Some(format!("tenant-{i}")),
            matches: vec![RouteMatch {
                uri: Some(StringMatch::Prefix("/api/".into())),
                headers: vec![(
                    HeaderName::from_static("x-tenant"),
                    ValueMatch::Value(StringMatch::Exact(format!("tenant-{i}"))),
                )],
                ..Default::default()
            }],
            action: RouteAction::DirectResponse(DirectResponse {
                status: 200,
                body: None,
            }),
            headers: Default::default(),
            fault: None,
            mirrors: vec![],
            timeout: None,
            retries: None,
        })
        .collect()
}
