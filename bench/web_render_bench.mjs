// Time to first full render of a run with 1,000,000 metric points in the web app (issue 20):
// starts a droverd with its HTTP face and an agent of BUILD_DIR (tests/web/cluster.mjs),
// runs a job that logs --points points of `loss` in each of --ranks ranks with the `drover`
// Python module (the real path: the script's metric file, the agent's shipping, droverd's
// log store), and a baseline job of 1,000 points in one rank; then opens each run's page in
// headless Chromium (Debian's, through playwright-core) --runs times, each in a fresh
// browser context (no cache), and reports per open:
//
// - first full render: from the navigation's start to the end of the uPlot draw hook in
//   which the loss chart first drew every point the page received for it (the chart sets
//   `data-drawn-points` and `data-drawn-at`, performance.now() in the page, in that hook;
//   the bench checks the count against the /metrics answer the page fetched);
// - the /metrics answer alone, asked the same way from Node (maxPoints 2800, a 1,400-pixel
//   chart), and its size.
//
// Ratios are against the baseline run, opened the same way in the same browser.
//
//   node bench/web_render_bench.mjs BUILD_DIR [--runs 5] [--points 1000000] [--ranks 1]
//
// Needs web/dist and web/node_modules (deploy/build-web.sh). Root only (runc). Prints one
// line per open and a JSON summary (medians and max, ms) last.
import { createRequire } from "node:module";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { LocalCluster } from "../tests/web/cluster.mjs";

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const buildDir = args[0];
if (!buildDir || buildDir.startsWith("--")) {
  console.error("usage: node bench/web_render_bench.mjs BUILD_DIR [--runs 5] [--points 1000000] [--ranks 1]");
  process.exit(2);
}
const runs = opt("--runs", 5);
const points = opt("--points", 1_000_000);
const ranks = opt("--ranks", 1);
const BASELINE_POINTS = 1000;
const webDir = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "web");
const { chromium } = createRequire(path.join(webDir, "package.json"))("playwright-core");

const job = (n) => `import math, drover
run = drover.Run.get_context()
n = ${n}
chunk = 10000
for start in range(0, n, chunk):
    run.log_list("loss", [math.exp(-i / (n / 5)) + 0.05 * math.sin(i / 50) for i in range(start, min(n, start + chunk))])
print("logged", n, flush=True)
`;

const median = (xs) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cluster = new LocalCluster(buildDir, path.join(webDir, "dist"));
let browser;

async function waitCompleted(id, token) {
  for (;;) {
    const j = (await cluster.request("GET", `/api/v1/jobs/${id}`, { token })).json;
    const state = j?.status?.state;
    if (state === "COMPLETED") return;
    if (["FAILED", "CANCELED"].includes(state)) throw new Error(`job ${id} ${state}: ${JSON.stringify(j.status)}\n${cluster.logs()}`);
    await sleep(500);
  }
}

/** Opens the run's page `runs` times; returns { renders, apis, bytes, note, drawn }. */
async function openRuns(id, token, label) {
  const renders = [];
  const apis = [];
  let bytes = 0;
  let note = "";
  let drawn = 0;
  for (let r = 0; r < runs; r++) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    await page.goto(cluster.baseUrl + "/login");
    await page.fill("#token", token);
    await page.click("button[type=submit]");
    await page.waitForSelector("[data-testid=user-name]");
    const answer = page.waitForResponse((res) => /\/api\/v1\/jobs\/[^/]+\/metrics\?/.test(res.url()) && res.request().method() === "GET", { timeout: 60000 });
    await page.goto(`${cluster.baseUrl}/runs/${id}`);
    const metrics = await (await answer).json();
    const received = (metrics.series ?? []).filter((s) => s.name === "loss").reduce((a, s) => a + (s.steps?.length ?? 0), 0);
    const chart = "figure[data-metric=loss] .chart";
    await page.waitForFunction(({ sel, n }) => document.querySelector(sel)?.dataset.drawnPoints === String(n), { sel: chart, n: received }, { timeout: 60000 });
    const at = await page.getAttribute(chart, "data-drawn-at");
    if (!at) throw new Error("the chart has no data-drawn-at: rebuild web/dist (deploy/build-web.sh)");
    const ms = Number(at);
    drawn = received;
    note = (await page.$("figure[data-metric=loss] [data-testid=thinned-note]")) ? await page.textContent("figure[data-metric=loss] [data-testid=thinned-note]") : "(no note: every point)";
    const a = performance.now();
    const direct = await cluster.request("GET", `/api/v1/jobs/${id}/metrics?name=loss&maxPoints=2800`, { token });
    const apiMs = performance.now() - a;
    if (direct.status !== 200) throw new Error(`GET /metrics: ${direct.status} ${direct.text.slice(0, 300)}`);
    bytes = direct.text.length;
    renders.push(ms);
    apis.push(apiMs);
    console.log(`${label} open ${r + 1}: first full render ${ms.toFixed(0)} ms (${received} points drawn); GET /metrics alone ${apiMs.toFixed(0)} ms, ${bytes} bytes; "${note}"`);
    if (r === 0) await page.screenshot({ path: path.join(cluster.dir, "..", `web-render-bench-${label}-${process.pid}.png`) });
    await context.close();
  }
  return { renders, apis, bytes, note, drawn };
}

try {
  await cluster.start();
  const token = cluster.createUser("bench", "user");
  const t0 = performance.now();
  const big = cluster.submit(token, cluster.project("million", job(points)), "web-bench",
    ranks > 1 ? ["--processes-per-node", String(ranks)] : []);
  const base = cluster.submit(token, cluster.project("baseline", job(BASELINE_POINTS)), "web-bench");
  await waitCompleted(big, token);
  await waitCompleted(base, token);
  const stored = (await cluster.request("GET", `/api/v1/jobs/${big}/metrics?name=loss&maxPoints=4`, { token })).json;
  const total = (stored.series ?? []).reduce((a, s) => a + Number(s.totalPoints ?? 0), 0);
  console.log(`job ${big} logged and stored ${total} points (${ranks} rank(s)) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (total !== points * ranks) throw new Error(`droverd has ${total} points, the job logged ${points * ranks}: ${stored.error?.message ?? JSON.stringify(stored).slice(0, 300)}`);

  browser = await chromium.launch({
    executablePath: process.env.DROVER_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const b = await openRuns(base, token, "baseline");
  const m = await openRuns(big, token, "million");
  const summary = {
    points_per_rank: points, ranks, runs,
    render_ms_median: Math.round(median(m.renders)), render_ms_max: Math.round(Math.max(...m.renders)),
    metrics_api_ms_median: Math.round(median(m.apis)), metrics_api_bytes: m.bytes, points_drawn: m.drawn,
    baseline_points: BASELINE_POINTS,
    baseline_render_ms_median: Math.round(median(b.renders)), baseline_metrics_api_ms_median: Math.round(median(b.apis)),
    render_ratio: Number((median(m.renders) / median(b.renders)).toFixed(2)),
    metrics_api_ratio: Number((median(m.apis) / median(b.apis)).toFixed(2)),
    note: m.note,
  };
  console.log(JSON.stringify(summary));
} finally {
  await browser?.close().catch(() => {});
  await cluster.stop();
}
