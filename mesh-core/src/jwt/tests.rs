use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::config::{ClaimToHeader, JwksSource, JwtHeader, JwtRule};

fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

/// A token with the given header and payload JSON and a dummy signature.
fn token(header: &str, payload: &str) -> String {
    format!("{}.{}.c2lnbmF0dXJl", b64(header), b64(payload))
}

fn rs256(payload: &str) -> String {
    token(r#"{"alg":"RS256","kid":"k1"}"#, payload)
}

fn rule(issuer: &str) -> JwtRule {
    JwtRule {
        issuer: issuer.to_owned(),
        audiences: Vec::new(),
        keys: JwksSource::Inline(r#"{"keys":[]}"#.to_owned()),
        from_headers: Vec::new(),
        from_params: Vec::new(),
        from_cookies: Vec::new(),
        forward_original_token: false,
        output_claim_to_headers: Vec::<ClaimToHeader>::new(),
        output_payload_to_header: None,
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn parses_header_and_registered_claims() {
    let t = rs256(
        r#"{"iss":"https://issuer","sub":"alice","aud":["a","b"],"azp":"web","exp":2000,"nbf":1000.7,"x":{"y":1}}"#,
    );
    let jwt = Jwt::parse(&t).unwrap();
    assert_eq!(jwt.alg(), JwtAlg::Rs256);
    assert_eq!(jwt.kid(), Some("k1"));
    assert_eq!(jwt.issuer(), Some("https://issuer"));
    assert_eq!(jwt.subject(), Some("alice"));
    assert_eq!(jwt.audiences(), ["a", "b"]);
    assert_eq!(jwt.presenter(), Some("web"));
    assert_eq!(jwt.expires(), Some(2000));
    assert_eq!(jwt.not_before(), Some(1000));
    assert_eq!(jwt.claims()["x"]["y"], 1);
    assert_eq!(jwt.as_str(), t);
    let (input, sig) = t.rsplit_once('.').unwrap();
    assert_eq!(jwt.signing_input(), input);
    assert_eq!(jwt.signature_b64(), sig);
    assert_eq!(jwt.payload_b64(), t.split('.').nth(1).unwrap());
    assert_eq!(jwt.into_claims()["sub"], "alice");
}

#[test]
fn single_audience_and_padding_are_accepted() {
    let header = base64::engine::general_purpose::URL_SAFE.encode(r#"{"alg": "ES256"}"#);
    assert!(header.ends_with("=="));
    let t = format!("{header}.{}.c2ln", b64(r#"{"aud":"only"}"#));
    let jwt = Jwt::parse(&t).unwrap();
    assert_eq!(jwt.audiences(), ["only"]);
    assert_eq!(jwt.kid(), None);
    assert_eq!(jwt.issuer(), None);
}

#[test]
fn every_algorithm_by_name() {
    for alg in JwtAlg::ALL {
        assert_eq!(JwtAlg::from_name(alg.name()), Ok(alg));
        assert_eq!(alg.to_string(), alg.name());
    }
    assert_eq!(JwtAlg::Ps384.key_type(), KeyType::Rsa);
    assert_eq!(JwtAlg::Es384.key_type(), KeyType::Ec("P-384"));
    assert_eq!(JwtAlg::EdDsa.key_type(), KeyType::Okp("Ed25519"));
}

#[test]
fn every_parse_error_with_envoys_wording() {
    let ok_payload = b64(r#"{"iss":"a"}"#);
    let cases: Vec<(String, JwtError, &str)> = vec![
        (
            "abc".into(),
            JwtError::Malformed("found 1 sections".into()),
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections: found 1 sections",
        ),
        (
            "a.b.c.d".into(),
            JwtError::Malformed("found 4 sections".into()),
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections: found 4 sections",
        ),
        (
            "".into(),
            JwtError::Malformed("found 1 sections".into()),
            "",
        ),
        (
            format!("!!.{ok_payload}.c2ln"),
            JwtError::HeaderNotBase64,
            "Jwt header is an invalid Base64",
        ),
        (
            format!("{}.{ok_payload}.c2ln", b64("{not json")),
            JwtError::HeaderNotJson,
            "Jwt header is an invalid JSON",
        ),
        (
            format!("{}.{ok_payload}.c2ln", b64("[1]")),
            JwtError::HeaderNotJson,
            "",
        ),
        (
            token(r#"{"kid":"x"}"#, r#"{}"#),
            JwtError::AlgMissing,
            "Jwt header [alg] field is required and must be a string",
        ),
        (token(r#"{"alg":256}"#, r#"{}"#), JwtError::AlgMissing, ""),
        (
            format!("{}.{ok_payload}.", b64(r#"{"alg":"none"}"#)),
            JwtError::UnsupportedAlg("none".into()),
            "Jwt algorithm is not supported: none (unsigned tokens are never accepted)",
        ),
        (
            token(r#"{"alg":"None"}"#, "{}"),
            JwtError::UnsupportedAlg("None".into()),
            "Jwt algorithm is not supported: None (unsigned tokens are never accepted)",
        ),
        (
            token(r#"{"alg":"HS256"}"#, "{}"),
            JwtError::UnsupportedAlg("HS256".into()),
            "Jwt algorithm is not supported: HS256 (mesh accepts only asymmetric keys)",
        ),
        (
            token(r#"{"alg":"HS512"}"#, "{}"),
            JwtError::UnsupportedAlg("HS512".into()),
            "Jwt algorithm is not supported: HS512 (mesh accepts only asymmetric keys)",
        ),
        (
            token(r#"{"alg":"ES512"}"#, "{}"),
            JwtError::UnsupportedAlg("ES512".into()),
            "Jwt algorithm is not supported: ES512",
        ),
        (
            token(r#"{"alg":"RS256","kid":7}"#, "{}"),
            JwtError::KidNotString,
            "Jwt header [kid] field is not a string",
        ),
        (
            format!("{}.%%.c2ln", b64(r#"{"alg":"RS256"}"#)),
            JwtError::PayloadNotBase64,
            "Jwt payload is an invalid Base64",
        ),
        (
            rs256("not json"),
            JwtError::PayloadNotJson,
            "Jwt payload is an invalid JSON",
        ),
        (rs256(r#""a string""#), JwtError::PayloadNotJson, ""),
        (
            rs256(r#"{"iss":1}"#),
            JwtError::ClaimType("iss"),
            "Jwt iss claim has a wrong type",
        ),
        (rs256(r#"{"sub":[]}"#), JwtError::ClaimType("sub"), ""),
        (rs256(r#"{"azp":{}}"#), JwtError::ClaimType("azp"), ""),
        (
            rs256(r#"{"aud":3}"#),
            JwtError::ClaimType("aud"),
            "Jwt aud claim has a wrong type",
        ),
        (rs256(r#"{"aud":["a",3]}"#), JwtError::ClaimType("aud"), ""),
        (
            rs256(r#"{"exp":"tomorrow"}"#),
            JwtError::ClaimType("exp"),
            "Jwt exp claim has a wrong type",
        ),
        (rs256(r#"{"nbf":true}"#), JwtError::ClaimType("nbf"), ""),
        (
            format!("{}.{ok_payload}.", b64(r#"{"alg":"RS256"}"#)),
            JwtError::SignatureNotBase64,
            "Jwt signature is an invalid Base64",
        ),
        (
            format!("{}.{ok_payload}.a+b/", b64(r#"{"alg":"RS256"}"#)),
            JwtError::SignatureNotBase64,
            "",
        ),
    ];
    for (t, want, message) in cases {
        let got = Jwt::parse(&t).unwrap_err();
        assert_eq!(got, want, "token {t:?}");
        if !message.is_empty() {
            assert_eq!(got.to_string(), message);
        }
    }
}

#[test]
fn the_other_errors_have_envoys_wording() {
    let cases = [
        (
            JwtError::UnknownIssuer,
            "Jwt issuer is not configured",
            "unknown_issuer",
        ),
        (JwtError::Expired, "Jwt is expired", "expired"),
        (JwtError::NotYetValid, "Jwt not yet valid", "not_yet_valid"),
        (
            JwtError::AudienceNotAllowed,
            "Audiences in Jwt are not allowed",
            "audience",
        ),
        (
            JwtError::NoMatchingKey,
            "Jwks doesn't have key to match kid or alg from Jwt",
            "unknown_kid",
        ),
        (
            JwtError::VerificationFailed,
            "Jwt verification fails",
            "bad_signature",
        ),
        (
            JwtError::JwksFetchFailed,
            "Jwks remote fetch is failed",
            "jwks_fetch_failed",
        ),
    ];
    for (e, message, reason) in cases {
        assert_eq!(e.to_string(), message);
        assert_eq!(e.reason(), reason);
    }
    assert_eq!(JwtError::Malformed(String::new()).reason(), "malformed");
    assert_eq!(JwtError::HeaderNotJson.reason(), "bad_header");
    assert_eq!(JwtError::PayloadNotJson.reason(), "bad_payload");
    assert_eq!(
        JwtError::UnsupportedAlg("none".into()).reason(),
        "unsupported_alg"
    );
    assert_eq!(JwtError::ClaimType("exp").reason(), "bad_claim");
}

#[test]
fn a_long_alg_is_quoted_short() {
    let alg = "X".repeat(500);
    let t = token(&format!(r#"{{"alg":"{alg}\n"}}"#), "{}");
    let JwtError::UnsupportedAlg(quoted) = Jwt::parse(&t).unwrap_err() else {
        panic!("not UnsupportedAlg");
    };
    assert_eq!(quoted, "X".repeat(32));
}

#[test]
fn time_checks_allow_the_skew() {
    let jwt = Jwt::parse(&rs256(r#"{"exp":1000,"nbf":500}"#)).unwrap();
    // Expired when exp <= now - 60.
    assert_eq!(jwt.check_time(1059), Ok(()));
    assert_eq!(jwt.check_time(1060), Err(JwtError::Expired));
    // Not yet valid when nbf > now + 60.
    assert_eq!(jwt.check_time(440), Ok(()));
    assert_eq!(jwt.check_time(439), Err(JwtError::NotYetValid));
    let forever = Jwt::parse(&rs256("{}")).unwrap();
    assert_eq!(forever.check_time(0), Ok(()));
    assert_eq!(forever.check_time(u64::MAX), Ok(()));
    let huge = Jwt::parse(&rs256(r#"{"exp":1e300,"nbf":-5}"#)).unwrap();
    assert_eq!(huge.expires(), Some(u64::MAX));
    assert_eq!(huge.not_before(), Some(0));
    assert_eq!(huge.check_time(u64::MAX - 60), Ok(()));
}

#[test]
fn audience_checks() {
    let list = Jwt::parse(&rs256(r#"{"aud":["web","https://api.example.com/"]}"#)).unwrap();
    let none = Jwt::parse(&rs256("{}")).unwrap();
    let one = Jwt::parse(&rs256(r#"{"aud":"web"}"#)).unwrap();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(list.check_audiences(&[]), Ok(()));
    assert_eq!(none.check_audiences(&[]), Ok(()));
    assert_eq!(list.check_audiences(&s(&["web"])), Ok(()));
    assert_eq!(one.check_audiences(&s(&["other", "web"])), Ok(()));
    assert_eq!(list.check_audiences(&s(&["api.example.com"])), Ok(()));
    assert_eq!(
        list.check_audiences(&s(&["http://api.example.com"])),
        Ok(())
    );
    assert_eq!(
        list.check_audiences(&s(&["mobile"])),
        Err(JwtError::AudienceNotAllowed)
    );
    assert_eq!(
        none.check_audiences(&s(&["web"])),
        Err(JwtError::AudienceNotAllowed)
    );
    assert_eq!(
        one.check_audiences(&s(&["WEB"])),
        Err(JwtError::AudienceNotAllowed)
    );
}

#[test]
fn default_locations_are_bearer_and_access_token() {
    let ex = Extractor::new(&[rule("a"), rule("b")]).unwrap();
    assert_eq!(ex.len(), 2);
    assert_eq!(
        ex.location(0),
        &TokenLocation::Header {
            name: http::header::AUTHORIZATION,
            prefix: "Bearer ".into()
        }
    );
    assert_eq!(ex.location(1), &TokenLocation::Param("access_token".into()));
    // Both rules read both default locations.
    assert_eq!(ex.rules_at(0), [0, 1]);
    assert_eq!(ex.rules_at(1), [0, 1]);
    assert_eq!(ex.location(0).header(), Some(&http::header::AUTHORIZATION));
    assert_eq!(ex.location(1).header(), None);

    let h = headers(&[("authorization", "Bearer tok.en.x")]);
    let found: Vec<_> = ex.extract(&h, None).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].token, "tok.en.x");
    assert_eq!(found[0].location, 0);

    // The scheme ignores case; blanks around the token and anything after a comma go.
    for v in ["bearer  t1 ", "BEARER t1,other", "Bearer t1 x"] {
        let h = headers(&[("authorization", v)]);
        let found: Vec<_> = ex.extract(&h, None).map(|f| f.token).collect();
        assert_eq!(found, ["t1"], "{v:?}");
    }
    // Another scheme, or nothing after the prefix, is no token.
    for v in ["Basic dXNlcjpwdw==", "Bearer ", "Bearer", "Bear"] {
        let h = headers(&[("authorization", v)]);
        assert_eq!(ex.extract(&h, None).count(), 0, "{v:?}");
    }

    let h = HeaderMap::new();
    let found: Vec<_> = ex.extract(&h, Some("x=1&access_token=a%2Eb.c")).collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].token, "a.b.c");
    assert_eq!(found[0].location, 1);
    assert_eq!(ex.extract(&h, Some("access_token=")).count(), 0);
    assert_eq!(ex.extract(&h, None).count(), 0);
}

#[test]
fn named_locations_replace_the_defaults() {
    let mut a = rule("a");
    a.from_headers = vec![JwtHeader {
        name: "X-Jwt-Assertion".into(),
        prefix: String::new(),
    }];
    a.from_cookies = vec!["session".into()];
    let mut b = rule("b");
    b.from_params = vec!["token".into()];
    b.from_headers = vec![JwtHeader {
        name: "authorization".into(),
        prefix: "Token ".into(),
    }];
    let ex = Extractor::new(&[a, b]).unwrap();
    assert_eq!(ex.len(), 4);
    assert!(!ex.is_empty());

    let h = headers(&[
        ("x-jwt-assertion", "h.h.h"),
        ("cookie", "theme=dark; session=\"c.c.c\""),
        ("authorization", "Bearer ignored"),
        ("authorization", "Token t.t.t"),
    ]);
    let found: Vec<_> = ex
        .extract(&h, Some("token=p.p.p&access_token=ignored"))
        .map(|f| (f.token.into_owned(), ex.rules_at(f.location).to_vec()))
        .collect();
    assert_eq!(
        found,
        [
            ("h.h.h".to_owned(), vec![0]),
            ("c.c.c".to_owned(), vec![0]),
            ("t.t.t".to_owned(), vec![1]),
            ("p.p.p".to_owned(), vec![1]),
        ]
    );
    assert_eq!(
        ex.location(1),
        &TokenLocation::Cookie("session".into()),
        "cookie location"
    );

    // A cookie in a second Cookie header (HTTP/2 splits them) is found too.
    let h = headers(&[("cookie", "a=1"), ("cookie", "session=s.s.s")]);
    let found: Vec<_> = ex.extract(&h, None).map(|f| f.token).collect();
    assert_eq!(found, ["s.s.s"]);
    let h = headers(&[("cookie", "session=; sessionx=1")]);
    assert_eq!(ex.extract(&h, None).count(), 0);
}

#[test]
fn bad_locations_name_their_path() {
    let mut r = rule("a");
    r.from_headers = vec![
        JwtHeader {
            name: "ok".into(),
            prefix: String::new(),
        },
        JwtHeader {
            name: "bad name".into(),
            prefix: String::new(),
        },
    ];
    let e = Extractor::new(&[rule("x"), r]).unwrap_err().to_string();
    assert_eq!(
        e,
        "jwtRules[1].fromHeaders[1].name: invalid value \"bad name\": not a valid header name"
    );
    let mut r = rule("a");
    r.from_params = vec![String::new()];
    let e = Extractor::new(&[r]).unwrap_err().to_string();
    assert!(e.starts_with("jwtRules[0].fromParams[0]: "), "{e}");
    let mut r = rule("a");
    r.from_cookies = vec!["a;b".into()];
    let e = Extractor::new(&[r]).unwrap_err().to_string();
    assert!(e.starts_with("jwtRules[0].fromCookies[0]: "), "{e}");
    assert!(Extractor::new(&[]).unwrap().is_empty());
}

#[test]
fn principal_and_claims() {
    assert_eq!(
        claims::principal(Some("https://iss"), Some("alice")).as_deref(),
        Some("https://iss/alice")
    );
    assert_eq!(claims::principal(Some("iss"), None), None);
    assert_eq!(claims::principal(None, Some("sub")), None);

    let c = json!({
        "sub": "alice",
        "n": 42,
        "f": 1.5,
        "b": true,
        "groups": ["admin", "dev", 3],
        "nested": {"key": {"deep": "v"}, "list": [1, 2]},
        "https://example.com/roles": ["r1"],
        "nul": null,
    });
    let text = |path: &str| claims::lookup(&c, path).and_then(claims::text);
    assert_eq!(text("sub").as_deref(), Some("alice"));
    assert_eq!(text("n").as_deref(), Some("42"));
    assert_eq!(text("f").as_deref(), Some("1.5"));
    assert_eq!(text("b").as_deref(), Some("true"));
    assert_eq!(text("groups").as_deref(), Some("admin,dev,3"));
    assert_eq!(text("nested.key.deep").as_deref(), Some("v"));
    assert_eq!(text("nested.list").as_deref(), Some("1,2"));
    assert_eq!(text("nested.key").as_deref(), Some(r#"{"deep":"v"}"#));
    assert_eq!(text("https://example.com/roles").as_deref(), Some("r1"));
    assert_eq!(text("nul"), None);
    assert_eq!(text("missing"), None);
    assert_eq!(text("nested.missing"), None);
    assert_eq!(text("sub.more"), None);
    assert_eq!(text(""), None);
}

proptest! {
    #[test]
    fn parse_never_panics(token in ".{0,200}") {
        let _ = Jwt::parse(&token);
    }

    #[test]
    fn parse_never_panics_on_base64_parts(
        header in proptest::collection::vec(any::<u8>(), 0..64),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        sig in "[A-Za-z0-9_=-]{0,12}",
        alg in prop::sample::select(vec!["RS256", "none", "HS256", "EdDSA", ""]),
        claim in prop::sample::select(vec!["iss", "sub", "aud", "exp", "nbf", "azp"]),
        value in prop::sample::select(vec![
            json!(1), json!(-1.5), json!("s"), json!([]), json!(["a", 1]), json!({}), Value::Null,
            json!(1e300), json!(u64::MAX),
        ]),
    ) {
        let _ = Jwt::parse(&format!(
            "{}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(&header),
            URL_SAFE_NO_PAD.encode(&payload)
        ));
        let h = json!({"alg": alg}).to_string();
        let p = json!({claim: value}).to_string();
        if let Ok(jwt) = Jwt::parse(&format!("{}.{}.{sig}", b64(&h), b64(&p))) {
            let _ = jwt.check_time(0);
            let _ = jwt.check_time(u64::MAX);
            let _ = jwt.check_audiences(&["a".to_owned()]);
            let _ = (jwt.signing_input(), jwt.payload_b64(), jwt.signature_b64());
        }
    }

    #[test]
    fn extract_never_panics(
        value in "[ -~\u{80}-\u{ff}]{0,40}",
        query in ".{0,40}",
        prefix in ".{0,6}",
    ) {
        let mut r = rule("a");
        r.from_headers = vec![JwtHeader { name: "authorization".into(), prefix }];
        r.from_params = vec!["t".into()];
        r.from_cookies = vec!["c".into()];
        let ex = Extractor::new(&[r, rule("b")]).unwrap();
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            h.append(http::header::AUTHORIZATION, v.clone());
            h.append(http::header::COOKIE, v);
        }
        for f in ex.extract(&h, Some(&query)) {
            prop_assert!(!f.token.is_empty());
            prop_assert!(f.location < ex.len());
            let _ = Jwt::parse(&f.token);
        }
    }

    #[test]
    fn claim_lookup_never_panics(path in ".{0,20}") {
        let c = json!({"a": {"b": [1, {"c": null}]}, "a.b": 1});
        let _ = claims::lookup(&c, &path).and_then(claims::text);
    }
}
