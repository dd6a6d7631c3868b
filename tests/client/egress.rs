//! Egress control with Istio's outbound traffic policy: under REGISTRY_ONLY the cluster's
//! services, configured destinations and allowed hosts (ServiceEntry hosts) are reachable;
//! any other host is answered 502 by the client itself, counted, and never connected to.
//! Under ALLOW_ANY everything goes through.

use std::collections::BTreeMap;
use std::net::IpAddr;

use mesh::core::config::{DestinationBuilder, OutboundMode, OutboundTrafficPolicy, SecurityConfig};
use mesh::tower::MeshClient;
use mesh::tower::MeshError;
use mesh::tower::testing::{Backend, DnsServer};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

use crate::support::{Answer, config, fetch, ips};

/// A cluster service `reviews` and an outside service `api.example.com`, one pod each on
/// `127.0.90.<first>` and `127.0.90.<first + 1>` (one port), named in one DNS server that
/// serves every zone.
struct World {
    dns: DnsServer,
    port: u16,
    reviews: Backend,
    api: Backend,
    api_ip: IpAddr,
}

impl World {
    async fn start(first: u8) -> World {
        let all = ips(90, first + 1);
        let (reviews_ip, api_ip) = (all[usize::from(first) - 1], all[usize::from(first)]);
        let (port, mut groups) =
            Backend::start_groups(&[("reviews", &[reviews_ip]), ("api", &[api_ip])])
                .await
                .expect("pods");
        let api = groups.pop().and_then(|mut g| g.pop()).expect("api pod");
        let reviews = groups.pop().and_then(|mut g| g.pop()).expect("reviews pod");
        let dns = DnsServer::start_with_zone(".").expect("DNS server");
        dns.set_hosts("reviews.default.svc.cluster.local.", &[reviews_ip], 30)
            .expect("DNS record");
        dns.set_hosts("api.example.com.", &[api_ip], 30)
            .expect("DNS record");
        World {
            dns,
            port,
            reviews,
            api,
            api_ip,
        }
    }

    /// A client under `mode` with `allowed` hosts, and `destinations`.
    fn client(
        &self,
        mode: OutboundMode,
        allowed: &[&str],
        destinations: Vec<DestinationBuilder>,
    ) -> MeshClient {
        let security = SecurityConfig {
            outbound: OutboundTrafficPolicy {
                mode,
                allowed_hosts: allowed.iter().map(|h| (*h).to_owned()).collect(),
            },
            ..Default::default()
        };
        let builder = destinations
            .into_iter()
            .fold(config(&self.dns).security(security), |b, d| {
                b.destination(d)
            });
        MeshClient::new(builder.build().expect("valid config")).expect("client")
    }

    fn reviews_uri(&self) -> String {
        format!("http://reviews:{}/reviews/0", self.port)
    }

    fn api_uri(&self) -> String {
        format!("http://api.example.com:{}/v1/items", self.port)
    }

    fn ip_uri(&self) -> String {
        format!("http://{}:{}/v1/items", self.api_ip, self.port)
    }
}

/// Asserts that `answer` is the egress denial of `host`.
fn assert_denied(answer: &Answer, host: &str) {
    assert_eq!(answer.status, 502, "{answer:?}");
    assert_eq!(answer.response_flag(), "-");
    let error = &answer.reply.as_ref().expect("a local reply").error;
    assert!(
        matches!(&**error, MeshError::EgressDenied { host: h } if h.as_ref() == host),
        "{error:?}"
    );
    assert!(
        answer.body.starts_with(&format!(
            "egress denied: {host} is not in the mesh registry"
        )),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("REGISTRY_ONLY"), "{}", answer.body);
    assert!(answer.body.contains("ServiceEntry"), "{}", answer.body);
}

/// `mesh_egress_denied_total` by its `host` label.
fn denied_counts(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if key.key().name() != "mesh_egress_denied_total" {
            continue;
        }
        if let DebugValue::Counter(n) = value {
            let host = key
                .key()
                .labels()
                .find(|l| l.key() == "host")
                .map(|l| l.value().to_owned())
                .unwrap_or_default();
            *counts.entry(host).or_default() += n;
        }
    }
    counts
}

#[tokio::test(start_paused = true)]
async fn registry_only_reaches_the_cluster_and_denies_the_rest() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let world = World::start(1).await;
    let client = world.client(OutboundMode::RegistryOnly, &[], Vec::new());

    let answer = fetch(&client, &world.reviews_uri(), &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "reviews-0"));

    let api = format!("api.example.com:{}", world.port);
    for _ in 0..3 {
        assert_denied(&fetch(&client, &world.api_uri(), &[]).await, &api);
    }
    // Another spelling of the same host is the same denied host.
    let absolute = format!("http://API.example.com.:{}/", world.port);
    assert_denied(&fetch(&client, &absolute, &[]).await, &api);
    // An address is denied unless listed.
    let ip = format!("{}:{}", world.api_ip, world.port);
    assert_denied(&fetch(&client, &world.ip_uri(), &[]).await, &ip);

    // Denied without a connection: the outside pod saw nothing.
    assert_eq!(world.api.hits(), 0);
    assert_eq!(world.reviews.hits(), 1);
    assert_eq!(
        client.endpoints(&format!("api.example.com:{}", world.port)),
        Some(Vec::new())
    );
    assert_eq!(
        denied_counts(&snapshotter),
        BTreeMap::from([(api, 4), (ip, 1)])
    );
}

#[tokio::test(start_paused = true)]
async fn allowed_hosts_open_the_registry() {
    let world = World::start(3).await;
    let ip = world.api_ip.to_string();
    let client = world.client(
        OutboundMode::RegistryOnly,
        &["*.Example.COM", &ip],
        Vec::new(),
    );

    let answer = fetch(&client, &world.api_uri(), &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "api-0"));
    let answer = fetch(&client, &world.ip_uri(), &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "api-0"));
    let answer = fetch(&client, &world.reviews_uri(), &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "reviews-0"));
    assert_eq!(world.api.hits(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_configured_destination_is_in_the_registry() {
    let world = World::start(5).await;
    let destination = DestinationBuilder::new("api.example.com").port(world.port);
    let client = world.client(OutboundMode::RegistryOnly, &[], vec![destination]);

    let answer = fetch(&client, &world.api_uri(), &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "api-0"));
    // On its port only, as a ServiceEntry's port.
    let other = world.port.checked_add(1).unwrap_or(world.port - 1);
    let answer = fetch(&client, &format!("http://api.example.com:{other}/"), &[]).await;
    assert_denied(&answer, &format!("api.example.com:{other}"));
    assert_eq!(world.api.hits(), 1);
}

#[tokio::test(start_paused = true)]
async fn allow_any_lets_everything_through() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let world = World::start(7).await;
    let client = world.client(OutboundMode::AllowAny, &[], Vec::new());

    for uri in [world.reviews_uri(), world.api_uri(), world.ip_uri()] {
        let answer = fetch(&client, &uri, &[]).await;
        assert_eq!(answer.status, 200, "{uri}: {answer:?}");
    }
    assert_eq!(world.api.hits(), 2);
    assert!(denied_counts(&snapshotter).is_empty());
}
