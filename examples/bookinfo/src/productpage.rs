//! The product page: the HTML page and the JSON API, calling details and reviews, as Istio's
//! `productpage` serves them.
//!
//! | route | answer |
//! |---|---|
//! | `GET /`, `GET /index.html` | the index: the services the page calls, links to the page |
//! | `GET /productpage` | the page of book 0: summary, details, reviews with their stars, the reviews pod; a sign-in form, or who is signed in |
//! | `POST /login` | form `username` (and an ignored `passwd`): sets the `user` cookie, 302 to `/productpage` |
//! | `GET /logout` | clears the `user` cookie, 302 to `/productpage` |
//! | `GET /api/v1/products` | the product list |
//! | `GET /api/v1/products/{id}` | the details, `/reviews` the reviews, `/ratings` the ratings of product `id` |
//! | `GET /health` | `Product page is healthy` |
//! | `GET /static/bookinfo.css` | the page's style sheet |
//!
//! Details and reviews are asked through the mesh client, each within 3 s as in Istio's
//! productpage, the reviews twice before giving up (Istio keeps that on purpose for its
//! fault-injection task). The 3 s are a request deadline (see [`get_json`]), so the mesh
//! client's timeout enforces them and they never outlast the inbound request's own deadline.
//! When the `user` cookie is set, calls carry `end-user: <user>`, which Istio's routing rules
//! match on; everything else (trace context, `x-request-id`, configured headers and cookies)
//! the mesh propagates by itself. When details or reviews fail the page still answers 200,
//! with Istio's "Sorry, product … are currently unavailable for this book." in their place;
//! the API answers the upstream's status (500 when there was none) with that message as
//! `{"error": …}`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mesh::MeshClient;
use serde_json::{Value, json};

use crate::books::{PRODUCTS, Product, Upstreams, get_json};

/// How long productpage waits for details, as Istio's productpage.
pub const DETAILS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long productpage waits for each of its two tries of reviews, as Istio's.
pub const REVIEWS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long productpage waits for ratings (the `/ratings` API), as Istio's.
pub const RATINGS_TIMEOUT: Duration = Duration::from_secs(3);

/// Shown when details cannot be had.
pub const DETAILS_UNAVAILABLE: &str =
    "Sorry, product details are currently unavailable for this book.";
/// Shown when reviews cannot be had.
pub const REVIEWS_UNAVAILABLE: &str =
    "Sorry, product reviews are currently unavailable for this book.";
/// Answered when ratings cannot be had.
pub const RATINGS_UNAVAILABLE: &str =
    "Sorry, product ratings are currently unavailable for this book.";

/// The page's style sheet, served at `/static/bookinfo.css`.
const STYLE: &str = include_str!("../static/bookinfo.css");

struct Shared {
    client: MeshClient,
    upstreams: Upstreams,
}

/// The productpage service's routes; `client` calls details and reviews.
pub fn router(client: MeshClient, upstreams: Upstreams) -> Router {
    let trim = |s: &str| s.trim_end_matches('/').to_owned();
    let upstreams = Upstreams {
        details: trim(&upstreams.details),
        reviews: trim(&upstreams.reviews),
        ratings: trim(&upstreams.ratings),
        productpage: trim(&upstreams.productpage),
    };
    let shared = Arc::new(Shared { client, upstreams });
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/health", get(|| async { "Product page is healthy" }))
        .route("/productpage", get(page))
        .route("/login", post(login))
        .route("/logout", get(logout))
        .route("/api/v1/products", get(products))
        .route("/api/v1/products/{id}", get(api_details))
        .route("/api/v1/products/{id}/reviews", get(api_reviews))
        .route("/api/v1/products/{id}/ratings", get(api_ratings))
        .route("/static/{*path}", get(asset))
        .with_state(shared)
}

impl Shared {
    async fn details(&self, id: &str, user: Option<&str>) -> Result<Value, StatusCode> {
        let url = format!("{}/details/{}", self.upstreams.details, encode(id));
        get_json(&self.client, &url, DETAILS_TIMEOUT, user).await
    }

    async fn reviews(&self, id: &str, user: Option<&str>) -> Result<Value, StatusCode> {
        let url = format!("{}/reviews/{}", self.upstreams.reviews, encode(id));
        match get_json(&self.client, &url, REVIEWS_TIMEOUT, user).await {
            Ok(reviews) => Ok(reviews),
            Err(_) => get_json(&self.client, &url, REVIEWS_TIMEOUT, user).await,
        }
    }

    async fn ratings(&self, id: &str, user: Option<&str>) -> Result<Value, StatusCode> {
        let url = format!("{}/ratings/{}", self.upstreams.ratings, encode(id));
        get_json(&self.client, &url, RATINGS_TIMEOUT, user).await
    }
}

/// The signed-in user: the `user` cookie, when set and not empty.
fn user(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "user")
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
}

async fn index(State(shared): State<Arc<Shared>>) -> Html<String> {
    let u = &shared.upstreams;
    let mut rows = String::new();
    for (name, endpoint, children) in [
        ("productpage", &u.productpage, "details, reviews"),
        ("details", &u.details, ""),
        ("reviews", &u.reviews, "ratings"),
        ("ratings", &u.ratings, ""),
    ] {
        let _ = write!(
            rows,
            "<tr><td>{name}</td><td>{}</td><td>{children}</td></tr>",
            escape(endpoint)
        );
    }
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Simple Bookstore App</title>\n<link rel=\"stylesheet\" href=\"/static/bookinfo.css\">\n\
         </head>\n<body>\n<main class=\"index\">\n\
         <h3>Hello! This is a simple bookstore application consisting of three services as shown below</h3>\n\
         <table class=\"services\"><tr><th>name</th><th>endpoint</th><th>children</th></tr>{rows}</table>\n\
         <p>Click on one of the links below to auto generate a request to the backend as a real user or a tester</p>\n\
         <p><a href=\"/productpage?u=normal\">Normal user</a></p>\n\
         <p><a href=\"/productpage?u=test\">Test user</a></p>\n\
         </main>\n</body>\n</html>\n"
    ))
}

async fn page(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Html<String> {
    let user = user(&headers);
    let product = &PRODUCTS[0];
    let id = product.id.to_string();
    let (details, reviews) = tokio::join!(
        shared.details(&id, user.as_deref()),
        shared.reviews(&id, user.as_deref())
    );
    Html(render(product, user.as_deref(), details.ok(), reviews.ok()))
}

/// The product page: `details` and `reviews` as the services answered, `None` when they
/// could not be had.
fn render(
    product: &Product,
    user: Option<&str>,
    details: Option<Value>,
    reviews: Option<Value>,
) -> String {
    let mut html = String::with_capacity(4096);
    html.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\">\n\
         <title>Simple Bookstore App</title>\n\
         <link rel=\"stylesheet\" href=\"/static/bookinfo.css\">\n</head>\n<body>\n\
         <nav class=\"navbar\">\n<a class=\"brand\" href=\"#\">BookInfo Sample</a>\n",
    );
    match user {
        Some(user) => {
            let _ = writeln!(
                html,
                "<p class=\"user\">signed in as {} ( <a href=\"/logout\">Sign out</a> )</p>",
                escape(user)
            );
        }
        None => html.push_str(
            "<form class=\"login\" method=\"post\" action=\"/login\" name=\"login_form\">\
             <input type=\"text\" name=\"username\" id=\"username\" placeholder=\"User Name\">\
             <input type=\"password\" name=\"passwd\" placeholder=\"Password\">\
             <button type=\"submit\">Sign in</button></form>\n",
        ),
    }
    let _ = write!(
        html,
        "</nav>\n<main>\n<h3 class=\"title\">{}</h3>\n<p>Summary: {}</p>\n<div class=\"row\">\n",
        escape(product.title),
        product.description_html
    );

    html.push_str("<section class=\"details\">\n");
    match details {
        Some(d) => {
            html.push_str("<h4>Book Details</h4>\n<dl>\n");
            for (label, key) in [
                ("Type", "type"),
                ("Pages", "pages"),
                ("Publisher", "publisher"),
                ("Language", "language"),
                ("ISBN-10", "ISBN-10"),
                ("ISBN-13", "ISBN-13"),
            ] {
                let _ = writeln!(
                    html,
                    "<dt>{label}:</dt><dd>{}</dd>",
                    escape(&text(d.get(key)))
                );
            }
            html.push_str("</dl>\n");
        }
        None => {
            let _ = writeln!(
                html,
                "<h4>Error fetching product details!</h4>\n<p>{DETAILS_UNAVAILABLE}</p>"
            );
        }
    }
    html.push_str("</section>\n<section class=\"reviews\">\n");
    match reviews {
        Some(r) => {
            html.push_str("<h4>Book Reviews</h4>\n");
            let list = r.get("reviews").and_then(Value::as_array);
            for review in list.into_iter().flatten() {
                render_review(&mut html, review);
            }
            let podname = text(r.get("podname"));
            if !podname.is_empty() {
                let _ = write!(
                    html,
                    "<dl class=\"served\"><dt>Reviews served by:</dt><dd><u>{}</u>",
                    escape(&podname)
                );
                let cluster = text(r.get("clustername"));
                if !cluster.is_empty() && cluster != "null" {
                    let _ = write!(html, " on cluster <u>{}</u>", escape(&cluster));
                }
                html.push_str("</dd></dl>\n");
            }
        }
        None => {
            let _ = writeln!(
                html,
                "<h4>Error fetching product reviews!</h4>\n<p>{REVIEWS_UNAVAILABLE}</p>"
            );
        }
    }
    html.push_str("</section>\n</div>\n</main>\n</body>\n</html>\n");
    html
}

/// One review: its text, its reviewer, and its stars or its rating's error.
fn render_review(html: &mut String, review: &Value) {
    let _ = write!(
        html,
        "<blockquote>\n<p>{}</p>\n<small>{}</small>\n",
        escape(&text(review.get("text"))),
        escape(&text(review.get("reviewer")))
    );
    if let Some(rating) = review.get("rating") {
        if let Some(stars) = rating.get("stars").and_then(Value::as_u64) {
            let stars = stars.min(5) as usize;
            let color = text(rating.get("color"));
            let _ = writeln!(
                html,
                "<p class=\"stars\" style=\"color: {}\">{}{}</p>",
                escape(&color),
                "★".repeat(stars),
                "☆".repeat(5 - stars)
            );
        } else if rating.get("error").is_some() {
            let _ = writeln!(html, "<p><i>{}</i></p>", escape(&text(rating.get("error"))));
        }
    }
    html.push_str("</blockquote>\n");
}

/// A JSON value as page text: strings as they are, numbers written out, nothing for the rest.
fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// `s` with HTML's special characters escaped.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for one path segment (unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `s` with `+` as space and `%XX` escapes decoded, as a form field; `None` when the result
/// is not UTF-8.
fn decode_form(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Whether `value` can be a cookie value as it is (RFC 6265 `cookie-octet`s).
fn is_cookie_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

fn redirect(cookie: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    let headers = res.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/productpage"));
    if let Ok(cookie) = HeaderValue::from_str(cookie) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    res
}

const CLEAR_COOKIE: &str = "user=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/";

async fn login(body: Bytes) -> Response {
    let body = String::from_utf8_lossy(&body);
    let username = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "username")
        .map(|(_, value)| decode_form(value));
    match username {
        Some(Some(user)) if user.is_empty() => redirect(CLEAR_COOKIE),
        Some(Some(user)) if is_cookie_value(&user) => redirect(&format!("user={user}; Path=/")),
        Some(_) => (StatusCode::BAD_REQUEST, "invalid user name\n").into_response(),
        None => redirect(CLEAR_COOKIE),
    }
}

async fn logout() -> Response {
    redirect(CLEAR_COOKIE)
}

async fn products() -> Json<Value> {
    let list: Vec<Value> = PRODUCTS
        .iter()
        .map(|p| json!({ "id": p.id, "title": p.title, "descriptionHtml": p.description_html }))
        .collect();
    Json(Value::Array(list))
}

/// An API answer: the upstream's JSON, or its status with `message` as the error.
fn api(result: Result<Value, StatusCode>, message: &str) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(status) => (status, Json(json!({ "error": message }))).into_response(),
    }
}

async fn api_details(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = user(&headers);
    api(
        shared.details(&id, user.as_deref()).await,
        DETAILS_UNAVAILABLE,
    )
}

async fn api_reviews(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = user(&headers);
    api(
        shared.reviews(&id, user.as_deref()).await,
        REVIEWS_UNAVAILABLE,
    )
}

async fn api_ratings(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let user = user(&headers);
    api(
        shared.ratings(&id, user.as_deref()).await,
        RATINGS_UNAVAILABLE,
    )
}

async fn asset(Path(path): Path<String>) -> Response {
    match path.as_str() {
        "bookinfo.css" => {
            ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::books::product;

    #[test]
    fn form_fields_decode() {
        assert_eq!(decode_form("ja%73on+x").as_deref(), Some("jason x"));
        assert_eq!(decode_form("a%2"), Some("a%2".to_owned()));
        assert_eq!(decode_form("%zz"), None);
        assert_eq!(decode_form("%C3%A9").as_deref(), Some("é"));
    }

    #[test]
    fn product_zero_exists() {
        assert_eq!(product(0).map(|p| p.title), Some("The Comedy of Errors"));
        assert!(product(1).is_none());
    }
}
