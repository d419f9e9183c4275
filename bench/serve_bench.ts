/**
 * Serving a tenant per request under load: starts examples/serve.ts in this runtime (a child
 * process) and drives it with autocannon, a real HTTP load generator, over 127.0.0.1. For
 * `POST /tokens` in each mode (a tenant per request, the shared instance, a fresh
 * `WebAssembly.Instance`) at each concurrency it measures requests per second and p50/p99
 * latency; then a soak of the default mode (no error allowed), the server's RSS after warm-up
 * and after the soak, and how long `/run?spin=1` takes to answer 504. Prints a table and JSON
 * and writes `bench/results/serve-<runtime>.json`, which bench/report.ts turns into the
 * README's table and chart.
 *
 * ```sh
 * deno run -A bench/serve_bench.ts                          # 10 s per point, 60 s soak
 * bun bench/serve_bench.ts --duration=3 --soak=10 --concurrency=1,16
 * ```
 *
 * autocannon (pinned by `script/bootstrap`) is found at `$AUTOCANNON` (its `autocannon.js`),
 * else `.tools/autocannon/node_modules/autocannon/autocannon.js`; it runs under `$NODE`, else
 * `node`, else this Bun. The load generator shares the machine's cores with the server, the
 * same way for every mode: compare the modes' ratios, not the absolute numbers.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { RUNTIME } from "./mitata_results.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const EXAMPLE = `${ROOT}examples/serve.ts`;
const DEADLINE_MS = 50;
const TICK_MS = 1;
const SPIN_REQUESTS = 20;

/** About 1 KB of prose: what one request asks to count. */
const TEXT = ("A host that runs user code gives every request an instance of its own, so that " +
  "nothing one tenant leaves behind is seen by the next; the instance is reset, not rebuilt. ")
  .repeat(6);

interface Options {
  readonly durationS: number;
  readonly soakS: number;
  readonly warmupS: number;
  readonly concurrency: readonly number[];
  readonly modes: readonly string[];
}

function options(args: readonly string[]): Options {
  const get = (name: string, fallback: string): string =>
    args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
  const seconds = (name: string, fallback: string): number => {
    const value = Number(get(name, fallback));
    if (!(value > 0)) throw new RangeError(`--${name} must be seconds above 0, got ${value}`);
    return value;
  };
  return {
    durationS: seconds("duration", "10"),
    soakS: seconds("soak", "60"),
    // V8 grows its heap for the first ~10 s of load (RSS, Deno: 244 MiB after 3 s, then
    // 280-303 MiB from 13 s to 63 s): the warm-up reaches that steady size.
    warmupS: seconds("warmup", "15"),
    concurrency: get("concurrency", "1,16,64").split(",").map(Number),
    modes: get("modes", "tenant,shared,fresh").split(","),
  };
}

/** The command that runs autocannon, and its version. */
function autocannon(): { command: string; prefix: string[]; version: string } {
  const candidates = [
    process.env.AUTOCANNON,
    `${ROOT}.tools/autocannon/node_modules/autocannon/autocannon.js`,
  ].filter((p): p is string => p !== undefined && p !== "");
  const script = candidates.find((p) => existsSync(p));
  if (script === undefined) {
    throw new Error(
      `autocannon not found (looked at ${candidates.join(", ")}): run script/bootstrap, ` +
        "which pins it, or set AUTOCANNON",
    );
  }
  const pkg = JSON.parse(readFileSync(script.replace(/[^/]+$/, "package.json"), "utf8")) as {
    version: string;
  };
  const node = process.env.NODE ?? "node";
  const hasNode = spawnSync(node, ["--version"]).status === 0;
  return {
    command: hasNode ? node : process.execPath,
    prefix: [script],
    version: pkg.version,
  };
}

/** One load run's figures. */
interface Point {
  readonly route: string;
  readonly mode: string;
  readonly concurrency: number;
  readonly durationS: number;
  readonly requests: number;
  readonly reqPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Connection errors, timeouts and non-2xx answers. */
  readonly errors: number;
}

interface AutocannonResult {
  readonly requests: { readonly average: number; readonly total: number };
  readonly latency: { readonly p50: number; readonly p99: number };
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly duration: number;
}

/**
 * A load run, then a wait until the server has answered what autocannon left in flight (a slow
 * mode's queue would otherwise slow the next run): one more request, answered after them.
 */
async function load(
  base: string,
  mode: string,
  concurrency: number,
  durationS: number,
): Promise<Point> {
  const tool = autocannon();
  const query = mode === "tenant" ? "" : `?mode=${mode}`;
  const args = [
    ...tool.prefix,
    "--json",
    "--connections",
    String(concurrency),
    "--duration",
    String(durationS),
    "--timeout",
    "60",
    "--method",
    "POST",
    "--body",
    TEXT,
    `${base}/tokens${query}`,
  ];
  const run = spawnSync(tool.command, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`autocannon failed (${run.status}): ${run.stderr}`);
  const r = JSON.parse(run.stdout) as AutocannonResult;
  await (await fetch(`${base}/stats`)).body?.cancel();
  return {
    route: "/tokens",
    mode,
    concurrency,
    durationS: r.duration,
    requests: r.requests.total,
    reqPerSec: r.requests.total / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
  };
}

interface Server {
  readonly child: ChildProcess;
  readonly base: string;
  readonly exited: Promise<number | string>;
}

function startServer(): Promise<Server> {
  const deno = (globalThis as { Deno?: unknown }).Deno !== undefined;
  const child = spawn(process.execPath, deno ? ["run", "--allow-all", EXAMPLE] : [EXAMPLE], {
    env: { ...process.env, PORT: "0", DEADLINE_MS: String(DEADLINE_MS) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "?"))
  );
  let output = "";
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (chunk: Uint8Array) => {
      output += new TextDecoder().decode(chunk);
      const port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1];
      if (port !== undefined) resolve({ child, base: `http://127.0.0.1:${port}`, exited });
    });
    exited.then((code) => reject(new Error(`the server exited (${code}): ${output}`)));
  });
}

/** The resident set of process `pid`, in bytes (Linux). */
function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib) * 1024;
}

/** `/run?spin=1` answered 504 within the deadline, and the next request served. */
async function spin(base: string): Promise<Record<string, number | boolean>> {
  const clientMs: number[] = [];
  const guestMs: number[] = [];
  let all504 = true;
  for (let i = 0; i < SPIN_REQUESTS; i++) {
    const start = performance.now();
    const response = await fetch(`${base}/run?spin=1`, { method: "POST" });
    const body = await response.json() as { error: string };
    clientMs.push(performance.now() - start);
    all504 &&= response.status === 504;
    const stopped = /stopped after ([\d.]+) ms/.exec(body.error)?.[1];
    if (stopped !== undefined) guestMs.push(Number(stopped));
    const next = await fetch(`${base}/run?n=10`, { method: "POST" });
    await next.body?.cancel();
    all504 &&= next.status === 200;
  }
  const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
  const at = (xs: number[], q: number): number => sorted(xs)[Math.ceil(q * xs.length) - 1];
  return {
    requests: SPIN_REQUESTS,
    deadlineMs: DEADLINE_MS,
    tickMs: TICK_MS,
    all504ThenServed: all504,
    guestP50Ms: at(guestMs, 0.5),
    guestMaxMs: Math.max(...guestMs),
    clientP50Ms: at(clientMs, 0.5),
    clientMaxMs: Math.max(...clientMs),
  };
}

const opts = options(process.argv.slice(2));
const runtime = RUNTIME;
const tool = autocannon();
const server = await startServer();
const pid = server.child.pid!;
console.log(`serve bench (${runtime}), autocannon ${tool.version} under ${tool.command}`);

await load(server.base, "tenant", 16, opts.warmupS);
const rssWarmBytes = rssBytes(pid);
const soak = await load(server.base, "tenant", 16, opts.soakS);
const rssAfterSoakBytes = rssBytes(pid);
const points: Point[] = [];
for (const mode of opts.modes) {
  for (const concurrency of opts.concurrency) {
    const point = await load(server.base, mode, concurrency, opts.durationS);
    points.push(point);
    console.log(
      `${mode.padEnd(7)} c=${String(concurrency).padEnd(3)} ${point.reqPerSec.toFixed(1)} req/s ` +
        `p50 ${point.p50Ms} ms p99 ${point.p99Ms} ms errors ${point.errors}`,
    );
  }
}
const spinResult = await spin(server.base);
const rssEndBytes = rssBytes(pid);
process.kill(pid, "SIGTERM");
const exitStatus = await server.exited;

const find = (mode: string, c: number): Point | undefined =>
  points.find((p) => p.mode === mode && p.concurrency === c);
const ratios = opts.concurrency.map((c) => {
  const tenant = find("tenant", c);
  const shared = find("shared", c);
  const fresh = find("fresh", c);
  return {
    concurrency: c,
    tenantOverShared: tenant && shared ? tenant.reqPerSec / shared.reqPerSec : null,
    tenantOverFresh: tenant && fresh && fresh.reqPerSec > 0
      ? tenant.reqPerSec / fresh.reqPerSec
      : null,
    // autocannon's latencies are whole milliseconds: a p50 of 0 has no ratio.
    tenantP99OverP50: tenant && tenant.p50Ms > 0 ? tenant.p99Ms / tenant.p50Ms : null,
  };
});
const result = {
  runtime,
  autocannon: tool.version,
  deadlineMs: DEADLINE_MS,
  durationS: opts.durationS,
  textBytes: TEXT.length,
  points,
  ratios,
  soak: { ...soak, rssWarmBytes, rssAfterSoakBytes, rssRatio: rssAfterSoakBytes / rssWarmBytes },
  rssEndBytes,
  spin: spinResult,
  exitStatus,
};
console.log(
  `soak ${soak.durationS} s: ${soak.requests} requests, ${soak.errors} errors; RSS ` +
    `${(rssWarmBytes / 2 ** 20).toFixed(1)} -> ${(rssAfterSoakBytes / 2 ** 20).toFixed(1)} MiB`,
);
for (const r of ratios) {
  console.log(
    `c=${r.concurrency}: tenant/shared ${r.tenantOverShared?.toFixed(3) ?? "-"}, tenant/fresh ` +
      `${r.tenantOverFresh?.toFixed(2) ?? "-"}, tenant p99/p50 ${
        r.tenantP99OverP50?.toFixed(2) ?? "-"
      }`,
  );
}
console.log(`spin: ${JSON.stringify(spinResult)}; server exit ${exitStatus}`);
console.log(JSON.stringify(result));
mkdirSync(`${ROOT}bench/results`, { recursive: true });
writeFileSync(`${ROOT}bench/results/serve-${runtime}.json`, JSON.stringify(result, null, 2));
