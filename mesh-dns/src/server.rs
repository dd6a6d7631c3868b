//! A small authoritative DNS server for tests and local runs, whose records change live.
//!
//! [`DnsServer`] answers on UDP and TCP on one loopback port for one zone (`cluster.local.`
//! by default). Each change rebuilds the zone and swaps it in atomically; queries in flight
//! finish on the zone they started with.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mesh_dns::server::DnsServer;
//!
//! let dns = DnsServer::start()?;
//! dns.set_a("reviews.default.svc", &["10.0.0.1".parse().unwrap()], 5).unwrap();
//! let config = dns.config(); // a DiscoveryConfig asking this server
//! # let _ = config; Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use mesh_core::config::DiscoveryConfig;

/// How often binding UDP and TCP on one free port is tried before giving up.
const BIND_ATTEMPTS: usize = 20;
/// How long an idle TCP connection to the server is kept.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The SOA minimum, which bounds the TTL of negative answers.
const NEGATIVE_TTL: u32 = 1;

/// A record change that could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("DNS zone {zone}: `{name}`: {reason}")]
pub struct ZoneError {
    /// The zone's origin.
    pub zone: String,
    /// The name as given.
    pub name: String,
    /// What is wrong.
    pub reason: String,
}

/// An authoritative DNS server on `127.0.0.1` for one zone; records change while it serves.
///
/// Names are given relative to the zone (`reviews.default.svc`) or absolute
/// (`reviews.default.svc.cluster.local.`, or without the dot when they end in the zone).
/// Dropping the server stops it.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Zone>,
    server: Mutex<Option<Server<SwapHandler>>>,
}

/// The zone's records and the catalog currently served.
struct Zone {
    origin: Name,
    records: Mutex<ZoneRecords>,
    catalog: Arc<RwLock<Arc<Catalog>>>,
}

#[derive(Default)]
struct ZoneRecords {
    serial: u32,
    by_name: BTreeMap<(LowerName, RecordType), Vec<Record>>,
}

impl DnsServer {
    /// Starts a server for `cluster.local.` on a free loopback port (UDP and TCP). Must be
    /// called within a tokio runtime.
    pub fn start() -> io::Result<DnsServer> {
        Self::start_with_zone("cluster.local.")
    }

    /// Starts a server for the zone `origin` (such as `corp.internal.`) on a free loopback
    /// port (UDP and TCP). Must be called within a tokio runtime.
    pub fn start_with_zone(origin: &str) -> io::Result<DnsServer> {
        tokio::runtime::Handle::try_current().map_err(|_| {
            io::Error::other("DnsServer::start must be called within a tokio runtime")
        })?;
        let origin = parse_name(origin).map_err(|reason| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad zone origin `{origin}`: {reason}"),
            )
        })?;
        let origin = if origin.is_fqdn() {
            origin
        } else {
            let mut o = origin;
            o.set_fqdn(true);
            o
        };
        let zone = Arc::new(Zone {
            origin,
            records: Mutex::new(ZoneRecords::default()),
            catalog: Arc::new(RwLock::new(Arc::new(Catalog::new()))),
        });
        zone.publish(&mut zone.lock())
            .map_err(|e| io::Error::other(e.to_string()))?;

        let (udp, tcp) = bind_same_port()?;
        let addr = udp.local_addr()?;
        let mut server = Server::new(SwapHandler {
            catalog: zone.catalog.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, 64);
        Ok(DnsServer {
            addr,
            zone,
            server: Mutex::new(Some(server)),
        })
    }

    /// The address the server answers on (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The zone's origin, with its trailing dot (`cluster.local.`).
    pub fn origin(&self) -> String {
        self.zone.origin.to_ascii()
    }

    /// A discovery configuration (defaults otherwise) that asks this server.
    pub fn config(&self) -> DiscoveryConfig {
        DiscoveryConfig {
            nameservers: vec![self.addr],
            ..DiscoveryConfig::default()
        }
    }

    /// Replaces the A records of `name` (none removes them; the name may remain with
    /// other records).
    pub fn set_a(&self, name: &str, ips: &[Ipv4Addr], ttl: u32) -> Result<(), ZoneError> {
        let owner = self.zone.owner(name)?;
        let records = ips
            .iter()
            .map(|ip| Record::from_rdata(owner.clone(), ttl, RData::A(A(*ip))))
            .collect();
        self.zone.replace(name, &owner, &[(RecordType::A, records)])
    }

    /// Replaces the AAAA records of `name`.
    pub fn set_aaaa(&self, name: &str, ips: &[Ipv6Addr], ttl: u32) -> Result<(), ZoneError> {
        let owner = self.zone.owner(name)?;
        let records = ips
            .iter()
            .map(|ip| Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(*ip))))
            .collect();
        self.zone
            .replace(name, &owner, &[(RecordType::AAAA, records)])
    }

    /// Replaces both the A and the AAAA records of `name` with `ips`.
    pub fn set_hosts(&self, name: &str, ips: &[IpAddr], ttl: u32) -> Result<(), ZoneError> {
        let owner = self.zone.owner(name)?;
        let mut a = Vec::new();
        let mut aaaa = Vec::new();
        for ip in ips {
            match ip {
                IpAddr::V4(v4) => a.push(Record::from_rdata(owner.clone(), ttl, RData::A(A(*v4)))),
                IpAddr::V6(v6) => {
                    aaaa.push(Record::from_rdata(
                        owner.clone(),
                        ttl,
                        RData::AAAA(AAAA(*v6)),
                    ));
                }
            }
        }
        self.zone.replace(
            name,
            &owner,
            &[(RecordType::A, a), (RecordType::AAAA, aaaa)],
        )
    }

    /// Replaces the SRV records of `name` with `(priority, weight, port, target)` entries;
    /// targets are relative to the zone or absolute, like `name`.
    pub fn set_srv(
        &self,
        name: &str,
        records: &[(u16, u16, u16, &str)],
        ttl: u32,
    ) -> Result<(), ZoneError> {
        let owner = self.zone.owner(name)?;
        let mut srvs = Vec::with_capacity(records.len());
        for (priority, weight, port, target) in records {
            let target = self.zone.target(target)?;
            srvs.push(Record::from_rdata(
                owner.clone(),
                ttl,
                RData::SRV(SRV::new(*priority, *weight, *port, target)),
            ));
        }
        self.zone.replace(name, &owner, &[(RecordType::SRV, srvs)])
    }

    /// Removes every record of `name`: later queries get NXDOMAIN (unless names below it
    /// still exist).
    pub fn remove(&self, name: &str) -> Result<(), ZoneError> {
        let owner = LowerName::new(&self.zone.owner(name)?);
        let mut records = self.zone.lock();
        records.by_name.retain(|(n, _), _| *n != owner);
        self.zone.publish(&mut records)
    }

    /// Stops answering and closes the sockets. Queries sent afterwards get no answer (UDP)
    /// or a refused connection (TCP).
    pub fn stop(&self) {
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(server) = server {
            server.shutdown_token().cancel();
            // Dropping the server aborts its tasks, which own (and so close) the sockets.
            drop(server);
        }
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsServer")
            .field("addr", &self.addr)
            .field("origin", &self.zone.origin.to_ascii())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl Zone {
    fn lock(&self) -> MutexGuard<'_, ZoneRecords> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self, name: &str, reason: impl Into<String>) -> ZoneError {
        ZoneError {
            zone: self.origin.to_ascii(),
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// The absolute owner name of `name`, which must be in the zone.
    fn owner(&self, name: &str) -> Result<Name, ZoneError> {
        let owner = self.target(name)?;
        if !self.origin.zone_of(&owner) {
            return Err(self.error(name, "not in the zone"));
        }
        Ok(owner)
    }

    /// `name` made absolute: kept when it ends with a dot or with the origin, else appended
    /// to the origin.
    fn target(&self, name: &str) -> Result<Name, ZoneError> {
        let parsed = parse_name(name).map_err(|reason| self.error(name, reason))?;
        if parsed.is_fqdn() {
            return Ok(parsed);
        }
        let mut absolute = parsed.clone();
        absolute.set_fqdn(true);
        if self.origin.zone_of(&absolute) {
            return Ok(absolute);
        }
        parsed
            .append_domain(&self.origin)
            .map_err(|e| self.error(name, e.to_string()))
    }

    /// Replaces the records of the given types at `owner`, then serves the new zone.
    fn replace(
        &self,
        name: &str,
        owner: &Name,
        sets: &[(RecordType, Vec<Record>)],
    ) -> Result<(), ZoneError> {
        if *owner == self.origin {
            return Err(self.error(name, "the zone apex holds the SOA; use a name below it"));
        }
        let key = LowerName::new(owner);
        let mut records = self.lock();
        for (record_type, set) in sets {
            if set.is_empty() {
                records.by_name.remove(&(key.clone(), *record_type));
            } else {
                records
                    .by_name
                    .insert((key.clone(), *record_type), set.clone());
            }
        }
        self.publish(&mut records)
    }

    /// Builds a zone handler from `records` (with a fresh SOA serial) and swaps it in.
    fn publish(&self, records: &mut ZoneRecords) -> Result<(), ZoneError> {
        records.serial = records.serial.wrapping_add(1);
        let origin = &self.origin;
        let mut handler: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let under_origin = |label: &str| {
            Name::from_ascii(label)
                .and_then(|name| name.append_domain(origin))
                .unwrap_or_else(|_| origin.clone())
        };
        let soa = SOA::new(
            under_origin("ns"),
            under_origin("hostmaster"),
            records.serial,
            3600,
            600,
            86400,
            NEGATIVE_TTL,
        );
        let soa = Record::from_rdata(origin.clone(), NEGATIVE_TTL, RData::SOA(soa));
        let serial = records.serial;
        if !handler.upsert_mut(soa, serial) {
            return Err(self.error(&origin.to_ascii(), "the SOA record was refused"));
        }
        for set in records.by_name.values() {
            for record in set {
                if !handler.upsert_mut(record.clone(), serial) {
                    return Err(self.error(&record.name.to_ascii(), "record refused by the zone"));
                }
            }
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(origin), vec![Arc::new(handler)]);
        *self.catalog.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(catalog);
        Ok(())
    }
}

/// Parses a DNS name in ASCII (underscores allowed, for SRV owners).
fn parse_name(name: &str) -> Result<Name, String> {
    if name.is_empty() {
        return Err("empty name".to_owned());
    }
    Name::from_ascii(name).map_err(|e| e.to_string())
}

/// Binds UDP and TCP on the same free port of 127.0.0.1, retrying when TCP finds the port
/// taken.
fn bind_same_port() -> io::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = udp.local_addr()?;
        match std::net::TcpListener::bind(addr) {
            Ok(tcp) => {
                udp.set_nonblocking(true)?;
                tcp.set_nonblocking(true)?;
                let udp = tokio::net::UdpSocket::from_std(udp)?;
                let tcp = tokio::net::TcpListener::from_std(tcp)?;
                return Ok((udp, tcp));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("no free port for UDP and TCP")))
}

/// Serves requests from whichever catalog is current, so that records can be swapped while
/// the server runs.
struct SwapHandler {
    catalog: Arc<RwLock<Arc<Catalog>>>,
}

// `RequestHandler` is declared with `async_trait`; this is the signature it expands to.
impl RequestHandler for SwapHandler {
    fn handle_request<'life0, 'life1, 'async_trait, R, T>(
        &'life0 self,
        request: &'life1 Request,
        response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: 'async_trait + ResponseHandler,
        T: 'async_trait + Time,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let catalog = self
            .catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Box::pin(async move {
            catalog
                .handle_request::<R, T>(request, response_handle)
                .await
        })
    }
}
