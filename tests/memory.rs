//! Resident memory: once serving, steward hands the kernel back the program pages only starting
//! needed (src/residency.rs), and everything still works afterwards, a reload included.

mod common;
use common::*;
use std::time::Duration;

/// KiB of the executable's code (its `r-xp` mappings) resident in process `pid`.
fn program_text_kib(pid: u32) -> u64 {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe link");
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut in_text = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let f: Vec<&str> = line.splitn(6, ' ').collect();
        if f.len() == 6 && f[0].contains('-') {
            in_text = f[1] == "r-xp" && std::path::Path::new(f[5].trim_start()) == exe;
        } else if in_text && line.starts_with("Rss:") {
            kib += line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    kib
}

#[test]
fn start_up_code_is_handed_back_and_steward_keeps_serving_and_reloading() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    let st = Steward::start(&pg, &redis);
    st.wait_until(Duration::from_secs(30), "both services up", |st| {
        st.up("postgres") == Some(true) && st.up("redis") == Some(true)
    });
    let pid = st.pid();
    let started = program_text_kib(pid);
    assert!(started > 0, "no resident program text read for {pid}");
    // About ten seconds after serving; what idling touches comes back, far less than all of it.
    let mut now = started;
    let handed_back = poll(Duration::from_secs(60), || {
        now = program_text_kib(pid);
        now * 2 < started
    });
    assert!(
        handed_back,
        "program text resident: {started} KiB when serving, still {now} KiB a minute later"
    );
    // The dropped pages come back on use: checks, scrapes, the control socket and a reload.
    let reload = st.ctl(&["reload"]);
    assert!(reload.reply().ok, "{}", reload.all());
    st.wait_until(Duration::from_secs(30), "a check after the reload", |st| {
        st.metric("steward_config_last_reload_successful", &[]) == Some(1.0)
            && st.up("postgres") == Some(true)
            && st.up("redis") == Some(true)
    });
    assert!(st.ctl(&["status"]).answered());
    let (code, _, body) = http_get_full(st.metrics_port(), "/metrics").expect("scrape");
    assert_eq!(code, 200);
    assert!(body.contains("steward_build_info"), "{body}");
}
