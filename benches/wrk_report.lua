-- wrk script of benches/compare.sh: one machine-readable line at the end of a run, with the
-- figures the comparison keeps and what it needs to tell a valid run from an invalid one.
--
--   wrk_report rps=<requests/s> p50_us=<µs> p99_us=<µs> mean_us=<µs> in_flight=<mean>
--
-- in_flight is Little's law applied to wrk's own figures: mean latency times completed requests
-- over the run's duration, the mean number of requests in flight. It cannot exceed the number
-- of connections (one request each); when it does, wrk's latencies for that run are not the
-- server's (seen on a 2-CPU virtual machine: about one run in four reports a p99 of 50-70 ms and
-- a mean of 1-2 ms at 85,000 requests/s over 4 connections, 100 to 160 "in flight").
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format("wrk_report rps=%.2f p50_us=%d p99_us=%d mean_us=%.1f in_flight=%.2f\n",
    summary.requests / seconds, latency:percentile(50), latency:percentile(99), latency.mean,
    latency.mean * summary.requests / summary.duration))
end
