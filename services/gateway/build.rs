//! Picks the folder the UI is embedded from: `web/dist` when it was built, else a fallback page.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let dist = manifest.join("../../web/dist");
    let folder = if dist.join("index.html").is_file() {
        dist.canonicalize().unwrap_or(dist)
    } else {
        println!("cargo:warning=web/dist is not built; embedding the fallback page (cd web && npm ci && npm run build)");
        manifest.join("fallback")
    };
    println!("cargo:rustc-env=PFC_WEB_DIST={}", folder.display());
    println!("cargo:rerun-if-changed=../../web/dist");
    println!("cargo:rerun-if-changed=../../web/dist/index.html");
    println!("cargo:rerun-if-changed=fallback");
}
