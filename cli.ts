/**
 * The wasmpool demo: runs a module thousands of times under each allocation strategy (pooling
 * with mprotect, pooling with userfaultfd, on demand) in the current runtime and prints a
 * comparison table. Instances that run (`engine.instantiate`, one call of an exported function
 * that takes no arguments, a read of one byte of each wasm page of its exported memories,
 * `dispose`) are measured beside the runtime's own `new WebAssembly.Instance` with the same
 * call and reads; then the allocator alone (`engine.allocate`, the same reads, `dispose`).
 *
 * Without an argument it runs on an embedded default module (whose `sum()` adds up its 1 KiB
 * of data). With a path it runs on that module, after reporting whether it fits
 * `DEFAULT_MODULE_LIMITS` (and, if not, which limits it breaks and how far the demo raises
 * them). Its function imports get stubs that throw.
 *
 * ```sh
 * deno run -A jsr:@wasmpool/core/cli [--cycles N] [--call NAME | --no-call] [--json] [module.wasm]
 * bun cli.ts [--cycles N] [--call NAME | --no-call] [--json] [module.wasm]
 * ```
 *
 * Exit status: 0 on success, 1 when the module cannot be read, is malformed or cannot be
 * instantiated, 2 for a usage error or imports the demo cannot provide.
 *
 * The parts live in `src/cli/`: the options, the fit report, the workload (imports, the call,
 * the memories read), the measuring, the formatting, and `main`.
 *
 * @module
 */

import process from "node:process";
import { main } from "./src/cli/main.ts";

export { DEMO_POOL_SLOTS, main } from "./src/cli/main.ts";
export { DEFAULT_CYCLES } from "./src/cli/options.ts";
export type { BrokenLimit, FitReport } from "./src/cli/fit.ts";
export type { CycleKind, SkippedStrategy, StrategyResult } from "./src/cli/measure.ts";
export type { DemoReport } from "./src/cli/report.ts";
export type { CallReport, ModuleSummary } from "./src/cli/workload.ts";

if (import.meta.main) {
  process.exitCode = main(process.argv.slice(2));
}
