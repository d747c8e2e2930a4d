//! The Redis side of maintenance mode: the `steward:maintenance` key the application reads, set
//! (with the period's JSON, expiring at `until`) while on and deleted while off.

use super::Maintenance;
use crate::config::Config;
use std::time::Duration;

/// The key the application reads.
pub const REDIS_KEY: &str = "steward:maintenance";

/// Makes Redis hold `state`, under the `[redis] timeout`; the error text has secrets removed.
pub async fn publish(cfg: &Config, state: Option<&Maintenance>) -> Result<(), String> {
    let scrubber = cfg.scrubber();
    let client = crate::monitor::redis::client(&cfg.redis, &scrubber).map_err(|e| e.to_string())?;
    let cmd = match state {
        Some(m) => {
            let json = serde_json::to_string(m).map_err(|e| e.to_string())?;
            let mut c = redis::cmd("SET");
            c.arg(REDIS_KEY).arg(json);
            if let Some(ms) = expiry_ms(m, crate::unix_now()) {
                // If steward is gone when the period ends, Redis still drops the key on time.
                c.arg("PX").arg(ms);
            }
            c
        }
        None => {
            let mut c = redis::cmd("DEL");
            c.arg(REDIS_KEY);
            c
        }
    };
    let run = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<redis::Value>(&mut conn).await
    };
    match tokio::time::timeout(cfg.redis.timeout.max(Duration::from_secs(1)), run).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(scrubber.scrub(&e.to_string())),
        Err(_) => Err(format!(
            "no answer within {:?} (redis.timeout)",
            cfg.redis.timeout.max(Duration::from_secs(1))
        )),
    }
}

/// Milliseconds the key should live: until `until`, at least 1 ms; `None` without an end.
fn expiry_ms(m: &Maintenance, now: f64) -> Option<u64> {
    let left = (m.until? - now) * 1000.0;
    Some(left.ceil().clamp(1.0, 1e15) as u64)
}

#[cfg(test)]
mod tests {
    use super::super::Origin;
    use super::*;

    #[test]
    fn key_expires_with_the_period() {
        let m = Maintenance {
            reason: None,
            since: 0.0,
            until: Some(10.0),
            by: Origin::Operator,
        };
        assert_eq!(expiry_ms(&m, 7.5), Some(2500));
        assert_eq!(
            expiry_ms(&m, 11.0),
            Some(1),
            "an overdue period still expires"
        );
        let open = Maintenance { until: None, ..m };
        assert_eq!(expiry_ms(&open, 7.5), None);
    }
}
