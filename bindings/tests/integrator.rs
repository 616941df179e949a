//! An integrator's crate, outside this workspace, that depends on the bindings by path in a copy
//! of the repository without `node_modules` (as a git dependency is fetched): it builds from the
//! committed artifacts, with no npm and no solc, and its bindings work.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// Copies the files git tracks (as they are in the working tree) to `to`.
fn copy_tracked_files(from: &Path, to: &Path) {
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(from)
        .output()
        .expect("git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    for file in listed.stdout.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        let relative = Path::new(std::str::from_utf8(file).unwrap());
        let source = from.join(relative);
        if !source.is_file() {
            continue; // deleted in the working tree
        }
        let target = to.join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&source, &target).unwrap();
    }
}

const MAIN: &str = r#"
use alloy_sol_types::SolError;
use insitu_bindings::errors::decode_revert;
use insitu_bindings::{PaymentCondition, settings};

fn main() {
    println!("from sources: {}", settings::COMPILED_FROM_SOURCES);
    println!("payment bytecode: {} bytes", PaymentCondition::BYTECODE.len());
    let data = PaymentCondition::PermitForEth {}.abi_encode();
    println!("decoded: {}", decode_revert(&data));
}
"#;

#[test]
fn a_crate_outside_the_workspace_builds_the_bindings_without_npm() {
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("integrator");
    let repo = work.join("insitu");
    copy_tracked_files(&repository(), &repo);
    assert!(!repo.join("node_modules").exists());

    let app = work.join("app");
    std::fs::create_dir_all(app.join("src")).unwrap();
    std::fs::write(
        app.join("Cargo.toml"),
        format!(
            "[package]\nname = \"integrator-app\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\ninsitu-bindings = {{ path = {:?} }}\n\
             alloy-sol-types = \"1.7\"\n\n[workspace]\n",
            repo.join("bindings").display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(app.join("src/main.rs"), MAIN).unwrap();
    // The same dependency versions as the workspace.
    std::fs::copy(repository().join("Cargo.lock"), app.join("Cargo.lock")).unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["run", "--quiet", "--target-dir"])
        .arg(work.join("target"))
        .current_dir(&app)
        .env_remove("INSITU_SOLC")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("from sources: false"), "{stdout}");
    assert!(!stdout.contains("payment bytecode: 0 bytes"), "{stdout}");
    assert!(stdout.contains("decoded: PermitForEth"), "{stdout}");
}
