//! Header operations of routes and destinations (Istio's `Headers.HeaderOperations`).

use http::HeaderMap;

use super::HeaderOps;

impl HeaderOps {
    /// Applies the operations to `headers`: first `remove`, then `set` (replacing every value
    /// of the name), then `add` (appending), the order Envoy applies them in.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};

    use super::*;

    fn n(s: &'static str) -> HeaderName {
        HeaderName::from_static(s)
    }
    fn v(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }
    fn values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn empty_does_nothing() {
        let ops = HeaderOps::default();
        assert!(ops.is_empty());
        let mut h = HeaderMap::new();
        h.insert("a", v("1"));
        let before = h.clone();
        ops.apply(&mut h);
        assert_eq!(h, before);
        for ops in [
            HeaderOps {
                set: vec![(n("a"), v("1"))],
                ..Default::default()
            },
            HeaderOps {
                add: vec![(n("a"), v("1"))],
                ..Default::default()
            },
            HeaderOps {
                remove: vec![n("a")],
                ..Default::default()
            },
        ] {
            assert!(!ops.is_empty());
        }
    }

    #[test]
    fn remove_then_set_then_add() {
        let ops = HeaderOps {
            set: vec![(n("x-set"), v("new")), (n("x-both"), v("set"))],
            add: vec![(n("x-add"), v("2")), (n("x-both"), v("added"))],
            remove: vec![n("x-gone"), n("x-both"), n("x-absent")],
        };
        let mut h = HeaderMap::new();
        h.append("x-set", v("old1"));
        h.append("x-set", v("old2"));
        h.append("x-add", v("1"));
        h.append("x-gone", v("bye"));
        h.append("x-both", v("orig"));
        h.append("x-keep", v("k"));
        ops.apply(&mut h);
        assert_eq!(values(&h, "x-set"), ["new"]);
        assert_eq!(values(&h, "x-add"), ["1", "2"]);
        assert_eq!(values(&h, "x-gone"), Vec::<&str>::new());
        // Removed first, so the set and the added value both survive.
        assert_eq!(values(&h, "x-both"), ["set", "added"]);
        assert_eq!(values(&h, "x-keep"), ["k"]);
    }

    #[test]
    fn later_set_of_a_name_wins() {
        let ops = HeaderOps {
            set: vec![(n("a"), v("1")), (n("a"), v("2"))],
            ..Default::default()
        };
        let mut h = HeaderMap::new();
        ops.apply(&mut h);
        assert_eq!(values(&h, "a"), ["2"]);
    }
}
