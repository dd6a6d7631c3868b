//! One request of a variant: the client, the URI and the headers it sends, checked and read
//! whole.

use bytes::Bytes;
use http::{HeaderMap, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mesh::prelude::*;

use crate::servers::BODY;
use crate::tls_connector::TlsConnect;

/// A client of one variant, shared by every caller task.
pub(crate) enum Caller {
    /// A plain hyper-util pooled client.
    Bare {
        /// The client.
        client: Client<HttpConnector, Empty<Bytes>>,
        /// The server's (or the proxy's) URI.
        uri: Uri,
    },
    /// A plain hyper-util pooled client over mutual TLS.
    BareTls {
        /// The client.
        client: Client<TlsConnect, Empty<Bytes>>,
        /// The TLS server's URI.
        uri: Uri,
    },
    /// A mesh client.
    Mesh {
        /// The client.
        client: MeshClient,
        /// The URI by service name.
        uri: Uri,
        /// Headers every request carries.
        headers: HeaderMap,
    },
}

impl Caller {
    /// A bare client calling `addr`.
    pub(crate) fn bare(addr: std::net::SocketAddr) -> Result<Self, String> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        Ok(Self::Bare {
            client,
            uri: uri(&format!("http://{addr}/"))?,
        })
    }

    /// One request: `Ok` with the HTTP version of a 2xx answer whose body is the servers'.
    pub(crate) async fn call(&self) -> Result<http::Version, String> {
        let res = match self {
            Self::Bare { client, uri } => client
                .get(uri.clone())
                .await
                .map_err(|e| format!("bare client: {e}"))?
                .map(ResponseBodyKind::Hyper),
            Self::BareTls { client, uri } => client
                .get(uri.clone())
                .await
                .map_err(|e| format!("bare TLS client: {e:?}"))?
                .map(ResponseBodyKind::Hyper),
            Self::Mesh {
                client,
                uri,
                headers,
            } => {
                let mut req = http::Request::get(uri.clone())
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| e.to_string())?;
                req.headers_mut().extend(headers.clone());
                client
                    .request(req)
                    .await
                    .unwrap_or_else(|never| match never {})
                    .map(ResponseBodyKind::Mesh)
            }
        };
        let (parts, body) = res.into_parts();
        let body = body.collect().await?;
        if !parts.status.is_success() {
            return Err(format!(
                "status {}: {}",
                parts.status,
                String::from_utf8_lossy(&body)
            ));
        }
        if body != BODY {
            return Err(format!(
                "unexpected body {:?}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(parts.version)
    }
}

/// The two kinds of answer body.
enum ResponseBodyKind {
    Hyper(hyper::body::Incoming),
    Mesh(ResponseBody),
}

impl ResponseBodyKind {
    async fn collect(self) -> Result<Bytes, String> {
        match self {
            Self::Hyper(b) => b
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| format!("body: {e}")),
            Self::Mesh(b) => b
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| format!("body: {e}")),
        }
    }
}

/// `s` as a URI.
pub(crate) fn uri(s: &str) -> Result<Uri, String> {
    s.parse().map_err(|e| format!("URI {s}: {e}"))
}
