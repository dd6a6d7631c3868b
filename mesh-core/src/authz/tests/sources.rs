//! Sources: principals, request principals, namespaces, IP blocks.

use super::*;

#[test]
fn principals_take_every_string_form() {
    let cases = |pattern: &str| source(|s| s.principals = is(&[pattern]));
    let mtls = Req::default;
    expect(
        &cases("cluster.local/ns/default/sa/productpage"),
        &[
            ("exact", mtls(), true),
            (
                "other",
                Req::with(|r| r.principal = Some("cluster.local/ns/default/sa/x".into())),
                false,
            ),
            ("plaintext", Req::plaintext(), false),
        ],
    );
    expect(
        &cases("cluster.local/ns/default/*"),
        &[
            ("prefix", mtls(), true),
            ("plaintext", Req::plaintext(), false),
        ],
    );
    expect(
        &cases("*/sa/productpage"),
        &[
            ("suffix", mtls(), true),
            (
                "other sa",
                Req::with(|r| r.principal = Some("cluster.local/ns/default/sa/ratings".into())),
                false,
            ),
        ],
    );
    expect(
        &cases("*"),
        &[
            ("presence", mtls(), true),
            ("absent", Req::plaintext(), false),
        ],
    );
    // A `*` inside a value is literal.
    expect(
        &cases("cluster.local/*/default/sa/productpage"),
        &[("mid", mtls(), false)],
    );
}

#[test]
fn not_principals_match_when_no_value_matches_or_there_is_none() {
    let rule = source(|s| s.principals = not(&["cluster.local/ns/default/sa/productpage"]));
    expect(
        &rule,
        &[
            ("the denied one", Req::default(), false),
            (
                "another",
                Req::with(|r| r.principal = Some("cluster.local/ns/x/sa/y".into())),
                true,
            ),
            ("plaintext", Req::plaintext(), true),
        ],
    );
    let anything = source(|s| s.principals = not(&["*"]));
    expect(
        &anything,
        &[
            ("mtls", Req::default(), false),
            ("plaintext", Req::plaintext(), true),
        ],
    );
    // Values and not values together: both must hold.
    let both = source(|s| {
        s.principals = Matcher {
            values: strs(&["cluster.local/*"]),
            not_values: strs(&["*/sa/productpage"]),
        }
    });
    expect(
        &both,
        &[
            ("excluded", Req::default(), false),
            (
                "included",
                Req::with(|r| r.principal = Some("cluster.local/ns/a/sa/b".into())),
                true,
            ),
            ("plaintext", Req::plaintext(), false),
        ],
    );
}

#[test]
fn request_principals_split_issuer_and_subject_as_istio_does() {
    let rule = |v: &str| source(|s| s.request_principals = is(&[v]));
    let token = |iss: &str, sub: &str| {
        Req::with(|r| {
            r.request_principal = Some(format!("{iss}/{sub}"));
            r.claims = Some(json!({"iss": iss, "sub": sub}));
        })
    };
    expect(
        &rule("https://issuer.example/alice"),
        &[
            ("exact", Req::default(), true),
            ("other sub", token("https://issuer.example", "bob"), false),
            ("no token", Req::anonymous(), false),
        ],
    );
    expect(
        &rule("*"),
        &[
            ("any token", token("a", "b"), true),
            ("no token", Req::anonymous(), false),
            ("empty sub", token("a", ""), false),
        ],
    );
    // `iss/*`: this issuer exactly, any subject; an issuer under it is another issuer.
    expect(
        &rule("https://issuer.example/*"),
        &[
            ("same issuer", token("https://issuer.example", "bob"), true),
            (
                "sub-path issuer",
                token("https://issuer.example/t1", "bob"),
                false,
            ),
        ],
    );
    // `iss/prefix*`
    expect(
        &rule("https://issuer.example/al*"),
        &[
            ("prefix", Req::default(), true),
            ("no", token("https://issuer.example", "bob"), false),
        ],
    );
    // `*/sub`: any issuer, this subject exactly.
    expect(
        &rule("*/alice"),
        &[
            ("any issuer", token("https://other", "alice"), true),
            ("sub with slash", token("https://other", "x/alice"), false),
        ],
    );
    // `*suffix/sub`: an issuer suffix and a subject.
    expect(
        &rule("*.example/alice"),
        &[
            ("suffix", Req::default(), true),
            ("other issuer", token("https://issuer.test", "alice"), false),
        ],
    );
    // Without a `/`: `prefix*` is an issuer prefix, `*suffix` a subject suffix.
    expect(
        &rule("accounts*"),
        &[
            ("issuer prefix", token("accounts.example", "bob"), true),
            ("no", token("x", "y"), false),
        ],
    );
    expect(
        &rule("*ice"),
        &[
            ("subject suffix", Req::default(), true),
            ("no", token("x", "y"), false),
        ],
    );
    // Without claims the principal is split at its last `/`.
    let bare = Req::with(|r| r.claims = None);
    expect(
        &rule("https://issuer.example/alice"),
        &[("no claims", bare, true)],
    );
    expect(
        &source(|s| s.request_principals = not(&["*"])),
        &[
            ("token", Req::default(), false),
            ("no token", Req::anonymous(), true),
        ],
    );
}

#[test]
fn namespaces_come_from_the_peer_identity() {
    let rule = |m: Matcher| source(|s| s.namespaces = m);
    let ns = |ns: &str| Req::with(|r| r.principal = Some(format!("cluster.local/ns/{ns}/sa/x")));
    expect(
        &rule(is(&["default"])),
        &[
            ("exact", Req::default(), true),
            ("other", ns("prod"), false),
            ("plaintext", Req::plaintext(), false),
            (
                "not an istio identity",
                Req::with(|r| r.principal = Some("example.org/workload".into())),
                false,
            ),
        ],
    );
    expect(
        &rule(is(&["prod-*"])),
        &[("prefix", ns("prod-eu"), true), ("no", ns("dev"), false)],
    );
    expect(
        &rule(is(&["*-system"])),
        &[
            ("suffix", ns("istio-system"), true),
            ("no", ns("default"), false),
        ],
    );
    expect(
        &rule(is(&["*"])),
        &[
            ("presence", ns("a"), true),
            ("plaintext", Req::plaintext(), false),
        ],
    );
    expect(
        &rule(not(&["default"])),
        &[
            ("excluded", Req::default(), false),
            ("other", ns("prod"), true),
            ("plaintext", Req::plaintext(), true),
        ],
    );
}

#[test]
fn ip_blocks_take_addresses_and_cidrs_of_both_families() {
    let rule = |m: Matcher| source(|s| s.ip_blocks = m);
    let src = |ip: IpAddr| Req::with(|r| r.source_ip = ip);
    let v6: IpAddr = "2001:db8::7".parse().unwrap();
    expect(
        &rule(is(&["10.0.0.0/8"])),
        &[
            ("inside", Req::default(), true),
            (
                "outside",
                src(IpAddr::V4(Ipv4Addr::new(11, 0, 0, 1))),
                false,
            ),
            ("v6", src(v6), false),
            (
                "v4-mapped v6",
                src("::ffff:10.1.2.3".parse::<Ipv6Addr>().unwrap().into()),
                true,
            ),
        ],
    );
    expect(
        &rule(is(&["10.1.2.3"])),
        &[
            ("single", Req::default(), true),
            (
                "neighbour",
                src(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 4))),
                false,
            ),
        ],
    );
    // A block written with host bits set is the block.
    expect(
        &rule(is(&["10.1.2.200/24"])),
        &[("host bits", Req::default(), true)],
    );
    expect(
        &rule(is(&["2001:db8::/32"])),
        &[("v6 inside", src(v6), true), ("v4", Req::default(), false)],
    );
    expect(
        &rule(is(&["::1"])),
        &[
            ("v6 single", src(Ipv6Addr::LOCALHOST.into()), true),
            ("other", src(v6), false),
        ],
    );
    expect(
        &rule(not(&["10.0.0.0/8", "2001:db8::/32"])),
        &[
            ("excluded v4", Req::default(), false),
            ("excluded v6", src(v6), false),
            (
                "other",
                src(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1))),
                true,
            ),
        ],
    );
    // The remote address is not the source address.
    expect(
        &rule(is(&["203.0.113.0/24"])),
        &[("remote", Req::default(), false)],
    );
}

#[test]
fn remote_ip_blocks_read_the_original_client() {
    let rule = |m: Matcher| source(|s| s.remote_ip_blocks = m);
    expect(
        &rule(is(&["203.0.113.0/24"])),
        &[
            ("origin", Req::default(), true),
            ("source only", Req::with(|r| r.remote_ip = CLIENT), false),
        ],
    );
    expect(
        &rule(not(&["203.0.113.9"])),
        &[
            ("excluded", Req::default(), false),
            ("other", Req::with(|r| r.remote_ip = CLIENT), true),
        ],
    );
}

#[test]
fn every_field_of_a_source_must_match() {
    let rule = source(|s| {
        s.principals = is(&["*"]);
        s.ip_blocks = is(&["10.0.0.0/8"]);
    });
    expect(
        &rule,
        &[
            ("both", Req::default(), true),
            ("no principal", Req::plaintext(), false),
            (
                "wrong ip",
                Req::with(|r| r.source_ip = IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1))),
                false,
            ),
        ],
    );
}
