//! Steady traffic through the gateway, so that metrics, traces and Kiali-style graphs have
//! something to show: a bounded loop of requests, alternating an anonymous user and `jason`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use mesh::{MeshClient, MeshConfig, Telemetry};

/// Who a request of the traffic loop is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    /// No user.
    Anonymous,
    /// Bookinfo's test user `jason` (the `user` cookie productpage's login sets).
    Jason,
}

/// What the traffic loop has seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficReport {
    /// Answers by status code (0 for a request that got no answer).
    pub statuses: BTreeMap<u16, u64>,
}

impl TrafficReport {
    /// Requests answered or failed.
    pub fn total(&self) -> u64 {
        self.statuses.values().sum()
    }
}

/// Sends `GET /productpage` to the gateway at `gateway` (plaintext), `per_second` times a
/// second, alternating [`User::Anonymous`] and [`User::Jason`], until `stop` resolves or
/// `limit` requests (when given) are sent; prints a summary every 10 s when `print` is set.
pub async fn drive(
    gateway: SocketAddr,
    per_second: u32,
    limit: Option<u64>,
    print: bool,
    stop: impl Future<Output = ()>,
) -> TrafficReport {
    let mut report = TrafficReport::default();
    let client = match MeshConfig::builder()
        .service("traffic")
        .build()
        .map_err(|e| e.to_string())
        .and_then(|config| {
            MeshClient::builder()
                .config(config)
                .telemetry(Telemetry::disabled())
                .build()
                .map_err(|e| e.to_string())
        }) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "traffic client");
            return report;
        }
    };
    let period = Duration::from_secs(1) / per_second.max(1);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut summary = tokio::time::interval(Duration::from_secs(10));
    summary.tick().await;
    let mut stop = std::pin::pin!(stop);
    let mut sent: u64 = 0;
    let uri = format!("http://{gateway}/productpage");
    while limit.is_none_or(|limit| sent < limit) {
        tokio::select! {
            biased;
            () = &mut stop => break,
            _ = summary.tick(), if print => {
                println!("traffic: {} requests, by status {:?}", report.total(), report.statuses);
            }
            _ = ticks.tick() => {
                let user = if sent.is_multiple_of(2) { User::Anonymous } else { User::Jason };
                sent += 1;
                let status = send(&client, &uri, user).await;
                *report.statuses.entry(status).or_default() += 1;
            }
        }
    }
    report
}

/// One request as `user`; the status, or 0 when it could not be built.
async fn send(client: &MeshClient, uri: &str, user: User) -> u16 {
    let mut req = http::Request::get(uri);
    if user == User::Jason {
        req = req.header(http::header::COOKIE, "user=jason");
    }
    let Ok(req) = req.body(Empty::<Bytes>::new()) else {
        return 0;
    };
    let Ok(res) = client.request(req).await;
    let status = res.status().as_u16();
    // Read the page whole, as a browser would.
    let _ = res.into_body().collect().await;
    status
}
