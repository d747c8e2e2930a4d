-- wrk script of benches/compare.sh: one machine-readable line at the end of a run.
--
--   wrk_report rps=<requests/s> p50_us=<µs> p99_us=<µs> max_us=<µs>
--
-- wrk corrects its latencies for coordinated omission: a reply that took much longer than the
-- run's mean interval adds the replies that would have waited behind it. So a single stall of
-- 100 ms in a run of 85,000 requests/s moves its p99 to tens of milliseconds; max_us shows it.
done = function(summary, latency, requests)
  io.write(string.format("wrk_report rps=%.2f p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50),
    latency:percentile(99), latency.max))
end
