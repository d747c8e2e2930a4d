//! Test pause points: a restore or an upload stops for good (or for a while) at a named step
//! when the test environment asks for it; nothing otherwise.

/// Environment variable naming a step at which a restore or an upload stops for good (tests
/// kill steward there); unset in production, where this costs one lookup per step.
const PAUSE_VAR: &str = "STEWARD_TEST_PAUSE_AT";

/// With it, a pause point waits that many milliseconds instead of forever (a test changes the
/// world meanwhile, say stops the bucket, and watches steward carry on).
const PAUSE_FOR_VAR: &str = "STEWARD_TEST_PAUSE_MS";

/// Waits forever (or [`PAUSE_FOR_VAR`] milliseconds) when [`PAUSE_VAR`] names `step`, after
/// logging that it got there.
pub(crate) async fn pause_point(step: &str) {
    if std::env::var(PAUSE_VAR).is_ok_and(|v| v == step) {
        tracing::warn!(step, "paused at a test pause point ({PAUSE_VAR})");
        match std::env::var(PAUSE_FOR_VAR)
            .ok()
            .and_then(|v| v.parse().ok())
        {
            Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
            None => std::future::pending::<()>().await,
        }
    }
}
