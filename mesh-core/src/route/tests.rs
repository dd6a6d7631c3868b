//! Property tests of the matchers and the split, and helpers shared by the module's tests.

use std::convert::Infallible;

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{HeaderOps, Pattern, RequestInfo, Rewrite, RouteMatch, Split, StringMatch};
use crate::query::{decode as percent_decode, param as query_param};

/// A generator that fails the test if anything draws from it.
pub(super) struct NoDraw;

impl rand::TryRng for NoDraw {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        panic!("drew a random number")
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        panic!("drew a random number")
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Infallible> {
        panic!("drew a random number")
    }
}

/// Encodes every byte but the unreserved ones, as a client would.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether `m` as the uri of a block matches a request for `path`.
fn uri_hit(m: &StringMatch, ignore_uri_case: bool, path: &str) -> bool {
    let block = RouteMatch {
        uri: Some(m.clone()),
        ignore_uri_case,
        ..Default::default()
    };
    let req = Request::get(path).body(()).unwrap();
    let info = RequestInfo::new(req.method(), req.uri(), req.headers());
    block.matches(&info).is_some()
}

/// Paths `http::Uri` accepts.
fn path() -> impl Strategy<Value = String> {
    "/[A-Za-z0-9._~/-]{0,20}"
}

fn flip_case(s: &str, mask: &[bool]) -> String {
    s.chars()
        .zip(mask.iter().cycle())
        .map(|(c, &flip)| {
            if flip && c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else if flip {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #[test]
    fn exact_matches_itself(s in "\\PC*", t in "\\PC*") {
        let m = StringMatch::Exact(s.clone());
        prop_assert!(m.matches(&s));
        prop_assert_eq!(m.matches(&t), s == t);
    }

    #[test]
    fn prefix_matches_any_extension(p in "\\PC*", rest in "\\PC*") {
        let m = StringMatch::Prefix(p.clone());
        let extended = format!("{p}{rest}");
        prop_assert!(m.matches(&extended));
        if !p.is_empty() {
            // Dropping the last character of the prefix makes a string it does not start with.
            let mut cut = p.clone();
            cut.pop();
            prop_assert!(!m.matches(&cut));
        }
    }

    #[test]
    fn escaped_literal_regex_equals_exact(s in "\\PC{0,12}", t in "\\PC{0,12}") {
        let re = StringMatch::Regex(Pattern::full(&regex::escape(&s)).unwrap());
        let exact = StringMatch::Exact(s.clone());
        prop_assert_eq!(re.matches(&s), true);
        prop_assert_eq!(re.matches(&t), exact.matches(&t));
        let longer = format!("{s}{t}");
        prop_assert_eq!(re.matches(&longer), exact.matches(&longer));
    }

    #[test]
    fn ignore_uri_case_is_case_invariant(
        target in path(),
        request in path(),
        mask in prop::collection::vec(any::<bool>(), 1..8),
        prefix in any::<bool>(),
    ) {
        let m = if prefix {
            StringMatch::Prefix(target.clone())
        } else {
            StringMatch::Exact(target.clone())
        };
        let flipped = flip_case(&request, &mask);
        prop_assert_eq!(uri_hit(&m, true, &request), uri_hit(&m, true, &flipped));
        // The target itself in any case matches.
        prop_assert!(uri_hit(&m, true, &flip_case(&target, &mask)));
        // Ignoring case only ever adds matches.
        if uri_hit(&m, false, &request) {
            prop_assert!(uri_hit(&m, true, &request));
        }
    }

    #[test]
    fn query_round_trip(
        pairs in prop::collection::vec(("\\PC{0,6}", "\\PC{0,8}"), 1..6),
        pick in any::<prop::sample::Index>(),
    ) {
        let query = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let (name, _) = &pairs[pick.index(pairs.len())];
        let first = pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let found = query_param(&query, name);
        prop_assert_eq!(found.as_deref(), first);
        // A name that is not there is not found.
        let absent = query_param(&query, "\u{1F600}absent");
        prop_assert!(absent.is_none());
    }

    #[test]
    fn decoding_encoded_text_is_identity(s in "\\PC*") {
        let encoded = percent_encode(&s);
        prop_assert_eq!(percent_decode(&encoded), s.as_str());
    }

    #[test]
    fn prefix_rewritten_to_itself_is_unchanged(p in path(), rest in "[a-z/]{0,10}", q in "[a-z=&]{0,6}") {
        let r = Rewrite { uri: Some(p.clone()), ..Default::default() };
        let pq = if q.is_empty() { format!("{p}{rest}") } else { format!("{p}{rest}?{q}") };
        prop_assert_eq!(r.path(&pq, Some(&p)), Some(pq.clone()));
    }

    #[test]
    fn set_and_remove_are_idempotent(
        start in prop::collection::vec((0usize..4, "[a-z0-9]{0,4}"), 0..8),
        set in prop::collection::vec((0usize..4, "[a-z0-9]{0,4}"), 0..4),
        remove in prop::collection::vec(0usize..4, 0..4),
    ) {
        const NAMES: [&str; 4] = ["a", "b", "x-c", "x-d"];
        let name = |i: usize| HeaderName::from_static(NAMES[i]);
        let value = |s: &str| HeaderValue::from_str(s).unwrap();
        let mut headers = HeaderMap::new();
        for (i, v) in &start {
            headers.append(name(*i), value(v));
        }
        let ops = HeaderOps {
            set: set.iter().map(|(i, v)| (name(*i), value(v))).collect(),
            add: vec![],
            remove: remove.iter().map(|&i| name(i)).collect(),
        };
        ops.apply(&mut headers);
        let once = headers.clone();
        ops.apply(&mut headers);
        prop_assert_eq!(&headers, &once);
        for (i, _) in &set {
            prop_assert_eq!(headers.get_all(name(*i)).iter().count(), 1);
        }
        for &i in &remove {
            if !set.iter().any(|(j, _)| *j == i) {
                prop_assert!(!headers.contains_key(name(i)));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn split_frequencies_follow_weights(
        weights in prop::collection::vec(0u32..100, 1..8),
        seed in any::<u64>(),
    ) {
        let split = Split::new(&weights);
        let mut rng = StdRng::seed_from_u64(seed);
        let draws = 20_000u32;
        let mut counts = vec![0u32; weights.len()];
        for _ in 0..draws {
            counts[split.pick(&mut rng)] += 1;
        }
        let total: u32 = weights.iter().sum();
        for (i, (&w, &c)) in weights.iter().zip(&counts).enumerate() {
            let p = if total == 0 {
                1.0 / weights.len() as f64
            } else {
                f64::from(w) / f64::from(total)
            };
            if p == 0.0 {
                prop_assert_eq!(c, 0, "index {} has weight 0", i);
                continue;
            }
            let expected = p * f64::from(draws);
            let sd = (f64::from(draws) * p * (1.0 - p)).sqrt();
            prop_assert!(
                (f64::from(c) - expected).abs() <= 5.0 * sd + 1.0,
                "index {}: {} picks, expected {:.0} ({:?})", i, c, expected, weights
            );
        }
    }
}
