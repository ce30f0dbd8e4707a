//! The library's layer order (ARCHITECTURE.md, "Layers"): a top-level module of `src/` may use only the
//! modules below it, so no two modules import each other, however indirectly. The test reads every `.rs`
//! file under `src/` and fails on a `crate::<module>` path (outside comments) that points up or sideways.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// From the bottom up. A module may use the modules before it in this list, never those after it.
const LAYERS: &[&str] = &[
    // Foundations: files, progress, settings, words.
    "util",
    "progress",
    "config",
    // Where models compute: a device name becomes a burn device.
    "device",
    "text",
    // Data in its published formats, and what is read from it.
    "captions",
    "vision",
    "corpus",
    "features",
    "gguf",
    // burn modules and the searches over them; they never read files.
    "model",
    // Trained models: each artifact's format, manifest and loader, and inference with it.
    "encoder",
    "language_model",
    "vectors",
    "retrieval",
    "captioner",
    "story",
    // Training loops, which write those artifacts.
    "train",
    // What runs the stages: measurements, the whole pipeline, the server.
    "evaluation",
    "pipeline",
    "serve",
];

/// Items of the crate root (`lib.rs`) that any module may use.
const ROOT_ITEMS: &[&str] = &["VERSION", "GIT_REVISION"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs` and `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// The modules named by `crate::<name>` paths in `code`, including those inside `crate::{a, b::c}` groups.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        // `storytool_crate::` or `my_crate::` are not this crate.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    used.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            used.insert(name);
        }
    }
    used
}

/// `text` without its `//` comments (doc comments included: they may name any module).
fn without_comments(text: &str) -> String {
    text.lines().map(|line| line.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let rank = |name: &str| LAYERS.iter().position(|layer| *layer == name);
    let mut problems = Vec::new();
    let mut modules = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        if module == "cli" {
            continue; // the binary's front end: it uses the library as `storytool::`, never `crate::`.
        }
        modules.insert(module.clone());
        let Some(own) = rank(&module) else {
            problems.push(format!("{}: module `{module}` is not in LAYERS", file.display()));
            continue;
        };
        let code = without_comments(&std::fs::read_to_string(file).unwrap());
        for used in used_modules(&code) {
            if used == module || ROOT_ITEMS.contains(&used.as_str()) {
                continue;
            }
            match rank(&used) {
                Some(other) if other < own => {}
                Some(_) => problems.push(format!(
                    "{}: `{module}` uses `crate::{used}`, which is not below it in the layer order",
                    file.display()
                )),
                None => problems.push(format!("{}: `crate::{used}` is not a module in LAYERS", file.display())),
            }
        }
    }
    assert!(problems.is_empty(), "layer violations:\n{}", problems.join("\n"));
    // Every listed layer exists, so the list cannot rot.
    for layer in LAYERS {
        assert!(modules.contains(*layer), "LAYERS names `{layer}`, which is not a module of src/");
    }
}

#[test]
fn the_scanner_finds_paths_groups_and_skips_comments() {
    let code = without_comments(
        "use crate::model::batch::PaddedBatch;\nuse crate::{text::EOS_ID, util};\n// crate::train\nlet x = my_crate::y;",
    );
    let used: Vec<String> = used_modules(&code).into_iter().collect();
    assert_eq!(used, ["model", "text", "util"]);
}
