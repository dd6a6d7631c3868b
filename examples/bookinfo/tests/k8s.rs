//! The Kubernetes manifest `k8s/bookinfo.yaml` parses, and holds what Istio's Bookinfo
//! holds: every Service, ServiceAccount and Deployment, each Deployment running a binary of
//! this package with variables the mesh knows.

use std::collections::BTreeSet;

use serde_json::Value;

fn documents() -> Vec<Value> {
    let text = include_str!("../k8s/bookinfo.yaml");
    serde_saphyr::from_multiple::<Value>(text)
        .expect("k8s/bookinfo.yaml is YAML")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn names(docs: &[Value], kind: &str) -> BTreeSet<String> {
    docs.iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| d["metadata"]["name"].as_str().expect("a name").to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn has_every_kind_and_name_of_istio_bookinfo() {
    let docs = documents();
    for d in &docs {
        let kind = d["kind"].as_str().expect("every document has a kind");
        assert!(
            ["Service", "ServiceAccount", "Deployment"].contains(&kind),
            "unexpected kind {kind}"
        );
    }
    assert_eq!(
        names(&docs, "Service"),
        set(&[
            "details",
            "details-v1",
            "istio-ingressgateway",
            "productpage",
            "productpage-v1",
            "ratings",
            "ratings-v1",
            "reviews",
            "reviews-v1",
            "reviews-v2",
            "reviews-v3",
        ])
    );
    assert_eq!(
        names(&docs, "ServiceAccount"),
        set(&[
            "bookinfo-details",
            "bookinfo-productpage",
            "bookinfo-ratings",
            "bookinfo-reviews",
            "istio-ingressgateway-service-account",
        ])
    );
    assert_eq!(
        names(&docs, "Deployment"),
        set(&[
            "details-v1",
            "istio-ingressgateway",
            "productpage-v1",
            "ratings-v1",
            "reviews-v1",
            "reviews-v2",
            "reviews-v3",
        ])
    );
    let gateway = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "istio-ingressgateway")
        .expect("the gateway service");
    assert_eq!(gateway["spec"]["type"], "LoadBalancer");
}

#[test]
fn deployments_run_a_binary_with_known_variables_and_no_sidecar() {
    let docs = documents();
    let accounts = names(&docs, "ServiceAccount");
    let binaries = ["details", "ratings", "reviews", "productpage", "gateway"];
    let known: BTreeSet<&str> = mesh::core::config::ENV_VARS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let template = &d["spec"]["template"];
        assert!(
            template["metadata"]["annotations"].is_null(),
            "{name}: no sidecar annotation"
        );
        let labels = &template["metadata"]["labels"];
        assert_eq!(&d["spec"]["selector"]["matchLabels"]["app"], &labels["app"]);
        let account = template["spec"]["serviceAccountName"]
            .as_str()
            .unwrap_or_default();
        assert!(accounts.contains(account), "{name}: account {account}");
        let containers = template["spec"]["containers"]
            .as_array()
            .expect("containers");
        assert_eq!(containers.len(), 1, "{name}: one container, no sidecar");
        let container = &containers[0];
        let command = container["command"][0].as_str().unwrap_or_default();
        let binary = command.trim_start_matches("/usr/local/bin/");
        assert!(binaries.contains(&binary), "{name}: runs {command}");
        let env: Vec<&str> = container["env"]
            .as_array()
            .expect("env")
            .iter()
            .map(|e| e["name"].as_str().expect("a variable name"))
            .collect();
        for required in ["MESH_SERVICE", "MESH_VERSION", "MESH_NAMESPACE", "POD_NAME"] {
            assert!(env.contains(&required), "{name}: sets {required}");
        }
        for var in env.iter().filter(|v| v.starts_with("MESH_")) {
            assert!(known.contains(var), "{name}: {var} is a mesh variable");
        }
        if binary == "reviews" {
            let version = labels["version"].as_str().unwrap_or_default();
            let reviews = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["name"] == "REVIEWS_VERSION")
                .expect("reviews sets REVIEWS_VERSION");
            assert_eq!(reviews["value"], version, "{name}");
        }
        // Every service with pods selects them.
        let app = labels["app"].as_str().unwrap_or_default();
        assert!(
            docs.iter()
                .any(|s| s["kind"] == "Service" && s["spec"]["selector"]["app"] == app),
            "{name}: a Service selects app={app}"
        );
    }
}
