//! The committed artifacts (`bindings/artifacts/`, used when no compiler is installed) and the
//! published ABIs (`abi/`) are exactly what the sources compile to.
//!
//! After a contract change, refresh both with
//! `INSITU_UPDATE_ARTIFACTS=1 cargo test -p insitu-bindings --test artifacts` and commit them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use insitu_bindings::{ARTIFACTS_DIR, CONTRACTS, SOURCES, settings};
use serde_json::Value;

const UPDATE_ENV: &str = "INSITU_UPDATE_ARTIFACTS";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What each committed artifact must hold: the compiled artifact plus its source file.
fn expected_artifacts() -> BTreeMap<String, Value> {
    let sources: BTreeMap<&str, &str> = SOURCES.iter().copied().collect();
    CONTRACTS
        .iter()
        .map(|name| {
            let path = Path::new(ARTIFACTS_DIR).join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path).expect("compiled artifact");
            let mut artifact: Value = serde_json::from_str(&text).expect("JSON artifact");
            artifact["source"] = Value::String(sources[name].to_owned());
            ((*name).to_owned(), artifact)
        })
        .collect()
}

/// What the published ABI folder must hold: the ABI of every contract that is not a test mock.
fn expected_abis(artifacts: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    artifacts
        .iter()
        .filter(|(_, artifact)| !artifact["source"].as_str().unwrap().contains("/mocks/"))
        .map(|(name, artifact)| (name.clone(), artifact["abi"].clone()))
        .collect()
}

fn read_folder(dir: &Path) -> BTreeMap<String, Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
        .map(|entry| {
            let path = entry.path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

fn write_folder(dir: &Path, files: &BTreeMap<String, Value>) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    for (name, value) in files {
        let text = serde_json::to_string_pretty(value).unwrap() + "\n";
        std::fs::write(dir.join(format!("{name}.json")), text).unwrap();
    }
}

/// The names that differ between `committed` and `expected`.
fn drift(committed: &BTreeMap<String, Value>, expected: &BTreeMap<String, Value>) -> Vec<String> {
    let mut names: Vec<String> = committed.keys().chain(expected.keys()).cloned().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| committed.get(name) != expected.get(name))
        .collect()
}

#[test]
fn committed_artifacts_and_published_abis_match_the_sources() {
    let compiled = std::hint::black_box(settings::COMPILED_FROM_SOURCES);
    assert!(
        compiled,
        "these bindings were built from the committed artifacts, so they cannot be checked \
         against the sources: run `npm install` in the repository root first"
    );
    let artifacts = expected_artifacts();
    let abis = expected_abis(&artifacts);
    let artifacts_dir = repository().join("bindings/artifacts");
    let abi_dir = repository().join("abi");
    if std::env::var_os(UPDATE_ENV).is_some() {
        write_folder(&artifacts_dir, &artifacts);
        write_folder(&abi_dir, &abis);
    }
    let stale = drift(&read_folder(&artifacts_dir), &artifacts);
    assert!(
        stale.is_empty(),
        "bindings/artifacts/ differs from the sources for {stale:?}; refresh with \
         `{UPDATE_ENV}=1 cargo test -p insitu-bindings --test artifacts` and commit"
    );
    let stale = drift(&read_folder(&abi_dir), &abis);
    assert!(
        stale.is_empty(),
        "abi/ differs from the sources for {stale:?}; refresh with \
         `{UPDATE_ENV}=1 cargo test -p insitu-bindings --test artifacts` and commit"
    );
    assert!(abis.contains_key("PaymentCondition") && !abis.contains_key("MockERC20"));
}
