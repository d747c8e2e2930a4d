//! Resident memory: once serving, and after each reload, steward hands the kernel back the
//! program pages only starting needed (src/residency.rs), and everything still works afterwards.
//! How much that saves depends on what else maps the same executable (the parallel tests do),
//! so the figure is measured by benches/compare.sh, not asserted here.

mod common;
use common::*;
use std::time::Duration;

const RELEASED: &str = "handed the kernel back the program pages only starting needed";

/// The `(mappings, bytes, refused)` of each release the log reports, in order.
fn releases(log: &str) -> Vec<(u64, u64, u64)> {
    log.lines()
        .filter(|l| l.contains(RELEASED))
        .map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name)?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            (field("mappings="), field("bytes="), field("refused="))
        })
        .collect()
}

#[test]
fn start_up_pages_are_handed_back_and_steward_keeps_serving_and_reloading() {
    let (pg, redis) = (Postgres::start(), Redis::start());
    let st = Steward::builder(&pg, &redis).log_level("debug").start();
    st.wait_until(Duration::from_secs(60), "the start-up release", |st| {
        !releases(&st.log()).is_empty()
    });
    let first = releases(&st.log())[0];
    assert!(
        first.0 >= 1 && first.1 > 0,
        "nothing handed back: {first:?}"
    );
    assert_eq!(first.2, 0, "the kernel refused a hint: {first:?}");
    assert!(
        !st.log().contains("program pages kept resident"),
        "{}",
        st.log()
    );
    // The dropped pages come back on use: checks, scrapes, the control socket and a reload,
    // which hands back again what it needed.
    st.wait_until(Duration::from_secs(30), "checks after the release", |st| {
        st.up("postgres") == Some(true) && st.up("redis") == Some(true)
    });
    let reload = st.ctl(&["reload"]);
    assert!(reload.reply().ok, "{}", reload.all());
    st.wait_until(
        Duration::from_secs(30),
        "the release after the reload",
        |st| releases(&st.log()).len() >= 2,
    );
    let before = st.metric(
        "steward_last_check_timestamp_seconds",
        &[("service", "redis")],
    );
    st.wait_until(Duration::from_secs(30), "a check after the reload", |st| {
        st.metric(
            "steward_last_check_timestamp_seconds",
            &[("service", "redis")],
        ) > before
            && st.metric("steward_config_last_reload_successful", &[]) == Some(1.0)
            && st.up("postgres") == Some(true)
    });
    assert!(st.ctl(&["status"]).answered());
    let (code, _, body) = http_get_full(st.metrics_port(), "/metrics").expect("scrape");
    assert_eq!(code, 200);
    assert!(body.contains("steward_build_info"), "{body}");
}

#[test]
fn the_release_line_is_read_with_its_figures() {
    let log = format!(
        "2026-12-05T15:56:35Z DEBUG {RELEASED} mappings=2 bytes=11571200 refused=1\nother line\n"
    );
    assert_eq!(releases(&log), vec![(2, 11571200, 1)]);
}
