//! The details service: the book's publishing details, as Istio's `details` answers them.
//!
//! `GET /details/{id}` is the record of the book (the same for every numeric id, as in
//! Istio); a non-numeric id is 400 `{"error":"please provide numeric product id"}`.
//! `GET /health` is `{"status":"Details is healthy"}`.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// The details of a book, with Istio's field names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    /// The product id asked for.
    pub id: i64,
    /// `William Shakespeare`.
    pub author: String,
    /// `1595`.
    pub year: u32,
    /// `paperback`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `200`.
    pub pages: u32,
    /// `PublisherA`.
    pub publisher: String,
    /// `English`.
    pub language: String,
    /// `1234567890`.
    #[serde(rename = "ISBN-10")]
    pub isbn_10: String,
    /// `123-1234567890`.
    #[serde(rename = "ISBN-13")]
    pub isbn_13: String,
}

impl Details {
    /// The details Istio's service gives for product `id`.
    pub fn of(id: i64) -> Self {
        Self {
            id,
            author: "William Shakespeare".to_owned(),
            year: 1595,
            kind: "paperback".to_owned(),
            pages: 200,
            publisher: "PublisherA".to_owned(),
            language: "English".to_owned(),
            isbn_10: "1234567890".to_owned(),
            isbn_13: "123-1234567890".to_owned(),
        }
    }
}

/// The details service's routes.
pub fn router() -> Router {
    Router::new()
        .route("/details/{id}", get(details))
        .route("/details", get(|| async { bad_id() }))
        .route("/health", get(health))
}

async fn details(Path(id): Path<String>) -> Response {
    match id.trim().parse::<i64>() {
        Ok(id) => Json(Details::of(id)).into_response(),
        Err(_) => bad_id(),
    }
}

fn bad_id() -> Response {
    let body = serde_json::json!({ "error": "please provide numeric product id" });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "Details is healthy" }))
}
