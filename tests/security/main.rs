//! End-to-end tests of mesh's security: MeshClient → a real DNS server → MeshServer over
//! loopback, with certificates from a development CA; mutual TLS both ways, identities
//! refused on either side, the peer-authentication modes, bad certificates, rotation under
//! load and the client TLS modes of DestinationRules. Paused tokio time throughout: the TLS
//! handshakes are real and certificate dates are read from the wall clock.

mod certs;
mod client_modes;
mod modes;
mod mtls;
mod rotation;
mod support;
