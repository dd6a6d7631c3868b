//! Istio's Bookinfo sample written in Rust on mesh.
//!
//! Four services with Istio's behaviour and API, each an axum `Router` here and its own
//! binary under `src/bin/`, configured by environment variables: [`productpage`] (the HTML
//! page and the JSON API, calling [`details`] and [`reviews`]), [`details`], [`reviews`]
//! (v1 without stars, v2 black stars, v3 red stars; v2 and v3 call [`ratings`]) and
//! [`ratings`]; the [`gateway`] routes Istio's Bookinfo gateway paths to productpage; the
//! [`demo`] starts everything on loopback with its own DNS server and certificates.
//!
//! No service forwards headers by hand: the mesh carries trace context, `x-request-id`,
//! `end-user` and the `user` cookie from each inbound request to the calls made for it.

#![forbid(unsafe_code)]

pub mod books;
pub mod demo;
pub mod details;
pub mod env;
pub mod gateway;
pub mod productpage;
pub mod ratings;
pub mod reviews;
