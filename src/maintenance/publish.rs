//! The Redis side of maintenance mode. Two keys hold the period's JSON (expiring at `until`)
//! while on: `steward:maintenance`, which the application reads, and `steward:maintenance:<name>`,
//! this instance's own. Several stewards may share one Redis, so the shared key is marked with
//! the instance's name and is set or deleted only by its owner, in one atomic script.

use super::period::Maintenance;
use crate::config::Config;
use std::time::Duration;

/// The key the application reads: on while any steward sharing this Redis is in maintenance.
pub const REDIS_KEY: &str = "steward:maintenance";

/// This instance's own key: `steward:maintenance:<name>`.
pub fn own_key(name: &str) -> String {
    format!("{REDIS_KEY}:{name}")
}

/// What a publish found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    /// The shared key follows this instance's state.
    Ours,
    /// Another instance's period holds the shared key; it was left alone.
    Other,
}

/// Sets (or deletes) this instance's own key, and the shared key when it is absent or ours;
/// also deletes the given retired keys (the own key under a former name) when they are ours.
///
/// A value is ours when its `instance` is our name, or when its `since` is the start of one
/// of our periods (`periods`): that covers a key an older steward wrote without `instance`,
/// and one written under a name this instance had before a reload.
const SCRIPT: &str = r#"
local name, json, px = ARGV[1], ARGV[2], ARGV[3]
local function ours(raw)
  local ok, v = pcall(cjson.decode, raw)
  if not ok or type(v) ~= 'table' then return false end
  if v.instance == name then return true end
  local since = tonumber(v.since)
  if since == nil then return false end
  for i = 4, #ARGV do
    if tonumber(ARGV[i]) == since then return true end
  end
  return false
end
local function put(key)
  if px == '' then
    redis.call('SET', key, json)
  else
    redis.call('SET', key, json, 'PX', px)
  end
end
for i = 3, #KEYS do
  local old = redis.call('GET', KEYS[i])
  if old and ours(old) then redis.call('DEL', KEYS[i]) end
end
local shared = redis.call('GET', KEYS[1])
local mine = (not shared) or ours(shared)
if json == '' then
  redis.call('DEL', KEYS[2])
  if shared and mine then redis.call('DEL', KEYS[1]) end
else
  put(KEYS[2])
  if mine then put(KEYS[1]) end
end
if mine then return 1 end
return 0
"#;

/// Makes Redis hold `state` for instance `name` (see [`SCRIPT`]), under the `[redis]` timeout;
/// `periods` are the starts of this instance's periods, `retired` its former names. The error
/// text has secrets removed.
pub async fn publish(
    cfg: &Config,
    name: &str,
    state: Option<&Maintenance>,
    periods: &[f64],
    retired: &[String],
) -> Result<Shared, String> {
    let scrubber = cfg.scrubber();
    let client = crate::monitor::redis::client(&cfg.redis, &scrubber).map_err(|e| e.to_string())?;
    let (json, px) = match state {
        Some(m) => (marked(m, name)?, expiry_ms(m, crate::unix_now())),
        None => (String::new(), None),
    };
    let mut keys = vec![REDIS_KEY.to_string(), own_key(name)];
    keys.extend(retired.iter().filter(|o| *o != name).map(|o| own_key(o)));
    // Plain EVAL: the script is small and runs only when the state is published.
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SCRIPT).arg(keys.len()).arg(&keys);
    // If steward is gone when the period ends, Redis still drops the keys on time.
    cmd.arg(name)
        .arg(json)
        .arg(px.map(|ms| ms.to_string()).unwrap_or_default());
    for since in periods {
        cmd.arg(since.to_string());
    }
    let run = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        cmd.query_async::<i64>(&mut conn).await
    };
    let limit = cfg.redis.timeout.max(Duration::from_secs(1));
    match tokio::time::timeout(limit, run).await {
        Ok(Ok(1)) => Ok(Shared::Ours),
        Ok(Ok(_)) => Ok(Shared::Other),
        Ok(Err(e)) => Err(scrubber.scrub(&e.to_string())),
        Err(_) => Err(format!("no answer within {limit:?} (redis.timeout)")),
    }
}

/// The period's JSON with `instance` added, the mark that makes the key this instance's.
fn marked(m: &Maintenance, name: &str) -> Result<String, String> {
    let mut v = serde_json::to_value(m).map_err(|e| e.to_string())?;
    if let Some(o) = v.as_object_mut() {
        o.insert("instance".into(), name.into());
    }
    Ok(v.to_string())
}

/// Milliseconds the key should live: until `until`, at least 1 ms; `None` without an end.
fn expiry_ms(m: &Maintenance, now: f64) -> Option<u64> {
    let left = (m.until? - now) * 1000.0;
    Some(left.ceil().clamp(1.0, 1e15) as u64)
}

#[cfg(test)]
mod tests {
    use super::super::period::Origin;
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

    #[test]
    fn the_value_is_the_period_marked_with_the_instance() {
        let m = Maintenance {
            reason: Some("upgrade".into()),
            since: 1_795_660_000.123_456,
            until: None,
            by: Origin::Operator,
        };
        let v: serde_json::Value = serde_json::from_str(&marked(&m, "web1:9732").unwrap()).unwrap();
        assert_eq!(v["instance"], "web1:9732");
        assert_eq!(v["reason"], "upgrade");
        assert_eq!(v["since"].as_f64(), Some(m.since));
        // What the script compares: the argument, as Lua reads it, is the same double.
        assert_eq!(m.since.to_string().parse::<f64>().unwrap(), m.since);
        assert_eq!(own_key("web1:9732"), "steward:maintenance:web1:9732");
    }
}
