//! The reviews service, in its three versions, as Istio's `reviews` answers.
//!
//! `GET /reviews/{id}` is
//! `{"id":"0","podname":"…","clustername":"…","reviews":[{"reviewer":"Reviewer1","text":"…","rating":{"stars":5,"color":"black"}},…]}`:
//! v1 has no `rating`, v2 black stars, v3 red stars. v2 and v3 ask ratings
//! (`{upstreams.ratings}/ratings/{id}`) through the mesh client, within 10 s (v2) or 2.5 s
//! (v3) as Istio's reviews does; when ratings fails, or has no rating for a reviewer, that
//! review's rating is `{"error":"Ratings service is currently unavailable"}`. A non-numeric
//! id is 404, as in Istio's (a JAX-RS `int` path parameter that does not parse).
//! `GET /health` is `{"status":"Reviews is healthy"}`.
//!
//! `podname` is the workload's pod name (`POD_NAME`), else `reviews-<version>`;
//! `clustername` the cluster ID of the mesh config.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mesh::MeshClient;
use serde_json::{Value, json};

use crate::books::{REVIEWS, Upstreams, get_json};

/// What a review shows when ratings cannot be had.
pub const RATINGS_UNAVAILABLE: &str = "Ratings service is currently unavailable";

/// Which reviews: v1 shows no stars, v2 black stars, v3 red stars (v2 and v3 call ratings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// No ratings.
    V1,
    /// Black stars.
    V2,
    /// Red stars.
    V3,
}

impl Version {
    /// The star color, for the versions that show stars.
    pub fn star_color(self) -> Option<&'static str> {
        match self {
            Version::V1 => None,
            Version::V2 => Some("black"),
            Version::V3 => Some("red"),
        }
    }

    /// How long the call to ratings may take: 10 s for black stars, 2.5 s for red, as
    /// Istio's reviews sets its client timeouts.
    pub fn ratings_timeout(self) -> Duration {
        match self {
            Version::V3 => Duration::from_millis(2500),
            _ => Duration::from_secs(10),
        }
    }

    /// `v1`, `v2` or `v3`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::V3 => "v3",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not `v1`, `v2` or `v3`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a reviews version (v1, v2 or v3)")]
pub struct UnknownVersion;

impl FromStr for Version {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<Self, UnknownVersion> {
        match s.trim().to_ascii_lowercase().as_str() {
            "v1" => Ok(Version::V1),
            "v2" => Ok(Version::V2),
            "v3" => Ok(Version::V3),
            _ => Err(UnknownVersion),
        }
    }
}

struct Shared {
    version: Version,
    client: MeshClient,
    ratings: String,
    podname: String,
    clustername: String,
}

/// The reviews service's routes; `client` calls ratings (v2 and v3).
pub fn router(version: Version, client: MeshClient, upstreams: Upstreams) -> Router {
    let config = client.config();
    let workload = &config.workload;
    let podname = workload
        .pod_name
        .clone()
        .unwrap_or_else(|| format!("reviews-{version}"));
    let clustername = config.telemetry.cluster_id.clone();
    let shared = Arc::new(Shared {
        version,
        ratings: upstreams.ratings.trim_end_matches('/').to_owned(),
        client,
        podname,
        clustername,
    });
    Router::new()
        .route("/reviews/{id}", get(reviews))
        .route("/health", get(health))
        .with_state(shared)
}

async fn reviews(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.trim().parse::<i32>() else {
        let body = json!({ "error": "please provide numeric product id" });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let ratings = match shared.version.star_color() {
        None => None,
        Some(_) => {
            let url = format!("{}/ratings/{id}", shared.ratings);
            let timeout = shared.version.ratings_timeout();
            Some(get_json(&shared.client, &url, timeout, None).await.ok())
        }
    };
    let reviews: Vec<Value> = REVIEWS
        .iter()
        .map(|(reviewer, text)| {
            let mut review = json!({ "reviewer": reviewer, "text": text });
            if let (Some(color), Some(ratings)) = (shared.version.star_color(), &ratings) {
                let stars = ratings
                    .as_ref()
                    .and_then(|r| r.get("ratings")?.get(reviewer)?.as_u64());
                review["rating"] = match stars {
                    Some(stars) => json!({ "stars": stars, "color": color }),
                    None => json!({ "error": RATINGS_UNAVAILABLE }),
                };
            }
            review
        })
        .collect();
    Json(json!({
        "id": id.to_string(),
        "podname": shared.podname,
        "clustername": shared.clustername,
        "reviews": reviews,
    }))
    .into_response()
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "Reviews is healthy" }))
}
