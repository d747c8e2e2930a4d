//! Imports flow one way: no two source files import each other, directly or around a circle
//! (DESIGN.md, "How we write code"). tests/import_cycles.py reads the file-level import graph.

use std::process::Command;

#[test]
fn no_import_cycle_between_source_files() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("python3")
        .arg(format!("{root}/tests/import_cycles.py"))
        .arg(format!("{root}/src"))
        .output()
        .expect("python3 runs tests/import_cycles.py (tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cycles = String::from_utf8_lossy(&out.stdout);
    assert!(cycles.trim().is_empty(), "import cycles:\n{cycles}");
}

#[test]
fn the_checker_finds_a_cycle_it_is_shown() {
    // Two files that name each other (one in a grouped import), and a third one of them names.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\npub mod c;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "use super::{a::A, c::C};\npub struct B;\n",
    )
    .unwrap();
    std::fs::write(src.join("c.rs"), "pub struct C;\n").unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/import_cycles.py"
        ))
        .arg(src)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("2 ['a', 'b']"), "{text}");
    assert!(!text.contains("'c'"), "{text}");
}
