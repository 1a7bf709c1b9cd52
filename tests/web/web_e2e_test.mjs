// The web app in headless Chromium (Debian's, driven by playwright-core) against a real
// droverd with its HTTP face and a real drover-agent (cluster.mjs): a job that logs a known
// series is followed live (log lines and curve points appear while it runs; the curve ends
// with exactly the logged points), its output file is listed and its link downloads it, cancel from the page cancels the job, a sweep's page ranks its trials and overlays their
// curves, a user does not
// see another user's runs, requests without a session are refused, and admins cordon a node
// from the page. A screenshot of each page is kept in $DROVER_WEB_ARTIFACTS.
//
// Run by ctest as web_e2e_test (labels e2e, e2e-web) with DROVER_BUILD_DIR, DROVER_WEB_DIR
// (web/, built by deploy/build-web.sh) and DROVER_WEB_ARTIFACTS. Exits 77 (skipped, with the
// reason) only when Chromium is not installed, or when not root (jobs run in runc).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { LocalCluster, NODE } from "./cluster.mjs";

const SKIP = 77;
const here = path.dirname(new URL(import.meta.url).pathname);
const webDir = path.resolve(process.env.DROVER_WEB_DIR || path.join(here, "..", "..", "web"));
const buildDir = process.env.DROVER_BUILD_DIR;
const artifacts = path.resolve(process.env.DROVER_WEB_ARTIFACTS || "web-e2e-artifacts");
const chromiumPath = process.env.DROVER_CHROMIUM || "/usr/bin/chromium";

if (!fs.existsSync(chromiumPath)) {
  console.log(`SKIPPED: no Chromium at ${chromiumPath}; install Debian's chromium (deploy/install-deps.sh) to run the browser tests`);
  process.exit(SKIP);
}
if (process.getuid() !== 0) {
  console.log("SKIPPED: runs jobs in runc containers: root only");
  process.exit(SKIP);
}
if (!buildDir) {
  console.error("DROVER_BUILD_DIR names no build (ctest sets it)");
  process.exit(1);
}
if (!fs.existsSync(path.join(webDir, "dist", "index.html")) || !fs.existsSync(path.join(webDir, "node_modules", "playwright-core"))) {
  console.error(`the web app is not built in ${webDir}: run deploy/build-web.sh`);
  process.exit(1);
}
const { chromium } = createRequire(path.join(webDir, "package.json"))("playwright-core");

const EXPERIMENT = "web-e2e";
const POINTS = 40;
// Logs POINTS points of `loss` (1/(i+1) at steps 0..POINTS-1) and a log line for each, one
// every 0.5 s: about 20 s of running to watch live.
const SERIES_JOB = `import os, time, drover
run = drover.Run.get_context()
for i in range(${POINTS}):
    print(f"web-e2e step {i}", flush=True)
    run.log("loss", 1.0 / (i + 1))
    time.sleep(0.5)
with open(os.path.join(os.environ["DROVER_OUTPUT_DIR"], "web e2e.bin"), "wb") as f:
    f.write(bytes(range(256)) * 1000)
print("web-e2e done", flush=True)
`;
// What the series job leaves in its outputs folder.
const OUTPUT_NAME = "web e2e.bin";
const OUTPUT_BYTES = Buffer.alloc(256000, 0).map((_, i) => i % 256);
// A sweep trial (sh -c, the sweep appending "--x VALUE" as $0 $1): score = -(x - 0.3)^2
// at 3 steps.
const SWEEP_TRIAL = `exec python3 -c "import drover, sys
x = float(sys.argv[2])
run = drover.Run.get_context()
for i in range(3):
    run.log('score', -(x - 0.3) ** 2)
" "$0" "$1"`;
const SLEEP_JOB = `import time
print("sleeping", flush=True)
time.sleep(600)
`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(200);
  }
}

let failures = 0;
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}\n${e.stack ?? e}`);
  }
}

fs.mkdirSync(artifacts, { recursive: true });
const cluster = new LocalCluster(buildDir, path.join(webDir, "dist"));
let browser;
try {
  await cluster.start();
  console.log(`droverd's web app at ${cluster.baseUrl}`);
  const alice = cluster.createUser("alice", "user");
  const bob = cluster.createUser("bob", "user");

  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // Chromium on a closed network: no background connections, no sandbox as root.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const newPage = async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1400, height: 1000 } });
    const page = await context.newPage();
    page.on("dialog", (d) => d.accept());
    page.on("pageerror", (e) => console.log(`page error: ${e.message}`));
    page.on("response", (r) => { if (r.status() >= 500) console.log(`server error: ${r.status()} ${r.request().method()} ${r.url()}`); });
    return page;
  };
  const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
  const login = async (page, token) => {
    await page.goto(cluster.baseUrl + "/");
    await page.waitForURL(/\/login/);
    await page.fill("#token", token);
    await page.click("button[type=submit]");
    await page.waitForSelector("[data-testid=user-name]");
  };

  let seriesJob = "";
  let sleepJob = "";
  const alicePage = await newPage();

  await check("the login page refuses a bad token and signs in with a good one", async () => {
    await alicePage.goto(cluster.baseUrl + "/");
    await alicePage.waitForURL(/\/login/);
    await shot(alicePage, "login");
    await alicePage.fill("#token", "drv_not_a_real_token_0000000000000000");
    await alicePage.click("button[type=submit]");
    await alicePage.waitForSelector("p.error[role=alert]");
    assert.match(await alicePage.textContent("p.error"), /not accepted/);
    await alicePage.fill("#token", alice);
    await alicePage.click("button[type=submit]");
    await alicePage.waitForSelector("[data-testid=user-name]");
    assert.equal(await alicePage.textContent("[data-testid=user-name]"), "alice");
    const cookies = await alicePage.context().cookies();
    const session = cookies.find((c) => c.name === "drover_session");
    assert.ok(session, "no drover_session cookie");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
  });

  await check("a job that logs a known series is followed live and its curve ends with exactly the logged points", async () => {
    seriesJob = cluster.submit(alice, cluster.project("series", SERIES_JOB), EXPERIMENT);
    await alicePage.goto(`${cluster.baseUrl}/runs/${seriesJob}`);
    await alicePage.waitForSelector(".run-head h1");
    assert.match(await alicePage.textContent(".run-head h1"), new RegExp(seriesJob));

    // While it runs: some log lines and some curve points, not all of them yet.
    const pointsShown = async () => {
      const caption = await alicePage.$("figure[data-metric=loss] figcaption");
      if (!caption) return 0;
      const m = /([\d,]+) points?/.exec(await caption.textContent());
      return m ? Number(m[1].replace(/,/g, "")) : 0;
    };
    await until("a curve point and a log line while the job runs", async () => {
      const log = await alicePage.textContent("[data-testid=log-text]");
      return (await pointsShown()) >= 2 && /web-e2e step 1\b/.test(log ?? "");
    }, 90000);
    const live = { points: await pointsShown(), badge: await alicePage.getAttribute(".run-head .badge", "data-state") };
    const job = (await cluster.request("GET", `/api/v1/jobs/${seriesJob}`, { token: alice })).json;
    assert.equal(live.badge, "RUNNING", "the page did not show the job running");
    assert.equal(job.status.state, "RUNNING", "the job was no longer running when its first points were seen");
    assert.ok(live.points < POINTS, `all ${POINTS} points were there before the job ended: not followed live`);
    assert.equal(await alicePage.textContent("[data-testid=metrics-state]"), "live");
    await shot(alicePage, "run-live");

    // More appear without a reload.
    await until("more points, live", async () => (await pointsShown()) > live.points, 30000);

    // The end: every point, exactly, and every log line once.
    await alicePage.waitForSelector(".run-head .badge[data-state=COMPLETED]", { timeout: 120000 });
    await until("the metrics stream to end", async () => (await alicePage.textContent("[data-testid=metrics-state]")) === "ended", 30000);
    const checkPoints = async () => {
      await alicePage.click("figure[data-metric=loss] figcaption button:has-text('points')");
      const rows = await alicePage.$$eval("figure[data-metric=loss] [data-testid=points-table] tbody tr", (trs) =>
        trs.map((tr) => [...tr.querySelectorAll("td")].map((td, i) => (i === 2 ? td.getAttribute("title") : td.textContent))));
      assert.equal(rows.length, POINTS, `the table has ${rows.length} points, ${POINTS} were logged`);
      rows.forEach(([rank, step, value], i) => {
        assert.equal(rank, "0");
        assert.equal(Number(step), i);
        assert.equal(Number(value), 1 / (i + 1), `step ${i}`);
      });
      assert.equal(await pointsShown(), POINTS);
      assert.equal(await alicePage.$("figure[data-metric=loss] [data-testid=thinned-note]"), null, "a note says the series was thinned");
    };
    await checkPoints();
    await until("the last log line", async () => /web-e2e done/.test(await alicePage.textContent("[data-testid=log-text]")), 30000);
    const lines = (await alicePage.textContent("[data-testid=log-text]")).split("\n");
    for (let i = 0; i < POINTS; i++) {
      assert.equal(lines.filter((l) => l === `web-e2e step ${i}`).length, 1, `log line 'web-e2e step ${i}' not shown exactly once`);
    }
    await shot(alicePage, "run");

    // Opened after the end (the stored series, not the live stream): the same points.
    await alicePage.reload();
    await alicePage.waitForSelector("figure[data-metric=loss]");
    await checkPoints();
    await alicePage.fill("input[aria-label='search logs']", "step 3");
    const found = (await alicePage.textContent("[data-testid=log-text]")).split("\n");
    assert.deepEqual(found, ["web-e2e step 3", "web-e2e step 30", "web-e2e step 31", "web-e2e step 32", "web-e2e step 33",
      "web-e2e step 34", "web-e2e step 35", "web-e2e step 36", "web-e2e step 37", "web-e2e step 38", "web-e2e step 39"]);
    const timeline = await alicePage.$$eval("[data-testid=timeline] li", (lis) => lis.map((li) => li.getAttribute("data-state")));
    assert.equal(timeline[0], "QUEUED");
    assert.equal(timeline[timeline.length - 1], "COMPLETED");
  });

  await check("the run page lists the job's output file and its link downloads its bytes", async () => {
    await alicePage.goto(`${cluster.baseUrl}/runs/${seriesJob}`);
    await alicePage.waitForSelector("[data-testid=outputs] tbody a", { timeout: 30000 });
    const links = await alicePage.$$eval("[data-testid=outputs] tbody a", (as) => as.map((a) => [a.textContent, a.getAttribute("href")]));
    assert.deepEqual(links, [[OUTPUT_NAME, `/api/v1/jobs/${seriesJob}/outputs/web%20e2e.bin`]]);
    await shot(alicePage, "run-outputs");
    // The link, with the page's session cookie, as the browser follows it.
    const r = await alicePage.context().request.get(cluster.baseUrl + links[0][1]);
    assert.equal(r.status(), 200);
    assert.equal(r.headers()["content-type"], "application/octet-stream");
    assert.match(r.headers()["content-disposition"] ?? "", /^attachment; filename="web_e2e.bin"; filename\*=UTF-8''web%20e2e.bin$/);
    assert.ok(Buffer.compare(await r.body(), OUTPUT_BYTES) === 0, "the downloaded file differs from what the job wrote");
  });

  await check("cancel on the page cancels the job", async () => {
    sleepJob = cluster.submit(alice, cluster.project("sleep", SLEEP_JOB), EXPERIMENT);
    await alicePage.goto(`${cluster.baseUrl}/runs/${sleepJob}`);
    await alicePage.waitForSelector(".run-head .badge[data-state=RUNNING]", { timeout: 90000 });
    await until("the job's first log line", async () => /sleeping/.test(await alicePage.textContent("[data-testid=log-text]")), 60000);
    await alicePage.click("button:has-text('Cancel run')");
    await alicePage.waitForSelector(".run-head .badge[data-state=CANCELED]", { timeout: 60000 });
    const job = (await cluster.request("GET", `/api/v1/jobs/${sleepJob}`, { token: alice })).json;
    assert.equal(job.status.state, "CANCELED");
    assert.equal(job.status.cause, "CANCELED_BY_USER");
    assert.equal(await alicePage.$("button:has-text('Cancel run')"), null, "a cancel button on an ended run");
    await shot(alicePage, "run-canceled");
  });

  await check("the runs page lists the user's runs with their state, filtered by state", async () => {
    await alicePage.goto(cluster.baseUrl + "/");
    await alicePage.waitForSelector(`tr[data-job='${seriesJob}']`);
    await alicePage.waitForSelector(`tr[data-job='${sleepJob}'] .badge[data-state=CANCELED]`);
    assert.match(await alicePage.textContent(`tr[data-job='${seriesJob}']`), /completed.*alice.*web-e2e.*web-node-1/);
    await shot(alicePage, "runs");
    await alicePage.click("button.chip:has-text('canceled')");
    await alicePage.waitForURL(/state=CANCELED/);
    await until("the filter to apply", async () => (await alicePage.$(`tr[data-job='${seriesJob}']`)) === null, 10000);
    assert.ok(await alicePage.$(`tr[data-job='${sleepJob}']`));
  });

  await check("the experiment page overlays its runs' curves of one metric", async () => {
    await alicePage.goto(`${cluster.baseUrl}/experiments/${EXPERIMENT}`);
    await alicePage.waitForSelector("figure[data-metric=loss] .uplot", { timeout: 30000 });
    assert.ok(await alicePage.$(`[data-testid=experiment-runs] tr[data-job='${seriesJob}']`));
    assert.ok(await alicePage.$(`[data-testid=experiment-runs] tr[data-job='${sleepJob}']`));
    assert.equal(await alicePage.inputValue("select[aria-label=metric]"), "loss");
    await shot(alicePage, "experiment");
  });

  await check("the sweep page ranks its trials best first with their parameters and overlays their curves", async () => {
    // A grid over x whose trials log score = -(x - 0.3)^2 at 3 steps: the ranking is known.
    const file = path.join(cluster.dir, "sweep.json");
    fs.writeFileSync(file, JSON.stringify({
      name: "web-e2e-sweep",
      trial_template: {
        experiment: "web-e2e-sweep",
        entry_script: "bin/sh",
        arguments: [{ value: "-c" }, { value: SWEEP_TRIAL }],
        resources: { cpus: 1, memory_mib: 512 },
      },
      search_space: { x: { choice: { values: [{ number: 0.1 }, { number: 0.3 }, { number: 0.6 }] } } },
      sampling: { method: "GRID" },
      primary_metric_name: "score",
      primary_metric_goal: "MAXIMIZE",
      max_concurrent_trials: 3,
    }));
    const sweepId = cluster.cli(["sweep", "submit", "-f", file], alice).trim();
    assert.match(sweepId, /^s-[0-9a-f]{16}$/);
    await alicePage.goto(`${cluster.baseUrl}/sweeps`);
    await alicePage.waitForSelector(`[data-testid=sweeps-table] tr[data-sweep='${sweepId}']`, { timeout: 30000 });
    await alicePage.click(`tr[data-sweep='${sweepId}'] a`);
    await alicePage.waitForURL(new RegExp(`/sweeps/${sweepId}$`));
    await alicePage.waitForSelector("[data-testid=sweep-facts] .badge[data-state=COMPLETED]", { timeout: 120000 });
    assert.equal(await alicePage.textContent("[data-testid=primary-metric]"), "score (maximize)");
    const rows = await alicePage.$$eval("[data-testid=sweep-trials] tbody tr", (trs) => trs.map((tr) => ({
      job: tr.getAttribute("data-job"),
      x: tr.querySelector("td[data-param=x]").textContent,
      result: tr.querySelector("td.result").textContent,
    })));
    assert.deepEqual(rows.map((r) => [r.x, r.result]), [["0.3", "0"], ["0.1", "-0.04"], ["0.6", "-0.09"]]);
    rows.forEach((r) => assert.match(r.job, /^j-/));
    assert.match(await alicePage.textContent("[data-testid=best-trial]"), /score = 0 .*x=0\.3/);
    // Every trial's 3 points on one chart.
    await until("the trials' curves", async () =>
      (await alicePage.getAttribute("[data-testid=sweep-curves] .chart", "data-drawn-points")) === "9", 30000);
    await shot(alicePage, "sweep");
    // A trial's link opens its run.
    await alicePage.click(`[data-testid=sweep-trials] tr[data-job='${rows[0].job}'] a`);
    await alicePage.waitForURL(new RegExp(`/runs/${rows[0].job}$`));
    // Another user gets the refusal, not the sweep.
    const bobPage = await newPage();
    await login(bobPage, bob);
    await bobPage.goto(`${cluster.baseUrl}/sweeps/${sweepId}`);
    await bobPage.waitForSelector("p.error[role=alert]");
    assert.equal(await bobPage.$("[data-testid=sweep-trials]"), null);
    await bobPage.goto(`${cluster.baseUrl}/sweeps`);
    await bobPage.waitForSelector("[data-testid=no-sweeps]");
    await bobPage.close();
  });

  await check("a user does not see another user's runs", async () => {
    const bobPage = await newPage();
    await login(bobPage, bob);
    await bobPage.waitForSelector("[data-testid=no-runs]");
    const text = await bobPage.textContent("main");
    assert.ok(!text.includes(seriesJob) && !text.includes(sleepJob), "bob's runs page shows alice's runs");
    await bobPage.goto(`${cluster.baseUrl}/runs/${seriesJob}`);
    await bobPage.waitForSelector("p.error[role=alert]");
    assert.match(await bobPage.textContent("p.error"), /PERMISSION_DENIED|NOT_FOUND/);
    assert.equal(await bobPage.$("figure[data-metric=loss]"), null);
    const listed = await cluster.request("GET", "/api/v1/jobs", { token: bob });
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.json.jobs ?? [], []);
    for (const p of [`/api/v1/jobs/${seriesJob}`, `/api/v1/jobs/${seriesJob}/metrics`, `/api/v1/jobs/${seriesJob}/logs?follow=0`,
      `/api/v1/jobs/${seriesJob}/outputs`, `/api/v1/jobs/${seriesJob}/outputs/web%20e2e.bin`]) {
      const r = await cluster.request("GET", p, { token: bob });
      assert.ok([403, 404].includes(r.status), `bob got ${r.status} for ${p}`);
    }
    await bobPage.context().close();
  });

  await check("a request without a session is refused, and a POST without the CSRF header", async () => {
    for (const p of ["/api/v1/jobs", `/api/v1/jobs/${seriesJob}`, `/api/v1/jobs/${seriesJob}/logs?follow=0`, "/api/v1/nodes", "/api/v1/session"]) {
      const r = await cluster.request("GET", p);
      assert.equal(r.status, 401, `${p} without a session: ${r.status}`);
      assert.equal(r.json?.error?.code, "UNAUTHENTICATED");
    }
    const stranger = await newPage();
    await stranger.goto(`${cluster.baseUrl}/runs/${seriesJob}`);
    await stranger.waitForURL(/\/login\?next=/);
    assert.equal(await stranger.$("figure[data-metric=loss]"), null);
    await stranger.context().close();

    const cookie = (await alicePage.context().cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
    assert.equal((await cluster.request("GET", "/api/v1/jobs", { cookie })).status, 200);
    const victim = cluster.submit(alice, cluster.project("sleep", SLEEP_JOB), EXPERIMENT);
    const forged = await cluster.request("POST", `/api/v1/jobs/${victim}/cancel`, { cookie, body: {} });
    assert.equal(forged.status, 403, `a cookie-only POST: ${forged.status}`);
    const session = (await cluster.request("GET", "/api/v1/session", { cookie })).json;
    const crossSite = await cluster.request("POST", `/api/v1/jobs/${victim}/cancel`, { cookie, csrf: session.csrfToken, body: {}, origin: "https://evil.example" });
    assert.equal(crossSite.status, 403, `a POST from another origin: ${crossSite.status}`);
    const state = (await cluster.request("GET", `/api/v1/jobs/${victim}`, { token: alice })).json.status.state;
    assert.ok(!["CANCELED", "CANCEL_REQUESTED"].includes(state), `refused cancels canceled the job (${state})`);
    cluster.cli(["cancel", victim], alice);
  });

  await check("the nodes page shows the node, and an admin cordons and uncordons it", async () => {
    const adminPage = await newPage();
    await login(adminPage, cluster.token);
    await adminPage.click("nav a:has-text('Nodes')");
    await adminPage.waitForSelector(`tr[data-node='${NODE}'] .badge[data-state=READY]`);
    await shot(adminPage, "nodes");
    await adminPage.click(`tr[data-node='${NODE}'] button:has-text('cordon')`);
    await adminPage.waitForSelector(`tr[data-node='${NODE}'] .badge[data-state=CORDONED]`);
    await adminPage.click(`tr[data-node='${NODE}'] button:has-text('uncordon')`);
    await adminPage.waitForSelector(`tr[data-node='${NODE}'] .badge[data-state=READY]`);
    await adminPage.context().close();

    // alice sees no admin buttons.
    await alicePage.goto(cluster.baseUrl + "/nodes");
    await alicePage.waitForSelector("[data-testid=nodes-table], p.error, p.muted");
    assert.equal(await alicePage.$("td.actions button"), null, "a user sees cordon buttons");
  });

  await check("static files come with the security headers and unknown paths get the app", async () => {
    const r = await cluster.request("GET", "/runs/j-unknown");
    assert.equal(r.status, 200);
    assert.match(r.text, /<div id="app">/);
    assert.match(r.headers["content-security-policy"] ?? "", /default-src 'self'/);
    assert.equal(r.headers["x-content-type-options"], "nosniff");
    assert.equal(r.headers["x-frame-options"], "DENY");
    assert.doesNotMatch(r.text, /<script>(?!<\/script>)|<script(?![^>]*\bsrc=)[^>]*>/, "an inline script");
  });
} catch (e) {
  failures++;
  console.log(`FAIL setting up\n${e.stack ?? e}`);
} finally {
  await browser?.close().catch(() => {});
  cluster.keepLogs(artifacts);
  if (failures) console.log(cluster.logs());
  await cluster.stop();
}
console.log(failures ? `${failures} check(s) failed; screenshots and logs in ${artifacts}` : `all checks passed; screenshots in ${artifacts}`);
process.exit(failures ? 1 : 0);
