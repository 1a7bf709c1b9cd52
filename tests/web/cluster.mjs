// A droverd (with its HTTP face and the built web app) and one drover-agent of the build,
// for the web app's browser tests; started as python/tests/sdk_cluster.py and
// tests/testing/local_cluster.* start them: droverd with a fresh bootstrap admin token and
// its own TLS CA, the agent joined with a one-time join token, both on 127.0.0.1. stop()
// ends only the processes it started (by pid), deletes runc containers left in the agent's
// work folder and removes its folder, also after a failure. Root only (runc).
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import * as path from "node:path";

export const NODE = "web-node-1";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A TCP port nobody listens on now (droverd's --http-listen needs a number). */
async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export class LocalCluster {
  constructor(buildDir, webRoot) {
    this.buildDir = path.resolve(buildDir);
    this.webRoot = path.resolve(webRoot);
    this.dir = fs.mkdtempSync(path.join(process.env.TMPDIR || "/tmp", "drover-web-test-"));
    // Searchable by the unprivileged host uid that is root in a job container.
    fs.chmodSync(this.dir, 0o711);
    this.processes = new Map(); // name -> ChildProcess
    this.address = "";
    this.token = "";
    this.ca = "";
    this.baseUrl = "";
  }

  program(...parts) {
    const p = path.join(this.buildDir, ...parts);
    try {
      fs.accessSync(p, fs.constants.X_OK);
    } catch {
      throw new Error(`${p} is missing; build it first (cmake --build --preset debug)`);
    }
    return p;
  }

  spawnLogged(name, argv, opts = {}) {
    const log = fs.openSync(path.join(this.dir, `${name}.log`), "a");
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "ignore", log], ...opts });
    fs.closeSync(log);
    this.processes.set(name, child);
    return child;
  }

  logs() {
    const out = [];
    for (const name of this.processes.keys()) {
      try {
        out.push(`--- ${name}:\n` + fs.readFileSync(path.join(this.dir, `${name}.log`), "utf8").slice(-6000));
      } catch {
        // no log
      }
    }
    return out.join("\n");
  }

  /** Copies the daemons' logs into `dir` (kept as test artifacts). */
  keepLogs(dir) {
    for (const name of this.processes.keys()) {
      try {
        fs.copyFileSync(path.join(this.dir, `${name}.log`), path.join(dir, `${name}.log`));
      } catch {
        // no log
      }
    }
  }

  exited(name) {
    const p = this.processes.get(name);
    return !p || p.exitCode !== null || p.signalCode !== null;
  }

  async start() {
    const state = path.join(this.dir, "state");
    fs.mkdirSync(state);
    const tokenFile = state + ".token";
    const addressFile = state + ".address";
    this.token = "drv_webtest" + randomBytes(24).toString("hex");
    fs.writeFileSync(tokenFile, this.token + "\n", { mode: 0o600, flag: "wx" });
    this.state = state;
    this.ca = path.join(state, "tls", "ca.crt");

    let lastError = "";
    for (let tries = 0; tries < 5; tries++) {
      const port = await freePort();
      this.spawnLogged("droverd", [this.program("server", "droverd"), "--listen", "127.0.0.1:0",
        "--state-dir", state, "--bootstrap-admin-token-file", tokenFile,
        "--address-file", addressFile, "--http-listen", `127.0.0.1:${port}`,
        "--web-root", this.webRoot]);
      const deadline = Date.now() + 30000;
      while (!(fs.existsSync(addressFile) && fs.statSync(addressFile).size > 0)) {
        if (this.exited("droverd")) break;
        if (Date.now() > deadline) throw new Error("droverd did not listen within 30s\n" + this.logs());
        await sleep(100);
      }
      if (this.exited("droverd")) {
        lastError = this.logs();
        // The port was taken in between: another one; anything else is final.
        if (/in use/i.test(lastError)) continue;
        break;
      }
      this.address = fs.readFileSync(addressFile, "utf8").trim();
      this.baseUrl = await this.findScheme(port);
      break;
    }
    if (!this.baseUrl) throw new Error("droverd exited during start-up\n" + lastError);

    await this.startAgent();
    const deadline = Date.now() + 60000;
    for (;;) {
      const r = await this.request("GET", "/api/v1/nodes", { token: this.token });
      const ready = (r.json?.nodes ?? []).some((n) => n.name === NODE && n.state === "READY");
      if (ready) return;
      if (this.exited("agent-0")) throw new Error("drover-agent exited during start-up\n" + this.logs());
      if (Date.now() > deadline) throw new Error(`the agent's node was not READY within 60s (${r.status} ${r.text.slice(0, 300)})\n` + this.logs());
      await sleep(200);
    }
  }

  /** https:// when droverd's HTTP face speaks TLS (with droverd's CA), http:// otherwise. */
  async findScheme(port) {
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      for (const scheme of ["https", "http"]) {
        this.baseUrl = `${scheme}://127.0.0.1:${port}`;
        try {
          await this.request("GET", "/api/v1/session");
          return this.baseUrl;
        } catch {
          // not this scheme, or not listening yet
        }
      }
      if (this.exited("droverd")) break;
      await sleep(200);
    }
    throw new Error(`droverd's HTTP face did not answer on port ${port}\n` + this.logs());
  }

  /** One HTTP request to droverd's HTTP face: { status, headers, text, json }. Options: token
   * (Authorization: Bearer), cookie, csrf, body (JSON), origin. */
  request(method, urlPath, opts = {}) {
    const url = new URL(urlPath, this.baseUrl);
    const headers = { Accept: "application/json" };
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.cookie) headers.Cookie = opts.cookie;
    if (opts.csrf) headers["X-Drover-CSRF"] = opts.csrf;
    if (opts.origin) headers.Origin = opts.origin;
    let body;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers["Content-Type"] = "application/json";
    }
    const lib = url.protocol === "https:" ? https : http;
    const ca = url.protocol === "https:" && fs.existsSync(this.ca) ? fs.readFileSync(this.ca) : undefined;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers, ca, timeout: 10000 }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json });
        });
      });
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on("error", reject);
      if (body) req.write(body);
      req.end();
    });
  }

  /** Runs the drover CLI of the build; returns its stdout. */
  cli(args, token = this.token) {
    return execFileSync(this.program("cli", "drover"), ["--server", this.address, "--ca", this.ca, ...args], {
      // The CLI's connection keeper lives in this cluster's folder and ends with it.
      env: { ...process.env, DROVER_TOKEN: token, XDG_RUNTIME_DIR: this.dir },
      encoding: "utf8",
      timeout: 60000,
    });
  }

  /** Creates a user over droverd's local admin socket; returns their token. */
  createUser(name, role) {
    return execFileSync(this.program("cli", "drover"), ["--server", `unix:${path.join(this.state, "admin.sock")}`,
      "user", "create", name, "--role", role], { encoding: "utf8", timeout: 60000 }).trim();
  }

  /** Submits the folder `source` (entry `train.py`) as the user of `token`; returns the id. */
  submit(token, source, experiment, extra = []) {
    return this.cli(["submit", "--source", source, "--experiment", experiment, ...extra, "--", "train.py"], token).trim();
  }

  /** Writes a project folder holding `train.py`; returns the folder. */
  project(name, script) {
    const folder = path.join(this.dir, "projects", name);
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, "train.py"), script);
    return folder;
  }

  async startAgent() {
    const joinFile = path.join(this.dir, "agent-0.join-token");
    const join = this.cli(["node", "token", "create", "--ttl", "10m", "--name", NODE]);
    fs.writeFileSync(joinFile, join, { mode: 0o600, flag: "wx" });
    this.spawnLogged("agent-0", [this.program("agent", "drover-agent"), "--scheduler", this.address,
      "--ca", this.ca, "--node-name", NODE, "--work-dir", path.join(this.dir, "agent-0"),
      "--join-file", joinFile, "--init", this.program("agent", "launcher", "drover-init"),
      "--python-dir", path.join(this.buildDir, "python"), "--jobs-on-exit", "stop"]);
  }

  /** Ends the agent, then droverd (SIGTERM, SIGKILL after 30 s), deletes leftover containers
   * and removes the folder. */
  async stop() {
    const names = [...this.processes.keys()].filter((n) => n !== "droverd").concat(["droverd"]);
    for (const name of names) {
      const p = this.processes.get(name);
      if (!p || this.exited(name)) continue;
      const done = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      const t = setTimeout(() => p.kill("SIGKILL"), 30000);
      await done;
      clearTimeout(t);
    }
    const runcRoot = path.join(this.dir, "agent-0", "runc");
    if (fs.existsSync(runcRoot)) {
      let listed = "";
      try {
        listed = execFileSync("/usr/sbin/runc", ["--root", runcRoot, "list", "-q"], { encoding: "utf8" });
      } catch {
        listed = "";
      }
      for (const c of listed.split(/\s+/).filter(Boolean)) {
        try {
          execFileSync("/usr/sbin/runc", ["--root", runcRoot, "delete", "--force", c]);
        } catch {
          // gone already
        }
      }
    }
    const mounts = fs.readFileSync("/proc/self/mounts", "utf8").split("\n")
      .map((l) => l.split(" ")[1]).filter((m) => m && m.includes(this.dir))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) {
      try {
        execFileSync("umount", ["-l", m]);
      } catch {
        // not mounted any more
      }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

