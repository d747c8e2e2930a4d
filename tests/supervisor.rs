//! The supervisor: a task that fails is restarted with backoff and its restart counter rises;
//! tasks can be paused, resumed and restarted by name.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Deleting the control socket file makes the `control` task fail (within ~2 s); it is restarted
/// after a backoff and re-creates the socket.
#[test]
fn failed_task_is_restarted_with_backoff_and_counted() {
    let st = Steward::builder_without_services().start();
    assert_eq!(st.task("control").restarts, 0);
    // (Absent counts as 0 here; that the series exists from the start is checked in
    // monitoring.rs.)
    assert_eq!(
        st.metric("steward_task_restarts_total", &[("task", "control")])
            .unwrap_or(0.0),
        0.0
    );

    std::fs::remove_file(st.socket()).unwrap();
    let removed = Instant::now();
    // While the task is failed and backing off, /metrics (another task) says so.
    let mut saw_down = false;
    st.wait_until(
        Duration::from_secs(2) + Duration::from_secs(1) + SLACK * 2,
        "the control socket to be re-created and answer",
        |st| {
            if st.metric("steward_task_up", &[("task", "control")]) == Some(0.0) {
                saw_down = true;
            }
            st.raw_request(r#"{"cmd":"status"}"#)
                .map(|r| r.ok)
                .unwrap_or(false)
        },
    );
    eprintln!("control socket back {:?} after removal", removed.elapsed());
    let t = st.task("control");
    assert!(t.restarts >= 1, "{t:?}");
    assert_eq!(t.state, TaskState::Running, "{t:?}");
    assert!(
        st.metric("steward_task_restarts_total", &[("task", "control")])
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        st.metric("steward_task_up", &[("task", "control")]),
        Some(1.0)
    );
    assert!(
        saw_down,
        "steward_task_up{{task=\"control\"}} never showed 0 while the task was backing off"
    );
    assert!(
        st.log()
            .lines()
            .any(|l| l.contains("task=control") && l.contains("removed")),
        "the failure is logged with its reason\n{}",
        tail(&st.log(), 40)
    );
    // The client works again (no services here: `status` answers, exit 1 for them down), and
    // other tasks were not disturbed.
    assert!(st.ctl(&["status"]).reply().ok);
    for name in ["http", "monitor.postgres", "monitor.redis"] {
        assert_eq!(st.task(name).restarts, 0, "{name}");
    }

    // A second failure: the counter rises again and the backoff grows (it is at least the first
    // backoff of 1 s; we only check it is not shorter than that, never an upper bound).
    std::fs::remove_file(st.socket()).unwrap();
    let removed = Instant::now();
    st.wait_until(
        Duration::from_secs(2) + Duration::from_secs(2) + SLACK * 2,
        "the control socket back again",
        |st| {
            st.socket().exists()
                && st
                    .raw_request(r#"{"cmd":"status"}"#)
                    .map(|r| r.ok)
                    .unwrap_or(false)
        },
    );
    assert!(
        removed.elapsed() >= Duration::from_secs(1),
        "came back after {:?}: no backoff?",
        removed.elapsed()
    );
    let t = st.task("control");
    assert!(t.restarts >= 2, "{t:?}");
    assert!(
        st.metric("steward_task_restarts_total", &[("task", "control")])
            .unwrap_or(0.0)
            >= 2.0
    );
}

#[test]
fn pause_and_resume_a_monitor() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    st.wait_up("redis", true, INTERVAL * 2 + SLACK);

    let out = st.ctl(&["task", "pause", "monitor.redis"]);
    let t: TaskInfo = out.data();
    assert_eq!(t.name, "monitor.redis");
    assert_eq!(t.state, TaskState::Paused, "{}", out.stdout);
    assert_eq!(st.task("monitor.redis").state, TaskState::Paused);
    assert_eq!(st.task("monitor.postgres").state, TaskState::Running);
    // Paused means no checks: the last check time stands still over several intervals, while
    // postgres keeps being checked.
    let ts = || {
        st.metric(
            "steward_last_check_timestamp_seconds",
            &[("service", "redis")],
        )
    };
    // A check that was in flight when we paused may still land; let it.
    st.wait_checks("postgres", 1);
    let frozen = ts();
    st.wait_checks("postgres", 3);
    assert_eq!(ts(), frozen, "redis was checked while paused");
    let human = st.ctl_human(&["tasks"]);
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.contains("monitor.redis") && l.contains("paused")),
        "{human:?}"
    );

    let out = st.ctl(&["task", "resume", "monitor.redis"]);
    let t: TaskInfo = out.data();
    assert_eq!(t.state, TaskState::Running, "{}", out.stdout);
    assert_eq!(st.task("monitor.redis").state, TaskState::Running);
    st.wait_checks("redis", 2);
    assert_eq!(st.up("redis"), Some(true));
    // Pausing is not a failure.
    assert_eq!(st.task("monitor.redis").restarts, 0);
}

#[test]
fn restart_a_task_by_name() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    st.wait_up("postgres", true, INTERVAL * 2 + SLACK);
    let before = st.task("monitor.postgres");
    let out = st.ctl(&["task", "restart", "monitor.postgres"]);
    let t: TaskInfo = out.data();
    assert_eq!(t.name, "monitor.postgres", "{}", out.stdout);
    st.wait_until(
        Duration::from_secs(10),
        "monitor.postgres running with a new start time",
        |st| {
            let t = st.task("monitor.postgres");
            t.state == TaskState::Running && t.started_at != before.started_at
        },
    );
    st.wait_checks("postgres", 1);
    assert_eq!(st.up("postgres"), Some(true));

    // Unknown names are errors naming the task.
    let out = st.ctl(&["task", "restart", "monitor.mysql"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.reply()
            .error
            .unwrap_or_default()
            .contains("monitor.mysql"),
        "{out:?}"
    );
}

#[test]
fn tasks_can_be_paused_and_resumed_repeatedly() {
    let st = Steward::builder_without_services().start();
    for _ in 0..3 {
        let t: TaskInfo = st.ctl(&["task", "pause", "monitor.postgres"]).data();
        assert_eq!(t.state, TaskState::Paused);
        // Pausing twice is harmless.
        let out = st.ctl(&["task", "pause", "monitor.postgres"]);
        assert!(out.code == 0 || out.code == 1, "{out:?}");
        assert_eq!(st.task("monitor.postgres").state, TaskState::Paused);
        let t: TaskInfo = st.ctl(&["task", "resume", "monitor.postgres"]).data();
        assert_eq!(t.state, TaskState::Running);
    }
    let info = st.info();
    assert_eq!(info.tasks.paused, 0);
    assert_eq!(info.tasks.running, st.tasks().len());
}

/// The control task serves the socket the requests come through: pausing it would close the
/// socket for good, so it is refused (audited, with the reason); a restart is answered first,
/// then carried out, and the socket comes back.
#[test]
fn the_control_task_cannot_be_paused_and_answers_its_restart() {
    let st = Steward::builder_without_services().start();
    // `ctl` also checks that each `task` action left its audit line.
    let out = st.ctl(&["task", "pause", "control"]);
    assert_ne!(out.code, 0, "{out:?}");
    let e = out.reply().error.unwrap_or_default();
    assert!(
        e.contains("cannot be paused") && e.contains("task restart control"),
        "{e}"
    );
    let audited = audit_check::lines(&st.settings.audit_path)
        .into_iter()
        .any(|l| {
            l["command"] == "task" && l["outcome"] == "error" && l["arguments"]["action"] == "pause"
        });
    assert!(audited, "the refused pause is in the audit log");
    assert_eq!(st.task("control").state, TaskState::Running);
    // Served: 0, or 1 because this steward's services (none) are down.
    let status = st.ctl(&["status"]);
    assert!(
        matches!(status.code, 0 | 1) && status.reply().ok,
        "the socket still serves: {status:?}"
    );

    let before = st.task("control").started_at;
    let out = st.ctl(&["task", "restart", "control"]);
    assert_eq!(out.code, 0, "the restart is answered: {out:?}");
    assert!(out.reply().ok);
    st.wait_until(
        Duration::from_secs(10) + SLACK,
        "the control task to run again after its restart, with a new socket",
        |st| {
            st.raw_request(r#"{"cmd":"tasks"}"#)
                .ok()
                .and_then(|r| serde_json::from_value::<Vec<TaskInfo>>(r.data).ok())
                .and_then(|t| t.into_iter().find(|t| t.name == "control"))
                .is_some_and(|t| t.state == TaskState::Running && t.started_at != before)
        },
    );
    for action in ["resume", "restart"] {
        assert_eq!(st.ctl(&["task", action, "control"]).code, 0, "{action}");
        st.wait_until(
            Duration::from_secs(10) + SLACK,
            "the socket to answer",
            |st| st.raw_request(r#"{"cmd":"status"}"#).is_ok_and(|r| r.ok),
        );
    }
}

/// `task restart --help` names every task the daemon runs (issue 13 item 8).
#[test]
fn task_help_names_every_task() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let st = Steward::start(&pg, &redis);
    let help = st.cli(&["task", "restart", "--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    let names: Vec<String> = st.tasks().into_iter().map(|t| t.name).collect();
    assert_eq!(names.len(), 10, "{names:?}");
    for n in &names {
        assert!(
            help.stdout.contains(n.as_str()),
            "{n} missing from: {}",
            help.stdout
        );
    }
}
