//! The planted-bug contracts in `test/fixtures/planted/` are copies of production contracts with
//! one deliberate defect each. This test keeps them honest: apart from their header, their names,
//! their imports and the lines marked `PLANTED:`, each must equal the production contracts its
//! header names. When a production contract changes, the test says which copy to bring up to date.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Hunks of a line diff: (production lines, copy lines) that differ, in order.
fn hunks(production: &[String], copy: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    let (n, m) = (production.len(), copy.len());
    // Longest common subsequence table, from the end.
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if production[i] == copy[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    let mut current: (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    while i < n || j < m {
        if i < n && j < m && production[i] == copy[j] {
            if !current.0.is_empty() || !current.1.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            current.1.push(copy[j].clone());
            j += 1;
        } else {
            current.0.push(production[i].clone());
            i += 1;
        }
    }
    if !current.0.is_empty() || !current.1.is_empty() {
        out.push(current);
    }
    out
}

/// Replaces every identifier that extends one of `stems` (e.g. `ServiceConditionWithoutLockCheck`
/// for `ServiceCondition`) by the stem, and `copy_name` by `main_stem`.
fn rename(line: &str, stems: &[String], copy_name: &str, main_stem: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let replaced = if token == copy_name {
            main_stem
        } else {
            stems
                .iter()
                .find(|stem| token.len() > stem.len() && token.starts_with(stem.as_str()))
                .map_or(token.as_str(), String::as_str)
        };
        out.push_str(replaced);
        token.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// The lines that carry behaviour: no blank, licence, pragma or import lines, trimmed.
fn body(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|line| {
        !(line.is_empty()
            || line.starts_with("// SPDX")
            || line.starts_with("pragma ")
            || line.starts_with("import ")
            || line.starts_with("} from \""))
    })
}

#[test]
fn planted_copies_differ_from_production_only_where_marked() {
    let dir = root().join("test/fixtures/planted");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("planted folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|ext| ext != "sol") {
            continue;
        }
        let copy_name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        // The header (comment lines before `pragma`) names the production files in backquotes.
        let header: String = text
            .lines()
            .take_while(|line| !line.starts_with("pragma"))
            .collect::<Vec<_>>()
            .join("\n");
        let sources: Vec<&str> = header
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|part| part.ends_with(".sol"))
            .collect();
        assert!(
            !sources.is_empty(),
            "{copy_name}: the header must name the production files"
        );
        let stems: Vec<String> = sources
            .iter()
            .map(|source| {
                Path::new(source)
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let main_stem = stems.last().unwrap().clone();

        let mut production = Vec::new();
        for source in &sources {
            let source_text = std::fs::read_to_string(root().join(source))
                .unwrap_or_else(|err| panic!("{copy_name}: cannot read {source}: {err}"));
            production.extend(
                body(&source_text).map(|line| rename(line, &stems, &copy_name, &main_stem)),
            );
        }
        let after_header = text
            .lines()
            .skip_while(|line| !line.starts_with("pragma"))
            .collect::<Vec<_>>()
            .join("\n");
        let copy: Vec<String> = body(&after_header)
            .map(|line| rename(line, &stems, &copy_name, &main_stem))
            .collect();

        let differences = hunks(&production, &copy);
        assert!(!differences.is_empty(), "{copy_name} has no planted change");
        for (removed, added) in differences {
            assert!(
                added.iter().any(|line| line.contains("PLANTED:")),
                "{copy_name} differs from {sources:?} outside a `PLANTED:` change; bring it up to \
                 date.\nproduction: {removed:#?}\ncopy: {added:#?}"
            );
            assert!(
                removed.len() <= 6,
                "{copy_name}: a planted change replaces {} production lines; keep it small",
                removed.len()
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 7, "every planted copy is checked");
}
