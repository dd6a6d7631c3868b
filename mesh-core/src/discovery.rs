//! DNS refresh decisions: TTL clamping with jitter, and what a failed or NXDOMAIN answer does
//! to the last good endpoint set.
