//! Property tests: no panics, DENY with an empty rule, AUDIT never decides.

use super::*;

/// Text full of what parsers trip on: braces, stars, brackets, slashes, CIDR-ish pieces.
fn text() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        "[a-z0-9./:*{}\\[\\]%-]{0,14}",
        "\\PC{0,8}",
        Just("*".to_owned()),
        Just("".to_owned()),
        Just("{**}".to_owned()),
        Just("/a/{*}/{**}".to_owned()),
        Just("/{**}/a".to_owned()),
        Just("10.0.0.0/8".to_owned()),
        Just("::ffff:1.2.3.4/128".to_owned()),
        Just("1.2.3.4/99".to_owned()),
        Just("65536".to_owned()),
        Just("8080".to_owned()),
        (any::<[u8; 4]>(), 0u8..40)
            .prop_map(|(a, len)| format!("{}.{}.{}.{}/{len}", a[0], a[1], a[2], a[3])),
    ]
}

fn matcher(values: impl Strategy<Value = String> + Clone) -> impl Strategy<Value = Matcher> {
    (
        prop::collection::vec(values.clone(), 0..3),
        prop::collection::vec(values, 0..2),
    )
        .prop_map(|(values, not_values)| Matcher { values, not_values })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
        "request\\.headers\\[[a-zA-Z:\\[\\] -]{0,6}\\]",
        "request\\.auth\\.claims(\\[[a-z\\[\\]]{0,3}\\]){0,3}",
        "[a-z.\\[\\]]{0,14}",
    ]
}

const KEYS: [&str; 14] = [
    "source.ip",
    "remote.ip",
    "destination.ip",
    "destination.port",
    "source.namespace",
    "source.principal",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[groups]",
    "request.auth.claims[nested][role]",
    "request.headers[x-token]",
    "request.headers[:path]",
    "connection.sni",
];

fn action() -> impl Strategy<Value = AuthzAction> {
    prop::sample::select(vec![
        AuthzAction::Allow,
        AuthzAction::Deny,
        AuthzAction::Audit,
    ])
}

fn any_policy() -> impl Strategy<Value = AuthorizationPolicy> {
    let source = (
        matcher(text()),
        matcher(text()),
        matcher(text()),
        matcher(text()),
        matcher(text()),
    )
        .prop_map(
            |(principals, request_principals, namespaces, ip_blocks, remote_ip_blocks)| {
                AuthzSource {
                    principals,
                    request_principals,
                    namespaces,
                    ip_blocks,
                    remote_ip_blocks,
                }
            },
        );
    let operation = (
        matcher(text()),
        matcher(text()),
        matcher(text()),
        matcher(text()),
    )
        .prop_map(|(hosts, ports, methods, paths)| AuthzOperation {
            hosts,
            ports,
            methods,
            paths,
        });
    let condition =
        (key(), matcher(text())).prop_map(|(key, matcher)| AuthzCondition { key, matcher });
    let rule = (
        prop::collection::vec(source, 0..2),
        prop::collection::vec(operation, 0..2),
        prop::collection::vec(condition, 0..2),
    )
        .prop_map(|(from, to, when)| AuthzRule { from, to, when });
    (
        "[a-z]{1,6}",
        prop::option::of("[a-z]{1,6}"),
        action(),
        prop::collection::vec(rule, 0..3),
    )
        .prop_map(|(name, namespace, action, rules)| AuthorizationPolicy {
            name,
            namespace,
            selector: None,
            action,
            rules,
        })
}

/// Strings every string field accepts.
fn word() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        "[a-zA-Z0-9./-]{1,10}",
        "\\*?[a-z/.]{1,6}\\*?",
        Just("*".to_owned())
    ]
}

fn cidr() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32)
            .prop_map(|(a, len)| format!("{}.{}.{}.{}/{len}", a[0], a[1], a[2], a[3])),
        any::<[u8; 4]>().prop_map(|a| Ipv4Addr::from(a).to_string()),
        (any::<u128>(), 0u8..=128).prop_map(|(a, len)| format!("{}/{len}", Ipv6Addr::from(a))),
    ]
}

fn valid_path() -> impl Strategy<Value = String> + Clone {
    prop_oneof![word(), "(/([a-z]{1,3}|\\{\\*\\})){1,3}(/\\{\\*\\*\\})?",]
}

fn valid_policy(
    action: impl Strategy<Value = AuthzAction>,
) -> impl Strategy<Value = AuthorizationPolicy> {
    let source = (
        matcher(word()),
        matcher(word()),
        matcher(cidr()),
        matcher(cidr()),
    )
        .prop_map(
            |(principals, namespaces, ip_blocks, remote_ip_blocks)| AuthzSource {
                principals: Matcher {
                    values: vec!["*".into()],
                    ..principals
                },
                request_principals: Matcher::default(),
                namespaces,
                ip_blocks,
                remote_ip_blocks,
            },
        );
    let operation = (
        matcher(word()),
        matcher(any::<u16>().prop_map(|p| p.to_string())),
        matcher(word()),
        matcher(valid_path()),
    )
        .prop_map(|(hosts, ports, methods, paths)| AuthzOperation {
            hosts,
            ports,
            methods: Matcher {
                values: vec!["*".into()],
                ..methods
            },
            paths,
        });
    let condition = (
        prop::sample::select(vec![
            "request.headers[x-token]",
            "request.auth.claims[groups]",
            "request.auth.audiences",
            "source.namespace",
            "request.auth.principal",
        ]),
        word(),
        matcher(word()),
    )
        .prop_map(|(key, first, rest)| AuthzCondition {
            key: key.to_owned(),
            matcher: Matcher {
                values: [vec![first], rest.values].concat(),
                not_values: rest.not_values,
            },
        });
    let rule = (
        prop::collection::vec(source, 0..2),
        prop::collection::vec(operation, 0..2),
        prop::collection::vec(condition, 0..2),
    )
        .prop_map(|(from, to, when)| AuthzRule { from, to, when });
    ("[a-z]{1,6}", action, prop::collection::vec(rule, 0..3)).prop_map(|(name, action, rules)| {
        AuthorizationPolicy {
            name,
            namespace: Some("ns".into()),
            selector: None,
            action,
            rules,
        }
    })
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<u128>().prop_map(|a| IpAddr::from(Ipv6Addr::from(a))),
        any::<[u8; 4]>().prop_map(|a| IpAddr::from(Ipv4Addr::from(a).to_ipv6_mapped())),
    ]
}

fn claims() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec!["iss", "sub", "aud", "azp", "groups", "nested", "role"]),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn any_req() -> impl Strategy<Value = Req> {
    (
        (
            prop::option::of(text()),
            prop::option::of(text()),
            prop::option::of(claims()),
            ip(),
            ip(),
            prop::option::of(ip()),
        ),
        (
            text(),
            any::<u16>(),
            text(),
            text(),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["x-token", "host", "x-forwarded-for"]),
                    "[ -~]{0,8}",
                ),
                0..3,
            ),
        ),
    )
        .prop_map(
            |(
                (principal, request_principal, claims, source_ip, remote_ip, destination_ip),
                (host, port, method, path, headers),
            )| {
                let mut map = HeaderMap::new();
                for (name, value) in headers {
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        map.append(name, value);
                    }
                }
                Req {
                    principal,
                    request_principal,
                    claims,
                    source_ip,
                    remote_ip,
                    destination_ip,
                    host,
                    port,
                    method,
                    path,
                    headers: map,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiling_and_authorizing_never_panic(
        policies in prop::collection::vec(any_policy(), 0..4),
        reqs in prop::collection::vec(any_req(), 1..4),
    ) {
        if let Ok(authorizer) = Authorizer::new(&policies) {
            for req in &reqs {
                let v = authorizer.authorize(&req.get());
                prop_assert!(v.allowed || v.policy.is_some() || policies.iter().any(|p| p.action == AuthzAction::Allow));
            }
        }
        // Each policy alone too, so one bad policy does not hide the others.
        for policy in &policies {
            if let Ok(authorizer) = Authorizer::new(std::slice::from_ref(policy)) {
                for req in &reqs {
                    authorizer.authorize(&req.get());
                }
            }
        }
    }

    #[test]
    fn valid_policies_compile(policies in prop::collection::vec(valid_policy(action()), 0..4)) {
        prop_assert!(Authorizer::new(&policies).is_ok(), "{:?}", Authorizer::new(&policies).err());
    }

    #[test]
    fn a_deny_policy_with_an_empty_rule_always_denies(
        mut policies in prop::collection::vec(valid_policy(action()), 0..4),
        at in any::<prop::sample::Index>(),
        more_rules in prop::collection::vec(valid_policy(Just(AuthzAction::Deny)), 0..2),
        req in any_req(),
    ) {
        let mut deny = policy("deny-all", AuthzAction::Deny, vec![AuthzRule::default()]);
        // Other rules besides the empty one change nothing.
        deny.rules.extend(more_rules.into_iter().flat_map(|p| p.rules));
        let at = at.index(policies.len() + 1);
        policies.insert(at, deny);
        let v = Authorizer::new(&policies).unwrap().authorize(&req.get());
        prop_assert!(!v.allowed);
        prop_assert!(v.policy.is_some());
    }

    #[test]
    fn audit_policies_never_change_the_decision(
        policies in prop::collection::vec(valid_policy(action()), 0..4),
        audits in prop::collection::vec(valid_policy(Just(AuthzAction::Audit)), 0..3),
        req in any_req(),
    ) {
        let without: Vec<_> = policies.iter().filter(|p| p.action != AuthzAction::Audit).cloned().collect();
        let with: Vec<_> = policies.iter().cloned().chain(audits).collect();
        let a = Authorizer::new(&without).unwrap().authorize(&req.get());
        let b = Authorizer::new(&with).unwrap().authorize(&req.get());
        prop_assert_eq!(a.allowed, b.allowed);
        prop_assert_eq!(a.policy, b.policy);
    }

    #[test]
    fn a_portless_host_matches_with_any_port(name in "[a-z]{1,8}(\\.[a-z]{1,5}){0,2}", port in any::<u16>()) {
        let rule = operation(|o| o.hosts = is(&[&name.to_uppercase()]));
        let req = Req::with(|r| r.host = format!("{name}:{port}"));
        prop_assert!(allows(rule, &req));
    }
}
