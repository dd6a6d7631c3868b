//! The server stack's authorization layer (Istio's `AuthorizationPolicy`).
