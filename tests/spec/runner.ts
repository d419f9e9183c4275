/**
 * Runs a spec test file's commands through a reference backend, and optionally a candidate,
 * command by command.
 *
 * Two checks per command:
 * - **Suite**: the reference's outcome must be what the suite expects (values bit-exact,
 *   traps as `RuntimeError`, exhaustion as `RangeError`, invalid and malformed binaries as
 *   `CompileError`, unlinkable modules as `LinkError`, uninstantiable ones as `RuntimeError`),
 *   except for the commands of the skip table (`skips.ts`).
 * - **Differential**: the candidate's outcome must equal the reference's: the same values, or
 *   the same error class at the same step (compile, instantiate, call), with the same message
 *   where the policy says so. A candidate error that a declared {@linkcode Refusal} matches
 *   is counted as that refusal (with every command that needed the refused module), not as a
 *   difference. At the end of the file, the state every pair of instances exports (memory
 *   bytes, global values, table entries) is compared too.
 *
 * Each backend keeps its own state as the suite defines it: a current module, modules by
 * `$name`, registered modules by import name, and its own `spectest`. Nothing that cannot be
 * run is dropped: a command the harness cannot run is a failure.
 *
 * @module
 */

import type { Action, AssertModuleCommand, Command, SpecFile, WastValue } from "./commands.ts";
import {
  type Backend,
  type BackendInstance,
  errorClassOf,
  type Imports,
  referenceBackend,
} from "./backend.ts";
import { importModuleNames } from "./binary.ts";
import { currentRuntime, type Skip, skipsFor } from "./skips.ts";
import { hostSpectest, SPECTEST_BINARY } from "./spectest.ts";
import { callThroughAdapter, readV128Global } from "./v128.ts";
import { describe, matches, observe, resultList, toJs } from "./values.ts";

/** An error a candidate may legitimately throw instead of running a module. */
export interface Refusal {
  /** A name for reports, e.g. the error class (`UnsupportedFeatureError`). */
  readonly name: string;
  /**
   * Whether an error thrown by the candidate's `compile` or `instantiate` is this refusal.
   *
   * @param error What the candidate threw.
   */
  matches(error: unknown): boolean;
}

/** Which error messages must agree between reference and candidate. */
export type MessagePolicy = "traps" | "all" | "none";

/** Options of {@linkcode runSpecFile}. */
export interface RunOptions {
  /** The reference; default {@linkcode referenceBackend}. */
  readonly reference?: Backend;
  /** A candidate compared with the reference command by command; none by default. */
  readonly candidate?: Backend;
  /** Commands whose reference outcome is not checked against the suite; default: the table for this runtime. */
  readonly skips?: readonly Skip[];
  /** Candidate errors that count as refusals, not differences; none by default. */
  readonly refusals?: readonly Refusal[];
  /**
   * Whose messages must agree: `"traps"` (default) compares the messages of `RuntimeError`
   * and `RangeError` (the engine's own words, the same on both sides when both run on one
   * engine); `"all"` every error's; `"none"` only classes.
   */
  readonly compareMessages?: MessagePolicy;
  /**
   * Where each backend's `spectest` comes from: `"host"` (default) makes it from the JS API's
   * objects; `"backend"` instantiates the `spectest` module through the backend itself.
   */
  readonly spectest?: "host" | "backend";
  /** Compare the state instances export at the end of the file; default true. */
  readonly compareState?: boolean;
}

/**
 * The step of a command an error came from: `unavailable` when the module the command needs
 * failed earlier on that backend; `harness` when the harness could not run the command.
 */
export type Phase = "compile" | "instantiate" | "invoke" | "get" | "unavailable" | "harness";

/** What running one command on one backend gave. */
export type Outcome =
  | { readonly kind: "ok"; readonly values: readonly unknown[] }
  | {
    readonly kind: "error";
    readonly phase: Phase;
    readonly errorClass: string;
    readonly message: string;
  }
  | { readonly kind: "refused"; readonly refusal: string; readonly message: string }
  | { readonly kind: "text" };

/** A command that failed a check. */
export interface Failure {
  /** The command's line in the `.wast` file. */
  readonly line: number;
  /** The command's kind. */
  readonly command: string;
  /** `suite` (the reference against the expectations) or `differential`. */
  readonly check: "suite" | "differential" | "state";
  /** What went wrong. */
  readonly reason: string;
}

/** A command that was skipped, and why. */
export interface SkippedCommand {
  /** The command's line. */
  readonly line: number;
  /** The command's kind. */
  readonly command: string;
  /** The skip table's reason. */
  readonly reason: string;
}

/** What running one file gave. */
export interface FileReport {
  /** The file, without `.wast`. */
  readonly file: string;
  /** The backends, reference first. */
  readonly backends: readonly string[];
  /** How many commands the file has. */
  readonly commands: number;
  /** Commands whose reference outcome agreed with the suite. */
  readonly passed: number;
  /** Commands of the skip table. */
  readonly skipped: readonly SkippedCommand[];
  /** Text-format assertions, checked when the text was compiled (not run on a backend). */
  readonly text: number;
  /** Commands whose candidate outcome was compared with the reference's. */
  readonly compared: number;
  /** Commands not compared because the candidate refused a module they need, by refusal. */
  readonly refused: Readonly<Record<string, number>>;
  /** Exported memories, tables and globals compared at the end of the file. */
  readonly stateCompared: number;
  /** The most instances each backend held at once (every instance lives until the file ends). */
  readonly instances: number;
  /** Every failed check. */
  readonly failures: readonly Failure[];
  /** Wall time of the run, in milliseconds. */
  readonly elapsedMs: number;
}

type Slot =
  | { readonly kind: "instance"; readonly instance: BackendInstance; readonly index: number }
  | { readonly kind: "refused"; readonly refusal: string; readonly message: string }
  | { readonly kind: "failed" };

/** One backend's state while it runs a file. */
class Session {
  readonly backend: Backend;
  readonly refusals: readonly Refusal[];
  spectest: Readonly<Record<string, unknown>> = {};
  current: Slot | undefined;
  readonly named = new Map<string, Slot>();
  readonly registry = new Map<string, Slot>();
  /** Instances by the index of the command that made them. */
  readonly instances = new Map<number, BackendInstance>();
  /** The indexes of the instances registered for import. */
  readonly registered = new Set<number>();
  #spectestInstance: BackendInstance | undefined;

  constructor(backend: Backend, refusals: readonly Refusal[]) {
    this.backend = backend;
    this.refusals = refusals;
  }

  async start(mode: "host" | "backend"): Promise<void> {
    if (mode === "host") {
      this.spectest = hostSpectest();
      return;
    }
    const compiled = await this.backend.compile(SPECTEST_BINARY);
    this.#spectestInstance = await this.backend.instantiate(compiled, {});
    this.spectest = this.#spectestInstance.exports;
  }

  dispose(): void {
    for (const instance of this.instances.values()) instance.dispose?.();
    this.#spectestInstance?.dispose?.();
    this.instances.clear();
  }

  #errorOutcome(phase: Phase, error: unknown): Outcome {
    for (const refusal of this.refusals) {
      if ((phase === "compile" || phase === "instantiate") && refusal.matches(error)) {
        return { kind: "refused", refusal: refusal.name, message: messageOf(error) };
      }
    }
    const errorClass = this.backend.errorClass?.(error) ?? errorClassOf(error);
    return { kind: "error", phase, errorClass, message: messageOf(error) };
  }

  /** Compiles and (unless `compileOnly`) instantiates a module; the instance on success. */
  async load(
    bytes: Uint8Array<ArrayBuffer> | undefined,
    filename: string,
    compileOnly: boolean,
  ): Promise<{ outcome: Outcome; instance?: BackendInstance }> {
    if (bytes === undefined) return { outcome: harnessError(`no module file ${filename}`) };
    let compiled: unknown;
    try {
      compiled = await this.backend.compile(bytes);
    } catch (error) {
      return { outcome: this.#errorOutcome("compile", error) };
    }
    if (compileOnly) return { outcome: { kind: "ok", values: [] } };
    const imports: Imports = {};
    let names: string[];
    try {
      names = importModuleNames(bytes);
    } catch (error) {
      return { outcome: harnessError(`reading the imports of ${filename}: ${messageOf(error)}`) };
    }
    for (const moduleName of names) {
      if (moduleName === "spectest") {
        imports[moduleName] = this.spectest;
        continue;
      }
      const slot = this.registry.get(moduleName);
      if (slot?.kind === "refused") return { outcome: slot };
      // An unknown module is an empty namespace, so that its imports fail to link (a
      // `LinkError`), as the reference interpreter's unknown imports do.
      // A registered module's exports are passed on as the backend gave them.
      imports[moduleName] = slot?.kind === "instance" ? slot.instance.exports : {};
    }
    try {
      const instance = await this.backend.instantiate(compiled, imports);
      return { outcome: { kind: "ok", values: [] }, instance };
    } catch (error) {
      return { outcome: this.#errorOutcome("instantiate", error) };
    }
  }

  slot(module: string | undefined): Slot | undefined {
    return module === undefined ? this.current : this.named.get(module);
  }

  act(action: Action, resultTypes: readonly string[] | undefined): Outcome {
    const slot = this.slot(action.module);
    if (slot === undefined) return harnessError(`no module ${action.module ?? "(current)"}`);
    if (slot.kind === "refused") return slot;
    if (slot.kind === "failed") return unavailable(action.module);
    const exported = slot.instance.exports[action.field];
    if (action.type === "get") {
      try {
        if (resultTypes?.[0] === "v128") return { kind: "ok", values: [readV128Global(exported)] };
        if (typeof exported !== "object" || exported === null || !("value" in exported)) {
          return harnessError(`export ${action.field} is not a global`);
        }
        return { kind: "ok", values: [exported.value] };
      } catch (error) {
        return this.#errorOutcome("get", error);
      }
    }
    if (typeof exported !== "function") {
      return harnessError(`export ${action.field} is not a function`);
    }
    let args: unknown[];
    try {
      args = action.args.map(toJs);
    } catch (error) {
      return harnessError(messageOf(error));
    }
    const paramTypes = action.args.map((a) => a.type);
    try {
      if (paramTypes.includes("v128") || resultTypes?.includes("v128")) {
        if (resultTypes === undefined) return harnessError("v128 call without result types");
        return { kind: "ok", values: callThroughAdapter(exported, paramTypes, resultTypes, args) };
      }
      const result: unknown = exported(...args);
      return { kind: "ok", values: resultList(result, resultTypes?.length) };
    } catch (error) {
      return this.#errorOutcome("invoke", error);
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A message without what depends on the call site: JavaScriptCore ends the message of an
 * error thrown by a native call with ` (evaluating '<the call expression>')`, the caller's
 * source text, and V8 starts it with the entry point (`WebAssembly.Instance(): `,
 * `WebAssembly.instantiate(): `), so the same error reached two ways reads differently.
 */
function siteFree(message: string): string {
  return message.replace(/ \(evaluating '[^]*'\)$/, "").replace(/^WebAssembly\.\w+\(\): /, "");
}

/** The outcome of a command whose module failed to compile or instantiate before. */
function unavailable(module: string | undefined): Outcome {
  const message = `module ${module ?? "(current)"} failed to compile or instantiate`;
  return { kind: "error", phase: "unavailable", errorClass: "NoInstance", message };
}

function harnessError(message: string): Outcome {
  return { kind: "error", phase: "harness", errorClass: "HarnessError", message };
}

/** The type of an expected value (the first alternative's, for `either`). */
function typeOf(value: WastValue): string {
  return value.type === "either" ? typeOf((value.values ?? [])[0] ?? { type: "?" }) : value.type;
}

function resultTypesOf(command: Command): readonly string[] | undefined {
  if (
    command.type === "assert_return" || command.type === "action" ||
    command.type === "assert_trap" || command.type === "assert_exhaustion"
  ) {
    return command.expected?.map(typeOf);
  }
  return undefined;
}

/** Runs one command on one backend. */
async function run(
  session: Session,
  file: SpecFile,
  command: Command,
  index: number,
): Promise<Outcome> {
  switch (command.type) {
    case "module": {
      const { outcome, instance } = await session.load(
        file.modules.get(command.filename),
        command.filename,
        command.definition,
      );
      if (command.definition) return outcome;
      let slot: Slot;
      if (instance !== undefined) {
        session.instances.set(index, instance);
        slot = { kind: "instance", instance, index };
      } else {
        slot = outcome.kind === "refused" ? outcome : { kind: "failed" };
      }
      session.current = slot;
      if (command.name !== undefined) session.named.set(command.name, slot);
      return outcome;
    }
    case "register": {
      const slot = session.slot(command.name);
      if (slot === undefined) return harnessError(`no module ${command.name ?? "(current)"}`);
      if (slot.kind === "failed") return unavailable(command.name);
      session.registry.set(command.as, slot);
      if (slot.kind === "instance") session.registered.add(slot.index);
      return slot.kind === "refused" ? slot : { kind: "ok", values: [] };
    }
    case "action":
    case "assert_return":
    case "assert_trap":
    case "assert_exhaustion":
      return session.act(command.action, resultTypesOf(command));
    case "assert_invalid":
    case "assert_malformed":
    case "assert_unlinkable":
    case "assert_uninstantiable": {
      if (command.moduleType === "text") {
        return file.textRejected.has(command.filename)
          ? { kind: "text" }
          : harnessError(`text module ${command.filename} was not refused by the text compiler`);
      }
      const compileOnly = command.type === "assert_invalid" || command.type === "assert_malformed";
      const { outcome, instance } = await session.load(
        file.modules.get(command.filename),
        command.filename,
        compileOnly,
      );
      if (instance !== undefined) session.instances.set(index, instance);
      return outcome;
    }
    case "unknown":
      return harnessError(`unknown command kind ${command.kind}`);
  }
}

const EXPECTED_ERROR: Readonly<Record<AssertModuleCommand["type"], [Phase, string]>> = {
  assert_invalid: ["compile", "CompileError"],
  assert_malformed: ["compile", "CompileError"],
  assert_unlinkable: ["instantiate", "LinkError"],
  assert_uninstantiable: ["instantiate", "RuntimeError"],
};

/** Describes an outcome for a failure message. */
export function describeOutcome(outcome: Outcome): string {
  switch (outcome.kind) {
    case "ok":
      return `ok [${outcome.values.map(observe).join(", ")}]`;
    case "error":
      return `${outcome.errorClass} at ${outcome.phase}: ${outcome.message}`;
    case "refused":
      return `refused (${outcome.refusal}): ${outcome.message}`;
    case "text":
      return "text-format assertion";
  }
}

/** Why the reference's outcome disagrees with the suite, or `undefined` when it agrees. */
function checkSuite(command: Command, outcome: Outcome): string | undefined {
  const got = describeOutcome(outcome);
  switch (command.type) {
    case "module":
    case "register":
    case "action":
      return outcome.kind === "ok" ? undefined : `expected success, got ${got}`;
    case "assert_return": {
      const want = `[${command.expected.map(describe).join(", ")}]`;
      if (outcome.kind !== "ok") return `expected ${want}, got ${got}`;
      const ok = outcome.values.length === command.expected.length &&
        command.expected.every((e, i) => matches(e, outcome.values[i]));
      return ok ? undefined : `expected ${want}, got ${got}`;
    }
    case "assert_trap":
    case "assert_exhaustion": {
      const errorClass = command.type === "assert_trap" ? "RuntimeError" : "RangeError";
      const ok = outcome.kind === "error" && outcome.errorClass === errorClass &&
        (outcome.phase === "invoke" || outcome.phase === "get");
      return ok ? undefined : `expected a ${errorClass} ("${command.text}"), got ${got}`;
    }
    case "assert_invalid":
    case "assert_malformed":
    case "assert_unlinkable":
    case "assert_uninstantiable": {
      if (command.moduleType === "text") return outcome.kind === "text" ? undefined : got;
      const [phase, errorClass] = EXPECTED_ERROR[command.type];
      const ok = outcome.kind === "error" && outcome.phase === phase &&
        outcome.errorClass === errorClass;
      return ok
        ? undefined
        : `expected a ${errorClass} at ${phase} ("${command.text}"), got ${got}`;
    }
    case "unknown":
      return got;
  }
}

/** Why two outcomes differ, or `undefined` when they agree. */
function compareOutcomes(
  reference: Outcome,
  candidate: Outcome,
  policy: MessagePolicy,
): string | undefined {
  const differ = `reference: ${describeOutcome(reference)}; candidate: ${
    describeOutcome(candidate)
  }`;
  if (reference.kind !== candidate.kind) return differ;
  if (reference.kind === "ok" && candidate.kind === "ok") {
    const a = reference.values.map(observe);
    const b = candidate.values.map(observe);
    return a.length === b.length && a.every((v, i) => v === b[i]) ? undefined : differ;
  }
  if (reference.kind === "error" && candidate.kind === "error") {
    if (reference.phase !== candidate.phase || reference.errorClass !== candidate.errorClass) {
      return differ;
    }
    const trap = reference.errorClass === "RuntimeError" || reference.errorClass === "RangeError";
    const compare = policy === "all" || (policy === "traps" && trap);
    return compare && siteFree(reference.message) !== siteFree(candidate.message)
      ? differ
      : undefined;
  }
  return undefined;
}

/** Reads an export's state as strings: memory bytes, a global's value, a table's entries. */
function exportedState(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  try {
    if ("buffer" in value && value.buffer instanceof ArrayBuffer) {
      const bytes = new Uint8Array(value.buffer);
      let hash = 0x811c9dc5;
      for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
      return `memory ${bytes.length} bytes, fnv1a ${(hash >>> 0).toString(16)}`;
    }
    if ("length" in value && "get" in value && typeof value.get === "function") {
      const length = Number(value.length);
      const get = value.get as (i: number) => unknown;
      const entries: string[] = [];
      for (let i = 0; i < length; i++) entries.push(observe(get.call(value, i)));
      return `table ${length} [${entries.join(",")}]`;
    }
    if ("value" in value) return `global ${observe(value.value)}`;
  } catch (error) {
    return `throws ${errorClassOf(error)}: ${siteFree(messageOf(error))}`;
  }
  return undefined;
}

/**
 * Runs a spec test file through the reference (checked against the suite) and, when given,
 * a candidate (compared with the reference).
 *
 * @param file The file, from `loadSpecFile`.
 * @param options Backends, skips, refusals and comparison policy; see {@linkcode RunOptions}.
 * @returns What ran, what was skipped, refused or compared, and every failure.
 */
export async function runSpecFile(file: SpecFile, options: RunOptions = {}): Promise<FileReport> {
  const started = performance.now();
  const skips = new Map<number, Skip>();
  for (const skip of options.skips ?? skipsFor(currentRuntime())) {
    if (skip.file === file.name) skips.set(skip.line, skip);
  }
  const policy = options.compareMessages ?? "traps";
  const reference = new Session(options.reference ?? referenceBackend(), []);
  const candidate = options.candidate === undefined
    ? undefined
    : new Session(options.candidate, options.refusals ?? []);
  const failures: Failure[] = [];
  const skipped: SkippedCommand[] = [];
  const refused: Record<string, number> = {};
  let passed = 0;
  let text = 0;
  let compared = 0;
  let stateCompared = 0;
  let instanceCount = 0;
  try {
    await reference.start(options.spectest ?? "host");
    await candidate?.start(options.spectest ?? "host");
    const seenLines = new Set<number>();
    for (const [index, command] of file.commands.entries()) {
      seenLines.add(command.line);
      const outcome = await run(reference, file, command, index);
      const disagreement = checkSuite(command, outcome);
      const skip = skips.get(command.line);
      const unrunnable = outcome.kind === "error" && outcome.phase === "harness";
      if (skip !== undefined && !unrunnable) {
        skipped.push({ line: command.line, command: command.type, reason: skip.reason });
        if (disagreement === undefined) {
          failures.push({
            line: command.line,
            command: command.type,
            check: "suite",
            reason: `stale skip: the runtime now agrees with the suite (${skip.reason})`,
          });
        }
      } else if (disagreement !== undefined) {
        // A command the harness cannot run is a failure even where the table skips it.
        failures.push({
          line: command.line,
          command: command.type,
          check: "suite",
          reason: disagreement,
        });
      } else if (outcome.kind === "text") {
        text++;
      } else {
        passed++;
      }
      if (candidate === undefined || outcome.kind === "text") continue;
      const other = await run(candidate, file, command, index);
      if (other.kind === "refused") {
        refused[other.refusal] = (refused[other.refusal] ?? 0) + 1;
        continue;
      }
      compared++;
      const difference = compareOutcomes(outcome, other, policy);
      if (difference !== undefined) {
        failures.push({
          line: command.line,
          command: command.type,
          check: "differential",
          reason: difference,
        });
      }
    }
    for (const line of skips.keys()) {
      if (!seenLines.has(line)) {
        failures.push({
          line,
          command: "?",
          check: "suite",
          reason: "skip names no command of this file",
        });
      }
    }
    if (candidate !== undefined && (options.compareState ?? true)) {
      // A refused module did not run on the candidate; on the reference it may have written
      // to what it imported, which only a registered instance exports.
      const anyRefused = Object.keys(refused).length > 0;
      for (const [index, instance] of reference.instances) {
        const other = candidate.instances.get(index);
        if (other === undefined || (anyRefused && reference.registered.has(index))) continue;
        for (const [name, value] of Object.entries(instance.exports)) {
          const want = exportedState(value);
          if (want === undefined) continue;
          stateCompared++;
          const got = exportedState(other.exports[name]);
          if (got !== want) {
            failures.push({
              line: file.commands[index].line,
              command: file.commands[index].type,
              check: "state",
              reason: `export ${name} at the end of the file: reference ${want}; candidate ${got}`,
            });
          }
        }
      }
    }
    instanceCount = reference.instances.size;
  } finally {
    reference.dispose();
    candidate?.dispose();
  }
  return {
    file: file.name,
    backends: [
      reference.backend.name,
      ...(candidate === undefined ? [] : [candidate.backend.name]),
    ],
    commands: file.commands.length,
    passed,
    skipped,
    text,
    compared,
    refused,
    stateCompared,
    instances: instanceCount,
    failures,
    elapsedMs: performance.now() - started,
  };
}
