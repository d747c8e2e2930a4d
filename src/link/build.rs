//! Build script: in a release build, asks the linker to put the code steward runs while idle
//! side by side (the symbols in `src/link/idle-symbols.txt`), so that idling keeps few pages of
//! the program resident. docs/metrics.md ("Scrape cost and memory") says why, and
//! docs/development.md how to regenerate the list (`bash benches/idle-symbols.sh`).
//!
//! The list only orders code: a symbol it names that a build does not have is skipped, and a
//! build without the list is as correct, only larger at idle. So the list is passed only when
//! the linker this build uses is seen to take it: a one-line program is linked first with the
//! same compiler, target, flags and linker, and the list. GNU ld, for one, does not know the
//! option; rustc's own `rust-lld` (the default on x86_64-unknown-linux-gnu since Rust 1.90),
//! LLVM's lld and mold do.

use std::env;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The list, relative to the package root.
const LIST: &str = "src/link/idle-symbols.txt";
/// Set to 0 to build without the list.
const OPT_OUT: &str = "STEWARD_LINK_ORDER";
/// What decides which linker a build uses, and with which flags.
const LINKER_SETTINGS: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_LINKER",
    "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
    "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
];

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let list = root.join(LIST);
    // A path that does not exist would make cargo rerun this script on every build.
    if list.is_file() {
        println!("cargo:rerun-if-changed={LIST}");
    } else {
        println!("cargo:rerun-if-changed=src/link");
    }
    println!("cargo:rerun-if-env-changed={OPT_OUT}");
    for var in LINKER_SETTINGS {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if env::var("PROFILE").as_deref() != Ok("release")
        || env::var(OPT_OUT).as_deref() == Ok("0")
        || !list.is_file()
    {
        return;
    }
    let Some(path) = list.to_str().filter(|p| !p.contains(',')) else {
        // `-Wl,` splits its argument at commas.
        println!(
            "cargo:warning=not ordering code: the path {} holds a comma",
            list.display()
        );
        return;
    };
    let args = [
        format!("-Wl,--symbol-ordering-file={path}"),
        "-Wl,--no-warn-symbol-ordering".to_owned(),
    ];
    if linker_takes(&args) {
        for arg in args {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}

/// Whether this build's linker links a one-line program with `link_args`.
fn linker_takes(link_args: &[String]) -> bool {
    let (Some(out), Some(rustc), Some(target)) = (
        env::var_os("OUT_DIR").map(PathBuf::from),
        env::var_os("RUSTC"),
        env::var_os("TARGET"),
    ) else {
        return false;
    };
    let source = out.join("link_probe.rs");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut cmd = Command::new(rustc);
    cmd.arg("--crate-type=bin")
        .arg("--target")
        .arg(target)
        .arg("-o")
        .arg(out.join("link_probe"))
        .arg(&source);
    if let Ok(flags) = env::var("CARGO_ENCODED_RUSTFLAGS") {
        cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    }
    if let Ok(linker) = env::var("RUSTC_LINKER") {
        cmd.arg(format!("-Clinker={linker}"));
    }
    for arg in link_args {
        cmd.arg(format!("-Clink-arg={arg}"));
    }
    let ok = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("cargo:warning=not ordering code: this build's linker does not take --symbol-ordering-file");
    }
    let _ = std::fs::remove_file(out.join("link_probe"));
    ok
}
