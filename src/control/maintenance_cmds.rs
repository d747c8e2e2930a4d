//! The `maintenance_*` requests: handed to the maintenance actor, answered with its status.

use super::protocol::{Reply, Request};
use crate::maintenance::MAX_DURATION;
use crate::maintenance::{MaintenanceError, MaintenanceHandle};
use std::time::Duration;

/// Answers a maintenance request (anything else gets an error reply).
pub(super) async fn handle(m: &MaintenanceHandle, req: Request) -> Reply {
    let out = match req {
        Request::MaintenanceOn {
            reason,
            for_seconds,
        } => match for_seconds.map(duration).transpose() {
            Ok(d) => m.on(reason, d).await,
            Err(msg) => return Reply::error(msg),
        },
        Request::MaintenanceOff => m.off().await,
        Request::MaintenanceStatus => m.status().await,
        _ => return Reply::error("not a maintenance request"),
    };
    out.map(|s| Reply::data(&s))
        .unwrap_or_else(|e: MaintenanceError| Reply::error(e.to_string()))
}

/// `for_seconds` as a duration, checked before it is converted (no overflow, whatever the
/// client sent): a finite number from zero to [`MAX_DURATION`].
fn duration(seconds: f64) -> Result<Duration, String> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(
            "--for (for_seconds) must be a positive number of seconds, e.g. 1800 for 30 minutes"
                .into(),
        );
    }
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(MaintenanceError::TooLong(crate::maintenance::too_long(seconds)).to_string());
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_seconds_is_bounded_without_overflow() {
        assert_eq!(duration(1800.0), Ok(Duration::from_secs(1800)));
        assert_eq!(duration(2_592_000.0), Ok(MAX_DURATION));
        for huge in [2_592_000.5, 1.8e19, 1e300, f64::MAX] {
            let e = duration(huge).unwrap_err();
            assert!(e.contains("--for") && e.contains("at most 30 days"), "{e}");
        }
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(duration(bad).unwrap_err().contains("positive"));
        }
    }
}
