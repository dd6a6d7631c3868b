//! Bad configuration is refused with an error that names the field and the value.

use mesh::core::MeshConfig;
use mesh::tower::{BuildError, MeshClient};

#[test]
fn invalid_model_names_its_field() {
    let mut config = MeshConfig::default();
    config.discovery.jitter = 2.0;
    let err = MeshClient::new(config).unwrap_err();
    assert!(matches!(err, BuildError::Config(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("discovery.jitter") && text.contains('2'),
        "{text}"
    );
}

#[test]
fn bad_environment_names_the_variable() {
    let err = MeshConfig::from_vars([("MESH_TIMEOUT", "soon")]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("MESH_TIMEOUT") && text.contains("soon"),
        "{text}"
    );

    let err = MeshConfig::from_vars([("MESH_TIMEOUTS", "1s")]).unwrap_err();
    assert!(err.to_string().contains("MESH_TIMEOUTS"), "{err}");
}

#[test]
fn bad_file_value_names_its_path() {
    let yaml = "destinations:\n  - host: reviews\n    loadBalancer: ROUND_ROBBIN\n";
    let err = MeshConfig::from_str(yaml, mesh::core::config::Format::Yaml).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("destinations[0].loadBalancer") && text.contains("ROUND_ROBBIN"),
        "{text}"
    );
}

#[test]
fn the_three_front_doors_agree() {
    let yaml = "workload: {service: productpage, namespace: shop}\ndefaults: {timeout: 2s, loadBalancer: ROUND_ROBIN}\n";
    let from_file = MeshConfig::from_str(yaml, mesh::core::config::Format::Yaml).unwrap();
    let from_env = MeshConfig::from_vars([
        ("MESH_SERVICE", "productpage"),
        ("POD_NAMESPACE", "shop"),
        ("MESH_TIMEOUT", "2s"),
        ("MESH_LB", "ROUND_ROBIN"),
    ])
    .unwrap();
    let from_code = MeshConfig::builder()
        .service("productpage")
        .namespace("shop")
        .timeout(std::time::Duration::from_secs(2))
        .load_balancer(mesh::core::config::LoadBalancer::RoundRobin)
        .build()
        .unwrap();
    assert_eq!(from_file, from_env);
    assert_eq!(from_file, from_code);
}

#[test]
fn readme_documents_every_environment_variable() {
    let readme = include_str!("../../README.md");
    for (name, _) in mesh::core::config::env::ENV_VARS {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README's variable table lacks {name}"
        );
    }
}
