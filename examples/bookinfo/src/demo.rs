//! The one-command demo: every service, the gateway, a DNS server and a development CA on
//! loopback.
