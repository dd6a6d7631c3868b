//! mesh
#![forbid(unsafe_code)]
pub use mesh_core as core;
