/**
 * The one table of spec test commands the harness does not hold the runtime to, each named by
 * file and line, with the runtimes it applies to and why. Only a command where the runtime
 * itself deviates from the suite belongs here (a proposal it lacks, a limit it sets
 * differently); never a whole file, never a command the harness cannot run.
 *
 * A skipped command still runs: the reference's outcome is not checked against the suite,
 * but a candidate is still compared with the reference. A skip whose command turns out to
 * agree with the suite is reported as stale, so the table cannot outlive its reason.
 *
 * @module
 */

/** A JavaScript runtime the tests run under. */
export type Runtime = "deno" | "bun";

/** The runtime running this code. */
export function currentRuntime(): Runtime {
  if ("Bun" in globalThis) return "bun";
  if ("Deno" in globalThis) return "deno";
  throw new Error("the spec tests run under Deno or Bun");
}

/** One skipped command. */
export interface Skip {
  /** The spec test file, without `.wast`. */
  readonly file: string;
  /** The command's line in the `.wast` file. */
  readonly line: number;
  /** The runtimes whose engine deviates here. */
  readonly runtimes: readonly Runtime[];
  /** Why: what the runtime lacks or does differently. */
  readonly reason: string;
}

/** Every skipped command, for every runtime. */
export const SKIPS: readonly Skip[] = [
  {
    file: "table",
    line: 9,
    runtimes: ["deno"],
    reason: "(module definition (table 0xffff_ffff funcref)): V8 refuses at compile a table " +
      "whose initial size exceeds the JS API's implementation limit of 10,000,000 elements " +
      "(as the JS API requires); the core suite only requires the definition to validate",
  },
];

/**
 * The skips that apply to a runtime.
 *
 * @param runtime The runtime; defaults to {@linkcode currentRuntime}.
 */
export function skipsFor(runtime: Runtime = currentRuntime()): Skip[] {
  return SKIPS.filter((s) => s.runtimes.includes(runtime));
}
