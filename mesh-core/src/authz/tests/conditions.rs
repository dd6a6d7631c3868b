//! `when` conditions, one key at a time.

use super::*;

#[test]
fn header_conditions_read_any_value_of_a_header_by_any_case() {
    let rule = |m: Matcher| when("request.headers[X-Token]", m);
    let with = Req::default().header("x-token", "abc");
    let two = Req::default()
        .header("x-token", "zzz")
        .header("x-token", "abc");
    expect(
        &rule(is(&["abc"])),
        &[
            ("exact", with.clone(), true),
            ("second value", two.clone(), true),
            ("absent", Req::default(), false),
        ],
    );
    expect(&rule(is(&["ab*"])), &[("prefix", with.clone(), true)]);
    expect(&rule(is(&["*bc"])), &[("suffix", with.clone(), true)]);
    expect(
        &rule(is(&["*"])),
        &[
            ("presence", with.clone(), true),
            ("empty value", Req::default().header("x-token", ""), false),
            ("absent", Req::default(), false),
        ],
    );
    expect(
        &rule(not(&["abc"])),
        &[
            ("excluded", with, false),
            ("excluded among others", two, false),
            ("other", Req::default().header("x-token", "zzz"), true),
            ("absent", Req::default(), true),
        ],
    );
}

#[test]
fn pseudo_header_conditions_read_the_request() {
    expect(
        &when("request.headers[:authority]", is(&["reviews*"])),
        &[("authority", Req::default(), true)],
    );
    expect(
        &when("request.headers[Host]", is(&["*:9080"])),
        &[("host", Req::default(), true)],
    );
    expect(
        &when("request.headers[:method]", is(&["GET"])),
        &[
            ("method", Req::default(), true),
            ("other", Req::with(|r| r.method = "PUT".into()), false),
        ],
    );
    expect(
        &when("request.headers[:path]", is(&["/api/v1/items"])),
        &[(
            "path without query",
            Req::with(|r| r.path = "/api/v1/items?a=b".into()),
            true,
        )],
    );
}

#[test]
fn ip_conditions_take_cidrs() {
    expect(
        &when("source.ip", is(&["10.1.0.0/16"])),
        &[
            ("source", Req::default(), true),
            ("not remote", Req::with(|r| r.source_ip = ORIGIN), false),
        ],
    );
    expect(
        &when("source.ip", not(&["10.1.0.0/16"])),
        &[
            ("excluded", Req::default(), false),
            ("other", Req::with(|r| r.source_ip = ORIGIN), true),
        ],
    );
    expect(
        &when("remote.ip", is(&["203.0.113.0/24"])),
        &[
            ("remote", Req::default(), true),
            ("other", Req::with(|r| r.remote_ip = CLIENT), false),
        ],
    );
    expect(
        &when("remote.ip", not(&["203.0.113.0/24"])),
        &[("excluded", Req::default(), false)],
    );
    expect(
        &when("destination.ip", is(&["10.9.9.9"])),
        &[
            ("server", Req::default(), true),
            ("unknown", Req::with(|r| r.destination_ip = None), false),
        ],
    );
    expect(
        &when("destination.ip", not(&["10.9.9.9"])),
        &[
            ("excluded", Req::default(), false),
            ("unknown", Req::with(|r| r.destination_ip = None), true),
        ],
    );
    expect(
        &when("source.ip", is(&["fd00::/8"])),
        &[(
            "v6",
            Req::with(|r| r.source_ip = "fd00::1".parse().unwrap()),
            true,
        )],
    );
}

#[test]
fn identity_conditions_match_as_their_source_fields() {
    expect(
        &when("source.namespace", is(&["default"])),
        &[
            ("namespace", Req::default(), true),
            ("plaintext", Req::plaintext(), false),
        ],
    );
    expect(
        &when("source.namespace", not(&["default"])),
        &[
            ("excluded", Req::default(), false),
            ("plaintext", Req::plaintext(), true),
        ],
    );
    expect(
        &when(
            "source.principal",
            is(&["cluster.local/ns/default/sa/productpage"]),
        ),
        &[
            ("principal", Req::default(), true),
            ("plaintext", Req::plaintext(), false),
        ],
    );
    expect(
        &when("source.principal", not(&["*"])),
        &[
            ("mtls", Req::default(), false),
            ("plaintext", Req::plaintext(), true),
        ],
    );
    expect(
        &when(
            "request.auth.principal",
            is(&["https://issuer.example/alice"]),
        ),
        &[
            ("token", Req::default(), true),
            ("none", Req::anonymous(), false),
        ],
    );
    expect(
        &when("request.auth.principal", not(&["https://issuer.example/*"])),
        &[
            ("excluded", Req::default(), false),
            ("none", Req::anonymous(), true),
        ],
    );
}

#[test]
fn token_conditions_read_claims() {
    let claims = |v: Value| Req::with(|r| r.claims = Some(v));
    expect(
        &when("request.auth.audiences", is(&["ratings"])),
        &[
            ("in the list", Req::default(), true),
            ("a string", claims(json!({"aud": "ratings"})), true),
            ("missing", claims(json!({})), false),
            ("no token", Req::anonymous(), false),
        ],
    );
    expect(
        &when("request.auth.audiences", not(&["ratings"])),
        &[
            ("excluded", Req::default(), false),
            ("other", claims(json!({"aud": "x"})), true),
        ],
    );
    expect(
        &when("request.auth.presenter", is(&["web"])),
        &[
            ("azp", Req::default(), true),
            ("other", claims(json!({"azp": "cli"})), false),
        ],
    );
    expect(
        &when("request.auth.claims[groups]", is(&["adm*"])),
        &[
            ("list element", Req::default(), true),
            ("none", claims(json!({"groups": ["dev"]})), false),
        ],
    );
    expect(
        &when("request.auth.claims[groups]", not(&["admin"])),
        &[
            ("excluded element", Req::default(), false),
            ("other", claims(json!({"groups": ["dev"]})), true),
            ("missing", claims(json!({})), true),
        ],
    );
    expect(
        &when("request.auth.claims[nested][role]", is(&["editor"])),
        &[
            ("nested", Req::default(), true),
            ("not an object", claims(json!({"nested": "x"})), false),
        ],
    );
    expect(
        &when("request.auth.claims[nested][tags]", is(&["b"])),
        &[("nested list", Req::default(), true)],
    );
    expect(
        &when("request.auth.claims[level]", is(&["3"])),
        &[
            ("integer", Req::default(), true),
            ("other", claims(json!({"level": 4})), false),
        ],
    );
    expect(
        &when("request.auth.claims[ratio]", is(&["0.5"])),
        &[("float", Req::default(), true)],
    );
    expect(
        &when("request.auth.claims[staff]", is(&["true"])),
        &[
            ("bool", Req::default(), true),
            ("false", claims(json!({"staff": false})), false),
        ],
    );
    expect(
        &when("request.auth.claims[empty]", is(&["*"])),
        &[("empty string is absent for *", Req::default(), false)],
    );
    expect(
        &when("request.auth.claims[iss]", is(&["https://issuer.example"])),
        &[("iss", Req::default(), true)],
    );
    expect(
        &when("request.auth.claims[nested]", is(&["*"])),
        &[("an object matches nothing", Req::default(), false)],
    );
}

#[test]
fn destination_port_condition_is_the_server_port() {
    expect(
        &when("destination.port", is(&["9080"])),
        &[
            ("port", Req::default(), true),
            ("other", Req::with(|r| r.port = 1), false),
        ],
    );
    expect(
        &when("destination.port", not(&["9080"])),
        &[
            ("excluded", Req::default(), false),
            ("other", Req::with(|r| r.port = 1), true),
        ],
    );
}
