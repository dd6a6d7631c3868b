//! TLS: workload certificates, mutual TLS on both stacks.
