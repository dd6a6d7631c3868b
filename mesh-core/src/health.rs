//! Endpoint health: the back-off that keeps the balancer off an endpoint that refuses connections.
