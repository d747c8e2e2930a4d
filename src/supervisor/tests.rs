//! Supervisor behaviour with small in-process tasks.

use super::*;
use std::sync::atomic::{AtomicU32, Ordering};

fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(80),
        stable_after: Duration::from_secs(60),
    }
}

async fn until(h: &SupervisorHandle, name: &str, pred: impl Fn(&TaskInfo) -> bool) -> TaskInfo {
    for _ in 0..200 {
        let t = h
            .list()
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.name == name)
            .unwrap();
        if pred(&t) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition on task {name} not reached");
}

#[test]
fn backoff_doubles_and_caps() {
    let b = Backoff::default();
    assert_eq!(b.delay(1), Duration::from_secs(1));
    assert_eq!(b.delay(2), Duration::from_secs(2));
    assert_eq!(b.delay(4), Duration::from_secs(8));
    assert_eq!(b.delay(30), Duration::from_secs(30));
}

#[tokio::test]
async fn failing_and_panicking_tasks_are_restarted() {
    let m = Arc::new(Metrics::new().unwrap());
    let h = start(
        CancellationToken::new(),
        m.clone(),
        quick(),
        Duration::from_secs(1),
    );
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    h.spawn(
        "flaky",
        factory(move |token| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err(TaskError("boom".into())),
                    1 => panic!("kaboom"),
                    _ => {
                        token.cancelled().await;
                        Ok(())
                    }
                }
            }
        }),
    )
    .await
    .unwrap();
    let t = until(&h, "flaky", |t| {
        t.restarts == 2 && t.state == TaskState::Running
    })
    .await;
    assert!(t.last_error.unwrap().contains("kaboom"));
    assert_eq!(m.task_restarts.with_label_values(&["flaky"]).get(), 2);
    assert_eq!(m.task_up.with_label_values(&["flaky"]).get(), 1);
    assert!(h.shutdown(Duration::from_secs(1)).await.unwrap().is_empty());
}

#[tokio::test]
async fn pause_resume_restart_and_unknown() {
    let m = Arc::new(Metrics::new().unwrap());
    let h = start(CancellationToken::new(), m, quick(), Duration::from_secs(1));
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    h.spawn(
        "steady",
        factory(move |token| {
            r.fetch_add(1, Ordering::SeqCst);
            async move {
                token.cancelled().await;
                Ok(())
            }
        }),
    )
    .await
    .unwrap();
    until(&h, "steady", |t| t.state == TaskState::Running).await;
    assert_eq!(
        h.act("steady", TaskAction::Pause).await.unwrap().state,
        TaskState::Paused
    );
    assert_eq!(
        h.act("steady", TaskAction::Resume).await.unwrap().state,
        TaskState::Running
    );
    let t = h.act("steady", TaskAction::Restart).await.unwrap();
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.restarts, 0, "a requested restart is not a failure");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let err = h
        .act("nope", TaskAction::Pause)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("steady"), "{err}");
    assert!(h.shutdown(Duration::from_secs(1)).await.unwrap().is_empty());
}

#[tokio::test]
async fn shutdown_names_tasks_that_do_not_stop() {
    let m = Arc::new(Metrics::new().unwrap());
    let h = start(CancellationToken::new(), m, quick(), Duration::from_secs(5));
    h.spawn(
        "stubborn",
        factory(|_token| async {
            std::future::pending::<()>().await;
            Ok(())
        }),
    )
    .await
    .unwrap();
    until(&h, "stubborn", |t| t.state == TaskState::Running).await;
    let left = h.shutdown(Duration::from_millis(200)).await.unwrap();
    assert_eq!(left, vec!["stubborn".to_string()]);
}
