// Time to first full render of a run with 1,000,000 metric points in the web app (issue 20):
// starts a droverd with its HTTP face and an agent of BUILD_DIR (tests/web/cluster.mjs),
// runs a job that logs 1,000,000 points of `loss` (droverd's default cap per rank), then
// opens the run's page in headless Chromium (Debian's, through playwright-core) --runs
// times, each in a fresh browser context (no cache), and reports per open: the time from
// navigation to the loss chart drawn with every series it fetched (the thinned series and
// its note on screen), and the /metrics answer alone. Root only (runc).
//
//   node bench/web_render_bench.mjs BUILD_DIR [--runs 5] [--points 1000000]
//
// Needs web/dist and web/node_modules (deploy/build-web.sh). Prints one line per open and a
// JSON summary (median and max, ms) last.
import * as fs from "node:fs";
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
  console.error("usage: node bench/web_render_bench.mjs BUILD_DIR [--runs 5] [--points 1000000]");
  process.exit(2);
}
const runs = opt("--runs", 5);
const points = opt("--points", 1_000_000);
const webDir = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "web");
const { chromium } = createRequire(path.join(webDir, "package.json"))("playwright-core");

const JOB = `import math, drover
run = drover.Run.get_context()
n = ${points}
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
try {
  await cluster.start();
  const token = cluster.createUser("bench", "user");
  const id = cluster.submit(token, cluster.project("million", JOB), "web-bench");
  const t0 = performance.now();
  for (;;) {
    const job = (await cluster.request("GET", `/api/v1/jobs/${id}`, { token })).json;
    const state = job?.status?.state;
    if (state === "COMPLETED") break;
    if (["FAILED", "CANCELED"].includes(state)) throw new Error(`the job ${state}: ${JSON.stringify(job.status)}\n${cluster.logs()}`);
    await sleep(500);
  }
  const stored = (await cluster.request("GET", `/api/v1/jobs/${id}/metrics?name=loss&maxPoints=4`, { token })).json;
  const total = Number(stored.series?.[0]?.totalPoints ?? 0);
  console.log(`job ${id} logged and stored ${total} points in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  if (total !== points) throw new Error(`droverd has ${total} points, the job logged ${points}: ${stored.error?.message ?? ""}`);

  browser = await chromium.launch({
    executablePath: process.env.DROVER_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const renders = [];
  const apis = [];
  for (let r = 0; r < runs; r++) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    await page.goto(cluster.baseUrl + "/login");
    await page.fill("#token", token);
    await page.click("button[type=submit]");
    await page.waitForSelector("[data-testid=user-name]");
    const t = performance.now();
    await page.goto(`${cluster.baseUrl}/runs/${id}`);
    await page.waitForSelector("figure[data-metric=loss] [data-testid=thinned-note]", { timeout: 60000 });
    // The chart's canvas is drawn in the same task as its data; one frame more to be sure.
    await page.evaluate(() => new Promise((res) => requestAnimationFrame(() => requestAnimationFrame(res))));
    const ms = performance.now() - t;
    const note = await page.textContent("figure[data-metric=loss] [data-testid=thinned-note]");
    const a = performance.now();
    const answer = await cluster.request("GET", `/api/v1/jobs/${id}/metrics?maxPoints=2800`, { token });
    const apiMs = performance.now() - a;
    renders.push(ms);
    apis.push(apiMs);
    console.log(`open ${r + 1}: first full render ${ms.toFixed(0)} ms (GET /metrics alone ${apiMs.toFixed(0)} ms, ${answer.text.length} bytes); "${note}"`);
    if (r === 0) await page.screenshot({ path: path.join(cluster.dir, "..", `web-render-bench-${process.pid}.png`) });
    await context.close();
  }
  console.log(JSON.stringify({ points, runs, render_ms_median: Math.round(median(renders)), render_ms_max: Math.round(Math.max(...renders)),
    metrics_api_ms_median: Math.round(median(apis)) }));
} finally {
  await browser?.close().catch(() => {});
  await cluster.stop();
}
