//! Tidy checks, kept as ordinary tests so the architecture stays what ARCHITECTURE.md says:
//!
//! * the "Architecture invariant" lines of ARCHITECTURE.md are parsed and enforced on the imports
//!   of each module (which of our modules it may use, which crates it must not);
//! * every source file appears in ARCHITECTURE.md's code map;
//! * every comment that cites a document section cites one that exists in this repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// What one invariant line says about one module.
#[derive(Debug, Default, PartialEq, Eq)]
struct Rule {
    module: String,
    /// `Some`: the only modules of ours it may import.
    only: Option<BTreeSet<String>>,
    never: BTreeSet<String>,
    crates: BTreeSet<String>,
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Parses "Architecture invariant:" lines. Each `;`-separated clause starts with a backticked
/// module, then says `imports nothing of ours`, `imports only `a`, `b``, `never imports `a``, or
/// `never uses `crate``.
fn parse_invariants(doc: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    for line in doc.lines() {
        let Some((_, text)) = line.split_once("Architecture invariant:") else {
            continue;
        };
        for clause in text.split(';') {
            let Some(module) = backticked(clause).into_iter().next() else {
                continue;
            };
            let mut rule = Rule {
                module,
                ..Rule::default()
            };
            if clause.contains("imports nothing of ours") {
                rule.only = Some(BTreeSet::new());
            }
            if let Some((_, rest)) = clause.split_once("imports only") {
                let rest = rest.split(':').next().unwrap_or_default();
                rule.only = Some(backticked(rest).into_iter().collect());
            }
            if let Some((_, rest)) = clause.split_once("never imports") {
                let rest = rest.split("never uses").next().unwrap_or_default();
                rule.never = backticked(rest).into_iter().collect();
            }
            if let Some((_, rest)) = clause.split_once("never uses") {
                rule.crates = backticked(rest).into_iter().collect();
            }
            rules.push(rule);
        }
    }
    rules
}

/// Source text without `//` comments (doc comments may name anything) and without the unit
/// tests at the end of a file (from its `#[cfg(test)]` on: tests may drive a lower layer).
fn code_of(source: &str) -> String {
    let source = source.find("#[cfg(test)]").map_or(source, |i| &source[..i]);
    source
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Our modules a source text uses (`crate::x`), and the external paths it starts (`x::`).
fn uses(source: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let code = code_of(source);
    let mut ours = BTreeSet::new();
    let mut paths = BTreeSet::new();
    let bytes = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let word = &code[start..i];
            if code[i..].starts_with("::") {
                if word == "crate" {
                    let rest = &code[i + 2..];
                    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'));
                    let module = &rest[..end.unwrap_or(rest.len())];
                    if !module.is_empty() {
                        ours.insert(module.to_owned());
                    }
                } else {
                    paths.insert(word.to_owned());
                }
            }
            // `use tonic;` / `use tonic::{...}` are covered by the `::` check; `extern crate` is
            // not used in this workspace.
        } else {
            i += 1;
        }
    }
    (ours, paths)
}

fn module_files(module: &str) -> Vec<PathBuf> {
    let src = root().join("src");
    let mut files = Vec::new();
    let single = src.join(format!("{module}.rs"));
    if single.exists() {
        files.push(single);
    }
    rust_files(&src.join(module), &mut files);
    files
}

fn violations(rule: &Rule, file: &str, source: &str) -> Vec<String> {
    let (ours, paths) = uses(source);
    let mut out = Vec::new();
    for used in &ours {
        if used == &rule.module {
            continue;
        }
        let allowed = match &rule.only {
            Some(only) => only.contains(used),
            None => true,
        };
        if !allowed || rule.never.contains(used) {
            out.push(format!("{file}: `{}` uses crate::{used}", rule.module));
        }
    }
    for c in &rule.crates {
        if paths.contains(c) {
            out.push(format!("{file}: `{}` uses the crate `{c}`", rule.module));
        }
    }
    out
}

#[test]
fn modules_import_only_what_the_architecture_invariants_allow() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let rules = parse_invariants(&doc);
    assert!(
        rules.len() >= 5,
        "ARCHITECTURE.md states too few invariants: {rules:#?}"
    );
    let mut found = Vec::new();
    for rule in &rules {
        let files = module_files(&rule.module);
        assert!(
            !files.is_empty(),
            "an invariant names `{}`, which is no module",
            rule.module
        );
        for f in files {
            let source = std::fs::read_to_string(&f).unwrap();
            let name = f.strip_prefix(root()).unwrap().display().to_string();
            found.extend(violations(rule, &name, &source));
        }
    }
    assert!(
        found.is_empty(),
        "layering violations:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_finds_a_planted_violation() {
    let rules = parse_invariants(
        "**Architecture invariant:** `naming` imports only `gostr`.\n\
         **Architecture invariant:** `service` never imports `server` or `kubeapi`; \
         `service` never uses `tonic`.",
    );
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].only, Some(BTreeSet::from(["gostr".to_owned()])));
    let bad =
        "use crate::gostr::quote;\nuse crate::service::X; // crate::server is fine in a comment\n";
    assert_eq!(violations(&rules[0], "f.rs", bad).len(), 1);
    let service = "use crate::naming;\nfn f() -> tonic::Status { crate::kubeapi::x() }\n";
    assert_eq!(violations(&rules[1], "f.rs", service).len(), 1);
    assert_eq!(violations(&rules[2], "f.rs", service).len(), 1);
}

#[test]
fn every_source_file_is_in_the_code_map() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    for crate_src in ["src", "conformance/src", "ci/src"] {
        let mut files = Vec::new();
        rust_files(&root().join(crate_src), &mut files);
        assert!(!files.is_empty(), "{crate_src} has no sources");
        for f in files {
            let rel = f.strip_prefix(root().join(crate_src)).unwrap();
            let name = rel.file_name().unwrap().to_str().unwrap();
            let mentioned = match name {
                // A module's root file is mapped by its directory.
                "mod.rs" | "lib.rs" | "main.rs" => {
                    let dir = rel.parent().unwrap().display().to_string();
                    dir.is_empty() || doc.contains(&format!("{dir}/"))
                }
                _ => {
                    // The file name in backticks, or any tail of its path (`store/wal.rs`).
                    let parts: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap()).collect();
                    doc.contains(&format!("`{name}`"))
                        || doc.contains(&format!("{crate_src}/{}", rel.display()))
                        || (0..parts.len().saturating_sub(1))
                            .any(|i| doc.contains(&parts[i..].join("/")))
                }
            };
            if !mentioned {
                missing.push(format!("{crate_src}/{}", rel.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "source files missing from ARCHITECTURE.md's code map: {missing:?}"
    );
}

/// `docs/<file>.md §N.N` citations, and bare "spec N.N" citations of documents outside the repo.
fn citations(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut cited = Vec::new();
    let mut bare = Vec::new();
    for line in text.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("docs/") {
            rest = &rest[i + 5..];
            let Some((file, after)) = rest.split_once(".md") else {
                break;
            };
            if let Some(section) = after.strip_prefix(" §") {
                let number: String = section
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.')
                    .collect();
                cited.push((
                    format!("{file}.md"),
                    number.trim_end_matches('.').to_owned(),
                ));
            }
        }
        let lower = line.to_lowercase();
        for marker in ["spec ", "spec section ", "spec sections "] {
            let mut from = 0;
            while let Some(i) = lower[from..].find(marker) {
                let after = &lower[from + i + marker.len()..];
                if after.starts_with(|c: char| c.is_ascii_digit()) {
                    bare.push(line.trim().to_owned());
                }
                from += i + marker.len();
            }
        }
    }
    (cited, bare)
}

#[test]
fn comments_cite_only_sections_that_are_in_the_repo() {
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "conformance", "ci"] {
        rust_files(&root().join(dir), &mut files);
    }
    files.push(root().join("golden/README.md"));
    files.push(root().join("conformance/cases/service.yaml"));
    let mut problems = Vec::new();
    for f in files {
        if f.ends_with("tests/tidy.rs") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let (cited, bare) = citations(&text);
        for line in bare {
            problems.push(format!(
                "{}: cites a spec outside the repo: {line}",
                f.display()
            ));
        }
        for (doc, section) in cited {
            let path = root().join("docs").join(&doc);
            let Ok(target) = std::fs::read_to_string(&path) else {
                problems.push(format!("{}: cites missing docs/{doc}", f.display()));
                continue;
            };
            let heading = target.lines().any(|l| {
                l.starts_with('#')
                    && l.trim_start_matches('#')
                        .trim_start()
                        .starts_with(&format!("{section} "))
            });
            if !heading {
                problems.push(format!(
                    "{}: docs/{doc} has no section {section}",
                    f.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn citation_parsing() {
    let (cited, bare) = citations(
        "// order (docs/kubernetes-api.md §3.3) and (spec 3.4) and spec section 6.\n// no spec here",
    );
    assert_eq!(
        cited,
        vec![("kubernetes-api.md".to_owned(), "3.3".to_owned())]
    );
    assert_eq!(bare.len(), 2);
}
