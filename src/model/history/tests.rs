use super::*;
use crate::model::check::{PgFigures, RedisFigures, Service, WriteRead};

fn ok(at: f64, latency: f64) -> Entry {
    Entry {
        at,
        ok: true,
        latency_seconds: Some(latency),
        connections: None,
        memory_bytes: None,
        hit_ratio: None,
        write_read_ok: None,
        error: None,
    }
}

fn failed(at: f64) -> Entry {
    Entry {
        ok: false,
        latency_seconds: None,
        error: Some("connection refused".into()),
        ..ok(at, 0.0)
    }
}

/// A small deterministic generator, so the long runs are reproducible.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn assert_bounds(r: &Ring) {
    assert!(
        r.len() <= r.max_entries(),
        "{} > {}",
        r.len(),
        r.max_entries()
    );
    if let Some(newest) = r.last().map(|e| e.at) {
        let cutoff = newest - r.retention().as_secs_f64();
        assert!(
            r.iter().all(|e| e.at >= cutoff),
            "an entry outlived retention"
        );
    }
    assert!(r.iter().zip(r.iter().skip(1)).all(|(a, b)| a.at <= b.at));
    assert!(r.entries.capacity() <= 2 * r.max_entries().max(16) + 16);
}

#[test]
fn count_bound_holds_over_100k_pushes() {
    // Checks every second for 100 000 s: past both the 1 000-entry bound and the 24 h retention.
    let mut r = Ring::new(DEFAULT_RETENTION, 1_000);
    for i in 0..100_000u32 {
        r.push(ok(f64::from(i), 0.001));
        assert_bounds(&r);
    }
    assert_eq!(r.len(), 1_000);
    assert_eq!(r.iter().next().unwrap().at, 99_000.0);
    assert_eq!(r.last().unwrap().at, 99_999.0);
}

#[test]
fn age_bound_holds_over_100k_pushes() {
    // Irregular intervals of 0–9 s, some failures with huge errors; retention 10 min.
    let mut rng = Lcg(7);
    let mut r = Ring::new(Duration::from_secs(600), DEFAULT_MAX_ENTRIES);
    let mut t = 1_700_000_000.0;
    let mut longest = 0;
    for _ in 0..100_000 {
        t += (rng.next() % 10) as f64;
        let e = if rng.next() % 7 == 0 {
            Entry {
                error: Some(clip_error(&"x".repeat(10_000))),
                ..failed(t)
            }
        } else {
            ok(t, (rng.next() % 1000) as f64 / 1000.0)
        };
        r.push(e);
        assert_bounds(&r);
        longest = longest.max(r.len());
    }
    assert!(
        longest < DEFAULT_MAX_ENTRIES,
        "the age bound should bite first"
    );
    assert!(r
        .iter()
        .all(|e| e.error.as_ref().is_none_or(|m| m.len() <= MAX_ERROR_BYTES)));
}

#[test]
fn both_bounds_together_and_time_going_backwards() {
    let mut rng = Lcg(42);
    let mut r = Ring::new(Duration::from_secs(3_600), 500);
    let mut t = 0.0;
    for i in 0..100_000u32 {
        // Mostly forwards, now and then a clock step back or a long jump ahead.
        t += match rng.next() % 100 {
            0 => -120.0,
            1 => 5_000.0,
            n => (n % 5) as f64,
        };
        r.push(ok(t, f64::from(i % 10)));
        assert!(r.len() <= 500);
    }
    assert!(!r.is_empty());
}

#[test]
fn zero_max_entries_keeps_nothing_and_set_limits_trims() {
    let mut r = Ring::new(DEFAULT_RETENTION, 0);
    r.push(ok(1.0, 0.1));
    assert!(r.is_empty());

    let mut r = Ring::default();
    assert_eq!(r.retention(), DEFAULT_RETENTION);
    assert_eq!(r.max_entries(), DEFAULT_MAX_ENTRIES);
    for i in 0..5_000u32 {
        r.push(ok(f64::from(i), 0.1));
    }
    r.set_limits(Duration::from_secs(1_000), 10_000);
    assert_eq!(r.len(), 1_001);
    assert_eq!(r.iter().next().unwrap().at, 3_999.0);
    r.set_limits(DEFAULT_RETENTION, 10);
    assert_eq!(r.len(), 10);
    assert_eq!(r.iter().next().unwrap().at, 4_990.0);
    assert!(r.entries.capacity() <= 64);
    r.prune(1_000_000.0);
    assert!(r.is_empty());
    r.push(ok(1.0, 0.1));
    r.clear();
    assert_eq!(r.len(), 0);
}

#[test]
fn since_filters_by_time() {
    let mut r = Ring::default();
    for i in 0..=10u32 {
        r.push(ok(f64::from(i) * 10.0, 0.1));
    }
    let got: Vec<f64> = r.since(50.0).iter().map(|e| e.at).collect();
    assert_eq!(got, [50.0, 60.0, 70.0, 80.0, 90.0, 100.0]);
    assert_eq!(r.since(55.0).len(), 5);
    assert!(r.since(100.5).is_empty());
    assert_eq!(r.since(f64::NEG_INFINITY).len(), 11);
    assert!(Ring::default().since(0.0).is_empty());
}

#[test]
fn summary_matches_a_hand_computed_set() {
    let entries = [
        ok(0.0, 0.010),
        ok(10.0, 0.020),
        failed(20.0),
        failed(30.0),
        ok(40.0, 0.030),
        ok(50.0, 0.040),
        failed(60.0),
        ok(70.0, 0.050),
    ];
    let s = summarize(&entries);
    assert_eq!(s.entries, 8);
    assert_eq!(s.from, Some(0.0));
    assert_eq!(s.to, Some(70.0));
    assert_eq!(s.availability, Some(5.0 / 8.0));
    assert_eq!(s.latency_min, Some(0.010));
    assert!((s.latency_mean.unwrap() - 0.030).abs() < 1e-12);
    assert_eq!(s.latency_p95, Some(0.050));
    assert_eq!(s.latency_max, Some(0.050));
    assert_eq!(s.incidents, 2);
    // 20 → 40 and 60 → 70.
    assert_eq!(s.longest_outage_seconds, Some(20.0));
}

#[test]
fn p95_is_nearest_rank_over_ok_latencies() {
    // 1..=20 s: rank ⌈19⌉ = 19.
    let twenty: Vec<Entry> = (1..=20).map(|i| ok(f64::from(i), f64::from(i))).collect();
    assert_eq!(summarize(&twenty).latency_p95, Some(19.0));
    // 1..=21 s, shuffled: rank ⌈19.95⌉ = 20.
    let mut more: Vec<Entry> = (1..=21).map(|i| ok(f64::from(i), f64::from(i))).collect();
    more.reverse();
    more.swap(3, 17);
    let s = summarize(&more);
    assert_eq!(s.latency_p95, Some(20.0));
    assert_eq!((s.latency_min, s.latency_max), (Some(1.0), Some(21.0)));
    assert_eq!(s.latency_mean, Some(11.0));
    // One value: it is every percentile.
    assert_eq!(summarize(&[ok(0.0, 0.3)]).latency_p95, Some(0.3));
    // A failed check's latency does not count, nor does an ok one without latency.
    let mixed = [
        Entry {
            latency_seconds: Some(99.0),
            ..failed(0.0)
        },
        Entry {
            latency_seconds: None,
            ..ok(1.0, 0.0)
        },
        ok(2.0, 0.5),
    ];
    let s = summarize(&mixed);
    assert_eq!((s.latency_max, s.latency_p95), (Some(0.5), Some(0.5)));
    assert_eq!(s.availability, Some(2.0 / 3.0));
}

#[test]
fn outage_still_going_lasts_to_the_last_check() {
    let s = summarize(&[ok(0.0, 0.1), failed(10.0), failed(20.0), failed(50.0)]);
    assert_eq!(s.incidents, 1);
    assert_eq!(s.longest_outage_seconds, Some(40.0));
    let s = summarize(&[failed(5.0)]);
    assert_eq!((s.incidents, s.longest_outage_seconds), (1, Some(0.0)));
    assert_eq!(s.availability, Some(0.0));
    assert_eq!(s.latency_mean, None);
    let s = summarize(&[ok(0.0, 0.1), ok(1.0, 0.2)]);
    assert_eq!((s.incidents, s.longest_outage_seconds), (0, None));
    assert_eq!(s.availability, Some(1.0));
}

#[test]
fn empty_input() {
    let s = summarize(&[]);
    assert_eq!(s, Summary::default());
    assert_eq!(s.entries, 0);
    assert_eq!(s.availability, None);
    assert_eq!(s.from, None);
    assert_eq!(s.incidents, 0);
    assert_eq!(sparkline(&[], 12), " ".repeat(12));
    assert_eq!(sparkline(&[], 0), "");
    assert_eq!(sparkline(&[ok(1.0, 1.0)], 0), "");
}

#[test]
fn sparkline_levels_and_outages() {
    // One entry per bucket: t = 0..=9 over width 10, latencies 1..=10 s, t = 4 failed.
    let entries: Vec<Entry> = (0..10)
        .map(|i| {
            if i == 4 {
                failed(f64::from(i))
            } else {
                ok(f64::from(i), f64::from(i + 1))
            }
        })
        .collect();
    let line = sparkline(&entries, 10);
    assert_eq!(line, "▁▂▃▄✗▅▆▇██");
    assert_eq!(sparkline(&entries, 10), line, "deterministic");
}

#[test]
fn sparkline_width_characters_and_gaps() {
    let mut rng = Lcg(3);
    let mut entries = Vec::new();
    let mut t = 0.0;
    for _ in 0..1_000 {
        t += (rng.next() % 30) as f64;
        entries.push(if rng.next() % 20 == 0 {
            failed(t)
        } else {
            ok(t, (rng.next() % 500) as f64 / 1000.0)
        });
    }
    for width in [1, 2, 7, 40, 80, 200, 5_000] {
        let line = sparkline(&entries, width);
        assert_eq!(line.chars().count(), width);
        assert!(line
            .chars()
            .all(|c| LEVELS.contains(&c) || c == OUTAGE || c == NO_DATA));
    }
    assert!(sparkline(&entries, 80).contains(OUTAGE));
    assert!(sparkline(&entries, 80).contains('█'));

    // Data at both ends only: the middle is blank.
    assert_eq!(sparkline(&[ok(0.0, 0.2), ok(100.0, 0.2)], 5), "█   █");
    // One bucket with an ok and a failed check shows the outage.
    assert_eq!(
        sparkline(&[ok(0.0, 0.2), failed(0.5), ok(100.0, 0.2)], 5),
        "✗   █"
    );
    // A bucket shows its highest latency.
    assert_eq!(
        sparkline(
            &[ok(0.0, 0.4), ok(1.0, 0.8), ok(9.0, 0.4), ok(10.0, 0.8)],
            2
        ),
        "██"
    );
    assert_eq!(sparkline(&[ok(0.0, 0.8), ok(9.0, 0.1)], 2), "█▁");
    // All at one time: the newest (last) bucket.
    assert_eq!(sparkline(&[ok(3.0, 0.2)], 4), "   █");
    assert_eq!(sparkline(&[failed(3.0)], 1), "✗");
    // All latencies zero: the lowest level, not a division by zero.
    assert_eq!(sparkline(&[ok(0.0, 0.0), ok(1.0, 0.0)], 2), "▁▁");
}

fn check(service: Service) -> CheckResult {
    CheckResult {
        up: true,
        checked_at: 1_700_000_000.5,
        latency_seconds: Some(0.004),
        duration_seconds: 0.02,
        write_read: Some(WriteRead {
            ok: true,
            error: None,
        }),
        ..CheckResult::unchecked(service)
    }
}

#[test]
fn entries_from_checks() {
    let mut pg = check(Service::Postgres);
    pg.postgres = Some(PgFigures {
        connections: 12,
        max_connections: 100,
        ..PgFigures::default()
    });
    let e = Entry::from_check(&pg);
    assert_eq!(
        e,
        Entry {
            at: 1_700_000_000.5,
            ok: true,
            latency_seconds: Some(0.004),
            connections: Some(12),
            memory_bytes: None,
            hit_ratio: None,
            write_read_ok: Some(true),
            error: None,
        }
    );

    let mut redis = check(Service::Redis);
    redis.redis = Some(RedisFigures {
        used_memory_bytes: 1 << 20,
        connected_clients: 3,
        hit_ratio: Some(0.75),
        ..RedisFigures::default()
    });
    let e = Entry::from_check(&redis);
    assert_eq!(e.connections, Some(3));
    assert_eq!(e.memory_bytes, Some(1 << 20));
    assert_eq!(e.hit_ratio, Some(0.75));

    let mut down = check(Service::Redis);
    down.up = false;
    down.latency_seconds = None;
    down.write_read = None;
    down.error = Some("é".repeat(1_000));
    let e = Entry::from_check(&down);
    assert!(!e.ok);
    assert_eq!(e.write_read_ok, None);
    let msg = e.error.unwrap();
    assert!(msg.len() <= MAX_ERROR_BYTES && msg.ends_with('…') && msg.starts_with("éé"));
    assert_eq!(clip_error("short"), "short");

    // Serialised without the absent figures, and back.
    let json = serde_json::to_string(&failed(1.0)).unwrap();
    assert_eq!(
        json,
        r#"{"at":1.0,"ok":false,"error":"connection refused"}"#
    );
    assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), failed(1.0));
}
