//! Operations: hosts, ports, methods, paths and path templates.

use super::*;

#[test]
fn hosts_ignore_case_and_a_portless_host_matches_any_port() {
    let rule = |m: Matcher| operation(|o| o.hosts = m);
    let host = |h: &str| Req::with(|r| r.host = h.to_owned());
    expect(
        &rule(is(&["Reviews.Default.svc"])),
        &[
            ("with port", Req::default(), true),
            ("without port", host("reviews.default.svc"), true),
            ("other", host("ratings.default.svc"), false),
            ("no host", host(""), false),
        ],
    );
    expect(
        &rule(is(&["reviews.default.svc:9080"])),
        &[
            ("same port", Req::default(), true),
            ("other port", host("reviews.default.svc:80"), false),
            ("no port", host("reviews.default.svc"), false),
        ],
    );
    expect(
        &rule(is(&["*.example.com"])),
        &[
            ("suffix", host("API.example.com"), true),
            ("suffix with port", host("api.example.com:8443"), true),
            ("other", host("example.org"), false),
        ],
    );
    expect(
        &rule(is(&["api.*"])),
        &[
            ("prefix", host("api.example.com:1"), true),
            ("no", host("web.api"), false),
        ],
    );
    expect(
        &rule(is(&["*"])),
        &[
            ("presence", Req::default(), true),
            ("absent", host(""), false),
        ],
    );
    expect(
        &rule(is(&["[::1]"])),
        &[
            ("v6 with port", host("[::1]:8080"), true),
            ("v6 without", host("[::1]"), true),
        ],
    );
    expect(
        &rule(not(&["reviews.default.svc"])),
        &[
            ("excluded with port", Req::default(), false),
            ("other", host("ratings"), true),
            ("absent", host(""), true),
        ],
    );
}

#[test]
fn ports_are_the_server_port() {
    let rule = |m: Matcher| operation(|o| o.ports = m);
    expect(
        &rule(is(&["9080", "9443"])),
        &[
            ("listed", Req::default(), true),
            ("other", Req::with(|r| r.port = 80), false),
        ],
    );
    expect(
        &rule(not(&["9080"])),
        &[
            ("excluded", Req::default(), false),
            ("other", Req::with(|r| r.port = 80), true),
        ],
    );
}

#[test]
fn methods_are_case_sensitive() {
    let rule = |m: Matcher| operation(|o| o.methods = m);
    let method = |m: &str| Req::with(|r| r.method = m.to_owned());
    expect(
        &rule(is(&["GET"])),
        &[
            ("same", Req::default(), true),
            ("lowercase", method("get"), false),
        ],
    );
    expect(
        &rule(is(&["P*"])),
        &[
            ("prefix", method("PUT"), true),
            ("no", Req::default(), false),
        ],
    );
    expect(
        &rule(is(&["*ETE"])),
        &[
            ("suffix", method("DELETE"), true),
            ("no", Req::default(), false),
        ],
    );
    expect(&rule(is(&["*"])), &[("presence", Req::default(), true)]);
    expect(
        &rule(not(&["GET", "HEAD"])),
        &[
            ("excluded", Req::default(), false),
            ("other", method("POST"), true),
        ],
    );
}

#[test]
fn paths_take_string_forms_without_the_query() {
    let rule = |m: Matcher| operation(|o| o.paths = m);
    let path = |p: &str| Req::with(|r| r.path = p.to_owned());
    expect(
        &rule(is(&["/api/v1/items"])),
        &[
            ("exact", Req::default(), true),
            ("with query", path("/api/v1/items?page=2"), true),
            ("trailing slash", path("/api/v1/items/"), false),
        ],
    );
    expect(
        &rule(is(&["/api/*"])),
        &[
            ("prefix", Req::default(), true),
            ("no", path("/health"), false),
        ],
    );
    expect(
        &rule(is(&["*.png"])),
        &[
            ("suffix", path("/img/a.png"), true),
            ("query not part of it", path("/img/a.png?x=.jpg"), true),
            ("no", Req::default(), false),
        ],
    );
    expect(&rule(is(&["*"])), &[("presence", path("/"), true)]);
    expect(
        &rule(not(&["/admin*"])),
        &[
            ("excluded", path("/admin/users"), false),
            ("other", Req::default(), true),
        ],
    );
}

#[test]
fn path_templates_match_whole_segments() {
    let rule = |m: Matcher| operation(|o| o.paths = m);
    let path = |p: &str| Req::with(|r| r.path = p.to_owned());
    expect(
        &rule(is(&["/api/{*}/items"])),
        &[
            ("one segment", Req::default(), true),
            ("with query", path("/api/v2/items?x=1"), true),
            ("empty segment", path("/api//items"), false),
            ("two segments", path("/api/v1/v2/items"), false),
            ("more after", path("/api/v1/items/3"), false),
            ("missing", path("/api/items"), false),
        ],
    );
    expect(
        &rule(is(&["/api/{**}"])),
        &[
            ("one", path("/api/a"), true),
            ("many", path("/api/a/b/c"), true),
            ("none", path("/api/"), false),
            ("bare", path("/api"), false),
            ("other root", path("/apix/a"), false),
        ],
    );
    expect(
        &rule(is(&["/{*}/v1/{**}"])),
        &[
            ("both", path("/api/v1/items/3"), true),
            ("rest missing", path("/api/v1"), false),
            ("literal differs", path("/api/v2/items"), false),
        ],
    );
    expect(
        &rule(is(&["/{*}"])),
        &[
            ("root segment", path("/x"), true),
            ("deeper", path("/x/y"), false),
        ],
    );
    expect(
        &rule(is(&["/files/{*}/"])),
        &[
            ("trailing slash", path("/files/a/"), true),
            ("without it", path("/files/a"), false),
        ],
    );
    expect(
        &rule(not(&["/admin/{**}"])),
        &[
            ("excluded", path("/admin/x/y"), false),
            ("other", path("/admin"), true),
        ],
    );
}

#[test]
fn every_field_of_an_operation_must_match_and_any_operation_may() {
    let rule = AuthzRule {
        to: vec![
            AuthzOperation {
                methods: is(&["GET"]),
                paths: is(&["/api/*"]),
                ..AuthzOperation::default()
            },
            AuthzOperation {
                methods: is(&["POST"]),
                paths: is(&["/data"]),
                ..AuthzOperation::default()
            },
        ],
        ..AuthzRule::default()
    };
    let req = |m: &str, p: &str| {
        Req::with(|r| {
            r.method = m.to_owned();
            r.path = p.to_owned();
        })
    };
    expect(
        &rule,
        &[
            ("first", req("GET", "/api/x"), true),
            ("second", req("POST", "/data"), true),
            ("mixed", req("POST", "/api/x"), false),
            ("mixed again", req("GET", "/data"), false),
        ],
    );
}

#[test]
fn a_rule_needs_a_source_an_operation_and_every_condition() {
    let rule = AuthzRule {
        from: vec![
            AuthzSource {
                namespaces: is(&["prod"]),
                ..AuthzSource::default()
            },
            AuthzSource {
                principals: is(&["*/sa/productpage"]),
                ..AuthzSource::default()
            },
        ],
        to: vec![AuthzOperation {
            methods: is(&["GET"]),
            ..AuthzOperation::default()
        }],
        when: vec![
            AuthzCondition {
                key: "request.auth.claims[groups]".into(),
                matcher: is(&["admin"]),
            },
            AuthzCondition {
                key: "destination.port".into(),
                matcher: is(&["9080"]),
            },
        ],
    };
    expect(
        &rule,
        &[
            ("all", Req::default(), true),
            ("source fails", Req::plaintext(), false),
            (
                "operation fails",
                Req::with(|r| r.method = "PUT".into()),
                false,
            ),
            ("one condition fails", Req::with(|r| r.port = 1), false),
            ("other condition fails", Req::anonymous(), false),
        ],
    );
}
