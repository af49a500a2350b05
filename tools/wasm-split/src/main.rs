//! `ballast-wasm-split INPUT.wasm PKG_DIR MAIN_OUT.wasm JS_MODULE`
//!
//! Splits INPUT.wasm (linked with `--emit-relocs`) at the split points that
//! leptos' `#[lazy]` and `#[lazy_route]` leave in it:
//!
//! - MAIN_OUT.wasm: the main module, still to go through wasm-bindgen
//!   (with `--keep-lld-exports`);
//! - PKG_DIR/*.wasm: one module per split point and per chunk of code that
//!   several split points share;
//! - PKG_DIR/__wasm_split.______________________.js: the loader, which
//!   imports `initSync` from JS_MODULE (relative to PKG_DIR, e.g.
//!   `./ballast.js`); the name is the one `HydrationScripts` preloads when
//!   file hashing is off;
//! - PKG_DIR/__wasm_split_manifest.json: split point → the modules it needs,
//!   which the server reads to preload a lazy route's modules.

use std::path::Path;
use std::process::ExitCode;

const LOADER: &str = "__wasm_split.______________________.js";
const MANIFEST: &str = "__wasm_split_manifest.json";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--version") {
        println!("ballast-wasm-split {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let [input, pkg_dir, main_out, js_module] = args.as_slice() else {
        eprintln!("usage: ballast-wasm-split INPUT.wasm PKG_DIR MAIN_OUT.wasm JS_MODULE");
        return ExitCode::from(2);
    };
    match run(
        Path::new(input),
        Path::new(pkg_dir),
        Path::new(main_out),
        js_module,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ballast-wasm-split: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &Path, pkg_dir: &Path, main_out: &Path, js_module: &str) -> Result<(), String> {
    let wasm = std::fs::read(input).map_err(|e| format!("reading {}: {e}", input.display()))?;
    let link_name = format!("./{LOADER}");
    let mut options = wasm_split_cli_support::Options::new(&wasm);
    options.output_dir = pkg_dir;
    options.main_out_path = main_out;
    options.main_module = js_module;
    options.link_name = &link_name;
    let split = wasm_split_cli_support::transform(options).map_err(|e| format!("{e:#}"))?;
    // Sorted, so the manifest only changes when the split does.
    let manifest: std::collections::BTreeMap<_, _> = split.prefetch_map.into_iter().collect();
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    let path = pkg_dir.join(MANIFEST);
    std::fs::write(&path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
    for module in &split.split_modules {
        println!("{}", module.display());
    }
    Ok(())
}
