//! The telemetry section through every front door: files, variables, code and Istio's
//! Telemetry documents, and bad values in each.

use std::path::PathBuf;

use proptest::prelude::*;

use super::*;
use crate::telemetry::{Propagation, PropagationSet};

/// Asserts that `e` is about `path` and that its message names the path and every needle.
#[track_caller]
fn assert_names(e: &ConfigError, path: &str, needles: &[&str]) {
    let text = e.to_string();
    assert_eq!(e.path(), Some(path), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "`{needle}` missing in: {text}");
    }
}

fn yaml(text: &str) -> Result<MeshConfig, ConfigError> {
    MeshConfig::from_str(text, Format::Yaml)
}

fn vars(vars: &[(&str, &str)]) -> Result<MeshConfig, ConfigError> {
    MeshConfig::from_vars(vars.iter().copied())
}

fn json_log(path: &str) -> AccessLogConfig {
    AccessLogConfig {
        format: AccessLogFormat::Json,
        output: AccessLogOutput::File(PathBuf::from(path)),
    }
}

/// The telemetry of the README's example, built in code.
fn reference() -> TelemetryConfig {
    TelemetryConfig {
        metrics: false,
        cluster_id: "east".to_owned(),
        tracing: false,
        propagation: PropagationSet::EMPTY
            .with(Propagation::W3c)
            .with(Propagation::B3Single),
        generate_request_id: false,
        propagate_headers: vec!["end-user".to_owned(), "x-tenant".to_owned()],
        propagate_cookies: vec!["user".to_owned()],
        client_access_log: Some(json_log("/var/log/mesh/client.log")),
        server_access_log: Some(AccessLogConfig::default()),
    }
}

const REFERENCE_YAML: &str = r#"
telemetry:
  metrics: false
  clusterId: east
  tracing: false
  propagation: [tracecontext, b3]
  generateRequestId: false
  propagateHeaders: [end-user, X-Tenant]
  propagateCookies: [user]
  accessLog: {format: text, path: /dev/stdout}
  clientAccessLog: {format: json, path: /var/log/mesh/client.log}
"#;

const REFERENCE_TOML: &str = r#"
[telemetry]
metrics = false
clusterId = "east"
tracing = false
propagation = ["tracecontext", "b3"]
generateRequestId = false
propagateHeaders = ["end-user", "x-tenant"]
propagateCookies = ["user"]
accessLog = { path = "-" }
clientAccessLog = { format = "JSON", path = "/var/log/mesh/client.log" }
"#;

#[test]
fn same_telemetry_from_every_front_door() {
    let from_code = MeshConfig::builder()
        .telemetry(reference())
        .build()
        .unwrap();
    let from_yaml = yaml(REFERENCE_YAML).unwrap();
    let from_toml = MeshConfig::from_str(REFERENCE_TOML, Format::Toml).unwrap();
    let from_env = vars(&[
        ("MESH_TELEMETRY_METRICS", "false"),
        ("ISTIO_META_CLUSTER_ID", "east"),
        ("MESH_TRACING", "0"),
        ("OTEL_PROPAGATORS", "tracecontext, b3"),
        ("MESH_GENERATE_REQUEST_ID", "false"),
        ("MESH_PROPAGATE_HEADERS", "end-user,X-Tenant"),
        ("MESH_PROPAGATE_COOKIES", "user"),
        ("MESH_ACCESS_LOG", "-"),
        ("MESH_CLIENT_ACCESS_LOG", "/var/log/mesh/client.log"),
    ])
    .unwrap();
    assert_eq!(from_yaml.telemetry, reference());
    assert_eq!(from_toml.telemetry, reference());
    assert_eq!(from_code, from_yaml);
    // The environment's one format applies to every log; JSON to the client's file here.
    let mut expected = reference();
    expected.client_access_log.as_mut().unwrap().format = AccessLogFormat::Text;
    assert_eq!(from_env.telemetry, expected);
}

#[test]
fn defaults_and_switches() {
    let config = yaml("telemetry: {}").unwrap();
    assert_eq!(config.telemetry, TelemetryConfig::default());
    assert_eq!(config.telemetry.cluster_id, DEFAULT_CLUSTER_ID);
    assert_eq!(
        config.telemetry.propagation,
        PropagationSet::EMPTY
            .with(Propagation::W3c)
            .with(Propagation::B3Multi)
    );

    // accessLog alone turns both on; a per-stack `off` turns one off again.
    let t = yaml("telemetry: {accessLog: {format: json}, serverAccessLog: off}")
        .unwrap()
        .telemetry;
    assert_eq!(
        t.client_access_log,
        Some(AccessLogConfig {
            format: AccessLogFormat::Json,
            output: AccessLogOutput::Stdout,
        })
    );
    assert_eq!(t.server_access_log, None);
    let t = yaml("telemetry: {propagation: [none]}").unwrap().telemetry;
    assert!(t.propagation.is_empty());
    let t = yaml("telemetry: {propagation: []}").unwrap().telemetry;
    assert!(t.propagation.is_empty());

    // Variables: MESH_CLUSTER_ID wins over Istio's name; none empties the set; off turns
    // the file's logs off; the format applies to what is on.
    let t = vars(&[
        ("MESH_CLUSTER_ID", "west"),
        ("ISTIO_META_CLUSTER_ID", "east"),
        ("OTEL_PROPAGATORS", "none"),
        ("MESH_ACCESS_LOG", "/tmp/access.log"),
        ("MESH_SERVER_ACCESS_LOG", "off"),
        ("MESH_ACCESS_LOG_FORMAT", "json"),
    ])
    .unwrap()
    .telemetry;
    assert_eq!(t.cluster_id, "west");
    assert!(t.propagation.is_empty());
    assert_eq!(t.client_access_log, Some(json_log("/tmp/access.log")));
    assert_eq!(t.server_access_log, None);
    let t = vars(&[("MESH_ACCESS_LOG", "/dev/stdout")])
        .unwrap()
        .telemetry;
    assert_eq!(t.server_access_log, Some(AccessLogConfig::default()));
}

#[test]
fn other_otel_propagators_are_warnings_in_the_environment_only() {
    let config = vars(&[("OTEL_PROPAGATORS", "tracecontext,baggage")]).unwrap();
    assert_eq!(
        config.telemetry.propagation,
        PropagationSet::EMPTY.with(Propagation::W3c)
    );
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(config.warnings[0].path, "OTEL_PROPAGATORS");
    assert!(config.warnings[0].message.contains("baggage"));

    let e = yaml("telemetry: {propagation: [tracecontext, baggage]}").unwrap_err();
    assert_names(
        &e,
        "telemetry.propagation[1]",
        &["baggage", "not implemented"],
    );
}

#[test]
fn bad_values_name_path_and_value() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "telemetry: {propagateHeaders: [end-user, connection]}",
            "telemetry.propagateHeaders[1]",
            &["connection", "hop-by-hop"],
        ),
        (
            "telemetry: {propagateHeaders: [traceparent]}",
            "telemetry.propagateHeaders[0]",
            &["traceparent", "always propagated"],
        ),
        (
            "telemetry: {propagateHeaders: [x-request-id]}",
            "telemetry.propagateHeaders[0]",
            &["x-request-id"],
        ),
        (
            "telemetry: {propagateHeaders: [cookie]}",
            "telemetry.propagateHeaders[0]",
            &["propagateCookies"],
        ),
        (
            "telemetry: {propagateHeaders: [\"end user\"]}",
            "telemetry.propagateHeaders[0]",
            &["end user", "header name"],
        ),
        (
            "telemetry: {propagateHeaders: [a, a]}",
            "telemetry.propagateHeaders[1]",
            &["twice"],
        ),
        (
            "telemetry: {propagateCookies: [user, \"a;b\"]}",
            "telemetry.propagateCookies[1]",
            &["a;b", "cookie name"],
        ),
        (
            "telemetry: {clusterId: \"\"}",
            "telemetry.clusterId",
            &["empty"],
        ),
        (
            "telemetry: {propagation: [w3c]}",
            "telemetry.propagation[0]",
            &["w3c", "tracecontext"],
        ),
        (
            "telemetry: {propagation: [none, b3]}",
            "telemetry.propagation",
            &["none", "combined"],
        ),
        (
            "telemetry: {accessLog: {format: xml}}",
            "telemetry.accessLog.format",
            &["xml", "text or json"],
        ),
        (
            "telemetry: {clientAccessLog: {path: \"\"}}",
            "telemetry.clientAccessLog.path",
            &["empty"],
        ),
        (
            "telemetry: {serverAccessLog: on}",
            "telemetry.serverAccessLog",
            &["on"],
        ),
        (
            "telemetry: {metrics: yes please}",
            "telemetry.metrics",
            &["yes please"],
        ),
        (
            "telemetry: {accessLog: {file: /tmp/x}}",
            "telemetry.accessLog.file",
            &["unknown field", "format, path"],
        ),
    ];
    for (text, path, needles) in cases {
        let e = yaml(text).expect_err(text);
        assert_names(&e, path, needles);
    }
    let e = yaml("telemetry: {tracer: zipkin}").unwrap_err();
    assert!(e.to_string().contains("tracer"), "{e}");

    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        (
            &[("OTEL_PROPAGATORS", "tracecontext,w3c")],
            "OTEL_PROPAGATORS",
            &["tracecontext,w3c", "`w3c`"],
        ),
        (
            &[("MESH_PROPAGATE_HEADERS", "end-user,te")],
            "MESH_PROPAGATE_HEADERS",
            &["`te`", "hop-by-hop"],
        ),
        (
            &[("MESH_PROPAGATE_COOKIES", "us er")],
            "MESH_PROPAGATE_COOKIES",
            &["us er"],
        ),
        (
            &[("MESH_TRACING", "maybe")],
            "MESH_TRACING",
            &["maybe", "true or false"],
        ),
        (
            &[("MESH_ACCESS_LOG_FORMAT", "json")],
            "MESH_ACCESS_LOG_FORMAT",
            &["MESH_ACCESS_LOG"],
        ),
        (
            &[("MESH_ACCESS_LOG", "-"), ("MESH_ACCESS_LOG_FORMAT", "yaml")],
            "MESH_ACCESS_LOG_FORMAT",
            &["yaml", "text or json"],
        ),
        (
            &[("MESH_CLUSTER_ID", "a\u{7}b")],
            "MESH_CLUSTER_ID",
            &["control"],
        ),
    ];
    for (vars_, path, needles) in cases {
        let e = vars(vars_).expect_err(path);
        assert_names(&e, path, needles);
    }

    // Code: the same rules, by the file's paths.
    let t = TelemetryConfig {
        propagate_headers: vec!["End-User".to_owned()],
        ..TelemetryConfig::default()
    };
    let e = MeshConfig::builder().telemetry(t).build().unwrap_err();
    assert_names(
        &e,
        "telemetry.propagateHeaders[0]",
        &["End-User", "lowercase"],
    );
}

const TELEMETRY_DOC: &str = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
"#;

#[test]
fn istio_telemetry_documents() {
    let t = yaml(&format!(
        "{TELEMETRY_DOC}  accessLogging: [{{providers: [{{name: envoy}}]}}]\n"
    ))
    .unwrap()
    .telemetry;
    assert_eq!(t.client_access_log, Some(AccessLogConfig::default()));
    assert_eq!(t.server_access_log, Some(AccessLogConfig::default()));
    assert!(t.tracing);

    // Laid over mesh's own document: off for the client only, tracing off.
    let config = yaml(&format!(
        "telemetry: {{accessLog: {{format: json}}}}\n---{TELEMETRY_DOC}  accessLogging: [{{match: {{mode: CLIENT}}, disabled: true}}]\n  tracing: [{{randomSamplingPercentage: 0}}]\n"
    ))
    .unwrap();
    assert_eq!(config.telemetry.client_access_log, None);
    assert_eq!(
        config.telemetry.server_access_log.map(|l| l.format),
        Some(AccessLogFormat::Json)
    );
    assert!(!config.telemetry.tracing);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    let config = yaml(&format!(
        "{TELEMETRY_DOC}  selector: {{matchLabels: {{app: reviews}}}}\n  tracing: [{{disableSpanReporting: true, customTags: {{a: {{literal: {{value: b}}}}}}}}]\n  accessLogging: [{{providers: [{{name: otel}}], filter: {{expression: x}}}}]\n  metrics: [{{providers: [{{name: prometheus}}]}}]\n"
    ))
    .unwrap();
    assert!(!config.telemetry.tracing);
    assert_eq!(config.telemetry.client_access_log, None);
    let paths: Vec<String> = config.warnings.iter().map(|w| w.path.clone()).collect();
    let prefix = "Telemetry istio-system/mesh-default: spec.";
    for path in [
        "selector",
        "tracing[0].customTags",
        "accessLogging[0].providers[0].name",
        "accessLogging[0].filter",
        "metrics",
    ] {
        assert!(
            paths.contains(&format!("{prefix}{path}")),
            "{path} missing in {paths:?}"
        );
    }

    let e = yaml(&format!(
        "{TELEMETRY_DOC}  tracing: [{{randomSamplingPercentage: 150}}]\n"
    ))
    .unwrap_err();
    assert_names(
        &e,
        "Telemetry istio-system/mesh-default: spec.tracing[0].randomSamplingPercentage",
        &["150", "between 0 and 100"],
    );
    let e = yaml(&format!(
        "{TELEMETRY_DOC}  accessLogging: [{{match: {{mode: BOTH}}}}]\n"
    ))
    .unwrap_err();
    assert_names(
        &e,
        "Telemetry istio-system/mesh-default: spec.accessLogging[0].match.mode",
        &["BOTH"],
    );
    let e = yaml("apiVersion: telemetry.istio.io/v2\nkind: Telemetry\nmetadata: {name: x}\n")
        .unwrap_err();
    assert!(e.to_string().contains("telemetry.istio.io/v1"), "{e}");
}

/// A telemetry section made of its own keys and tricky values.
fn telemetry_yaml() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "metrics",
        "clusterId",
        "tracing",
        "propagation",
        "generateRequestId",
        "propagateHeaders",
        "propagateCookies",
        "accessLog",
        "clientAccessLog",
        "serverAccessLog",
        "format",
        "path",
    ]);
    let value = prop::sample::select(vec![
        "true",
        "0",
        "~",
        "''",
        "[]",
        "{}",
        "off",
        "[none]",
        "[none, b3]",
        "[tracecontext, b3multi, baggage]",
        "[end-user, Connection, \"a b\", traceparent]",
        "[user, \"a=b\"]",
        "{format: json, path: -}",
        "{format: xml}",
        "{path: ''}",
        "/dev/stdout",
        "\"\\u0000\"",
        "99999999999999999999",
        "[[1]]",
    ]);
    prop::collection::vec((0usize..3, key, value), 0..10).prop_map(|lines| {
        let body: String = lines
            .into_iter()
            .map(|(indent, k, v)| format!("  {}{k}: {v}\n", "  ".repeat(indent)))
            .collect();
        format!("telemetry:\n{body}")
    })
}

/// An Istio Telemetry document made of its keys and tricky values.
fn istio_telemetry_yaml() -> impl Strategy<Value = String> {
    let rule = prop::sample::select(vec![
        "{}",
        "{disabled: true}",
        "{disabled: 1}",
        "{providers: [{name: envoy}]}",
        "{providers: [{}]}",
        "{providers: envoy}",
        "{match: {mode: SERVER}}",
        "{match: {mode: 1}}",
        "{randomSamplingPercentage: 0}",
        "{randomSamplingPercentage: .nan}",
        "{randomSamplingPercentage: -1}",
        "{randomSamplingPercentage: 1e400}",
        "{disableSpanReporting: true}",
        "{filter: {expression: x}}",
        "[]",
        "~",
    ]);
    let key = prop::sample::select(vec!["accessLogging", "tracing", "metrics", "selector"]);
    prop::collection::vec((key, prop::collection::vec(rule, 0..3)), 0..4).prop_map(|fields| {
        let body: String = fields
            .into_iter()
            .map(|(k, rules)| format!("  {k}: [{}]\n", rules.join(", ")))
            .collect();
        format!("{TELEMETRY_DOC}{body}")
    })
}

proptest! {
    #[test]
    fn arbitrary_telemetry_sections_never_panic(s in telemetry_yaml()) {
        let _ = yaml(&s);
        // TOML and JSON from the same shapes, through serde's model.
        if let Ok(value) = serde_saphyr::from_str::<serde_json::Value>(&s) {
            let _ = MeshConfig::from_str(&value.to_string(), Format::Json);
        }
    }

    #[test]
    fn arbitrary_istio_telemetry_never_panics(s in istio_telemetry_yaml()) {
        let _ = yaml(&s);
    }

    #[test]
    fn arbitrary_telemetry_variables_never_panic(
        values in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "MESH_TELEMETRY_METRICS",
                    "MESH_CLUSTER_ID",
                    "ISTIO_META_CLUSTER_ID",
                    "MESH_TRACING",
                    "OTEL_PROPAGATORS",
                    "MESH_GENERATE_REQUEST_ID",
                    "MESH_PROPAGATE_HEADERS",
                    "MESH_PROPAGATE_COOKIES",
                    "MESH_ACCESS_LOG",
                    "MESH_CLIENT_ACCESS_LOG",
                    "MESH_SERVER_ACCESS_LOG",
                    "MESH_ACCESS_LOG_FORMAT",
                ]),
                "[a-zA-Z0-9 ,;=/\\-]{0,24}",
            ),
            0..6,
        )
    ) {
        let _ = MeshConfig::from_vars(values);
    }
}
