//! Compile errors and the field paths they name.

use super::*;

#[track_caller]
fn assert_err(err: &AuthzError, field: &str, value: &str, reason_has: &str) {
    assert_eq!(err.policy, "ns/p", "{err}");
    assert_eq!(err.field, field, "{err}");
    assert_eq!(err.value, value, "{err}");
    assert!(err.reason.contains(reason_has), "{err}");
}

#[test]
fn bad_ip_blocks_are_named_by_path() {
    let err = compile_err(vec![AuthzRule {
        from: vec![
            AuthzSource {
                principals: is(&["*"]),
                ..AuthzSource::default()
            },
            AuthzSource {
                ip_blocks: is(&["10.0.0.0/33"]),
                ..AuthzSource::default()
            },
        ],
        ..AuthzRule::default()
    }]);
    assert_err(
        &err,
        "rules[0].from[1].source.ipBlocks[0]",
        "10.0.0.0/33",
        "CIDR",
    );
    let err = compile_err(vec![
        AuthzRule::default(),
        source(|s| s.remote_ip_blocks = not(&["::1", "not-an-ip"])),
    ]);
    assert_err(
        &err,
        "rules[1].from[0].source.notRemoteIpBlocks[1]",
        "not-an-ip",
        "IP address",
    );
    let err = compile_err(vec![source(|s| s.ip_blocks = is(&["2001:db8::/129"]))]);
    assert_err(
        &err,
        "rules[0].from[0].source.ipBlocks[0]",
        "2001:db8::/129",
        "CIDR",
    );
    let err = compile_err(vec![source(|s| s.ip_blocks = is(&["10.0.0.0/"]))]);
    assert_err(
        &err,
        "rules[0].from[0].source.ipBlocks[0]",
        "10.0.0.0/",
        "CIDR",
    );
}

#[test]
fn bad_ports_are_named_by_path() {
    for bad in ["http", "65536", "-1", "+80", " 80"] {
        let err = compile_err(vec![operation(|o| o.ports = is(&["80", bad]))]);
        assert_err(&err, "rules[0].to[0].operation.ports[1]", bad, "bad port");
    }
    let err = compile_err(vec![operation(|o| o.ports = not(&["x"]))]);
    assert_err(
        &err,
        "rules[0].to[0].operation.notPorts[0]",
        "x",
        "bad port",
    );
    let err = compile_err(vec![when("destination.port", is(&["99999"]))]);
    assert_err(&err, "rules[0].when[0].values[0]", "99999", "bad port");
    assert!(
        Authorizer::new(&[policy(
            "p",
            AuthzAction::Allow,
            vec![operation(|o| o.ports = is(&["0", "65535"]))]
        )])
        .is_ok()
    );
}

#[test]
fn bad_path_templates_are_named_by_path() {
    let cases = [
        ("/api/{**}/items", "last operator"),
        ("/api/{**}/{*}", "last operator"),
        ("/api/{**}/", "last operator"),
        ("/api{*}", "'{' or '}'"),
        ("/api/{id}", "'{' or '}'"),
        ("/api/{*", "'{' or '}'"),
        ("/api/}", "'{' or '}'"),
        ("/{***}", "'{' or '}'"),
        ("api/{*}", "start with '/'"),
        ("*/{*}", "start with '/'"),
        ("/api/*/{*}", "'*'"),
        ("/api//{*}", "empty segment"),
    ];
    for (bad, reason) in cases {
        let err = compile_err(vec![operation(|o| o.paths = is(&["/ok", bad]))]);
        assert_err(&err, "rules[0].to[0].operation.paths[1]", bad, reason);
    }
    let err = compile_err(vec![operation(|o| o.paths = not(&["/{**}/x"]))]);
    assert_err(
        &err,
        "rules[0].to[0].operation.notPaths[0]",
        "/{**}/x",
        "last operator",
    );
}

#[test]
fn bad_condition_keys_are_named_by_path() {
    let key_err = |key: &str, reason: &str| {
        let err = compile_err(vec![
            AuthzRule::default(),
            AuthzRule {
                when: vec![
                    AuthzCondition {
                        key: "source.ip".into(),
                        matcher: is(&["10.0.0.1"]),
                    },
                    AuthzCondition {
                        key: key.into(),
                        matcher: is(&["x"]),
                    },
                ],
                ..AuthzRule::default()
            },
        ]);
        assert_err(&err, "rules[1].when[1].key", key, reason);
    };
    key_err("connection.sni", "not supported");
    key_err("source.serviceAccount", "not supported");
    key_err(
        "experimental.envoy.filters.network.mysql_proxy[db.table]",
        "not supported",
    );
    key_err("destination.labels[app]", "unknown attribute");
    key_err("request.header[x]", "unknown attribute");
    key_err("foo", "unknown attribute");
    key_err("", "unknown attribute");
    key_err("request.headers", "request.headers[<name>]");
    key_err("request.headers[]", "request.headers[<name>]");
    key_err("request.headers[a][b]", "request.headers[<name>]");
    key_err("request.headers[bad name]", "bad header name");
    key_err("request.headers[:scheme]", "pseudo-header");
    key_err("request.auth.claims", "request.auth.claims[<name>]");
    key_err("request.auth.claims[]", "request.auth.claims[<name>]");
    key_err("request.auth.claims[a]b", "request.auth.claims[<name>]");
    key_err("request.auth.claims[a][]", "request.auth.claims[<name>]");
}

#[test]
fn bad_condition_values_are_named_by_path() {
    let err = compile_err(vec![when(
        "source.ip",
        Matcher {
            values: strs(&["10.0.0.0/8"]),
            not_values: strs(&["10.1.0.0/16", "10.2.0.0/99"]),
        },
    )]);
    assert_err(&err, "rules[0].when[0].notValues[1]", "10.2.0.0/99", "CIDR");
    let err = compile_err(vec![when("remote.ip", is(&["x"]))]);
    assert_err(&err, "rules[0].when[0].values[0]", "x", "IP address");
    let err = compile_err(vec![when("destination.ip", is(&["1.2.3"]))]);
    assert_err(&err, "rules[0].when[0].values[0]", "1.2.3", "IP address");
}

#[test]
fn empty_values_sources_operations_and_conditions_are_refused() {
    let err = compile_err(vec![source(|s| s.principals = is(&["a", ""]))]);
    assert_err(
        &err,
        "rules[0].from[0].source.principals[1]",
        "",
        "empty value",
    );
    let err = compile_err(vec![operation(|o| o.methods = not(&[""]))]);
    assert_err(
        &err,
        "rules[0].to[0].operation.notMethods[0]",
        "",
        "empty value",
    );
    let err = compile_err(vec![when("request.headers[x]", is(&[""]))]);
    assert_err(&err, "rules[0].when[0].values[0]", "", "empty value");
    let err = compile_err(vec![from(AuthzSource::default())]);
    assert_err(&err, "rules[0].from[0].source", "{}", "at least one field");
    let err = compile_err(vec![to(AuthzOperation::default())]);
    assert_err(&err, "rules[0].to[0].operation", "{}", "at least one field");
    let err = compile_err(vec![when("source.ip", Matcher::default())]);
    assert_err(&err, "rules[0].when[0]", "source.ip", "values or notValues");
}

#[test]
fn errors_name_the_policy() {
    let mut p = policy(
        "bad",
        AuthzAction::Deny,
        vec![source(|s| s.ip_blocks = is(&["x"]))],
    );
    let good = allow_method("good", "GET");
    let err = Authorizer::new(&[good.clone(), p.clone()]).unwrap_err();
    assert_eq!(err.policy, "ns/bad");
    assert_eq!(
        err.to_string(),
        "AuthorizationPolicy ns/bad: rules[0].from[0].source.ipBlocks[0]: \"x\": bad IP address"
    );
    p.namespace = None;
    assert_eq!(Authorizer::new(&[p]).unwrap_err().policy, "-/bad");
}
