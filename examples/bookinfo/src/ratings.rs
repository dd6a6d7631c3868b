//! The ratings service (Istio's v1, ratings held in memory).
//!
//! `GET /ratings/{id}` is `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`, or what was
//! last posted for that product; `POST /ratings/{id}` with a JSON object of ratings stores
//! them and answers as `GET` does; a non-numeric id is 400
//! `{"error":"please provide numeric product ID"}`, a body that is not JSON 400
//! `{"error":"please provide valid ratings JSON"}`. `GET /health` is
//! `{"status":"Ratings is healthy"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::books::RATINGS;

/// Ratings posted at run time, by product id.
type Posted = Arc<Mutex<HashMap<i64, Map<String, Value>>>>;

/// The ratings service's routes.
pub fn router() -> Router {
    Router::new()
        .route("/ratings/{id}", get(ratings).post(post_ratings))
        .route("/health", get(health))
        .with_state(Posted::default())
}

/// The ratings of product `id`: those posted for it, else the book's.
fn lookup(posted: &Posted, id: i64) -> Value {
    let posted = posted.lock().unwrap_or_else(|e| e.into_inner());
    let ratings = match posted.get(&id) {
        Some(r) => Value::Object(r.clone()),
        None => RATINGS
            .iter()
            .map(|(who, stars)| ((*who).to_owned(), json!(stars)))
            .collect::<Map<_, _>>()
            .into(),
    };
    json!({ "id": id, "ratings": ratings })
}

/// The product id of a path, if numeric.
fn parse_id(id: &str) -> Option<i64> {
    id.trim().parse::<i64>().ok()
}

fn bad_id() -> Response {
    let body = json!({ "error": "please provide numeric product ID" });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn ratings(State(posted): State<Posted>, Path(id): Path<String>) -> Response {
    match parse_id(&id) {
        Some(id) => Json(lookup(&posted, id)).into_response(),
        None => bad_id(),
    }
}

async fn post_ratings(
    State(posted): State<Posted>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(id) = parse_id(&id) else {
        return bad_id();
    };
    let Ok(Value::Object(ratings)) = serde_json::from_slice::<Value>(&body) else {
        let body = json!({ "error": "please provide valid ratings JSON" });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    posted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, ratings);
    Json(lookup(&posted, id)).into_response()
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "Ratings is healthy" }))
}
