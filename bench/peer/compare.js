// Prints the side-by-side table of scripts/bench-vs-bun.sh from the JSON
// summaries `hubbub-bench --json` wrote into one directory, named
// SCENARIO--SERVER--RUN.json (e.g. fanout--bun--1.json). Each cell is the
// range over runs (min–max); ratios are of the medians, hubbub ÷ bun.
//
// Usage: bun bench/peer/compare.js DIR   (node works too)

const fs = require("fs");
const path = require("path");

const dir = process.argv[2];
const runs = {}; // scenario -> server -> [summary]
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort()) {
  const [scenario, server] = file.replace(/\.json$/, "").split("--");
  const summary = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
  ((runs[scenario] ??= {})[server] ??= []).push(summary);
}

const SERVERS = ["hubbub", "hubbub-memory", "bun"];
const ms = (us) => us / 1000;
const metrics = {
  fanout: [
    ["expected deliveries", (s) => s.expected, 0],
    ["lost", (s) => s.lost, 0],
    ["duplicates", (s) => s.duplicates, 0],
    ["latency p50, ms", (s) => ms(s.latency.p50_us), 1],
    ["latency p99, ms", (s) => ms(s.latency.p99_us), 1],
    ["server CPU, % of a core", (s) => s.server.cpu_fraction * 100, 1],
    ["  user, s", (s) => s.server.user_seconds, 2],
    ["  system, s", (s) => s.server.system_seconds, 2],
    ["deliveries / server CPU-s", (s) => s.server.deliveries_per_cpu_second, 0],
    ["deliveries / server user CPU-s", (s) => s.server.deliveries_per_user_cpu_second, 0],
    ["deliveries / TCP segment (loopback)", (s) => s.deliveries_per_tcp_segment, 2],
    ["bench CPU, s", (s) => s.bench_cpu_seconds, 2],
  ],
  idle: [
    ["connected", (s) => s.connected, 0],
    ["RSS per connection, B", (s) => s.server.rss_per_connection, 0],
    ["RSS after joining, MB", (s) => s.server.rss_bytes / 1e6, 1],
    ["server CPU while idle, % of a core", (s) => s.server.cpu_fraction * 100, 2],
  ],
  burst: [
    ["members complete", (s) => s.burst.members_complete, 0],
    ["members closed by server", (s) => s.burst.members_closed, 0],
    ["members connected but short", (s) => s.burst.members_short, 0],
    ["duplicates", (s) => s.duplicates, 0],
    ["time to drain, s", (s) => s.burst.drain_s ?? NaN, 2],
    ["server peak RSS, MB", (s) => s.server.peak_rss_bytes / 1e6, 1],
    ["server CPU, s", (s) => s.server.cpu_seconds, 2],
  ],
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1] + s[s.length >> 1]) / 2 : NaN;
};
const fmt = (x, digits) =>
  x == null || Number.isNaN(x) ? "—" : x.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

for (const [scenario, rows] of Object.entries(metrics)) {
  if (!runs[scenario]) continue;
  const servers = SERVERS.filter((s) => runs[scenario][s]);
  const first = Object.values(runs[scenario])[0][0];
  console.log(
    `\n## ${scenario}: ${first.clients} clients, ${first.rooms} room(s), ${first.senders} senders` +
      (first.mode === "load" ? `, ${first.rate} msg/s for ${first.duration_s} s` : "") +
      `; runs: ${servers.map((s) => `${s} ${runs[scenario][s].length}`).join(", ")}; load average at the end: ${first.loadavg}\n`,
  );
  const header = ["metric", ...servers, ...servers.filter((s) => s !== "bun").map((s) => `${s} ÷ bun`)];
  const table = [header];
  for (const [name, get, digits] of rows) {
    // A figure a run lacks (no server sample, no drain) shows as "—".
    const value = (summary) => {
      try {
        return get(summary) ?? NaN;
      } catch {
        return NaN;
      }
    };
    const values = Object.fromEntries(servers.map((s) => [s, runs[scenario][s].map(value)]));
    const cells = servers.map((s) => {
      const xs = values[s];
      const lo = Math.min(...xs), hi = Math.max(...xs);
      return lo === hi ? fmt(lo, digits) : `${fmt(lo, digits)}–${fmt(hi, digits)}`;
    });
    const ratios = servers
      .filter((s) => s !== "bun")
      .map((s) => {
        if (!values.bun) return "—";
        const r = median(values[s]) / median(values.bun);
        return Number.isFinite(r) ? `${r.toFixed(2)}×` : "—";
      });
    table.push([name, ...cells, ...ratios]);
  }
  const widths = header.map((_, c) => Math.max(...table.map((row) => String(row[c]).length)));
  for (const [i, row] of table.entries()) {
    console.log(`| ${row.map((cell, c) => String(cell).padEnd(widths[c])).join(" | ")} |`);
    if (i === 0) console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  }
}
