//! Reading Redis's `INFO all`: the field map, keys per database, command statistics, latency
//! percentiles, replicas and their lag, and the persistence/replication/server facts of a
//! check. Free of I/O; the probe sends the command and the counters module turns counts into
//! steward's counters.

use crate::model::check::RedisDepth;
use std::collections::{BTreeMap, HashMap};

/// Replicas exported one by one; the rest are summed as `other`.
pub const MAX_REPLICAS: usize = 32;
/// Longest command name accepted as a label value.
pub const MAX_COMMAND_LEN: usize = 64;

/// The fields of an `INFO` reply (section headers and blank lines skipped).
pub struct Info(HashMap<String, String>);

/// One command's line of `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
    /// `failed_calls + rejected_calls` (Redis 6.2+; 0 before).
    pub failed: u64,
}

impl Info {
    pub fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.trim_end().split_once(':'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    pub fn num(&self, k: &str) -> Option<u64> {
        self.get(k).and_then(|v| v.parse().ok())
    }

    pub fn float(&self, k: &str) -> Option<f64> {
        self.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|f| f.is_finite())
    }

    /// A `…_status` field: `ok` is true, anything else (`err`) false.
    fn ok(&self, k: &str) -> Option<bool> {
        self.get(k).map(|v| v == "ok")
    }

    /// `db0:keys=3,expires=1,avg_ttl=0` lines → {"db0": 3}.
    pub fn keyspace(&self) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.len() > 2 && k.starts_with("db") && k[2..].chars().all(|c| c.is_ascii_digit())
            })
            .filter_map(|(k, v)| Some((k.clone(), field(v, "keys")?.parse().ok()?)))
            .collect()
    }

    /// `cmdstat_get:calls=2,usec=10,…,rejected_calls=0,failed_calls=0` → {"get": …}, sorted by
    /// name; names are as Redis gives them (checked by [`valid_command`] before use as labels).
    pub fn commandstats(&self) -> BTreeMap<&str, CommandStat> {
        let n = |v: &str, f: &str| field(v, f).and_then(|x| x.parse::<u64>().ok());
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("cmdstat_")?;
                let stat = CommandStat {
                    calls: n(v, "calls")?,
                    usec: n(v, "usec").unwrap_or(0),
                    failed: n(v, "failed_calls").unwrap_or(0) + n(v, "rejected_calls").unwrap_or(0),
                };
                Some((name, stat))
            })
            .collect()
    }

    /// `latency_percentiles_usec_get:p50=1.003,p99=2.007,p99.9=5.023` (Redis 7+) → per
    /// command, the 50th, 99th and 99.9th percentiles in seconds, labelled `50`, `99`, `99.9`
    /// (other configured percentiles ignored).
    pub fn latencies(&self) -> BTreeMap<&str, Vec<(&'static str, f64)>> {
        const WANTED: [(&str, &str); 3] = [("p50", "50"), ("p99", "99"), ("p99.9", "99.9")];
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("latency_percentiles_usec_")?;
                let qs: Vec<(&'static str, f64)> = WANTED
                    .iter()
                    .filter_map(|(p, q)| {
                        let usec: f64 = field(v, p)?.parse().ok()?;
                        usec.is_finite().then_some((*q, usec / 1e6))
                    })
                    .collect();
                Some((name, qs))
            })
            .collect()
    }

    /// On a master, bytes each replica is behind: `master_repl_offset` minus the offset of
    /// each `slaveN:ip=…,port=…,offset=…` line, by `ip:port`; beyond [`MAX_REPLICAS`] the rest
    /// are summed as `other`.
    pub fn replica_lags(&self) -> BTreeMap<String, u64> {
        let Some(master) = self.num("master_repl_offset") else {
            return BTreeMap::new();
        };
        let mut replicas: Vec<(String, u64)> = self
            .0
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("slave")
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
            .filter_map(|(_, v)| {
                let ip = field(v, "ip")?;
                let port: u16 = field(v, "port")?.parse().ok()?;
                let offset: u64 = field(v, "offset")?.parse().ok()?;
                let ip_ok = ip.len() <= 64
                    && ip
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':');
                let name = if ip_ok {
                    format!("{ip}:{port}")
                } else {
                    "other".to_string()
                };
                Some((name, master.saturating_sub(offset)))
            })
            .collect();
        replicas.sort();
        let mut out = BTreeMap::new();
        for (i, (name, lag)) in replicas.into_iter().enumerate() {
            let name = if i < MAX_REPLICAS {
                name
            } else {
                "other".into()
            };
            *out.entry(name).or_insert(0) += lag;
        }
        out
    }

    /// `master` or `replica` (Redis says `slave`).
    fn role(&self) -> Option<String> {
        match self.get("role")? {
            "master" => Some("master".into()),
            "slave" | "replica" => Some("replica".into()),
            _ => None,
        }
    }

    /// Unix time the server started: its own clock (`server_time_usec`, Redis 5+) minus its
    /// uptime, both whole seconds in Redis, so the figure does not move between checks; else
    /// steward's clock, which may move by a second.
    fn start_time(&self, now: f64) -> Option<f64> {
        let uptime = self.num("uptime_in_seconds")? as f64;
        let clock = self
            .num("server_time_usec")
            .map_or(now.floor(), |us| (us / 1_000_000) as f64);
        Some(clock - uptime)
    }

    /// The persistence, replication, clients and server facts of a check (`now`: steward's
    /// Unix time, for servers that do not give theirs).
    pub fn depth(&self, now: f64) -> RedisDepth {
        let role = self.role();
        RedisDepth {
            rdb_last_bgsave_ok: self.ok("rdb_last_bgsave_status"),
            rdb_changes_since_last_save: self.num("rdb_changes_since_last_save"),
            rdb_last_save_time: self.num("rdb_last_save_time"),
            aof_enabled: self.num("aof_enabled").map(|n| n == 1),
            aof_last_write_ok: self.ok("aof_last_write_status"),
            master_link_up: match role.as_deref() {
                Some("replica") => Some(self.get("master_link_status") == Some("up")),
                _ => None,
            },
            replica_lag_bytes: match role.as_deref() {
                Some("master") => self.replica_lags(),
                _ => BTreeMap::new(),
            },
            role,
            connected_replicas: self.num("connected_slaves"),
            blocked_clients: self.num("blocked_clients"),
            rejected_connections: self.num("rejected_connections"),
            rejected_connections_delta: None,
            memory_rss_bytes: self.num("used_memory_rss"),
            memory_peak_bytes: self.num("used_memory_peak"),
            net_input_bytes: self.num("total_net_input_bytes"),
            net_output_bytes: self.num("total_net_output_bytes"),
            start_time_seconds: self.start_time(now),
            slowlog_length: None,
        }
    }
}

/// The value of `name=` in a `a=1,b=2` list.
fn field<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    list.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Whether a command name from `INFO` may be a label value: Redis's command table names
/// (lower case, `|` between a command and its subcommand, module commands with `.`), at most
/// [`MAX_COMMAND_LEN`] bytes. Anything else is counted as `other`.
pub fn valid_command(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMMAND_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"|_-.".contains(&b))
}

/// The database a `[redis] url` selects, as `INFO keyspace` names it (`db0`).
pub fn db_name(index: i64) -> String {
    format!("db{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:100\r\n\
        server_time_usec:1700000050999999\r\n\r\n# Persistence\r\nrdb_changes_since_last_save:4\r\n\
        rdb_last_save_time:1699999000\r\nrdb_last_bgsave_status:err\r\naof_enabled:0\r\n\
        aof_last_write_status:ok\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
        slave0:ip=127.0.0.1,port=6380,state=online,offset=900,lag=0\r\n\
        slave1:ip=10.0.0.2,port=6381,state=online,offset=1000,lag=1\r\n\
        master_repl_offset:1000\r\n# Commandstats\r\n\
        cmdstat_get:calls=20,usec=100,usec_per_call=5.00,rejected_calls=1,failed_calls=2\r\n\
        cmdstat_config|get:calls=3,usec=30,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_old:calls=5,usec=7,usec_per_call=1.40\r\n# Latencystats\r\n\
        latency_percentiles_usec_get:p50=1.003,p99=2.007,p99.9=5.023\r\n\
        # Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\ndb12:keys=7,expires=0,avg_ttl=0\r\n";

    #[test]
    fn keyspace_and_fields() {
        let info = Info::parse(MASTER);
        assert_eq!(info.get("redis_version"), Some("7.0.15"));
        let ks = info.keyspace();
        assert_eq!((ks["db0"], ks["db12"], ks.len()), (3, 7, 2));
    }

    #[test]
    fn depth_of_a_master() {
        let d = Info::parse(MASTER).depth(0.0);
        assert_eq!(d.rdb_last_bgsave_ok, Some(false));
        assert_eq!(d.aof_last_write_ok, Some(true));
        assert_eq!(d.aof_enabled, Some(false));
        assert_eq!(d.rdb_changes_since_last_save, Some(4));
        assert_eq!(d.role.as_deref(), Some("master"));
        assert_eq!(d.master_link_up, None);
        assert_eq!(d.connected_replicas, Some(2));
        assert_eq!(d.replica_lag_bytes["127.0.0.1:6380"], 100);
        assert_eq!(d.replica_lag_bytes["10.0.0.2:6381"], 0);
        assert_eq!(d.start_time_seconds, Some(1_700_000_050.0 - 100.0));
    }

    #[test]
    fn depth_of_a_replica() {
        let d = Info::parse("role:slave\r\nmaster_link_status:down\r\n").depth(0.0);
        assert_eq!(d.role.as_deref(), Some("replica"));
        assert_eq!(d.master_link_up, Some(false));
        assert!(d.replica_lag_bytes.is_empty());
    }

    #[test]
    fn commands_and_latencies() {
        let info = Info::parse(MASTER);
        let c = info.commandstats();
        assert_eq!(
            c["get"],
            CommandStat {
                calls: 20,
                usec: 100,
                failed: 3
            }
        );
        assert_eq!(c["config|get"].calls, 3);
        assert_eq!(c["old"].failed, 0);
        let l = info.latencies();
        assert_eq!(l["get"][2], ("99.9", 5.023e-6));
    }

    #[test]
    fn command_names_are_bounded() {
        assert!(valid_command("config|get"));
        assert!(valid_command("json.get"));
        assert!(!valid_command("GET"));
        assert!(!valid_command("a b"));
        assert!(!valid_command(&"x".repeat(65)));
        assert!(!valid_command(""));
    }

    #[test]
    fn many_replicas_fold_into_other() {
        let mut text = String::from("role:master\r\nmaster_repl_offset:100\r\n");
        for i in 0..40 {
            text += &format!("slave{i}:ip=10.0.0.{i},port=6379,state=online,offset=99,lag=0\r\n");
        }
        let lags = Info::parse(&text).replica_lags();
        assert_eq!(lags.len(), MAX_REPLICAS + 1);
        assert_eq!(lags["other"], 8);
    }
}
