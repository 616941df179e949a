//! Compiles the Solidity sources of the repository and generates their Rust bindings.
//!
//! Every `.sol` file under `contracts/` (recursively) is compiled with the solcjs front in
//! `tools/solc` through foundry-compilers, offline. For each contract, interface or library with a
//! non-empty ABI this script writes a Foundry-style artifact to `$OUT_DIR/artifacts/<Name>.json`
//! and a `sol!` invocation to `$OUT_DIR/contracts.rs`, which `src/lib.rs` includes.
//!
//! With the `fixtures` feature the contracts under `test/fixtures/` are compiled the same way into
//! `$OUT_DIR/fixtures/`, for the harness tests only.
//!
//! Without a compiler (no `npm install` in the repository, no `$INSITU_SOLC`), e.g. for an
//! integrator who depends on this crate through git, the artifacts committed in
//! `bindings/artifacts/` are used instead; `bindings/tests/artifacts.rs` fails when they drift from
//! the sources.
//!
//! The compiler settings below MUST stay equal to the ones in `foundry.toml` at the repository
//! root, so that `forge build` and the Rust bindings produce the same bytecode. A test in
//! `bindings/tests/settings.rs` compares them.

use foundry_compilers::{
    ArtifactId, ProjectBuilder, ProjectPathsConfig,
    artifacts::{
        ConfigurableContractArtifact, EvmVersion, Optimizer, Remapping, Settings, Severity,
        error::Error as SolcDiagnostic,
    },
    solc::{Solc, SolcCompiler, SolcLanguage, SolcSettings},
};
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    str::FromStr,
};

// ---- Compiler settings: keep equal to `foundry.toml` (profile.default). ----

/// Folder of the production contracts, relative to the repository root (`src` in foundry.toml).
const CONTRACTS_DIR: &str = "contracts";
/// Folder of the harness fixtures, relative to the repository root.
const FIXTURES_DIR: &str = "test/fixtures";
/// The solc-compatible front for solcjs (`solc` in foundry.toml).
const SOLC_WRAPPER: &str = "tools/solc";
/// Marker of an installed solcjs (the wrapper loads this package).
const SOLCJS_PACKAGE: &str = "node_modules/solc/package.json";
/// Import remappings (`remappings` in foundry.toml).
const REMAPPINGS: &[&str] = &["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"];
/// Library folders (`libs` in foundry.toml).
const LIBS: &[&str] = &["node_modules"];
/// `optimizer` in foundry.toml.
const OPTIMIZER_ENABLED: bool = true;
/// `optimizer_runs` in foundry.toml.
const OPTIMIZER_RUNS: usize = 10_000;
/// `via_ir` in foundry.toml.
const VIA_IR: bool = true;
/// `evm_version` in foundry.toml.
const EVM_VERSION: EvmVersion = EvmVersion::Cancun;
/// Same, as the string written in foundry.toml.
const EVM_VERSION_NAME: &str = "cancun";

/// Environment variable naming another solc-compatible executable (e.g. a native solc).
const SOLC_OVERRIDE_ENV: &str = "INSITU_SOLC";
/// Committed artifacts of the production contracts, relative to this crate, used when no compiler
/// is installed.
const COMMITTED_ARTIFACTS_DIR: &str = "artifacts";

/// A failure of the build script: one or more messages for `cargo::error`.
struct BuildError(Vec<String>);

impl<E: std::fmt::Display> From<E> for BuildError {
    fn from(err: E) -> Self {
        Self(vec![err.to_string()])
    }
}

fn fail(message: impl Into<String>) -> BuildError {
    BuildError(vec![message.into()])
}

fn main() {
    if let Err(BuildError(messages)) = run() {
        // `cargo::error` fails the build once the script ends; exiting normally keeps cargo from
        // also dumping the script's whole output. Cargo prefixes each line with the package name.
        for message in messages {
            for line in message.lines() {
                println!("cargo::error={line}");
            }
        }
    }
}

fn run() -> Result<(), BuildError> {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .ok_or_else(|| fail("the crate must live one folder below the repository root"))?
        .to_path_buf();
    let out_dir = PathBuf::from(env("OUT_DIR")?);

    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed={SOLC_OVERRIDE_ENV}");
    for watched in [SOLC_WRAPPER, "package-lock.json", SOLCJS_PACKAGE] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }

    let with_fixtures = std::env::var_os("CARGO_FEATURE_FIXTURES").is_some();

    let production = Unit {
        label: "contracts",
        sources: root.join(CONTRACTS_DIR),
        out: out_dir.clone(),
        artifacts_rel: "artifacts",
    };
    let fixtures = Unit {
        label: "fixtures",
        sources: root.join(FIXTURES_DIR),
        out: out_dir.join("fixtures"),
        artifacts_rel: "fixtures/artifacts",
    };
    production.watch();
    if with_fixtures {
        fixtures.watch();
    }

    let committed = manifest_dir.join(COMMITTED_ARTIFACTS_DIR);
    println!("cargo::rerun-if-changed={}", committed.display());
    let compiler_installed =
        std::env::var_os(SOLC_OVERRIDE_ENV).is_some() || root.join(SOLCJS_PACKAGE).is_file();
    if !compiler_installed && !with_fixtures && committed.is_dir() {
        let contracts = committed_contracts(&committed)?;
        production.write(&contracts)?;
        write_if_changed(&out_dir.join("settings.rs"), &settings_source("", false))?;
        return Ok(());
    }

    let needs_compiler = production.has_sources()? || (with_fixtures && fixtures.has_sources()?);
    let solc = if needs_compiler {
        Some(compiler(&root)?)
    } else {
        None
    };

    let solc_version = solc
        .as_ref()
        .map(|s| s.version.to_string())
        .unwrap_or_default();
    production.build(&root, solc.as_ref())?;
    if with_fixtures {
        fixtures.build(&root, solc.as_ref())?;
    }

    write_if_changed(
        &out_dir.join("settings.rs"),
        &settings_source(&solc_version, solc.is_some()),
    )?;
    Ok(())
}

/// The contracts of the committed artifacts: one `<Name>.json` each, a Foundry-style artifact
/// (`abi`, `bytecode`, `deployedBytecode`) plus the `source` file it was compiled from.
fn committed_contracts(dir: &Path) -> Result<Vec<Contract>, BuildError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    let mut contracts = Vec::new();
    for path in files {
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .ok_or_else(|| fail(format!("bad artifact name {}", path.display())))?;
        let text = fs::read_to_string(&path)?;
        let mut artifact: serde_json::Value = serde_json::from_str(&text)
            .map_err(|err| fail(format!("{}: {err}", path.display())))?;
        let source = artifact
            .as_object_mut()
            .and_then(|object| object.remove("source"))
            .and_then(|source| source.as_str().map(PathBuf::from))
            .ok_or_else(|| fail(format!("{}: no `source`", path.display())))?;
        contracts.push(Contract {
            module: module_name(&name),
            name,
            source,
            has_bytecode: artifact.get("bytecode").is_some(),
            artifact,
        });
    }
    Ok(contracts)
}

fn env(name: &str) -> Result<String, BuildError> {
    std::env::var(name).map_err(|_| fail(format!("{name} is not set")))
}

/// Finds the solc-compatible compiler: `$INSITU_SOLC`, else the solcjs wrapper of the repository.
fn compiler(root: &Path) -> Result<Solc, BuildError> {
    if let Some(path) = std::env::var_os(SOLC_OVERRIDE_ENV) {
        let path = PathBuf::from(path);
        return Solc::new(&path).map_err(|err| {
            fail(format!(
                "{SOLC_OVERRIDE_ENV}={} does not work as solc: {err}",
                path.display()
            ))
        });
    }
    if !root.join(SOLCJS_PACKAGE).is_file() {
        return Err(fail(
            "the Solidity compiler is not installed; run `npm install` in the repository root",
        ));
    }
    let wrapper = root.join(SOLC_WRAPPER);
    Solc::new(&wrapper).map_err(|err| {
        fail(format!(
            "{} failed to start (is Node.js installed?): {err}",
            wrapper.display()
        ))
    })
}

/// One folder of Solidity sources compiled into one set of bindings.
struct Unit {
    /// Name of the generated Rust file (`<label>.rs`) and of the unit in messages.
    label: &'static str,
    /// Folder of `.sol` files, compiled recursively.
    sources: PathBuf,
    /// Where artifacts, the compiler cache and the generated Rust file go.
    out: PathBuf,
    /// `artifacts` folder of this unit relative to `$OUT_DIR`, for the generated `sol!` paths.
    artifacts_rel: &'static str,
}

impl Unit {
    /// Tells cargo to rerun this script when anything under the sources folder changes.
    fn watch(&self) {
        // A missing folder makes cargo rerun the script every time, so its creation is noticed.
        println!("cargo::rerun-if-changed={}", self.sources.display());
        let mut stack = vec![self.sources.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                println!("cargo::rerun-if-changed={}", path.display());
                if path.is_dir() {
                    stack.push(path);
                }
            }
        }
    }

    fn has_sources(&self) -> Result<bool, BuildError> {
        Ok(!sol_files(&self.sources)?.is_empty())
    }

    fn build(&self, root: &Path, solc: Option<&Solc>) -> Result<(), BuildError> {
        let contracts = match solc {
            Some(solc) if self.has_sources()? => self.compile(root, solc)?,
            _ => Vec::new(),
        };
        self.write(&contracts)
    }

    /// Writes the artifacts and the bindings of `contracts`.
    fn write(&self, contracts: &[Contract]) -> Result<(), BuildError> {
        let artifacts_dir = self.out.join("artifacts");
        fs::create_dir_all(&artifacts_dir)?;

        // Remove artifacts of contracts that no longer exist, then write the current ones.
        let keep: Vec<String> = contracts
            .iter()
            .map(|c| format!("{}.json", c.name))
            .collect();
        for entry in fs::read_dir(&artifacts_dir)?.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&file) {
                fs::remove_file(entry.path())?;
            }
        }
        for contract in contracts {
            let path = artifacts_dir.join(format!("{}.json", contract.name));
            write_if_changed(&path, &serde_json::to_string_pretty(&contract.artifact)?)?;
        }
        write_if_changed(
            &self.out.join(format!("{}.rs", self.label)),
            &self.bindings_source(contracts),
        )?;
        Ok(())
    }

    fn compile(&self, root: &Path, solc: &Solc) -> Result<Vec<Contract>, BuildError> {
        let foundry_dir = self.out.join("foundry");
        let remappings = REMAPPINGS
            .iter()
            .map(|r| {
                let mut remapping =
                    Remapping::from_str(r).map_err(|e| fail(format!("bad remapping {r}: {e}")))?;
                remapping.path = root.join(&remapping.path).display().to_string();
                if !remapping.path.ends_with('/') {
                    remapping.path.push('/');
                }
                Ok(remapping)
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let paths = ProjectPathsConfig::builder()
            .root(root)
            .sources(&self.sources)
            // Only the sources folder is compiled: point tests and scripts at an empty place,
            // otherwise the Rust packages `test/` and `script/` would be searched for .sol files.
            .tests(foundry_dir.join("no-tests"))
            .scripts(foundry_dir.join("no-scripts"))
            .libs(LIBS.iter().map(|lib| root.join(lib)))
            .remappings(remappings)
            .artifacts(foundry_dir.join("out"))
            .cache(foundry_dir.join("cache").join("solidity-files-cache.json"))
            .build_with_root::<SolcLanguage>(root);

        let mut settings = Settings {
            optimizer: Optimizer {
                enabled: Some(OPTIMIZER_ENABLED),
                runs: Some(OPTIMIZER_RUNS),
                details: None,
            },
            via_ir: Some(VIA_IR),
            evm_version: Some(EVM_VERSION),
            ..Settings::default()
        };
        settings.remappings.clear();

        let project = ProjectBuilder::<SolcCompiler>::default()
            .paths(paths)
            .settings(SolcSettings {
                settings,
                ..Default::default()
            })
            .offline()
            .set_cached(true)
            .set_compiler_severity_filter(Severity::Error)
            .single_solc_jobs()
            .build(SolcCompiler::Specific(solc.clone()))
            .map_err(|err| fail(format!("cannot set up the {} project: {err}", self.label)))?;

        let output = project
            .compile()
            .map_err(|err| fail(format!("compiling {} failed: {err}", self.label)))?;

        let artifacts: Vec<(ArtifactId, ConfigurableContractArtifact)> = output
            .artifact_ids()
            .map(|(id, artifact)| (id, artifact.clone()))
            .collect();
        let diagnostics = output.into_output().errors;

        let mut errors = Vec::new();
        for diagnostic in &diagnostics {
            let text = describe(root, diagnostic);
            if diagnostic.severity.is_error() {
                errors.push(text);
            } else if diagnostic.severity.is_warning() && !from_library(diagnostic) {
                for line in text.lines() {
                    println!("cargo::warning={line}");
                }
            }
        }
        if !errors.is_empty() {
            errors.insert(
                0,
                format!("the Solidity compiler reported {} error(s):", errors.len()),
            );
            return Err(BuildError(errors));
        }

        self.collect(root, artifacts)
    }

    /// Keeps the artifacts of files under the sources folder, checks names are unique and turns
    /// them into minimal Foundry-style artifacts.
    fn collect(
        &self,
        root: &Path,
        artifacts: Vec<(ArtifactId, ConfigurableContractArtifact)>,
    ) -> Result<Vec<Contract>, BuildError> {
        let mut by_name: BTreeMap<String, Vec<(PathBuf, ConfigurableContractArtifact)>> =
            BTreeMap::new();
        for (id, artifact) in artifacts {
            let source = if id.source.is_absolute() {
                id.source.clone()
            } else {
                root.join(&id.source)
            };
            if !source.starts_with(&self.sources) {
                continue; // a dependency, e.g. OpenZeppelin
            }
            let relative = source.strip_prefix(root).unwrap_or(&source).to_path_buf();
            let entry = by_name.entry(id.name.clone()).or_default();
            if !entry.iter().any(|(path, _)| *path == relative) {
                entry.push((relative, artifact));
            }
        }

        let duplicates: Vec<String> = by_name
            .iter()
            .filter(|(_, defs)| defs.len() > 1)
            .map(|(name, defs)| {
                let files: Vec<String> =
                    defs.iter().map(|(p, _)| p.display().to_string()).collect();
                format!("  `{name}` is defined in {}", files.join(" and "))
            })
            .collect();
        if !duplicates.is_empty() {
            let mut messages = vec![format!(
                "contract names must be unique across {} (each name becomes one Rust binding); rename one of:",
                self.sources
                    .strip_prefix(root)
                    .unwrap_or(&self.sources)
                    .display()
            )];
            messages.extend(duplicates);
            return Err(BuildError(messages));
        }

        let mut contracts = Vec::new();
        for (name, mut defs) in by_name {
            let (source, artifact) = defs.remove(0);
            let Some(abi) = artifact.abi.filter(|abi| !abi.is_empty()) else {
                continue;
            };
            let bytecode = linked_bytes(artifact.bytecode.as_ref().map(|b| &b.object));
            let deployed = linked_bytes(
                artifact
                    .deployed_bytecode
                    .as_ref()
                    .and_then(|d| d.bytecode.as_ref())
                    .map(|b| &b.object),
            );
            if artifact
                .bytecode
                .as_ref()
                .is_some_and(|b| b.object.is_unlinked())
            {
                println!(
                    "cargo::warning=`{name}` needs linked libraries; its binding has no bytecode"
                );
            }
            let mut json = serde_json::json!({ "abi": abi });
            if let Some(code) = bytecode {
                json["bytecode"] = serde_json::json!({ "object": code });
            }
            if let Some(code) = deployed {
                json["deployedBytecode"] = serde_json::json!({ "object": code });
            }
            let module = module_name(&name);
            if let Some(other) = contracts.iter().find(|c: &&Contract| c.module == module) {
                return Err(fail(format!(
                    "`{name}` and `{}` map to the same Rust module `{module}`; rename one",
                    other.name
                )));
            }
            contracts.push(Contract {
                name,
                module,
                source,
                has_bytecode: json.get("bytecode").is_some(),
                artifact: json,
            });
        }
        Ok(contracts)
    }

    fn bindings_source(&self, contracts: &[Contract]) -> String {
        let mut src = String::from("// @generated by insitu-bindings/build.rs. Do not edit.\n\n");
        // Each binding gets its own module: a JSON ABI that uses structs or enums of another
        // contract makes `sol!` define a helper module named after that contract too, so several
        // bindings in one scope would collide. The main type is re-exported at this level.
        for contract in contracts {
            let bytecode_note = if contract.has_bytecode {
                "Deployable: `BYTECODE` and `deploy` are generated."
            } else {
                "ABI only (interface, abstract contract or library)."
            };
            let _ = writeln!(
                src,
                "#[doc = \"Binding of `{name}` from `{source}`. {bytecode_note}\"]\n\
                 pub mod {module} {{\n    \
                     alloy::sol!(\n        \
                         #[allow(missing_docs, clippy::all)]\n        \
                         #[sol(rpc, all_derives)]\n        \
                         {name},\n        \
                         concat!(env!(\"OUT_DIR\"), \"/{dir}/{name}.json\")\n    \
                     );\n\
                 }}\n\
                 #[doc(inline)]\n\
                 pub use {module}::{name};\n",
                name = contract.name,
                module = contract.module,
                source = contract.source.display(),
                dir = self.artifacts_rel,
            );
        }
        let names: Vec<String> = contracts
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect();
        let _ = writeln!(
            src,
            "/// Names of all contracts, interfaces and libraries with a binding in this module, sorted.\n\
             pub const CONTRACTS: &[&str] = &[{}];",
            names.join(", ")
        );
        let sources: Vec<String> = contracts
            .iter()
            .map(|c| format!("(\"{}\", \"{}\")", c.name, c.source.display()))
            .collect();
        let _ = writeln!(
            src,
            "/// Each binding's contract name and the source file it was compiled from, in the order of\n\
             /// [`CONTRACTS`].\n\
             pub const SOURCES: &[(&str, &str)] = &[{}];",
            sources.join(", ")
        );
        // One decoder over the custom errors of every contract: the first whose ABI declares the
        // selector decodes it (an error declared in several contracts has the same signature and
        // arguments everywhere).
        let mut arms = String::new();
        for contract in contracts {
            let declares_errors = contract.artifact["abi"]
                .as_array()
                .is_some_and(|abi| abi.iter().any(|item| item["type"] == "error"));
            if declares_errors {
                let _ = writeln!(
                    arms,
                    "    if let Ok(error) = <{module}::{name}::{name}Errors as alloy::sol_types::SolInterface>::abi_decode(data) {{\n        \
                         return Some(format!(\"{{error:?}}\"));\n    \
                     }}",
                    module = contract.module,
                    name = contract.name,
                );
            }
        }
        let _ = writeln!(
            src,
            "/// Decodes `data` as a custom error of any contract of this module, as `Name(Name {{ arg: value, .. }})`.\n\
             #[allow(dead_code)]\n\
             pub(crate) fn decode_custom_error(data: &[u8]) -> Option<String> {{\n\
             {arms}    None\n\
             }}"
        );
        src
    }
}

/// One contract ready for code generation.
struct Contract {
    name: String,
    /// Rust module holding the binding (snake case of `name`).
    module: String,
    /// Source file, relative to the repository root.
    source: PathBuf,
    has_bytecode: bool,
    artifact: serde_json::Value,
}

/// Snake-case Rust module name for a contract name: `ERC20Mock` -> `erc20_mock`.
fn module_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn",
        "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
        "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
        "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final",
        "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    if KEYWORDS.contains(&out.as_str()) {
        format!("{out}_")
    } else {
        out
    }
}

/// Hex of fully linked, non-empty bytecode.
fn linked_bytes(object: Option<&foundry_compilers::artifacts::BytecodeObject>) -> Option<String> {
    let bytes = object?.as_bytes()?;
    if bytes.is_empty() {
        return None;
    }
    serde_json::to_value(bytes)
        .ok()?
        .as_str()
        .map(str::to_owned)
}

/// `file:line:column: Kind: message` for one compiler diagnostic.
fn describe(root: &Path, diagnostic: &SolcDiagnostic) -> String {
    let kind = &diagnostic.r#type;
    let code = diagnostic
        .error_code
        .map(|c| format!(" [{c}]"))
        .unwrap_or_default();
    let message = diagnostic.message.trim();
    match &diagnostic.source_location {
        Some(location) => {
            let position = fs::read_to_string(root.join(&location.file))
                .ok()
                .and_then(|text| line_column(&text, location.start))
                .map(|(line, column)| format!(":{line}:{column}"))
                .unwrap_or_default();
            format!("{}{position}: {kind}{code}: {message}", location.file)
        }
        None => format!("solc: {kind}{code}: {message}"),
    }
}

/// Whether a diagnostic points into a library folder (e.g. OpenZeppelin), whose warnings are
/// not ours to fix.
fn from_library(diagnostic: &SolcDiagnostic) -> bool {
    diagnostic.source_location.as_ref().is_some_and(|location| {
        LIBS.iter()
            .any(|lib| Path::new(&location.file).starts_with(lib))
    })
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: i32) -> Option<(usize, usize)> {
    let offset = usize::try_from(offset).ok()?;
    let before = text.as_bytes().get(..offset)?;
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    Some((line, column))
}

/// All `.sol` files under `dir`, recursively, sorted. A missing folder has none.
fn sol_files(dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let mut files = Vec::new();
    if !dir.is_dir() {
        return Ok(files);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "sol") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn settings_source(solc_version: &str, compiled: bool) -> String {
    format!(
        "// @generated by insitu-bindings/build.rs. Do not edit.\n\
         /// Version of the Solidity compiler that produced the bytecode (empty when nothing was compiled).\n\
         pub const SOLC_VERSION: &str = \"{solc_version}\";\n\
         /// Whether the bindings were compiled from the sources (false: from the committed artifacts).\n\
         pub const COMPILED_FROM_SOURCES: bool = {compiled};\n\
         /// Whether the optimizer was enabled.\n\
         pub const OPTIMIZER: bool = {OPTIMIZER_ENABLED};\n\
         /// Optimizer runs.\n\
         pub const OPTIMIZER_RUNS: u32 = {OPTIMIZER_RUNS};\n\
         /// Whether the IR pipeline (`viaIR`) was used.\n\
         pub const VIA_IR: bool = {VIA_IR};\n\
         /// Target EVM version.\n\
         pub const EVM_VERSION: &str = \"{EVM_VERSION_NAME}\";\n\
         /// Import remappings, relative to the repository root.\n\
         pub const REMAPPINGS: &[&str] = &[{remappings}];\n\
         /// Folder of the production contracts, relative to the repository root.\n\
         pub const CONTRACTS_DIR: &str = \"{CONTRACTS_DIR}\";\n",
        remappings = REMAPPINGS
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Writes `contents` unless the file already holds exactly that, so timestamps stay put.
fn write_if_changed(path: &Path, contents: &str) -> Result<(), BuildError> {
    if fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, contents)?;
    Ok(())
}
