//! Egress control: which hosts the client may call (Istio's `outboundTrafficPolicy`).
