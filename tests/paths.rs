//! Relative paths in a config file hang off the file's directory (issue 13, item 2): the
//! client finds its daemon from any directory through `--config`, `check-config` shows the
//! paths resolved, and "no daemon" names the absolute path it tried and how to point elsewhere.

mod common;

use common::*;
use std::fs;

#[test]
fn the_client_finds_its_daemon_from_any_directory() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let socket = st.socket().to_path_buf();
    assert!(socket.is_absolute());
    // A config in a directory below the daemon's, naming the socket relative to itself.
    let sub = st.dir().join("config");
    fs::create_dir_all(&sub).unwrap();
    let name = socket.file_name().unwrap().to_string_lossy().into_owned();
    fs::write(
        sub.join("steward.toml"),
        format!("[control]\nsocket = \"../{name}\"\n"),
    )
    .unwrap();
    let elsewhere = short_tempdir("stw-cwd-");
    let config = sub.join("steward.toml");
    let out = steward_cmd(
        &["--config", config.to_str().unwrap(), "--json", "status"],
        elsewhere.path(),
        &[],
    );
    // Found and answered: 0, or 1 when a service's first check (500 ms timeout) failed on a
    // loaded machine; 3 would be "no daemon", what this test is about.
    assert!(matches!(out.code, 0 | 1), "{out:?}");
    assert!(out.reply().ok, "{out:?}");
}

#[test]
fn check_config_resolves_paths_and_no_daemon_names_the_absolute_path() {
    let dir = short_tempdir("stw-paths-");
    let conf_dir = dir.path().join("app").join("config");
    fs::create_dir_all(&conf_dir).unwrap();
    let config = conf_dir.join("steward.toml");
    fs::write(
        &config,
        "[postgres]\nurl = \"postgres://u@127.0.0.1:1/db\"\n[redis]\nurl = \"redis://127.0.0.1:1/0\"\n\
         [control]\nsocket = \"../var/s.sock\"\n[state]\ndir = \"../var/state\"\n",
    )
    .unwrap();
    let elsewhere = short_tempdir("stw-cwd-");
    let out = steward_cmd(
        &["check-config", "--config", config.to_str().unwrap()],
        elsewhere.path(),
        &[],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let want = conf_dir.join("../var/s.sock");
    assert!(
        out.stdout
            .contains(&format!("socket = \"{}\"", want.display())),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "dir = \"{}\"",
            conf_dir.join("../var/state").display()
        )),
        "{}",
        out.stdout
    );
    let out = steward_cmd(
        &["--config", config.to_str().unwrap(), "status"],
        elsewhere.path(),
        &[],
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains(&want.display().to_string()), "{out:?}");
    assert!(
        out.stderr.contains("--config") && out.stderr.contains("--socket"),
        "{out:?}"
    );
    // A relative --socket is named absolutely too.
    let out = steward_cmd(&["--socket", "rel.sock", "status"], elsewhere.path(), &[]);
    let abs = elsewhere.path().join("rel.sock");
    assert!(out.stderr.contains(&abs.display().to_string()), "{out:?}");
}
