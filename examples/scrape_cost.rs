//! Benchmark only (not shipped): where a /metrics scrape's time goes, and how it grows with the
//! number of series. Registers EXTRA labelled series beside steward's own (standing in for
//! collectors still to come), then either times gather, encode and render in-process, or serves
//! the real endpoint for wrk.
//!
//!   cargo run --release --example scrape_cost -- time 600
//!   cargo run --release --example scrape_cost -- serve 600 127.0.0.1:9799   # then wrk

use prometheus::{Encoder, IntCounterVec, Opts};
use std::sync::Arc;
use std::time::Instant;
use steward::metrics::Metrics;

fn with_extra(extra: usize) -> Arc<Metrics> {
    let m = Metrics::new().expect("registry");
    // Shaped like commandstats / per-database collectors: a few families, two labels each.
    let families = 6;
    for f in 0..families {
        let v = IntCounterVec::new(
            Opts::new(
                format!("bench_extra_{f}_total"),
                "Benchmark-only series standing in for collectors to come.",
            ),
            &["database", "command"],
        )
        .expect("opts");
        m.registry.register(Box::new(v.clone())).expect("register");
        for i in 0..extra / families {
            v.with_label_values(&[&format!("db{}", i % 7), &format!("cmd{i}")])
                .inc_by(i as u64 * 12345);
        }
    }
    Arc::new(m)
}

fn time(extra: usize) {
    let m = with_extra(extra);
    let n = 2000;
    let body = m.render();
    let samples = String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    let t = Instant::now();
    let mut families = Vec::new();
    for _ in 0..n {
        families = m.registry.gather();
    }
    let gather = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        let mut buf = Vec::with_capacity(body.len());
        prometheus::TextEncoder::new()
            .encode(&families, &mut buf)
            .expect("encode");
    }
    let encode = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(m.render());
    }
    let render = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(m.scrape_body());
    }
    let cached = t.elapsed() / n;
    println!(
        "extra={extra} samples={samples} bytes={} gather={gather:?} encode={encode:?} render={render:?} scrape_body(cached)={cached:?}",
        body.len()
    );
}

async fn serve(extra: usize, addr: std::net::SocketAddr) {
    use steward::metrics::{http, security::SecurityHandle};
    let m = with_extra(extra);
    let cfg = steward::config::MetricsConfig {
        listen: addr,
        ..Default::default()
    };
    let sec = SecurityHandle::start(&cfg).expect("security");
    let state = http::HttpState {
        metrics: m,
        board: steward::model::board::Board::default(),
        security: sec.subscribe(),
    };
    let listener = http::bind(addr).expect("bind");
    eprintln!("serving /metrics on {addr} with {extra} extra series");
    http::serve_on_own_thread(&listener, state, tokio_util::sync::CancellationToken::new())
        .await
        .expect("serve");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let extra: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    match args.get(1).map(String::as_str) {
        Some("time") => time(extra),
        Some("serve") => {
            let addr = args
                .get(3)
                .map(|s| s.parse().expect("address"))
                .unwrap_or_else(|| "127.0.0.1:9799".parse().unwrap());
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(serve(extra, addr));
        }
        _ => eprintln!("usage: scrape_cost time|serve EXTRA [ADDR]"),
    }
}
