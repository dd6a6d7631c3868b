//! Where the demo's pods live: one loopback address per pod, the DNS names that list them.

use std::net::{Ipv4Addr, SocketAddr};

use crate::reviews::Version;

/// Bookinfo's service port, on every pod.
pub const SERVICE_PORT: u16 = 9080;

/// One of the demo's workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// The product page.
    Productpage,
    /// The details service.
    Details,
    /// The ratings service.
    Ratings,
    /// One version of reviews.
    Reviews(Version),
    /// The ingress gateway.
    Gateway,
}

impl Workload {
    /// Every workload, in the order of their pod addresses (`.1` to `.7`).
    pub const ALL: [Workload; 7] = [
        Workload::Productpage,
        Workload::Details,
        Workload::Ratings,
        Workload::Reviews(Version::V1),
        Workload::Reviews(Version::V2),
        Workload::Reviews(Version::V3),
        Workload::Gateway,
    ];

    /// The service (`app` label) it belongs to.
    pub fn service(self) -> &'static str {
        match self {
            Workload::Productpage => "productpage",
            Workload::Details => "details",
            Workload::Ratings => "ratings",
            Workload::Reviews(_) => "reviews",
            Workload::Gateway => "istio-ingressgateway",
        }
    }

    /// Its `version` label.
    pub fn version(self) -> &'static str {
        match self {
            Workload::Reviews(Version::V2) => "v2",
            Workload::Reviews(Version::V3) => "v3",
            _ => "v1",
        }
    }

    /// Its service account, as Istio's `bookinfo.yaml` names them (`bookinfo-reviews`).
    pub fn service_account(self) -> String {
        match self {
            Workload::Gateway => "istio-ingressgateway-service-account".to_owned(),
            other => format!("bookinfo-{}", other.service()),
        }
    }

    /// The pod's name, `reviews-v2` (one pod per workload).
    pub fn pod_name(self) -> String {
        format!("{}-{}", self.service(), self.version())
    }

    /// The last octet of its pod address.
    fn host(self) -> u8 {
        let index = Workload::ALL.iter().position(|w| *w == self).unwrap_or(0);
        u8::try_from(index + 1).unwrap_or(u8::MAX)
    }
}

/// The demo's pod addresses: `<a>.<b>.<c>.1` to `.7` of a loopback network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    prefix: [u8; 3],
}

impl Network {
    /// The pods of `base`'s /24 (`127.0.140.0` gives `127.0.140.1` ...).
    pub fn new(base: Ipv4Addr) -> Self {
        let [a, b, c, _] = base.octets();
        Self { prefix: [a, b, c] }
    }

    /// The pod address of `workload`.
    pub fn ip(self, workload: Workload) -> Ipv4Addr {
        let [a, b, c] = self.prefix;
        Ipv4Addr::new(a, b, c, workload.host())
    }

    /// Where `workload` serves Bookinfo's port 9080.
    pub fn service_addr(self, workload: Workload) -> SocketAddr {
        SocketAddr::new(self.ip(workload).into(), SERVICE_PORT)
    }

    /// The DNS records of the cluster (names relative to `cluster.local.`): each service
    /// lists its pods (`reviews` three), and `<service>-<version>` (`reviews-v2`,
    /// `productpage-v1`) the pods of one version, where mesh finds a DestinationRule
    /// subset's endpoints.
    pub fn records(self) -> Vec<(String, Vec<Ipv4Addr>)> {
        let mut records: Vec<(String, Vec<Ipv4Addr>)> = Vec::new();
        for w in Workload::ALL {
            if w == Workload::Gateway {
                continue;
            }
            let service = format!("{}.default.svc", w.service());
            match records.iter_mut().find(|(name, _)| *name == service) {
                Some((_, ips)) => ips.push(self.ip(w)),
                None => records.push((service, vec![self.ip(w)])),
            }
            records.push((format!("{}.default.svc", w.pod_name()), vec![self.ip(w)]));
        }
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_per_pod_and_reviews_lists_three() {
        let net = Network::new(Ipv4Addr::new(127, 0, 130, 0));
        let ips: std::collections::BTreeSet<_> = Workload::ALL.iter().map(|w| net.ip(*w)).collect();
        assert_eq!(ips.len(), Workload::ALL.len());
        let records = net.records();
        let reviews = records
            .iter()
            .find(|(name, _)| name == "reviews.default.svc")
            .map(|(_, ips)| ips.len());
        assert_eq!(reviews, Some(3));
        assert!(
            records
                .iter()
                .any(|(name, _)| name == "reviews-v3.default.svc")
        );
        assert_eq!(
            Workload::Reviews(Version::V2).service_account(),
            "bookinfo-reviews"
        );
        assert_eq!(Workload::Reviews(Version::V2).pod_name(), "reviews-v2");
    }
}
