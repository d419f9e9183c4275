/**
 * What stopping runaway code costs: the same work on the runtime's own instance, on a wasmpool
 * instance without checks, with interruption on (a deadline set, far off), with fuel on, and
 * with both, in one run:
 *
 * - an empty counting loop, 10^7 iterations in one call (the worst case: a check per
 *   iteration and nothing else);
 * - tiktoken encoding 100 KB of text through its own glue (`tiktoken_bg.js`);
 * - sql.js (SQLite) running a query over 50,000 generated rows through its own glue.
 *
 * Each also with the rejected way to read the epoch (`i64.atomic.load`), and the empty loop
 * with the checks written by hand (none, the chosen plain loads, an atomic load, an atomic load
 * every 4,096 iterations behind a countdown, the deadline in a global): the figures that
 * decided the check. And a call of a trivial export (the wrapper's cost per call).
 *
 * The real workloads take turns, round after round, instead of mitata's runs one after the other
 * (tens of milliseconds each: the load of a shared machine changes between runs): each variant's
 * time is the median of its rounds, printed with the median of its ratio to wasmpool without
 * checks in the same round.
 *
 * Then the latency from the deadline to the throw: 200 calls of a guest spinning in a loop,
 * each with a deadline of 5 ticks and starting at a point of the tick that moves from call to
 * call, measured from the call's start plus its deadline to the throw. Prints the tables and writes
 * `bench/results/deadline-<runtime>.json` (mitata), `deadline-real-<runtime>.json` (the real
 * workloads) and `latency-<runtime>.json`.
 *
 * @module
 */

import {
  bench,
  do_not_optimize,
  group,
  run,
  summary,
} from "../.tools/node_modules/mitata/src/main.mjs";
import { mkdirSync, writeFileSync } from "node:fs";
import { RUNTIME, writeResults } from "./mitata_results.ts";
import {
  Config,
  DeadlineExceededError,
  Engine,
  type Instance,
  InstanceAllocationStrategy,
  Module,
} from "../mod.ts";
import { type EpochLoad, setEpochLoad } from "../src/run/interrupt.ts";
import { GlueCopies } from "../tests/fixtures/glue_copies.ts";
import { readRealModule, realModules } from "../tests/fixtures/npm_modules.ts";
import {
  smallRanks,
  TIKTOKEN,
  TIKTOKEN_GLUE_PATH,
  TIKTOKEN_PATTERN,
  type TiktokenGlue,
} from "../tests/fixtures/tiktoken_glue.ts";
import { buildModule, sleb } from "../tests/fixtures/wasm_builder.ts";

const LOOP_ITERATIONS = 10_000_000;
const TEXT_BYTES = 100 * 1024;
const SQL_ROWS = 50_000;
/** A deadline no call here comes near: set, so that every call pays for one. */
const FAR_DEADLINE_MS = 600_000;

interface Variant {
  /** The row's name. */
  readonly name: string;
  readonly interruption: boolean;
  readonly fuel: boolean;
  readonly load: EpochLoad;
}

const VARIANTS: readonly Variant[] = [
  { name: "wasmpool, no checks", interruption: false, fuel: false, load: "plain" },
  { name: "interruption", interruption: true, fuel: false, load: "plain" },
  { name: "fuel", interruption: false, fuel: true, load: "plain" },
  { name: "interruption + fuel", interruption: true, fuel: true, load: "plain" },
  { name: "interruption, atomic epoch load", interruption: true, fuel: false, load: "atomic" },
];

function engineFor(variant: Variant): Engine {
  const config = new Config().withAllocationStrategy(InstanceAllocationStrategy.pooling({
    instanceLimits: { count: 16, memoryReservationSize: 2 ** 32 },
    moduleLimits: { memoryPages: 65536, functions: 10_000, globals: 100, tableElements: 100_000 },
  })).withFuel(variant.fuel);
  if (variant.interruption) config.withInterruption();
  return new Engine(config);
}

const engines = new Map(VARIANTS.map((v) => [v, engineFor(v)]));

function compile(variant: Variant, bytes: Uint8Array): Module {
  const previous = setEpochLoad(variant.load);
  try {
    return new Module(engines.get(variant)!, bytes);
  } finally {
    setEpochLoad(previous);
  }
}

function instantiate(variant: Variant, module: Module, imports?: unknown): Instance {
  return engines.get(variant)!.instantiate(
    module,
    imports as Record<string, Record<string, unknown>> | undefined,
    variant.interruption ? { deadlineMs: FAR_DEADLINE_MS } : undefined,
  );
}

// --- the empty loop -------------------------------------------------------------------------

type Count = (n: number) => number;

/** `count(n)`: a loop that adds 1 to a local until it reaches n; and `add(a, b)`. */
function loopModule(): Uint8Array<ArrayBuffer> {
  return buildModule({
    types: [{ params: ["i32"], results: ["i32"] }, { params: ["i32", "i32"], results: ["i32"] }],
    functions: [0, 1],
    bodies: [{
      locals: [[1, "i32"]],
      code: [
        ...[0x03, 0x40], // loop
        ...[0x20, 1, 0x41, 1, 0x6a, 0x21, 1], // i += 1
        ...[0x20, 1, 0x20, 0, 0x49, 0x0d, 0], // br_if (i < n) 0
        0x0b,
        ...[0x20, 1],
      ],
    }, { code: [0x20, 0, 0x20, 1, 0x6a] }],
    exports: [
      { name: "count", kind: "function", index: 0 },
      { name: "add", kind: "function", index: 1 },
    ],
  });
}

/**
 * The empty loop with a check written by hand at its header, reading an imported shared memory
 * (`e.epoch`, 2 pages, memory 1 as in the rewrite): the alternatives the issue measured, and
 * the one chosen.
 */
function handCheckedLoop(check: "none" | "plain" | "atomic" | "countdown" | "global"): Uint8Array<
  ArrayBuffer
> {
  const trap = [0x04, 0x40, 0x00, 0x0b]; // if unreachable end
  // Memory 1 (the pad is memory 0), as the rewrite has it: align 3 | 0x40, memory 1, offset.
  const loadEpoch = [0x41, 0, 0x29, 0x43, 1, 0x00]; // i32.const 0; i64.load epoch
  const atomicEpoch = [0x41, 0, 0xfe, 0x11, 0x43, 1, 0x00];
  const loadDeadline = [0x41, 0, 0x29, 0x43, 1, 0x80, 0x80, 0x04]; // i64.load offset=65536
  const checks: Record<typeof check, number[]> = {
    none: [],
    plain: [...loadEpoch, ...loadDeadline, 0x5a, ...trap],
    atomic: [...atomicEpoch, ...loadDeadline, 0x5a, ...trap],
    // if (countdown == 0) { countdown = 4096; atomic check } else countdown -= 1
    countdown: [
      ...[0x20, 2, 0x45, 0x04, 0x40], // local.get 2; i32.eqz; if
      ...[0x41, ...sleb(4096), 0x21, 2],
      ...atomicEpoch,
      ...loadDeadline,
      0x5a,
      ...trap,
      ...[0x05, 0x20, 2, 0x41, 1, 0x6b, 0x21, 2, 0x0b], // else countdown -= 1 end
    ],
    global: [...loadEpoch, 0x23, 0, 0x5a, ...trap],
  };
  return buildModule({
    types: [{ params: ["i32"], results: ["i32"] }],
    imports: [{
      module: "e",
      name: "pad",
      desc: { kind: "memory", type: { min: 0, max: 0, shared: false } },
    }, {
      module: "e",
      name: "epoch",
      desc: { kind: "memory", type: { min: 2, max: 65536, shared: true } },
    }],
    functions: [0],
    globals: [{ type: { type: "i64", mutable: true }, init: { kind: "i64.const", value: -1n } }],
    bodies: [{
      locals: [[2, "i32"]],
      code: [
        ...[0x03, 0x40],
        ...checks[check],
        ...[0x20, 1, 0x41, 1, 0x6a, 0x21, 1],
        ...[0x20, 1, 0x20, 0, 0x49, 0x0d, 0],
        0x0b,
        ...[0x20, 1],
      ],
    }],
    exports: [{ name: "count", kind: "function", index: 0 }],
  });
}

const loopBytes = loopModule();
const plainLoop = new WebAssembly.Instance(new WebAssembly.Module(loopBytes)).exports;
const loops = VARIANTS.map((v) => ({ v, exports: instantiate(v, compile(v, loopBytes)).exports }));

summary(() => {
  group(`empty loop, ${LOOP_ITERATIONS.toExponential(0)} iterations in one call`, () => {
    bench(
      "WebAssembly.Instance",
      () => do_not_optimize((plainLoop.count as Count)(LOOP_ITERATIONS)),
    )
      .baseline(true);
    for (const { v, exports } of loops) {
      const count = exports.count as Count;
      bench(v.name, () => do_not_optimize(count(LOOP_ITERATIONS)));
    }
  });
});

const epochMemory = new WebAssembly.Memory({ initial: 2, maximum: 65536, shared: true });
new BigUint64Array(epochMemory.buffer)[65536 / 8] = 2n ** 64n - 1n;
summary(() => {
  group("the check at the loop header, written by hand (empty loop, 10^7 iterations)", () => {
    for (const check of ["none", "plain", "atomic", "countdown", "global"] as const) {
      const count = new WebAssembly.Instance(new WebAssembly.Module(handCheckedLoop(check)), {
        e: { pad: new WebAssembly.Memory({ initial: 0, maximum: 0 }), epoch: epochMemory },
      }).exports.count as Count;
      const name = {
        none: "no check",
        plain: "i64.load epoch >= i64.load deadline (chosen)",
        atomic: "i64.atomic.load epoch >= i64.load deadline",
        countdown: "every 4,096 iterations, atomic",
        global: "i64.load epoch >= global deadline",
      }[check];
      const b = bench(name, () => do_not_optimize(count(LOOP_ITERATIONS)));
      if (check === "none") b.baseline(true);
    }
  });
});

summary(() => {
  group("one call of a trivial export, add(a, b)", () => {
    const add = plainLoop.add as (a: number, b: number) => number;
    bench("WebAssembly.Instance", () => do_not_optimize(add(1, 2))).baseline(true);
    for (const { v, exports } of loops) {
      if (v.load !== "plain") continue;
      const f = exports.add as (a: number, b: number) => number;
      bench(v.name, () => do_not_optimize(f(1, 2)));
    }
  });
});

// --- tiktoken ---------------------------------------------------------------------------------

const tiktokenBytes = readRealModule(TIKTOKEN);
// A private copy of a glue per variant: it keeps module-level state (the instance, its memory
// views; sql.js's first initSqlJs promise).
const glues = new GlueCopies("deadline-bench");

/** 100 KB of word salad, the same every run. */
function text(): string {
  const words = [
    "the",
    "pooled",
    "instance",
    "hello",
    "world",
    "thing",
    "running",
    "42",
    "wasm",
    "deadline",
    "fuel",
    "héllo",
    "wörld",
    "✓",
    "in",
    "of",
    "and",
    "loop",
  ];
  let seed = 12345;
  let out = "";
  while (out.length < TEXT_BYTES) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out += words[seed % words.length] + (seed % 11 === 0 ? ".\n" : " ");
  }
  return out.slice(0, TEXT_BYTES);
}

const TEXT = text();

async function tiktokenEncoder(
  makeExports: (imports: Record<string, Record<string, unknown>>) => unknown,
): Promise<() => number> {
  const glue = await glues.import<TiktokenGlue>(TIKTOKEN_GLUE_PATH);
  glue.__wbg_set_wasm(
    makeExports({ "./tiktoken_bg.js": glue as unknown as Record<string, unknown> }),
  );
  const encoder = new glue.Tiktoken(smallRanks(), { "<|endoftext|>": 300 }, TIKTOKEN_PATTERN);
  return () => encoder.encode(TEXT, "all").length;
}

const tiktokenRows: [string, () => number][] = [[
  "WebAssembly.Instance",
  await tiktokenEncoder(
    (imports) =>
      new WebAssembly.Instance(
        new WebAssembly.Module(tiktokenBytes),
        imports as WebAssembly.Imports,
      )
        .exports,
  ),
]];
for (const v of VARIANTS) {
  const module = compile(v, tiktokenBytes);
  tiktokenRows.push([
    v.name,
    await tiktokenEncoder((i) => instantiate(v, module, i).exports),
  ]);
}
const expectedTokens = tiktokenRows[0][1]();
for (const [name, encode] of tiktokenRows) {
  if (encode() !== expectedTokens) throw new Error(`tiktoken on ${name}: another token count`);
}

// --- real workloads, interleaved -------------------------------------------------------------

// A real workload runs for tens of milliseconds, long enough for the load of a shared machine
// to change between mitata's runs of one variant and the next: these take turns instead, round
// after round (the order rotating), and each variant's time is the median of its rounds.
const REAL_ROUNDS = 41;

interface RealGroup {
  readonly title: string;
  readonly rows: readonly [string, () => unknown][];
}

const realGroups: RealGroup[] = [{
  title: `tiktoken (${TIKTOKEN.package}@${TIKTOKEN.version}): encode 100 KB of text, interleaved`,
  rows: tiktokenRows,
}];

// --- sql.js -----------------------------------------------------------------------------------

interface SqlJs {
  Database: new () => {
    exec(sql: string): { values: unknown[][] }[];
    close(): void;
  };
}
type InitSqlJs = (options: {
  instantiateWasm(imports: unknown, done: (instance: unknown) => void): unknown;
}) => Promise<SqlJs>;

const sqlModule = realModules().find((m) => m.name === "sql.js")!;
const sqlBytes = readRealModule(sqlModule);
const glueFile = sqlModule.path.replace(/\.wasm$/, ".js");
const QUERY = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${SQL_ROWS})
  SELECT count(*), sum(x % 7), max(length(hex(x * 7919))) FROM c`;

async function sqlQuery(make: (imports: unknown) => unknown): Promise<() => string> {
  // The glue is a factory: each call makes a module of its own, bound to the instance made here.
  const init = glues.require<InitSqlJs>(glueFile);
  const SQL = await init({
    instantiateWasm(imports, done) {
      done(make(imports));
      return {};
    },
  });
  const db = new SQL.Database();
  return () => JSON.stringify(db.exec(QUERY)[0].values);
}

const sqlRows: [string, () => string][] = [[
  "WebAssembly.Instance",
  await sqlQuery(
    (imports) =>
      new WebAssembly.Instance(new WebAssembly.Module(sqlBytes), imports as WebAssembly.Imports),
  ),
]];
for (const v of VARIANTS) {
  const module = compile(v, sqlBytes);
  sqlRows.push([v.name, await sqlQuery((imports) => instantiate(v, module, imports))]);
}
const expectedRows = sqlRows[0][1]();
for (const [name, query] of sqlRows) {
  if (query() !== expectedRows) throw new Error(`sql.js on ${name}: another result`);
}

realGroups.push({
  title: `sql.js (${sqlModule.package}@${sqlModule.version}): a query over ${SQL_ROWS} rows, ` +
    "interleaved",
  rows: sqlRows,
});

/** Times each row of `group` in turns; returns each row's median and ratios to the baseline. */
function interleaved(group: RealGroup): { name: string; medianNs: number; paired: number }[] {
  const times = group.rows.map(() => [] as number[]);
  const ratios = group.rows.map(() => [] as number[]);
  const noChecks = group.rows.findIndex(([name]) => name === "wasmpool, no checks");
  for (let round = 0; round < REAL_ROUNDS; round++) {
    const took = new Array<number>(group.rows.length);
    for (let k = 0; k < group.rows.length; k++) {
      const i = (k + round) % group.rows.length;
      const started = performance.now();
      do_not_optimize(group.rows[i][1]());
      took[i] = (performance.now() - started) * 1e6;
    }
    for (let i = 0; i < took.length; i++) {
      times[i].push(took[i]);
      ratios[i].push(took[i] / took[noChecks]);
    }
  }
  return group.rows.map(([name], i) => ({
    name,
    medianNs: median(times[i]),
    paired: median(ratios[i]),
  }));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const realResults = realGroups.map((group) => ({ title: group.title, rows: interleaved(group) }));
for (const { title, rows } of realResults) {
  console.log(`• ${title}`);
  for (const row of rows) {
    console.log(
      `  ${row.name.padEnd(36)} ${(row.medianNs / 1e6).toFixed(2)} ms  ` +
        `${row.paired.toFixed(3)}× wasmpool without checks (median of paired rounds)`,
    );
  }
}
mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
writeFileSync(
  new URL(`./results/deadline-real-${RUNTIME}.json`, import.meta.url),
  JSON.stringify(
    {
      runtime: RUNTIME,
      benchmarks: realResults.flatMap(({ title, rows }) =>
        rows.map((row) => ({
          name: row.name,
          group: title,
          baseline: row.name === "WebAssembly.Instance",
          stats: { p50: row.medianNs },
          pairedRatioToNoChecks: row.paired,
        }))
      ),
    },
    null,
    2,
  ),
);

const result = await run();
writeResults(`deadline-${RUNTIME}`, result);
glues.remove();

// --- latency ----------------------------------------------------------------------------------

const TICK_MS = 1;
const DEADLINE_TICKS = 5;
const TRIALS = 200;

/** `spin()`: a loop with nothing in it, forever. */
const spinBytes = buildModule({
  types: [{ params: [], results: [] }],
  functions: [0],
  bodies: [{ code: [0x03, 0x40, 0x0c, 0x00, 0x0b] }],
  exports: [{ name: "spin", kind: "function", index: 0 }],
});
const latencyEngine = new Engine(new Config().withInterruption({ tickMs: TICK_MS }));
const spinModule = new Module(latencyEngine, spinBytes);
const lateMs: number[] = [];
for (let trial = 0; trial < TRIALS; trial++) {
  using instance = latencyEngine.instantiate(spinModule, undefined, {
    deadlineMs: DEADLINE_TICKS * TICK_MS,
  });
  const spin = instance.exports.spin as () => void;
  // A call that starts right after the previous one stopped starts right after a tick: start
  // at a random point of the tick instead, as calls do.
  const phaseUntil = performance.now() + ((trial * 0.618034) % 1) * TICK_MS;
  while (performance.now() < phaseUntil) { /* wait */ }
  const start = performance.now();
  try {
    spin();
    throw new Error("spin returned");
  } catch (error) {
    if (!(error instanceof DeadlineExceededError)) throw error;
  }
  lateMs.push(performance.now() - start - DEADLINE_TICKS * TICK_MS);
}
latencyEngine.close();
lateMs.sort((a, b) => a - b);
const at = (q: number): number =>
  lateMs[Math.min(lateMs.length - 1, Math.floor(q * lateMs.length))];
const latency = {
  runtime: RUNTIME,
  tickMs: TICK_MS,
  deadlineMs: DEADLINE_TICKS * TICK_MS,
  trials: TRIALS,
  lateMs: { min: lateMs[0], p50: at(0.5), p90: at(0.9), p99: at(0.99), max: lateMs.at(-1)! },
};
const directory = new URL("./results/", import.meta.url);
mkdirSync(directory, { recursive: true });
writeFileSync(new URL(`latency-${RUNTIME}.json`, directory), JSON.stringify(latency, null, 2));
console.log(JSON.stringify(latency));
for (const engine of engines.values()) engine.close();
