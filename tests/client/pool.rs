//! Istio's `connectionPool.http` on the client's endpoint connections: `maxRequestsPerConnection`
//! retires a connection after that many requests, `idleTimeout` closes a connection left idle.
//!
//! The pod here is a small server of the test's own that numbers the connections it accepts and
//! counts the requests each carries and whether the client has closed it.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mesh::core::config::{ConnectionPool, MeshConfigBuilder, Protocol};
use mesh::tower::MeshClient;
use mesh::tower::testing::DnsServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::{config, eventually, get, ips, yaml_client};

/// One accepted connection: the requests it carried, and whether it has ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Conn {
    requests: usize,
    closed: bool,
}

/// A one-pod service `pool.default.svc.cluster.local` on `127.0.83.<host>`, answering HTTP/1.1
/// and HTTP/2 (h2c) and recording every connection.
struct Pod {
    dns: DnsServer,
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Conn>>>,
    task: JoinHandle<()>,
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Pod {
    async fn start(host: u8) -> Pod {
        let ip: IpAddr = ips(83, host)[usize::from(host) - 1];
        let listener = TcpListener::bind((ip, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let dns = DnsServer::start().expect("DNS server");
        dns.set_hosts("pool.default.svc", &[ip], 30)
            .expect("DNS record");
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let task = tokio::spawn(serve(listener, conns.clone()));
        Pod {
            dns,
            addr,
            conns,
            task,
        }
    }

    fn uri(&self) -> String {
        format!("http://pool:{}/", self.addr.port())
    }

    fn conns(&self) -> Vec<Conn> {
        self.conns.lock().expect("connection log").clone()
    }

    fn client(&self, configure: impl FnOnce(MeshConfigBuilder) -> MeshConfigBuilder) -> MeshClient {
        let config = configure(config(&self.dns)).build().expect("valid config");
        MeshClient::new(config).expect("client")
    }

    /// Sends `count` requests one after the other; each must succeed.
    async fn send(&self, client: &MeshClient, count: usize) {
        for i in 0..count {
            let (status, body) = get(client, &self.uri()).await;
            assert_eq!((status, body.as_str()), (200, "ok"), "request {i}");
        }
    }

    /// Waits (tokio time) until every connection but the newest `open` has been closed.
    async fn settled(&self, open: usize) -> Vec<Conn> {
        let done = eventually(Duration::from_secs(1), || {
            let conns = self.conns();
            conns.iter().filter(|c| !c.closed).count() <= open
        })
        .await;
        let conns = self.conns();
        assert!(done, "connections left open: {conns:?}");
        conns
    }
}

async fn serve(listener: TcpListener, conns: Arc<Mutex<Vec<Conn>>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let id = {
            let mut conns = conns.lock().expect("connection log");
            conns.push(Conn::default());
            conns.len() - 1
        };
        let conns = conns.clone();
        tokio::spawn(async move {
            let log = conns.clone();
            let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                log.lock().expect("connection log")[id].requests += 1;
                async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().header_read_timeout(None);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
            conns.lock().expect("connection log")[id].closed = true;
        });
    }
}

fn pool(
    max_requests_per_connection: Option<u32>,
    idle_timeout: Option<Duration>,
) -> ConnectionPool {
    ConnectionPool {
        max_requests_per_connection,
        idle_timeout,
        ..ConnectionPool::default()
    }
}

#[tokio::test(start_paused = true)]
async fn three_requests_per_connection_make_ten_connections_for_thirty_requests() {
    let pod = Pod::start(1).await;
    let client = pod.client(|c| c.connection_pool(pool(Some(3), None)));
    pod.send(&client, 30).await;

    let conns = pod.settled(1).await;
    assert_eq!(conns.len(), 10, "{conns:?}");
    assert!(conns.iter().all(|c| c.requests == 3), "{conns:?}");
}

#[tokio::test(start_paused = true)]
async fn one_request_per_connection_gives_every_request_its_own() {
    let pod = Pod::start(2).await;
    let client = pod.client(|c| c.connection_pool(pool(Some(1), None)));
    pod.send(&client, 12).await;

    let conns = pod.settled(1).await;
    assert_eq!(conns.len(), 12, "{conns:?}");
    assert!(conns.iter().all(|c| c.requests == 1), "{conns:?}");
}

#[tokio::test(start_paused = true)]
async fn without_a_limit_one_connection_carries_every_request() {
    let pod = Pod::start(3).await;
    let client = pod.client(|c| c.connection_pool(pool(None, None)));
    pod.send(&client, 30).await;
    assert_eq!(
        pod.conns(),
        [Conn {
            requests: 30,
            closed: false
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn zero_requests_per_connection_is_no_limit() {
    let pod = Pod::start(4).await;
    let client = pod.client(|c| c.connection_pool(pool(Some(0), None)));
    pod.send(&client, 10).await;
    assert_eq!(
        pod.conns(),
        [Conn {
            requests: 10,
            closed: false
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn http2_connections_are_retired_after_their_requests_too() {
    let pod = Pod::start(5).await;
    let client = pod.client(|c| {
        c.protocol(Protocol::Http2)
            .connection_pool(pool(Some(3), None))
    });
    pod.send(&client, 30).await;

    let conns = pod.settled(1).await;
    assert_eq!(conns.len(), 10, "{conns:?}");
    assert!(conns.iter().all(|c| c.requests == 3), "{conns:?}");
}

#[tokio::test(start_paused = true)]
async fn under_concurrency_no_http1_connection_carries_more_than_its_limit() {
    let pod = Pod::start(6).await;
    let client = pod.client(|c| c.connection_pool(pool(Some(3), None)));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, uri) = (client.clone(), pod.uri());
        callers.spawn(async move {
            for _ in 0..15 {
                assert_eq!(get(&client, &uri).await.0, 200);
            }
        });
    }
    while let Some(caller) = callers.join_next().await {
        caller.expect("caller");
    }

    let conns = pod.conns();
    assert_eq!(conns.iter().map(|c| c.requests).sum::<usize>(), 60);
    assert!(conns.iter().all(|c| c.requests <= 3), "{conns:?}");
    assert!(conns.len() >= 20, "{conns:?}");
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_reused_within_idle_timeout_and_closed_after_it() {
    let pod = Pod::start(7).await;
    let client = pod.client(|c| c.connection_pool(pool(None, Some(Duration::from_secs(5)))));
    pod.send(&client, 1).await;

    // Idle 4 s: still pooled, and reused.
    tokio::time::sleep(Duration::from_secs(4)).await;
    pod.send(&client, 1).await;
    assert_eq!(
        pod.conns(),
        [Conn {
            requests: 2,
            closed: false
        }]
    );

    // Idle 6 s: past the timeout; the next request gets a new connection, the old one is closed.
    tokio::time::sleep(Duration::from_secs(6)).await;
    pod.send(&client, 1).await;
    let conns = pod.settled(1).await;
    assert_eq!(
        conns,
        [
            Conn {
                requests: 2,
                closed: true
            },
            Conn {
                requests: 1,
                closed: false
            }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_client_closes_an_idle_connection_without_another_request() {
    let pod = Pod::start(8).await;
    let client = pod.client(|c| c.connection_pool(pool(None, Some(Duration::from_secs(5)))));
    pod.send(&client, 1).await;

    // The pool sweeps idle connections every idleTimeout, so within twice the timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!pod.conns()[0].closed, "closed before its idle timeout");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let conns = pod.settled(0).await;
    assert_eq!(
        conns,
        [Conn {
            requests: 1,
            closed: true
        }]
    );
    drop(client);
}

#[tokio::test(start_paused = true)]
async fn without_idle_timeout_a_connection_is_kept_for_istios_hour() {
    let pod = Pod::start(9).await;
    let client = pod.client(|c| c.connection_pool(pool(None, Some(Duration::ZERO))));
    pod.send(&client, 1).await;
    tokio::time::sleep(Duration::from_secs(59 * 60)).await;
    pod.send(&client, 1).await;
    assert_eq!(
        pod.conns(),
        [Conn {
            requests: 2,
            closed: false
        }]
    );

    // Past the hour (and the pool's sweep after it), closed.
    tokio::time::sleep(Duration::from_secs(2 * 60 * 60 + 1)).await;
    assert!(pod.settled(0).await[0].closed);
}

const RULE: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: pool
spec:
  host: pool
  trafficPolicy:
    connectionPool:
      http:
        maxRequestsPerConnection: 3
        idleTimeout: 5s
"#;

#[tokio::test(start_paused = true)]
async fn both_settings_come_from_an_istio_destination_rule() {
    let pod = Pod::start(10).await;
    let client = yaml_client(&pod.dns, &[RULE]);
    pod.send(&client, 9).await;
    let conns = pod.settled(1).await;
    assert_eq!(conns.len(), 3, "{conns:?}");
    assert!(conns.iter().all(|c| c.requests == 3), "{conns:?}");

    // One more request opens a fourth connection; left idle 6 s, it is not reused.
    pod.send(&client, 1).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    pod.send(&client, 1).await;
    let conns = pod.settled(1).await;
    assert_eq!(conns.len(), 5, "{conns:?}");
    assert_eq!(conns[3].requests, 1, "{conns:?}");
}
