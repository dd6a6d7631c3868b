//! The variants a round measures, and how they are named on the command line.

use std::fmt;
use std::net::SocketAddr;

/// One way of sending the load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// A plain hyper-util pooled client to the plain server.
    Bare,
    /// A plain hyper-util pooled client over mutual TLS to a plain hyper server behind a TLS
    /// acceptor (the physical limit with mTLS).
    BareTls,
    /// `MeshClient` with its defaults to the plain server.
    MeshDefault,
    /// Everything on, client and server.
    MeshFull,
    /// The bare client through a proxy at `addr`, named `label` in the table.
    Via {
        /// What the table calls it (the address when not given).
        label: String,
        /// Where the proxy listens.
        addr: SocketAddr,
    },
}

impl Variant {
    /// Reads `bare`, `bare-tls`, `mesh-default`, `mesh-full`, `via=ADDR` or `via=LABEL@ADDR`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "bare" => return Ok(Self::Bare),
            "bare-tls" => return Ok(Self::BareTls),
            "mesh-default" => return Ok(Self::MeshDefault),
            "mesh-full" => return Ok(Self::MeshFull),
            _ => {}
        }
        let Some(spec) = s.strip_prefix("via=") else {
            return Err(format!(
                "unknown variant `{s}`: expected bare, bare-tls, mesh-default, mesh-full, via=ADDR or via=LABEL@ADDR"
            ));
        };
        let (label, addr) = match spec.split_once('@') {
            Some((label, addr)) if !label.is_empty() => (label.to_owned(), addr),
            Some(_) => return Err(format!("variant `{s}`: empty label before `@`")),
            None => (spec.to_owned(), spec),
        };
        let addr = addr
            .parse()
            .map_err(|e| format!("variant `{s}`: bad address `{addr}`: {e}"))?;
        Ok(Self::Via { label, addr })
    }

    /// The label of a `via` variant.
    pub(crate) fn via_label(&self) -> Option<&str> {
        match self {
            Self::Via { label, .. } => Some(label),
            _ => None,
        }
    }

    /// The command-line form, which [`Variant::parse`] reads back.
    pub(crate) fn spec(&self) -> String {
        match self {
            Self::Via { label, addr } => format!("via={label}@{addr}"),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bare => f.pad("bare"),
            Self::BareTls => f.pad("bare-tls"),
            Self::MeshDefault => f.pad("mesh-default"),
            Self::MeshFull => f.pad("mesh-full"),
            Self::Via { label, .. } => f.pad(&format!("via={label}")),
        }
    }
}
