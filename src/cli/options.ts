/**
 * The demo's command line: the options, their defaults, the usage text, and the parser.
 *
 * @module
 */

/** Cycles per row unless `--cycles` says otherwise. */
export const DEFAULT_CYCLES = 5000;

/** A row stops after this many seconds (at a batch's end) unless `--seconds` says otherwise. */
export const DEFAULT_ROW_SECONDS = 3;

/** What the command line asks for. */
export interface DemoOptions {
  /** Cycles per row, at most. */
  readonly cycles: number;
  /** A row stops after this many seconds, at the end of a batch: it may run fewer cycles. */
  readonly seconds: number;
  /** Print the report as JSON instead of the table. */
  readonly json: boolean;
  /** Print the usage text and stop. */
  readonly help: boolean;
  /** The module's path, or `null` for the embedded module. */
  readonly path: string | null;
  /**
   * Which exported function each running cycle calls: a name, `null` for the first export
   * that takes no arguments, or `false` for none (`--no-call`).
   */
  readonly call: string | null | false;
}

/** The usage text. */
export const USAGE =
  `usage: cli.ts [--cycles N] [--seconds S] [--call NAME | --no-call] [--json] [module.wasm]

Runs the module (default: an embedded 1-page module whose sum() adds up its data) N times
(default ${DEFAULT_CYCLES}) under each allocation strategy and prints a comparison table:
running instances (engine.instantiate, one call, a read of each wasm page, dispose) beside
the runtime's own new WebAssembly.Instance, and the allocator alone (engine.allocate).

  --cycles N   cycles per row, at most
  --seconds S  a row stops after S seconds (default ${DEFAULT_ROW_SECONDS}), so a slow one runs fewer
  --call NAME  the exported function each running cycle calls (it must take no arguments);
               default: the first exported function that takes none
  --no-call    call no function
  --json       print the results as JSON instead of the table
  -h, --help   this text`;

/** A usage error: exit status 2, with the usage text. */
export class UsageError extends Error {}

/** The value of `--name VALUE` or `--name=VALUE` at `args[i]`, and the index it ends at. */
function optionValue(
  args: readonly string[],
  i: number,
  name: string,
): [string | undefined, number] {
  const arg = args[i];
  return arg === name ? [args[i + 1], i + 1] : [arg.slice(name.length + 1), i];
}

/**
 * Parses the arguments after the program name. Throws {@linkcode UsageError} for an unknown
 * option, a bad value, or a second module.
 */
export function parseOptions(args: readonly string[]): DemoOptions {
  let cycles = DEFAULT_CYCLES;
  let seconds = DEFAULT_ROW_SECONDS;
  let json = false;
  let help = false;
  let path: string | null = null;
  let call: string | null | false = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--json") json = true;
    else if (arg === "-h" || arg === "--help") help = true;
    else if (arg === "--no-call") call = false;
    else if (arg === "--cycles" || arg.startsWith("--cycles=")) {
      const [text, end] = optionValue(args, i, "--cycles");
      i = end;
      const value = Number(text);
      if (text === undefined || !/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
        throw new UsageError(
          `--cycles expects a whole number of at least 1, got ${text ?? "nothing"}`,
        );
      }
      cycles = value;
    } else if (arg === "--seconds" || arg.startsWith("--seconds=")) {
      const [text, end] = optionValue(args, i, "--seconds");
      i = end;
      const value = Number(text);
      if (text === undefined || text.trim() === "" || !(value > 0) || !Number.isFinite(value)) {
        throw new UsageError(`--seconds expects a number above 0, got ${text ?? "nothing"}`);
      }
      seconds = value;
    } else if (arg === "--call" || arg.startsWith("--call=")) {
      const [text, end] = optionValue(args, i, "--call");
      i = end;
      if (text === undefined) throw new UsageError("--call expects the name of an export");
      call = text;
    } else if (arg.startsWith("-") && arg !== "-") {
      throw new UsageError(`unknown option ${arg}`);
    } else if (path === null) path = arg;
    else throw new UsageError(`one module at a time: got ${path} and ${arg}`);
  }
  return { cycles, seconds, json, help, path, call };
}
