/**
 * Turns `bench/results/*.json` into the README's results section: a Markdown table per
 * benchmark group (median per runtime, ratio to the group's baseline), the machine the
 * benchmarks ran on, and how to reproduce them. It rewrites what lies between
 * `<!-- results:begin -->` and `<!-- results:end -->` in README.md and nothing else, so the
 * numbers there are never typed by hand.
 *
 * ```sh
 * deno run -A bench/report.ts            # rewrite README.md
 * deno run -A bench/report.ts --stdout   # print the section instead
 * ```
 *
 * Files it understands: `{runtime, benchmarks: [{name, stats: {p50, ...}}]}` (the mitata
 * benches) and `{runtime, benchmarks: [{name, median_ns}]}` (the Zig-native benches). Files of
 * one suite from different runtimes share tables: `wasmtime-deno.json`, `wasmtime-bun.json`
 * and `wasmtime-zig-native.json` (bench/wasmtime_bench.ts, zig/bench/wasmtime_bench.zig) give
 * each module's Wasmtime and wasmpool rows a column per runtime, as ratios to Wasmtime's
 * pooling + copy-on-write cycle in that runtime. A row may
 * carry `group` (its mitata group's name) and `baseline` (boolean); without them the groups
 * and baselines of the known benches are used, else one group per file, first row as
 * baseline. Files of any other shape are skipped with a note on stderr.
 *
 * @module
 */

import { loadLatency, renderLatency } from "./report_latency.ts";
import { loadLive, renderLive } from "./report_live.ts";
import { loadRealSet, renderRealSet } from "./report_real_set.ts";
import { loadServe, renderServe, SERVE_CHART_PATH, serveSvg } from "./report_serve.ts";
import { loadImageMemory, renderImageMemory } from "./report_image_memory.ts";
import { fileURLToPath } from "node:url";

/** The README markers the section goes between. */
export const BEGIN_MARKER = "<!-- results:begin -->";
/** See {@linkcode BEGIN_MARKER}. */
export const END_MARKER = "<!-- results:end -->";

/** One benchmark's median in one runtime. */
export interface ResultRow {
  /** The benchmark's name. */
  readonly name: string;
  /** Median time of one iteration in nanoseconds; `null` when the bench was skipped. */
  readonly medianNs: number | null;
  /** Why there is no median, when the file says. */
  readonly note: string | null;
  /** The group the file names for it, if it does. */
  readonly group: string | null;
  /** Whether the file marks it as its group's baseline (`null`: the file does not say). */
  readonly baseline: boolean | null;
}

/** One results file that has the expected shape. */
export interface ResultFile {
  /** File name within the results directory. */
  readonly file: string;
  /** The runtime the results are from (`deno`, `bun`, `zig-native`, ...). */
  readonly runtime: string;
  /** The bench suite: the file name without the runtime (`instantiate` for `<runtime>.json`). */
  readonly suite: string;
  /** Its rows. */
  readonly rows: readonly ResultRow[];
  /** When the file was last written. */
  readonly modified: Date | null;
}

/** A group of benchmarks that are compared with each other. */
export interface BenchGroup {
  /** The heading. */
  readonly title: string;
  /** The benchmark every ratio is relative to. */
  readonly baseline: string;
  /** Benchmark names, in the order first seen. */
  readonly names: readonly string[];
  /** Runtimes with results in this group, in column order. */
  readonly runtimes: readonly string[];
  /** Median per benchmark name, then per runtime. */
  readonly medians: ReadonlyMap<string, ReadonlyMap<string, ResultRow>>;
}

interface KnownGroup {
  readonly title: string;
  readonly baseline: string;
  readonly match: (name: string) => boolean;
}

/**
 * The groups of the benches in this repository, for files that do not record them (mitata's
 * JSON has them, the files written by the benches do not). A name no group matches goes to a
 * group of its suite's own.
 */
const KNOWN_GROUPS: Readonly<Record<string, readonly KnownGroup[]>> = {
  instantiate: [{
    title: "instantiate+dispose, small module (1 page, 1 KiB data segment, 10-entry table)",
    baseline: "WebAssembly.Instance",
    match: () => true,
  }],
  uffd: [{
    title: "uffd: instantiate+dispose by data image size",
    baseline: "uffd, 64 KiB image",
    match: (name) => name.endsWith(" image"),
  }, {
    title: "uffd: instantiate, first touch of zero wasm pages, dispose",
    baseline: "segmented: touch 64 pages",
    match: (name) => name.includes("touch") || name.includes("each of"),
  }],
  "zig-native": [{
    title: "instantiate+dispose from Zig, no FFI (the floor under both runtimes)",
    baseline: "on-demand",
    match: () => true,
  }],
};

const RUNTIME_ORDER = ["deno", "bun", "zig-native"];
const RUNTIME_LABELS: Readonly<Record<string, string>> = {
  deno: "Deno",
  bun: "Bun",
  "zig-native": "Zig native",
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The suite of a results file: its name without the runtime. */
function suiteOf(stem: string, runtime: string): string {
  let suite = stem;
  if (suite.endsWith(`-${runtime}`)) suite = suite.slice(0, -runtime.length - 1);
  else if (suite.startsWith(`${runtime}-`)) suite = suite.slice(runtime.length + 1);
  else if (suite === runtime) suite = "";
  if (suite !== "") return suite;
  return runtime === "deno" || runtime === "bun" ? "instantiate" : stem;
}

/**
 * Reads one results file's JSON. Returns the file, or a note saying why it was skipped.
 *
 * @param file The file name (for the suite and the notes).
 * @param json The parsed contents.
 * @param modified The file's modification time.
 */
export function readResultFile(
  file: string,
  json: unknown,
  modified: Date | null,
): { result: ResultFile | null; notes: string[] } {
  const notes: string[] = [];
  if (!isRecord(json) || typeof json.runtime !== "string" || !Array.isArray(json.benchmarks)) {
    return { result: null, notes: [`${file}: not {runtime, benchmarks: [...]}; skipped`] };
  }
  const runtime = json.runtime;
  const rows: ResultRow[] = [];
  for (const [i, entry] of json.benchmarks.entries()) {
    if (!isRecord(entry) || typeof entry.name !== "string") {
      notes.push(`${file}: benchmarks[${i}] has no name; skipped`);
      continue;
    }
    let median: unknown = undefined;
    if (isRecord(entry.stats)) median = entry.stats.p50;
    else if ("median_ns" in entry) median = entry.median_ns;
    if (median !== null && (typeof median !== "number" || !Number.isFinite(median))) {
      notes.push(`${file}: ${entry.name} has neither stats.p50 nor median_ns; skipped`);
      continue;
    }
    rows.push({
      name: entry.name,
      medianNs: median,
      note: typeof entry.note === "string" ? entry.note : null,
      group: typeof entry.group === "string" ? entry.group : null,
      baseline: typeof entry.baseline === "boolean" ? entry.baseline : null,
    });
  }
  if (rows.length === 0) {
    notes.push(`${file}: no benchmark with a median; skipped`);
    return { result: null, notes };
  }
  const stem = file.replace(/\.json$/, "");
  return { result: { file, runtime, suite: suiteOf(stem, runtime), rows, modified }, notes };
}

/**
 * Sorts the rows of all files into groups: by the group a row names, else by the known
 * groups of its suite, else one group per suite.
 *
 * @param files The results files.
 */
export function groupResults(files: readonly ResultFile[]): BenchGroup[] {
  interface Building {
    title: string;
    baseline: string | null;
    names: string[];
    runtimes: Set<string>;
    medians: Map<string, Map<string, ResultRow>>;
  }
  const groups = new Map<string, Building>();
  for (const file of files) {
    for (const row of file.rows) {
      const known = KNOWN_GROUPS[file.suite]?.find((g) => g.match(row.name));
      const title = row.group ?? known?.title ?? file.suite;
      const key = `${file.suite}\u0000${title}`;
      let group = groups.get(key);
      if (group === undefined) {
        group = {
          title,
          baseline: row.group === null ? known?.baseline ?? null : null,
          names: [],
          runtimes: new Set(),
          medians: new Map(),
        };
        groups.set(key, group);
      }
      if (row.baseline === true) group.baseline = row.name;
      if (!group.medians.has(row.name)) {
        group.names.push(row.name);
        group.medians.set(row.name, new Map());
      }
      group.medians.get(row.name)!.set(file.runtime, row);
      group.runtimes.add(file.runtime);
    }
  }
  const rank = (runtime: string): number => {
    const i = RUNTIME_ORDER.indexOf(runtime);
    return i === -1 ? RUNTIME_ORDER.length : i;
  };
  return [...groups.values()].map((g) => ({
    title: g.title,
    baseline: g.baseline !== null && g.medians.has(g.baseline) ? g.baseline : g.names[0],
    names: g.names,
    runtimes: [...g.runtimes].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)),
    medians: g.medians,
  }));
}

function significant(value: number, digits: number): string {
  if (value === 0) return "0";
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return value.toFixed(decimals);
}

function thousands(text: string): string {
  const [whole, fraction] = text.split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return fraction === undefined ? grouped : `${grouped}.${fraction}`;
}

/**
 * A duration in the unit that keeps it readable, three significant digits.
 *
 * @param ns Nanoseconds.
 */
export function formatDuration(ns: number): string {
  if (ns < 1e3) return `${significant(ns, 3)} ns`;
  if (ns < 1e6) return `${significant(ns / 1e3, 3)} µs`;
  if (ns < 1e9) return `${significant(ns / 1e6, 3)} ms`;
  return `${significant(ns / 1e9, 3)} s`;
}

/**
 * A ratio such as `0.47×` or `1,234×`.
 *
 * @param ratio The ratio.
 */
export function formatRatio(ratio: number): string {
  if (ratio >= 100) return `${thousands(ratio.toFixed(0))}×`;
  return `${significant(ratio, 2 + (ratio >= 10 ? 1 : 0))}×`;
}

function label(runtime: string): string {
  return RUNTIME_LABELS[runtime] ?? runtime;
}

/**
 * One group as a Markdown table: benchmark, median per runtime, ratio to the baseline per
 * runtime.
 *
 * @param group The group.
 */
export function groupTable(group: BenchGroup): string[] {
  const header = [
    "benchmark",
    ...group.runtimes.map((r) => `${label(r)} median`),
    ...group.runtimes.map((r) => `${label(r)} vs baseline`),
  ];
  const lines = [
    `| ${header.join(" | ")} |`,
    `| --- | ${header.slice(1).map(() => "---:").join(" | ")} |`,
  ];
  const base = group.medians.get(group.baseline)!;
  for (const name of group.names) {
    const row = group.medians.get(name)!;
    const medians = group.runtimes.map((runtime) => {
      const r = row.get(runtime);
      if (r === undefined) return "-";
      if (r.medianNs === null) return r.note === null ? "skipped" : `skipped (${r.note})`;
      return formatDuration(r.medianNs);
    });
    const ratios = group.runtimes.map((runtime) => {
      const value = row.get(runtime)?.medianNs;
      const baseline = base.get(runtime)?.medianNs;
      if (value == null || baseline == null || baseline === 0) return "-";
      return formatRatio(value / baseline);
    });
    const title = name === group.baseline ? `${name} (baseline)` : name;
    lines.push(`| ${[title.replaceAll("|", "\\|"), ...medians, ...ratios].join(" | ")} |`);
  }
  return lines;
}

/** What is known of the machine and the tools. */
export interface MachineInfo {
  /** CPU model. */
  readonly cpu: string;
  /** Logical CPUs. */
  readonly cpus: number;
  /** Whether /proc/cpuinfo flags a hypervisor. */
  readonly virtual: boolean;
  /** Total memory in GiB. */
  readonly memoryGiB: number | null;
  /** Kernel release. */
  readonly kernel: string;
  /** Tool versions by name. */
  readonly tools: readonly string[];
}

async function readText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

async function commandVersion(
  command: string,
  args: readonly string[],
  pattern: RegExp,
): Promise<string | null> {
  try {
    const { success, stdout } = await new Deno.Command(command, {
      args: [...args],
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!success) return null;
    return pattern.exec(new TextDecoder().decode(stdout))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** The version of the Wasmtime script/bootstrap installed (its dist-info), or null. */
async function wasmtimeVersion(root: string): Promise<string | null> {
  try {
    for await (const entry of Deno.readDir(`${root}/.tools/wasmtime`)) {
      const match = /^wasmtime-(.+)\.dist-info$/.exec(entry.name);
      if (entry.isDirectory && match !== null) return match[1];
    }
  } catch {
    // Not installed.
  }
  return null;
}

/**
 * Reads the machine's CPU, memory and kernel from /proc, and the versions of the tools the
 * benches run with (the repository's pinned `.tools/bin/*` when present, else the PATH).
 *
 * @param root The repository root.
 * @param runtimes The runtimes that have results.
 * @param suites The bench suites that have results (`wasmtime` adds Wasmtime's version).
 */
export async function machineInfo(
  root: string,
  runtimes: ReadonlySet<string>,
  suites: ReadonlySet<string> = new Set(),
): Promise<MachineInfo> {
  const cpuinfo = await readText("/proc/cpuinfo");
  const meminfo = await readText("/proc/meminfo");
  const version = await readText("/proc/version");
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU";
  const cpus = cpuinfo.match(/^processor\s*:/gm)?.length ?? navigator.hardwareConcurrency;
  const memKiB = /^MemTotal:\s+(\d+)\s+kB/m.exec(meminfo)?.[1];
  const tool = async (name: string): Promise<string> => {
    const local = `${root}/.tools/bin/${name}`;
    try {
      await Deno.stat(local);
      return local;
    } catch {
      return name;
    }
  };
  const tools: string[] = [];
  const deno = await commandVersion(await tool("deno"), ["--version"], /^deno (\S+)/m);
  if (runtimes.has("deno")) tools.push(`Deno ${deno ?? Deno.version.deno}`);
  if (runtimes.has("bun")) {
    tools.push(`Bun ${await commandVersion(await tool("bun"), ["--version"], /^(\S+)/) ?? "?"}`);
  }
  if (runtimes.has("zig-native")) {
    tools.push(`Zig ${await commandVersion(await tool("zig"), ["version"], /^(\S+)/) ?? "?"}`);
  }
  if (suites.has("wasmtime")) {
    const version = await wasmtimeVersion(root);
    tools.push(`Wasmtime ${version ?? "?"} (C API library of PyPI wasmtime)`);
  }
  const mitata = /"version":\s*"([^"]+)"/.exec(
    await readText(`${root}/.tools/node_modules/mitata/package.json`),
  )?.[1];
  if (mitata !== undefined) tools.push(`mitata ${mitata}`);
  return {
    cpu: cpu.replace(/\s+/g, " "),
    cpus,
    virtual: /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo),
    memoryGiB: memKiB === undefined ? null : Number(memKiB) / 2 ** 20,
    kernel: /Linux version (\S+)/.exec(version)?.[1] ?? (Deno.osRelease?.() || "unknown"),
    tools,
  };
}

/**
 * The README section (without the markers).
 *
 * @param groups The benchmark groups.
 * @param machine The machine.
 * @param files The files the numbers come from.
 */
export function renderSection(
  groups: readonly BenchGroup[],
  machine: MachineInfo,
  files: readonly ResultFile[],
): string {
  const out: string[] = [
    "<!-- Generated by bench/report.ts from bench/results/*.json: do not edit by hand. -->",
    "",
  ];
  if (groups.length === 0) {
    out.push("No results yet: run `script/bench`.", "");
  } else {
    out.push(
      "Median time of one iteration (mitata's p50; the Zig-native bench: median of its rounds). " +
        '"vs baseline" is that median over the group baseline\'s median in the same runtime: ' +
        "below 1× is faster.",
      "",
    );
    for (const group of groups) {
      out.push(`### ${group.title}`, "", ...groupTable(group), "");
    }
  }
  const dates = files.flatMap((f) => (f.modified === null ? [] : [f.modified.getTime()]));
  const when = dates.length === 0
    ? "unknown date"
    : new Date(Math.max(...dates)).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  const memory = machine.memoryGiB === null ? "" : `, ${machine.memoryGiB.toFixed(1)} GiB RAM`;
  out.push(
    `**Machine:** ${machine.cpu}, ${machine.cpus} logical CPUs${memory}, Linux ${machine.kernel}` +
      `${machine.virtual ? " (virtual machine)" : ""}; ${machine.tools.join(", ")}. ` +
      `Results written ${when} (${files.map((f) => f.file).join(", ")}).`,
    "",
    "**Reproduce:** `script/bench && deno run -A bench/report.ts` (`script/bench` runs the " +
      "report itself at the end).",
  );
  return out.join("\n");
}

/**
 * Replaces what lies between the markers in `readme` with `section`.
 *
 * @param readme The README text.
 * @param section The new section.
 * @throws {Error} When the markers are missing or out of order.
 */
export function spliceSection(readme: string, section: string): string {
  const begin = readme.indexOf(BEGIN_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (begin === -1 || end === -1 || end < begin) {
    throw new Error(
      `README.md needs ${BEGIN_MARKER} and then ${END_MARKER}, on lines of their own, where ` +
        "the results go",
    );
  }
  return `${readme.slice(0, begin + BEGIN_MARKER.length)}\n${section}\n\n${readme.slice(end)}`;
}

/**
 * Formats Markdown the way `deno fmt` formats README.md (so that running it over the README
 * leaves the generated section alone). Returns the text unchanged if the formatter fails.
 *
 * @param text The Markdown.
 * @param root The repository root, whose deno.json holds the formatter's settings.
 */
export async function formatMarkdown(text: string, root: string): Promise<string> {
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["fmt", "--ext=md", "-"],
      cwd: root,
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
    const { success, stdout } = await child.output();
    return success ? new TextDecoder().decode(stdout).trimEnd() : text;
  } catch {
    return text;
  }
}

async function loadResults(dir: string): Promise<{ files: ResultFile[]; notes: string[] }> {
  const files: ResultFile[] = [];
  const notes: string[] = [];
  let names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.endsWith(".json")) names.push(entry.name);
    }
  } catch (error) {
    notes.push(`${dir}: ${(error as Error).message}`);
  }
  names = names.sort();
  for (const name of names) {
    const path = `${dir}/${name}`;
    let json: unknown;
    try {
      json = JSON.parse(await Deno.readTextFile(path));
    } catch (error) {
      notes.push(`${name}: not JSON (${(error as Error).message}); skipped`);
      continue;
    }
    const modified = (await Deno.stat(path)).mtime;
    const { result, notes: fileNotes } = readResultFile(name, json, modified);
    notes.push(...fileNotes);
    if (result !== null) files.push(result);
  }
  return { files, notes };
}

/**
 * Reads the results, renders the section and writes it into README.md (or prints it with
 * `--stdout`). Returns the exit status.
 *
 * @param args `--stdout` to print instead of writing.
 */
export async function main(args: readonly string[]): Promise<number> {
  const root = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
  const { files, notes } = await loadResults(`${root}/bench/results`);
  for (const note of notes) console.error(`report: ${note}`);
  // The real set has a table of its own (report_real_set.ts), with its recycled shares.
  const groups = groupResults(files.filter((f) => f.suite !== "real-set"));
  const machine = await machineInfo(
    root,
    new Set(files.map((f) => f.runtime)),
    new Set(files.map((f) => f.suite)),
  );
  const live = renderLive(await loadLive(`${root}/bench/results`));
  const memory = renderImageMemory(await loadImageMemory(`${root}/bench/results`));
  const latency = renderLatency(await loadLatency(`${root}/bench/results`));
  const realSet = renderRealSet(await loadRealSet(`${root}/bench/results`));
  const serveFiles = await loadServe(`${root}/bench/results`);
  const serve = renderServe(serveFiles);
  const body = renderSection(groups, machine, files);
  const parts = [body, live, memory, latency, realSet, serve].filter((part) => part !== "");
  const section = await formatMarkdown(parts.join("\n\n"), root);
  if (args.includes("--stdout")) {
    console.log(section);
    return 0;
  }
  if (serveFiles.length !== 0) {
    await Deno.mkdir(`${root}/${SERVE_CHART_PATH.replace(/\/[^/]+$/, "")}`, { recursive: true });
    await Deno.writeTextFile(`${root}/${SERVE_CHART_PATH}`, serveSvg(serveFiles));
  }
  const readmePath = `${root}/README.md`;
  const readme = await Deno.readTextFile(readmePath);
  let updated: string;
  try {
    updated = spliceSection(readme, section);
  } catch (error) {
    console.error(`report: ${(error as Error).message}`);
    return 1;
  }
  if (updated !== readme) await Deno.writeTextFile(readmePath, updated);
  console.error(
    `report: README.md results section ${updated === readme ? "unchanged" : "rewritten"}: ` +
      `${groups.length} group(s) from ${files.length} file(s)`,
  );
  return 0;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
