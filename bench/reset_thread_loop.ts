/**
 * The reset thread (`PoolingOptions.backgroundResets`) against inline resets, measured in a plain
 * loop rather than under mitata: each row is its own process (so that no row's JIT state or heap
 * reaches another), runs 300,000 cycles of instantiate + one call + dispose six times, and keeps
 * the best round. This is the measurement behind the option's default (off); mitata's rows in
 * `bench/run_bench.ts` ("2 warm, reset thread") disagree on three of four cases, and both are
 * reported in the README.
 *
 *   deno run -A bench/reset_thread_loop.ts        # every row, in child processes
 *   bun bench/reset_thread_loop.ts
 *
 * Prints a table, then the rows as JSON. Not run by `script/bench`: it is a probe of one
 * decision, not a result of the README.
 *
 * @module
 */

import process from "node:process";
import { spawnSync } from "node:child_process";
import { Config, Engine, InstanceAllocationStrategy, Module } from "../mod.ts";
import { image5MiBModuleBytes } from "./image_modules.ts";
import { RUNTIME } from "./mitata_results.ts";
import { smallModuleBytes } from "./small_module.ts";

type Read = () => number;

interface Row {
  module: "small" | "5 MiB";
  backgroundResets: boolean;
  warm: number;
}

interface Result extends Row {
  runtime: string;
  microsecondsPerCycle: number;
  hostResetsBackground: number;
  hostResetsClaimed: number;
  hostResetWakes: number;
}

const CYCLES = 300_000;
const ROUNDS = 6;

const ROWS: readonly Row[] = [
  { module: "small", backgroundResets: false, warm: 1 },
  { module: "small", backgroundResets: true, warm: 2 },
  { module: "small", backgroundResets: true, warm: 3 },
  { module: "5 MiB", backgroundResets: false, warm: 1 },
  { module: "5 MiB", backgroundResets: true, warm: 2 },
  { module: "5 MiB", backgroundResets: true, warm: 3 },
];

/** Runs one row in this process. */
function measure(row: Row): Result {
  const engine = new Engine(new Config().withAllocationStrategy(
    InstanceAllocationStrategy.pooling({
      instanceLimits: { count: 100 },
      backgroundResets: row.backgroundResets,
    }),
  ));
  const bytes = row.module === "small" ? smallModuleBytes() : image5MiBModuleBytes();
  const module = new Module(engine, bytes);
  engine.warm(module, row.warm);
  let sink = 0;
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    for (let i = 0; i < CYCLES; i++) {
      const instance = engine.instantiate(module);
      sink += (instance.exports.read as Read)();
      instance.dispose();
    }
    best = Math.min(best, (performance.now() - started) * 1000 / CYCLES);
  }
  if (sink === 0.5) console.log(sink); // keeps the calls
  const stats = engine.stats();
  engine.close();
  return {
    ...row,
    runtime: RUNTIME,
    microsecondsPerCycle: Number(best.toFixed(3)),
    hostResetsBackground: stats.hostResetsBackground,
    hostResetsClaimed: stats.hostResetsClaimed,
    hostResetWakes: stats.hostResetWakes,
  };
}

/** Runs `row` in a child process of this runtime and returns what it printed. */
function child(row: Row): Result {
  const self = new URL(import.meta.url).pathname;
  const argv = RUNTIME === "deno" ? ["run", "--allow-all", self] : [self];
  const out = spawnSync(process.execPath, [...argv, JSON.stringify(row)], { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`row ${JSON.stringify(row)} failed: ${out.stderr}`);
  return JSON.parse(out.stdout.trim().split("\n").at(-1)!) as Result;
}

const given = process.argv[2];
if (given !== undefined) {
  console.log(JSON.stringify(measure(JSON.parse(given) as Row)));
} else {
  const results: Result[] = [];
  for (const row of ROWS) results.push(child(row));
  console.log(
    `${RUNTIME}: instantiate + call + dispose of a recycled instance, best of ${ROUNDS} × ${CYCLES}`,
  );
  for (const r of results) {
    const mode = r.backgroundResets ? `reset thread, ${r.warm} warm` : "inline";
    console.log(
      `${r.module.padEnd(6)} ${mode.padEnd(22)} ${
        r.microsecondsPerCycle.toFixed(3).padStart(7)
      } µs` +
        `  (background ${r.hostResetsBackground}, claimed ${r.hostResetsClaimed}, wakes ${r.hostResetWakes})`,
    );
  }
  console.log(JSON.stringify({ runtime: RUNTIME, rows: results }));
}
