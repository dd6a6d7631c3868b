//! The security settings through the three front doors: the same config from code, a file
//! and the environment, and bad values in each named by path or variable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{
    CertificateFiles, CertificateLayout, ClientTls, ClientTlsMode, ConfigError, DestinationBuilder,
    Format, MeshConfig, MtlsMode, OutboundMode, OutboundTrafficPolicy,
};

fn yaml(text: &str) -> Result<MeshConfig, ConfigError> {
    MeshConfig::from_str(text, Format::Yaml)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A fresh directory holding empty files named `files`; removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn with(name: &str, files: &[&str]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("mesh-core-security-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), "").unwrap();
        }
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn text(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The security section of a file, in code.
fn reference() -> MeshConfig {
    MeshConfig::builder()
        .service("reviews")
        .namespace("bookinfo")
        .label("team", "books")
        .certificates(CertificateFiles {
            refresh: secs(10),
            ..CertificateFiles::in_dir(
                "/var/run/secrets/workload-spiffe-credentials",
                CertificateLayout::Spire,
            )
        })
        .root_namespace("mesh-root")
        .trust_domain_aliases(["old.example.org"])
        .mtls(MtlsMode::Strict)
        .identity_template("spiffe://{trust_domain}/ns/{namespace}/sa/{service}-sa")
        .outbound(OutboundTrafficPolicy {
            mode: OutboundMode::RegistryOnly,
            allowed_hosts: vec!["api.example.com".to_owned()],
        })
        .tls(ClientTls::mode(ClientTlsMode::IstioMutual))
        .destination(
            DestinationBuilder::new("payments.example.com").tls(ClientTls {
                ca_certificates: Some("/etc/ssl/ca.pem".into()),
                sni: Some("payments.example.com".to_owned()),
                ..ClientTls::mode(ClientTlsMode::Simple)
            }),
        )
        .build()
        .unwrap()
}

const REFERENCE_YAML: &str = r#"
workload: {service: reviews, namespace: bookinfo, labels: {team: books}}
security:
  certificates: {dir: /var/run/secrets/workload-spiffe-credentials, layout: spire, refresh: 10s}
  rootNamespace: mesh-root
  trustDomainAliases: [old.example.org]
  mtls: {mode: STRICT}
  identityTemplate: "spiffe://{trust_domain}/ns/{namespace}/sa/{service}-sa"
  outbound: {mode: REGISTRY_ONLY, allowedHosts: [api.example.com]}
defaults:
  tls: {mode: ISTIO_MUTUAL}
destinations:
- host: payments.example.com
  tls: {mode: SIMPLE, caCertificates: /etc/ssl/ca.pem, sni: payments.example.com}
"#;

#[test]
fn file_and_code_agree() {
    let c = yaml(REFERENCE_YAML).unwrap();
    assert_eq!(c, reference());
    assert!(c.warnings.is_empty());

    let toml = r#"
[workload]
service = "reviews"
namespace = "bookinfo"
labels = { team = "books" }

[security]
rootNamespace = "mesh-root"
trustDomainAliases = ["old.example.org"]
mtls = "STRICT"
identityTemplate = "spiffe://{trust_domain}/ns/{namespace}/sa/{service}-sa"
certificates = { dir = "/var/run/secrets/workload-spiffe-credentials", layout = "spire", refresh = "10s" }
outbound = { mode = "REGISTRY_ONLY", allowedHosts = ["api.example.com"] }

[defaults]
tls = { mode = "ISTIO_MUTUAL" }

[[destinations]]
host = "payments.example.com"
tls = { mode = "SIMPLE", caCertificates = "/etc/ssl/ca.pem", sni = "payments.example.com" }
"#;
    assert_eq!(
        MeshConfig::from_str(toml, Format::Toml).unwrap(),
        reference()
    );
}

#[test]
fn certificate_files_in_a_file() {
    let c = yaml("security: {certificates: {chain: /c.pem, key: /k.pem, roots: /r.pem}}").unwrap();
    assert_eq!(
        c.security.certificates,
        Some(CertificateFiles {
            chain: "/c.pem".into(),
            key: "/k.pem".into(),
            roots: "/r.pem".into(),
            refresh: CertificateFiles::DEFAULT_REFRESH,
        })
    );
    let c = yaml("security: {certificates: {dir: /etc/certs}}").unwrap();
    assert_eq!(
        c.security.certificates,
        Some(CertificateFiles::in_dir(
            "/etc/certs",
            CertificateLayout::Istio
        )),
        "Istio's layout unless told"
    );
    let c = yaml("security: {certificates: {dir: /tls, layout: certManager}}").unwrap();
    assert_eq!(
        c.security.certificates.unwrap().chain,
        PathBuf::from("/tls/tls.crt")
    );
    let c = yaml("security: {mtls: DISABLE, outbound: {allowedHosts: [API.Example.com]}}").unwrap();
    assert_eq!(c.security.default_mtls, MtlsMode::Disable);
    assert_eq!(c.security.outbound.mode, OutboundMode::AllowAny);
    assert_eq!(c.security.outbound.allowed_hosts, ["api.example.com"]);
}

#[test]
fn bad_values_in_a_file_name_their_path() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "security: {certificates: {dir: /d, chain: /c}}",
            "security.certificates.chain",
            "not both",
        ),
        (
            "security: {certificates: {layout: spire}}",
            "security.certificates.layout",
            "applies only with dir",
        ),
        (
            "security: {certificates: {chain: /c, roots: /r}}",
            "security.certificates.key",
            "is required",
        ),
        (
            "security: {certificates: {refresh: 1s}}",
            "security.certificates",
            "set dir",
        ),
        (
            "security: {certificates: {dir: /d, layout: Spire}}",
            "security.certificates.layout",
            "\"Spire\": expected one of istio, spire, certManager",
        ),
        (
            "security: {certificates: {dir: /d, refresh: 0s}}",
            "security.certificates.refresh",
            "must be greater than 0",
        ),
        (
            "security: {certificates: {dir: /d, refresh: 5}}",
            "security.certificates.refresh",
            "\"5\"",
        ),
        (
            "security: {mtls: STRICTER}",
            "security.mtls",
            "\"STRICTER\": expected one of STRICT, PERMISSIVE, DISABLE",
        ),
        (
            "security: {mtls: {mode: UNSET}}",
            "security.mtls.mode",
            "\"UNSET\"",
        ),
        ("security: {mtls: {}}", "security.mtls.mode", "is required"),
        (
            "security: {outbound: {mode: DENY}}",
            "security.outbound.mode",
            "ALLOW_ANY, REGISTRY_ONLY",
        ),
        (
            "security: {outbound: {allowedHosts: [ok.com, '*']}}",
            "security.outbound.allowedHosts[1]",
            "\"*\"",
        ),
        (
            "security: {rootNamespace: Istio}",
            "security.rootNamespace",
            "\"Istio\"",
        ),
        (
            "security: {trustDomainAliases: [Bad_Domain]}",
            "security.trustDomainAliases[0]",
            "\"Bad_Domain\"",
        ),
        (
            "security: {identityTemplate: '{namespace}'}",
            "security.identityTemplate",
            "spiffe://",
        ),
        (
            "defaults: {tls: {mode: SIMPLE}}",
            "defaults.tls.caCertificates",
            "unless insecureSkipVerify",
        ),
        (
            "destinations: [{host: a, tls: {mode: MUTUAL, credentialName: a-cert}}]",
            "destinations[0].tls.credentialName",
            "not supported here",
        ),
        (
            "destinations: [{host: a, subsets: [{name: v1, tls: {mode: BOGUS}}]}]",
            "destinations[0].subsets[0].tls.mode",
            "\"BOGUS\"",
        ),
        (
            "destinations: [{host: a, tls: {mode: MUTUAL, clientCertificate: /c, caCertificates: /ca}}]",
            "destinations[0].tls.privateKey",
            "is required for MUTUAL",
        ),
        (
            "workload: {labels: {tier: '-x'}}",
            "workload.labels.tier",
            "\"-x\"",
        ),
    ];
    for (text, path, detail) in cases {
        let e = yaml(text).expect_err(text);
        assert_eq!(e.path(), Some(*path), "{text}: {e}");
        assert!(e.to_string().contains(detail), "{detail}: {e}");
    }
    // Unknown keys are errors in mesh's own format, also inside tls and security.
    for (text, path) in [
        ("security: {mtlsMode: STRICT}", "security.mtlsMode"),
        (
            "destinations: [{host: a, tls: {mode: DISABLE, typo: 1}}]",
            "destinations[0].tls.typo",
        ),
        ("security: {mtls: {mode: STRICT, x: 1}}", "security.mtls.x"),
        (
            "security: {outbound: {allowedHost: [a]}}",
            "security.outbound.allowedHost",
        ),
    ] {
        let e = yaml(text).expect_err(text);
        assert!(matches!(e, ConfigError::UnknownField { .. }), "{e}");
        assert_eq!(e.path(), Some(path), "{e}");
    }
}

// ---- the environment ----

#[test]
fn certificate_directories_are_told_by_their_files() {
    let istio = TempDir::with(
        "istio",
        &[
            "cert-chain.pem",
            "key.pem",
            "root-cert.pem",
            "svid.pem",
            "svid_key.pem",
            "bundle.pem",
        ],
    );
    let spire = TempDir::with(
        "spire",
        &["svid.pem", "svid_key.pem", "bundle.pem", "tls.crt"],
    );
    let cert_manager = TempDir::with("cert-manager", &["tls.crt", "tls.key", "ca.crt"]);
    for (dir, layout) in [
        (&istio, CertificateLayout::Istio),
        (&spire, CertificateLayout::Spire),
        (&cert_manager, CertificateLayout::CertManager),
    ] {
        assert_eq!(CertificateLayout::detect(dir.path()), Some(layout));
        let c = MeshConfig::from_vars([("MESH_CERT_DIR", dir.text())]).unwrap();
        assert_eq!(
            c.security.certificates,
            Some(CertificateFiles::in_dir(dir.path(), layout)),
            "{layout}"
        );
    }
    let c = MeshConfig::from_vars([
        ("MESH_CERT_DIR", spire.text()),
        ("MESH_CERT_REFRESH", "30s".to_owned()),
    ])
    .unwrap();
    assert_eq!(c.security.certificates.unwrap().refresh, secs(30));

    // A directory of no known layout: the error names the directory and the files.
    let partial = TempDir::with("partial", &["tls.crt", "tls.key", "key.pem"]);
    let e = MeshConfig::from_vars([("MESH_CERT_DIR", partial.text())]).unwrap_err();
    let text = e.to_string();
    assert_eq!(e.path(), Some("MESH_CERT_DIR"), "{text}");
    for needle in [
        partial.text().as_str(),
        "cert-chain.pem, key.pem, root-cert.pem (istio)",
        "svid.pem, svid_key.pem, bundle.pem (spire)",
        "tls.crt, tls.key, ca.crt (certManager)",
    ] {
        assert!(text.contains(needle), "`{needle}` missing in: {text}");
    }
    let e = MeshConfig::from_vars([("MESH_CERT_DIR", "/nonexistent/certs")]).unwrap_err();
    assert!(
        e.to_string()
            .contains("/nonexistent/certs is not a readable directory"),
        "{e}"
    );
}

#[test]
fn certificate_files_from_variables() {
    let c = MeshConfig::from_vars([
        ("MESH_CERT_CHAIN", "/c.pem"),
        ("MESH_CERT_KEY", "/k.pem"),
        ("MESH_CERT_ROOTS", "/r.pem"),
    ])
    .unwrap();
    assert_eq!(
        c.security.certificates,
        Some(CertificateFiles {
            chain: "/c.pem".into(),
            key: "/k.pem".into(),
            roots: "/r.pem".into(),
            refresh: CertificateFiles::DEFAULT_REFRESH,
        })
    );
    let e = MeshConfig::from_vars([("MESH_CERT_CHAIN", "/c.pem")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MESH_CERT_CHAIN: invalid value \"/c.pem\": MESH_CERT_CHAIN, MESH_CERT_KEY and MESH_CERT_ROOTS go together; MESH_CERT_KEY and MESH_CERT_ROOTS are not set"
    );
    let e = MeshConfig::from_vars([("MESH_CERT_KEY", "/k.pem"), ("MESH_CERT_ROOTS", "/r.pem")])
        .unwrap_err();
    assert!(e.to_string().ends_with("MESH_CERT_CHAIN is not set"), "{e}");
    let dir = TempDir::with("both", &["cert-chain.pem", "key.pem", "root-cert.pem"]);
    let e = MeshConfig::from_vars([
        ("MESH_CERT_DIR", dir.text()),
        ("MESH_CERT_KEY", "/k.pem".to_owned()),
    ])
    .unwrap_err();
    assert_eq!(e.path(), Some("MESH_CERT_DIR"));
    assert!(
        e.to_string()
            .contains("not both (MESH_CERT_KEY is set too)"),
        "{e}"
    );
    let e = MeshConfig::from_vars([("MESH_CERT_REFRESH", "10s")]).unwrap_err();
    assert_eq!(e.path(), Some("MESH_CERT_REFRESH"));
    assert!(
        e.to_string().contains("applies only with certificates"),
        "{e}"
    );
    // A bad refresh from the file is the file's, not the directory variable's.
    let file = dir.path().join("refresh.yaml");
    std::fs::write(&file, "security: {certificates: {dir: /d, refresh: 0s}}\n").unwrap();
    let e = MeshConfig::from_vars([
        ("MESH_CONFIG", file.display().to_string()),
        ("MESH_CERT_DIR", dir.text()),
    ])
    .unwrap_err();
    assert_eq!(e.path(), Some("security.certificates.refresh"), "{e}");
    assert!(e.file().is_some(), "{e}");
    // A validation error about a value a variable set names the variable.
    let e = MeshConfig::from_vars([
        ("MESH_CERT_DIR", dir.text()),
        ("MESH_CERT_REFRESH", "0s".to_owned()),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "MESH_CERT_REFRESH: invalid value \"0s\": must be greater than 0"
    );
}

#[test]
fn variables_over_the_file() {
    let dir = TempDir::with("over-file", &["svid.pem", "svid_key.pem", "bundle.pem"]);
    let file = dir.path().join("mesh.yaml");
    std::fs::write(
        &file,
        "security:\n  certificates: {chain: /c.pem, key: /k.pem, roots: /r.pem, refresh: 7s}\n  \
         outbound: {allowedHosts: [a.example.com]}\n  trustDomainAliases: [a.org]\n",
    )
    .unwrap();
    let file = file.display().to_string();
    // The refresh alone lays over the file's certificates.
    let c = MeshConfig::from_vars([("MESH_CONFIG", file.as_str()), ("MESH_CERT_REFRESH", "1s")])
        .unwrap();
    let certs = c.security.certificates.unwrap();
    assert_eq!(
        (certs.chain.as_path(), certs.refresh),
        (Path::new("/c.pem"), secs(1))
    );
    // A directory replaces the file's files and keeps its refresh.
    let dir_text = dir.text();
    let c = MeshConfig::from_vars([
        ("MESH_CONFIG", file.as_str()),
        ("MESH_CERT_DIR", dir_text.as_str()),
        ("MESH_ALLOWED_HOSTS", "b.example.com,*.Example.org"),
        ("MESH_TRUST_DOMAIN_ALIASES", "b.org, c.org"),
    ])
    .unwrap();
    assert_eq!(
        c.security.certificates,
        Some(CertificateFiles {
            refresh: secs(7),
            ..CertificateFiles::in_dir(dir.path(), CertificateLayout::Spire)
        })
    );
    assert_eq!(
        c.security.outbound.allowed_hosts,
        ["a.example.com", "b.example.com", "*.example.org"],
        "added to the file's"
    );
    assert_eq!(
        c.security.trust_domain_aliases,
        ["b.org", "c.org"],
        "replaced"
    );
}

#[test]
fn environment_file_and_code_agree() {
    let dir = TempDir::with("agree", &["cert-chain.pem", "key.pem", "root-cert.pem"]);
    let from_env = MeshConfig::from_vars([
        ("MESH_SERVICE", "reviews"),
        ("POD_NAMESPACE", "bookinfo"),
        ("MESH_WORKLOAD_LABELS", "team=books, tier="),
        ("MESH_CERT_DIR", dir.text().as_str()),
        ("MESH_CERT_REFRESH", "10s"),
        ("MESH_MTLS_MODE", "STRICT"),
        ("MESH_OUTBOUND_POLICY", "REGISTRY_ONLY"),
        ("MESH_ALLOWED_HOSTS", "api.example.com, *.googleapis.com"),
        ("MESH_TRUST_DOMAIN_ALIASES", "old.example.org"),
        ("MESH_ROOT_NAMESPACE", "mesh-root"),
        ("MESH_NUM_TRUSTED_PROXIES", "2"),
    ])
    .unwrap();
    let from_file = yaml(&format!(
        "workload: {{service: reviews, namespace: bookinfo, labels: {{team: books, tier: ''}}}}\n\
         security:\n  certificates: {{dir: '{}', refresh: 10s}}\n  mtls: STRICT\n  \
         outbound: {{mode: REGISTRY_ONLY, allowedHosts: [api.example.com, '*.googleapis.com']}}\n  \
         trustDomainAliases: [old.example.org]\n  rootNamespace: mesh-root\n  \
         numTrustedProxies: 2\n",
        dir.text()
    ))
    .unwrap();
    let from_code = MeshConfig::builder()
        .service("reviews")
        .namespace("bookinfo")
        .label("team", "books")
        .label("tier", "")
        .certificates(CertificateFiles {
            refresh: secs(10),
            ..CertificateFiles::in_dir(dir.path(), CertificateLayout::Istio)
        })
        .mtls(MtlsMode::Strict)
        .outbound(OutboundTrafficPolicy {
            mode: OutboundMode::RegistryOnly,
            allowed_hosts: vec!["api.example.com".to_owned(), "*.googleapis.com".to_owned()],
        })
        .trust_domain_aliases(["old.example.org"])
        .root_namespace("mesh-root")
        .num_trusted_proxies(2)
        .build()
        .unwrap();
    assert_eq!(from_env, from_code);
    assert_eq!(from_file, from_code);
    assert_eq!(
        from_env.workload.labels,
        BTreeMap::from([
            ("team".to_owned(), "books".to_owned()),
            ("tier".to_owned(), String::new())
        ])
    );
}

#[test]
fn bad_variables_name_the_variable() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "MESH_MTLS_MODE",
            "strict",
            "MESH_MTLS_MODE: invalid value \"strict\": expected one of STRICT, PERMISSIVE, DISABLE",
        ),
        (
            "MESH_OUTBOUND_POLICY",
            "DENY",
            "MESH_OUTBOUND_POLICY: invalid value \"DENY\": expected one of ALLOW_ANY, REGISTRY_ONLY",
        ),
        (
            "MESH_ALLOWED_HOSTS",
            "a.com, *",
            "MESH_ALLOWED_HOSTS: invalid value \"a.com, *\": `*`: `*` alone is not a host",
        ),
        (
            "MESH_TRUST_DOMAIN_ALIASES",
            "ok.org,Not_OK",
            "MESH_TRUST_DOMAIN_ALIASES: invalid value \"ok.org,Not_OK\": `Not_OK`: must be a DNS name",
        ),
        (
            "MESH_WORKLOAD_LABELS",
            "team",
            "MESH_WORKLOAD_LABELS: invalid value \"team\": `team`: expected key=value",
        ),
        (
            "MESH_WORKLOAD_LABELS",
            "team=a*",
            "MESH_WORKLOAD_LABELS: invalid value \"team=a*\": `team=a*`: label value wildcards",
        ),
        (
            "MESH_ROOT_NAMESPACE",
            "Istio",
            "MESH_ROOT_NAMESPACE: invalid value \"Istio\": must be a DNS label",
        ),
        (
            "MESH_NUM_TRUSTED_PROXIES",
            "-1",
            "MESH_NUM_TRUSTED_PROXIES: invalid value \"-1\": expected a whole number",
        ),
        (
            "MESH_CERT_REFRESH",
            "soon",
            "MESH_CERT_REFRESH: invalid value \"soon\"",
        ),
    ];
    for (name, value, start) in cases {
        let e = MeshConfig::from_vars([(*name, *value)]).unwrap_err();
        assert!(e.to_string().starts_with(start), "{start}\n{e}");
        assert_eq!(e.path(), Some(*name));
    }
}
