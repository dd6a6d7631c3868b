//! Durations in Istio's forms: `500ms`, `2s`, `1m`, `1h`, `1.5s`, `1m30s`.
