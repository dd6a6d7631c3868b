//! The book the sample shows, and the upstream addresses the services call.

/// Where productpage, reviews and the gateway send their calls (service names the mesh
/// resolves through Kubernetes DNS, with Bookinfo's port 9080).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstreams {
    /// `http://details:9080`.
    pub details: String,
    /// `http://reviews:9080`.
    pub reviews: String,
    /// `http://ratings:9080`.
    pub ratings: String,
    /// `http://productpage:9080`.
    pub productpage: String,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            details: "http://details:9080".to_owned(),
            reviews: "http://reviews:9080".to_owned(),
            ratings: "http://ratings:9080".to_owned(),
            productpage: "http://productpage:9080".to_owned(),
        }
    }
}
