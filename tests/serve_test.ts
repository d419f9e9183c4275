// examples/serve.ts, started as a child process of the current runtime on a free port: every
// route answers, the tenant of each request computes what the runtime's own instance computes,
// a guest stopped by its deadline, a trap, or a client that goes away leaves no tenant behind
// and no instance poisoned for the next request, and the server stops cleanly on SIGTERM.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";

const EXAMPLE = new URL("../examples/serve.ts", import.meta.url).pathname;

interface Started {
  readonly child: ChildProcess;
  readonly base: string;
  /** Everything the child printed so far. */
  readonly output: () => string;
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>;
}

function start(): Promise<Started> {
  const deno = (globalThis as { Deno?: unknown }).Deno !== undefined;
  const args = deno ? ["run", "--allow-all", EXAMPLE] : [EXAMPLE];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, PORT: "0", DEADLINE_MS: "50" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "?"))
  );
  return new Promise((resolve, reject) => {
    const read = (chunk: Buffer): void => {
      output += chunk.toString();
      const port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1];
      if (port !== undefined) {
        resolve({ child, base: `http://127.0.0.1:${port}`, output: () => output, exited });
      }
    };
    child.stdout!.on("data", read);
    child.stderr!.on("data", read);
    exited.then((code) => reject(new Error(`the server exited (${code}) first:\n${output}`)));
  });
}

let server: Promise<Started> | null = null;
const started = (): Promise<Started> => server ??= start();

after(async () => {
  // A test that failed before stopping it: the child must not outlive the run.
  if (server !== null) (await server).child.kill("SIGKILL");
});

async function post(path: string, body = ""): Promise<{ status: number; json: unknown }> {
  const { base } = await started();
  const response = await fetch(base + path, { method: "POST", body });
  return { status: response.status, json: await response.json() };
}

interface RunStats {
  readonly runningInstances: number;
  readonly liveInstances: number;
  readonly instantiations: number;
  readonly deallocations: number;
  readonly warmHits: number;
  readonly warmMisses: number;
  readonly recycled: number;
  readonly recycleFallbacks: number;
}

async function runStats(): Promise<RunStats> {
  const { base } = await started();
  const response = await fetch(base + "/stats");
  assert.equal(response.status, 200);
  return ((await response.json()) as { run: RunStats }).run;
}

/** The guest's `run(n)` in JavaScript: acc = acc * 31 + i over i < n, as i32. */
function expectedRun(n: number): number {
  let acc = 0;
  for (let i = 0; i < n; i++) acc = (Math.imul(acc, 31) + i) | 0;
  return acc;
}

describe("examples/serve.ts", () => {
  it("counts tokens alike in every mode: a tenant, the shared instance, a fresh one", async () => {
    const texts = [
      "hello world",
      "Tenants, isolated: héllo wörld ✓ <|endoftext|> 12345 ".repeat(20),
    ];
    for (const text of texts) {
      const counts = [];
      for (const mode of ["", "?mode=shared", "?mode=fresh", ""]) {
        const { status, json } = await post("/tokens" + mode, text);
        assert.equal(status, 200, JSON.stringify(json));
        counts.push((json as { tokens: number }).tokens);
      }
      assert.equal(new Set(counts).size, 1, `counts ${counts} of ${JSON.stringify(text)}`);
    }
    assert.deepEqual((await post("/tokens", "hello world")).json, { tokens: 2 });
    assert.equal((await post("/tokens?mode=other", "x")).status, 400);
  });

  it("runs the guest, stops it at the deadline with 504, and serves the next", async () => {
    assert.deepEqual((await post("/run?n=1000")).json, { result: expectedRun(1000), leftover: 0 });
    const spin = await post("/run?spin=1");
    assert.equal(spin.status, 504);
    assert.match((spin.json as { error: string }).error, /DeadlineExceededError.*50 ms/);
    assert.equal((await post("/run?fuel=100&n=100000")).status, 429);
    assert.equal((await post("/run?n=-1")).status, 400);
    // Each tenant finds memory no earlier tenant wrote.
    assert.deepEqual((await post("/run?n=77")).json, { result: expectedRun(77), leftover: 0 });
    const { base } = await started();
    assert.equal((await fetch(base + "/nowhere")).status, 404);
    const stats = await runStats();
    assert.equal(stats.runningInstances, 0);
  });

  it("leaves no tenant behind when the client disconnects mid-request", async () => {
    const { base } = await started();
    const controller = new AbortController();
    const request = fetch(base + "/run?holdMs=60000", {
      method: "POST",
      signal: controller.signal,
    });
    // The tenant is live while the request is held.
    for (let i = 0; (await runStats()).runningInstances === 0; i++) {
      assert.ok(i < 2000, "the held request never got its tenant");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    controller.abort();
    await assert.rejects(request);
    // The hold is a minute: the tenant must go when the server sees the disconnect. The bound
    // (20 s or more) only stops a hang.
    for (let i = 0; (await runStats()).runningInstances !== 0; i++) {
      assert.ok(i < 4000, "the tenant of a disconnected client was never disposed");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.deepEqual((await post("/run?n=3")).json, { result: expectedRun(3), leftover: 0 });
  });

  it("serves 1,000 requests where every tenth traps: no leaked tenant, stats balance", async () => {
    const before = await runStats();
    const BATCH = 10;
    for (let b = 0; b < 100; b++) {
      const batch = Array.from({ length: BATCH }, (_, i) => {
        const n = b * BATCH + i;
        return post(i === BATCH - 1 ? "/run?trap=1" : `/run?n=${n}`).then((r) => ({ n, i, r }));
      });
      for (const { n, i, r } of await Promise.all(batch)) {
        if (i === BATCH - 1) {
          assert.equal(r.status, 500, `request ${n}`);
          assert.match((r.json as { error: string }).error, /RuntimeError/);
        } else {
          assert.deepEqual(r.json, { result: expectedRun(n), leftover: 0 }, `request ${n}`);
        }
      }
    }
    const stats = await runStats();
    assert.equal(stats.runningInstances, 0);
    assert.equal(stats.liveInstances, 0);
    assert.equal(stats.instantiations, stats.deallocations);
    const tenants = stats.warmHits + stats.warmMisses - before.warmHits - before.warmMisses;
    assert.equal(tenants, 1000);
    // A trap does not poison: every tenancy was recycled (none stopped by a deadline here).
    assert.equal(stats.recycled - before.recycled, 1000);
    assert.equal(stats.recycleFallbacks, before.recycleFallbacks);
  });

  it("stops cleanly on SIGTERM: the process exits by itself, with status 0", async () => {
    const { child, exited, output } = await started();
    // Not child.kill(): Deno's ChildProcess then reports the signal it sent as the cause of
    // any exit, even a clean one.
    process.kill(child.pid!, "SIGTERM");
    assert.equal(await exited, 0, output());
    assert.match(output(), /^stopped$/m);
    server = null;
  });
});
