//! Checks that the bindings are built like `forge build` builds, and that every listed binding
//! has its artifact.

use std::path::Path;

use insitu_bindings::{ARTIFACTS_DIR, CONTRACTS, settings};

fn foundry_profile() -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../foundry.toml");
    let text = std::fs::read_to_string(&path).expect("read foundry.toml");
    let config: toml::Table = text.parse().expect("foundry.toml is valid TOML");
    config["profile"]["default"]
        .as_table()
        .expect("[profile.default]")
        .clone()
}

#[test]
fn compiler_settings_match_foundry_toml() {
    let profile = foundry_profile();
    assert_eq!(profile["src"].as_str(), Some(settings::CONTRACTS_DIR));
    assert_eq!(profile["optimizer"].as_bool(), Some(settings::OPTIMIZER));
    assert_eq!(
        profile["optimizer_runs"].as_integer(),
        Some(i64::from(settings::OPTIMIZER_RUNS))
    );
    assert_eq!(profile["via_ir"].as_bool(), Some(settings::VIA_IR));
    assert_eq!(profile["evm_version"].as_str(), Some(settings::EVM_VERSION));
    assert_eq!(profile["solc"].as_str(), Some("tools/solc"));
    assert_eq!(profile["offline"].as_bool(), Some(true));
    let remappings: Vec<&str> = profile["remappings"]
        .as_array()
        .expect("remappings")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(remappings, settings::REMAPPINGS);
}

#[test]
fn compiler_is_the_pinned_solcjs() {
    if CONTRACTS.is_empty() {
        return; // nothing was compiled, so no compiler version was recorded
    }
    let lock =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../package-lock.json"))
            .expect("read package-lock.json");
    let lock: serde_json::Value = serde_json::from_str(&lock).expect("package-lock.json is JSON");
    let pinned = lock["packages"]["node_modules/solc"]["version"]
        .as_str()
        .expect("solc in package-lock.json");
    assert!(
        settings::SOLC_VERSION.starts_with(&format!("{pinned}+")),
        "built with {}, package-lock.json pins {pinned}",
        settings::SOLC_VERSION
    );
}

#[test]
fn every_binding_has_an_artifact_with_an_abi() {
    let mut names = CONTRACTS.to_vec();
    names.sort_unstable();
    assert_eq!(names, CONTRACTS, "CONTRACTS is sorted");
    for name in CONTRACTS {
        let path = Path::new(ARTIFACTS_DIR).join(format!("{name}.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let artifact: serde_json::Value = serde_json::from_str(&text).expect("artifact is JSON");
        assert!(
            artifact["abi"]
                .as_array()
                .is_some_and(|abi| !abi.is_empty()),
            "{name} has a non-empty ABI"
        );
    }
}
