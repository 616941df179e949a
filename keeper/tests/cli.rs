//! The `insitu-keeper` binary.

use std::process::Command;

fn keeper() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_insitu-keeper"));
    // Keep the caller's INSITU_KEEPER_* variables out of these tests.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INSITU_KEEPER_") {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keeper.toml");
    std::fs::write(&path, "confirmations = 4\n").unwrap();
    let output = keeper()
        .args(["--check-config", "--config"])
        .arg(&path)
        .env("INSITU_KEEPER_CHAIN_ID", "1337")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("confirmations = 4"), "{stdout}");
    assert!(stdout.contains("chain_id = 1337"), "{stdout}");
    assert!(
        stdout.contains("rpc_url = \"http://127.0.0.1:8545\""),
        "{stdout}"
    );
}

#[test]
fn an_invalid_configuration_fails_with_a_readable_error() {
    let output = keeper()
        .arg("--check-config")
        .env("INSITU_KEEPER_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("loading the configuration"), "{stderr}");
    assert!(
        stderr.contains("listen \"nowhere\" is not an ip:port socket address"),
        "{stderr}"
    );
}

#[test]
fn without_check_config_it_says_what_it_can_do() {
    let output = keeper().output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--check-config"), "{stderr}");
}
