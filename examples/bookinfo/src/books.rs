//! The book the sample shows, the upstream addresses the services call, and how they call
//! them.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use mesh::{MeshClient, RequestContext};
use serde_json::Value;
use tokio::time::Instant;

/// Where productpage, reviews and the gateway send their calls (service names the mesh
/// resolves through Kubernetes DNS, with Bookinfo's port 9080).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstreams {
    /// `http://details:9080`.
    pub details: String,
    /// `http://reviews:9080`.
    pub reviews: String,
    /// `http://ratings:9080`.
    pub ratings: String,
    /// `http://productpage:9080`.
    pub productpage: String,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            details: "http://details:9080".to_owned(),
            reviews: "http://reviews:9080".to_owned(),
            ratings: "http://ratings:9080".to_owned(),
            productpage: "http://productpage:9080".to_owned(),
        }
    }
}

/// The one product the sample sells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Product {
    /// Its id, `0`.
    pub id: u64,
    /// `The Comedy of Errors`.
    pub title: &'static str,
    /// The summary, as HTML (a Wikipedia link and the blurb).
    pub description_html: &'static str,
}

/// The products, as productpage lists them (`GET /api/v1/products`).
pub const PRODUCTS: [Product; 1] = [Product {
    id: 0,
    title: "The Comedy of Errors",
    description_html: "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of his most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in addition to puns and word play.",
}];

/// The product with `id`, if any.
pub fn product(id: u64) -> Option<&'static Product> {
    PRODUCTS.iter().find(|p| p.id == id)
}

/// The two reviews of the book, by reviewer, in page order.
pub const REVIEWS: [(&str, &str); 2] = [
    (
        "Reviewer1",
        "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    ),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
    ),
];

/// The ratings the ratings service gives every product: Reviewer1 5 stars, Reviewer2 4.
pub const RATINGS: [(&str, u8); 2] = [("Reviewer1", 5), ("Reviewer2", 4)];

/// The most of an upstream's JSON answer that is read (the sample's are a few hundred bytes).
const MAX_BODY: usize = 1 << 20;

/// Sends `GET url` through `client` and reads the JSON answer, all within `timeout`.
///
/// The timeout is a request deadline: the handler's [`RequestContext`] with the earlier of
/// its own deadline and now + `timeout`, so the mesh client's request timeout answers 504
/// when it passes (and tells the callee the time left). `end_user`, when given, is sent as
/// the `end-user` header (Istio's productpage does the same for a signed-in user); the mesh
/// adds what it propagates. `Err` carries the status to report: the upstream's when it
/// answered other than 2xx, 502 when its answer was not JSON, 504 when the body did not
/// arrive in time.
pub async fn get_json(
    client: &MeshClient,
    url: &str,
    timeout: Duration,
    end_user: Option<&str>,
) -> Result<Value, StatusCode> {
    let deadline = Instant::now() + timeout;
    let deadline = RequestContext::current_deadline().map_or(deadline, |d| d.min(deadline));
    let mut req = Request::get(url);
    if let Some(user) = end_user.and_then(|u| HeaderValue::from_str(u).ok()) {
        req = req.header("end-user", user);
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let call = async {
        let Ok(res) = client.request(req).await;
        if !res.status().is_success() {
            return Err(res.status());
        }
        let body = Limited::new(res.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|_| StatusCode::BAD_GATEWAY)?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|_| StatusCode::BAD_GATEWAY)
    };
    let ctx = RequestContext::current()
        .unwrap_or_default()
        .with_deadline(deadline);
    match tokio::time::timeout_at(deadline, ctx.scope(call)).await {
        Ok(result) => result,
        Err(_) => Err(StatusCode::GATEWAY_TIMEOUT),
    }
}
