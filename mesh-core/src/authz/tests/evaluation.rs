//! The order of DENY, ALLOW and AUDIT policies.

use super::*;

#[test]
fn no_policies_allow_everything() {
    let authorizer = Authorizer::new(&[]).unwrap();
    assert!(authorizer.is_empty());
    assert_eq!(
        authorizer.authorize(&Req::default().get()),
        Verdict {
            allowed: true,
            policy: None,
            audited: None
        }
    );
    assert!(Authorizer::default().is_empty());
}

#[test]
fn deny_beats_allow() {
    let policies = [
        allow_method("readers", "GET"),
        deny_path("no-items", "/api/v1/items"),
    ];
    let v = verdict(&policies, &Req::default());
    assert!(!v.allowed);
    assert_eq!(v.policy.as_deref(), Some("ns/no-items"));
    let v = verdict(&policies, &Req::with(|r| r.path = "/api/v1/other".into()));
    assert!(v.allowed);
    assert_eq!(v.policy.as_deref(), Some("ns/readers"));
}

#[test]
fn allow_policies_that_do_not_match_deny_without_a_policy() {
    let policies = [
        allow_method("writers", "POST"),
        allow_method("deleters", "DELETE"),
    ];
    let v = verdict(&policies, &Req::default());
    assert_eq!(
        v,
        Verdict {
            allowed: false,
            policy: None,
            audited: None
        }
    );
    let v = verdict(&policies, &Req::with(|r| r.method = "DELETE".into()));
    assert!(v.allowed);
    assert_eq!(v.policy.as_deref(), Some("ns/deleters"));
}

#[test]
fn without_allow_policies_what_no_deny_policy_matches_is_allowed() {
    let policies = [deny_path("no-admin", "/admin*")];
    let v = verdict(&policies, &Req::default());
    assert!(v.allowed);
    assert_eq!(v.policy, None);
    assert!(!verdict(&policies, &Req::with(|r| r.path = "/admin".into())).allowed);
}

#[test]
fn audit_marks_and_never_decides() {
    let audit = policy(
        "audit-items",
        AuthzAction::Audit,
        vec![operation(|o| o.paths = is(&["/api/*"]))],
    );
    // Alone: allowed, audited.
    let v = verdict(std::slice::from_ref(&audit), &Req::default());
    assert_eq!(
        v,
        Verdict {
            allowed: true,
            policy: None,
            audited: Some("ns/audit-items".into())
        }
    );
    // Not matching: not audited.
    let v = verdict(
        std::slice::from_ref(&audit),
        &Req::with(|r| r.path = "/x".into()),
    );
    assert_eq!(v.audited, None);
    // With a DENY that matches: denied and audited.
    let v = verdict(
        &[audit.clone(), deny_path("deny", "/api/v1/items")],
        &Req::default(),
    );
    assert!(!v.allowed);
    assert_eq!(v.audited.as_deref(), Some("ns/audit-items"));
    // With an ALLOW that does not match: still denied.
    let v = verdict(&[audit.clone(), allow_method("w", "POST")], &Req::default());
    assert!(!v.allowed);
    assert_eq!(v.audited.as_deref(), Some("ns/audit-items"));
    // An AUDIT policy with a `{}` rule does not turn on default deny.
    let everything = policy("audit-all", AuthzAction::Audit, vec![AuthzRule::default()]);
    let v = verdict(&[everything], &Req::default());
    assert!(v.allowed);
    assert_eq!(v.audited.as_deref(), Some("ns/audit-all"));
}

#[test]
fn an_allow_policy_without_rules_allows_nothing() {
    let nothing = policy("allow-nothing", AuthzAction::Allow, Vec::new());
    let authorizer = Authorizer::new(std::slice::from_ref(&nothing)).unwrap();
    assert!(!authorizer.is_empty());
    let v = authorizer.authorize(&Req::default().get());
    assert_eq!(
        v,
        Verdict {
            allowed: false,
            policy: None,
            audited: None
        }
    );
    // DENY and AUDIT policies without rules match nothing and are dropped.
    let idle = [
        policy("d", AuthzAction::Deny, Vec::new()),
        policy("a", AuthzAction::Audit, Vec::new()),
    ];
    assert!(Authorizer::new(&idle).unwrap().is_empty());
}

#[test]
fn an_empty_rule_matches_everything() {
    let all = policy("allow-all", AuthzAction::Allow, vec![AuthzRule::default()]);
    for req in [Req::default(), Req::plaintext(), Req::anonymous()] {
        let v = verdict(std::slice::from_ref(&all), &req);
        assert!(v.allowed);
        assert_eq!(v.policy.as_deref(), Some("ns/allow-all"));
    }
    let deny_all = policy("deny-all", AuthzAction::Deny, vec![AuthzRule::default()]);
    let v = verdict(&[all, deny_all], &Req::default());
    assert!(!v.allowed);
    assert_eq!(v.policy.as_deref(), Some("ns/deny-all"));
}

#[test]
fn the_first_matching_policy_of_a_kind_is_reported() {
    let policies = [
        allow_method("a", "GET"),
        allow_method("b", "G*"),
        deny_path("c", "/api/*"),
        deny_path("d", "*"),
    ];
    assert_eq!(
        verdict(&policies, &Req::default()).policy.as_deref(),
        Some("ns/c")
    );
    assert_eq!(
        verdict(&policies[..2], &Req::default()).policy.as_deref(),
        Some("ns/a")
    );
}

#[test]
fn a_policy_without_namespace_is_named_with_a_dash() {
    let mut p = allow_method("readers", "GET");
    p.namespace = None;
    assert_eq!(
        verdict(&[p], &Req::default()).policy.as_deref(),
        Some("-/readers")
    );
}
