//! Build script: in a release build, asks the linker to put the code steward runs while idle
//! side by side (the symbols in `src/link/idle-symbols.txt`), so that idling keeps few pages of
//! the program resident. docs/metrics.md ("Scrape cost and memory") says why, and
//! docs/development.md how to regenerate the list (`bash benches/idle-symbols.sh`).
//!
//! The list only orders code: a symbol it names that a build does not have is skipped, and a
//! build that leaves the list out is as correct, only larger at idle. So the list is passed only
//! where the linker is known to read it: rustc's own `rust-lld`, the default on
//! x86_64-unknown-linux-gnu since Rust 1.90, with no linker chosen by the user.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The list, relative to the package root.
const LIST: &str = "src/link/idle-symbols.txt";
/// Set to 0 to build without the list.
const OPT_OUT: &str = "STEWARD_LINK_ORDER";

fn main() {
    println!("cargo:rerun-if-changed={LIST}");
    println!("cargo:rerun-if-env-changed={OPT_OUT}");
    let Some(list) = list_to_pass() else { return };
    println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={list}");
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// The list's path, when this build should pass it to the linker.
fn list_to_pass() -> Option<String> {
    let var = |k: &str| env::var(k).ok();
    if var("PROFILE").as_deref() != Some("release") || var(OPT_OUT).as_deref() == Some("0") {
        return None;
    }
    let default_lld = var("TARGET").as_deref() == Some("x86_64-unknown-linux-gnu")
        && var("RUSTC_LINKER").is_none()
        && !var("CARGO_ENCODED_RUSTFLAGS").is_some_and(|f| chooses_linker(&f))
        && var("RUSTC").is_some_and(|rustc| rustc_minor(&rustc).is_some_and(|m| m >= 90));
    let path = PathBuf::from(var("CARGO_MANIFEST_DIR")?).join(LIST);
    let present = path.is_file();
    let path = path.to_str()?.to_owned();
    // `-Wl,` splits its argument at commas.
    (default_lld && present && !path.contains(',')).then_some(path)
}

/// Whether RUSTFLAGS pick a linker or linker flavour of their own.
fn chooses_linker(encoded: &str) -> bool {
    encoded.split('\x1f').any(|f| {
        [
            "linker",
            "fuse-ld",
            "link-self-contained",
            "linker-features",
        ]
        .iter()
        .any(|k| f.contains(k))
    })
}

/// The minor version of `rustc` (95 for 1.95.0).
fn rustc_minor(rustc: &str) -> Option<u32> {
    let out = Command::new(rustc).arg("-vV").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let release = text.lines().find_map(|l| l.strip_prefix("release: "))?;
    let mut parts = release.split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}
