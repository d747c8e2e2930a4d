//! The actor over a real state directory: on/off, `--for` expiry, restore holds, and what a new
//! start reads back. Redis is absent here (publishing fails and is only reported).

use super::*;

struct Setup {
    dir: tempfile::TempDir,
    cfg: Arc<Config>,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.state.dir = dir.path().to_path_buf();
        // Nothing listens on port 1: publishing fails at once.
        cfg.redis.url = crate::secret::SecretUrl::new("redis://127.0.0.1:1/0");
        Self {
            dir,
            cfg: Arc::new(cfg),
        }
    }

    fn start(&self) -> (MaintenanceHandle, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new().unwrap());
        let (_tx, rx) = watch::channel(self.cfg.clone());
        // The sender may go: the receiver keeps the last config.
        let h = start(
            rx,
            metrics.clone(),
            &Board::default(),
            CancellationToken::new(),
        );
        (h, metrics)
    }
}

async fn wait_for(rx: &mut watch::Receiver<Option<Maintenance>>, on: bool) {
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|m| m.is_some() == on))
        .await
        .expect("state change in time")
        .unwrap();
}

#[tokio::test]
async fn on_off_persist_and_a_new_start_reads_them_back() {
    let s = Setup::new();
    let (h, metrics) = s.start();
    assert!(h.current().is_none());
    let st = h.on(Some(" upgrade ".into()), None).await.unwrap();
    assert!(st.on);
    assert_eq!(
        st.current.as_ref().unwrap().reason.as_deref(),
        Some("upgrade")
    );
    assert_eq!(metrics.maintenance_mode.get(), 1);
    assert!(h.subscribe().borrow().is_some());
    assert!(h.skips_scheduled_backups().is_some());

    let (again, _) = s.start();
    assert_eq!(again.current(), h.current(), "read back from the file");

    let st = h.off().await.unwrap();
    assert!(!st.on);
    assert_eq!(metrics.maintenance_mode.get(), 0);
    assert_eq!(st.history[0].ended_by, EndedBy::Operator);
    let (again, _) = s.start();
    assert!(again.current().is_none());
    assert_eq!(again.status().await.unwrap().history.len(), 1);
    assert!(store::path(s.dir.path()).exists());
}

#[tokio::test]
async fn for_ends_it_by_itself_and_an_expired_file_starts_off() {
    let s = Setup::new();
    let (h, metrics) = s.start();
    let mut rx = h.subscribe();
    h.on(None, Some(Duration::from_millis(300))).await.unwrap();
    wait_for(&mut rx, true).await;
    wait_for(&mut rx, false).await;
    assert_eq!(metrics.maintenance_mode.get(), 0);
    let st = h.status().await.unwrap();
    assert_eq!(st.history[0].ended_by, EndedBy::Expired);

    // Expired while "stopped": a period whose until has passed is off at the next start.
    h.on(Some("x".into()), Some(Duration::from_millis(200)))
        .await
        .unwrap();
    let saved = store::load(s.dir.path()).unwrap();
    assert!(saved.current.is_some());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (again, _) = s.start();
    assert!(again.current().is_none(), "expired at start means off");
}

#[tokio::test]
async fn restore_hold_ends_only_what_it_started() {
    let s = Setup::new();
    let (h, _) = s.start();
    let mut rx = h.subscribe();
    let hold = h
        .hold_for_restore("restore of x into app".into())
        .await
        .unwrap();
    assert_eq!(h.current().unwrap().by, Origin::Restore);
    drop(hold);
    wait_for(&mut rx, false).await;
    let st = h.status().await.unwrap();
    assert_eq!(st.history[0].ended_by, EndedBy::RestoreFinished);

    // Already on: the hold changes nothing, and its end leaves it on.
    h.on(Some("ops".into()), None).await.unwrap();
    let hold = h.hold_for_restore("restore".into()).await.unwrap();
    drop(hold);
    let st = h.status().await.unwrap();
    assert_eq!(st.current.unwrap().reason.as_deref(), Some("ops"));

    // An operator taking over during the restore keeps it on after the restore.
    h.off().await.unwrap();
    let hold = h.hold_for_restore("restore".into()).await.unwrap();
    h.on(Some("taken over".into()), None).await.unwrap();
    drop(hold);
    let st = h.status().await.unwrap();
    assert_eq!(st.current.unwrap().by, Origin::Operator);
}

#[tokio::test]
async fn bad_arguments_say_what_to_do() {
    let s = Setup::new();
    let (h, _) = s.start();
    let e = h.on(None, Some(Duration::ZERO)).await.unwrap_err();
    assert!(e.to_string().contains("--for"), "{e}");
    let e = h
        .on(Some("x".repeat(MAX_REASON + 1)), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("keep it to"), "{e}");
    assert!(h.current().is_none());
}

#[tokio::test]
async fn a_failed_publish_is_reported_not_fatal() {
    let s = Setup::new();
    let (h, _) = s.start();
    h.on(None, None).await.unwrap();
    let mut st = h.status().await.unwrap();
    for _ in 0..100 {
        if st.redis.error.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        st = h.status().await.unwrap();
    }
    assert!(!st.redis.published);
    assert!(st.redis.error.is_some(), "{st:?}");
    assert!(st.on);
}

/// A state file written before reasons were scrubbed (or by hand) may hold a configured
/// password: it is scrubbed when loaded, in the status and the file alike.
#[tokio::test]
async fn a_password_already_in_the_state_file_is_scrubbed_at_start() {
    let mut s = Setup::new();
    let mut cfg = (*s.cfg).clone();
    cfg.redis.url = crate::secret::SecretUrl::new("redis://:Sp3cPw9x@127.0.0.1:1/0");
    s.cfg = Arc::new(cfg);
    let period = |reason: &str| Maintenance {
        reason: Some(reason.into()),
        since: crate::unix_now(),
        until: None,
        by: Origin::Operator,
    };
    let stored = store::Stored {
        current: Some(period("pw Sp3cPw9x now")),
        history: vec![Ended {
            period: period("old Sp3cPw9x"),
            ended_at: crate::unix_now(),
            ended_by: EndedBy::Operator,
        }],
    };
    store::save(s.dir.path(), &stored).unwrap();
    let (h, _) = s.start();
    let st = h.status().await.unwrap();
    let shown = serde_json::to_string(&st).unwrap();
    assert!(!shown.contains("Sp3c"), "{shown}");
    assert!(shown.contains("pw *** now"), "{shown}");
    let file = std::fs::read_to_string(store::path(s.dir.path())).unwrap();
    assert!(!file.contains("Sp3c"), "{file}");
}
