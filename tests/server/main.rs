//! End-to-end tests of the mesh server: MeshServer on loopback with an axum application,
//! driven by bare hyper clients and by MeshClient; paused tokio time throughout.

mod compose;
mod deadline;
mod hops;
mod limits;
mod rolling;
mod shutdown;
mod support;
