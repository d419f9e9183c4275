/**
 * `Instance`: a module instantiated to run on the runtime's own WebAssembly engine, its
 * memories taken from the engine's pool (pooling) or made by the runtime (on demand).
 *
 * This file holds the public face alone: the class, its options, and the deadline check that
 * `setDeadline` shares with `instantiate`. An `Instance` stands on a {@linkcode Backing}: a
 * dedicated instance (dedicated.ts) or a tenancy of a recycled one (lifecycle.ts), chosen by
 * instantiate.ts.
 *
 * @module
 */

import { ArgumentError, DisposedError } from "../errors.ts";
import { type Module, moduleState } from "../module.ts";
import type { CallControl } from "./calls.ts";
import { type SnapshotSource, takeSnapshot } from "./snapshot.ts";

/**
 * What `Engine#instantiate` takes as imports: what `new WebAssembly.Instance` takes, where a
 * memory, table or global exported by another wasmpool instance may stand for the runtime's
 * own objects (its functions are the runtime's own already).
 */
export type InstanceImports = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** The exports of a running instance, by name. */
export type InstanceExports = Readonly<Record<string, unknown>>;

/** Options of `Engine#instantiate`; everything is optional. */
export interface InstantiateOptions {
  /**
   * A deadline for the start function and, until {@linkcode Instance.setDeadline} changes it,
   * for every call into the instance's exports: milliseconds from each call's start. A call
   * that runs past it throws {@linkcode DeadlineExceededError}. Needs an engine with
   * `Config#withInterruption`. Default: none.
   */
  readonly deadlineMs?: number | null;
  /**
   * The fuel the instance may use, in all its calls together, start function included (about
   * one unit an instruction); past it, the call throws {@linkcode FuelExhaustedError}. Needs an
   * engine with `Config#withFuel`. Default: 2^53 - 1, no limit in practice.
   */
  readonly fuel?: number;
}

/** @internal What an Instance stands on: a dedicated instance, or a tenancy of a recycled one. */
export interface Backing {
  /** Whether it is over. */
  readonly dead: boolean;
  /** The calls into it, with interruption or fuel on; else null. */
  readonly control: CallControl | null;
  /** Makes the exports object. */
  exports(): InstanceExports;
  /** What a snapshot reads. */
  snapshotSource(): SnapshotSource;
  /** Ends it. */
  dispose(): void;
}

/**
 * A running instance. Its `exports` behave like `WebAssembly.Instance#exports`: call its
 * functions, read its memories' `buffer`. Dispose it (or `using` it) to give its memories and
 * its slot back; everything it handed out then throws DisposedError or has length 0.
 *
 * With pooling, the instance of a module that allows it is recycled: kept alive after its
 * tenant disposes it and reset in place for the next tenant (see the README: "Recycled
 * instances"). Nothing of that shows but the speed: each tenant gets its own exports, which
 * stop working when it disposes.
 *
 * @example
 * ```ts
 * using instance = engine.instantiate(module, { env: { log: console.log } });
 * const add = instance.exports.add as (a: number, b: number) => number;
 * add(1, 2);
 * ```
 */
export class Instance<E extends InstanceExports = InstanceExports> {
  readonly #module: Module;
  readonly #backing: Backing;
  #exports: E | null = null;

  /** @internal Made by `Engine#instantiate`. */
  constructor(module: Module, backing: Backing) {
    this.#module = module;
    this.#backing = backing;
  }

  /** The module this is an instance of. */
  get module(): Module {
    return this.#module;
  }

  /** The exports, by name: functions, and guarded memories, tables and globals. */
  get exports(): E {
    if (this.#backing.dead) throw new DisposedError("an instance was used after it was disposed");
    return this.#exports ??= this.#backing.exports() as E;
  }

  /** Whether `dispose()` was called (or the engine closed). */
  get disposed(): boolean {
    return this.#backing.dead;
  }

  /**
   * Sets the deadline of every later call into the exports, in milliseconds from each call's
   * start, or removes it (`null`). Needs an engine with `Config#withInterruption`; throws
   * {@linkcode ArgumentError} otherwise, or for a value that is not a positive number.
   */
  setDeadline(ms: number | null): void {
    const backing = this.#backing;
    if (backing.dead) throw new DisposedError("an instance was used after it was disposed");
    const control = backing.control;
    if (control === null || !moduleState(this.#module).run.checks.interruption) {
      throw new ArgumentError(
        "deadlines need an engine with interruption on: new Config().withInterruption()",
      );
    }
    control.deadlineMs = checkDeadline(ms);
  }

  /**
   * The fuel the instance has used so far (at most what it was given). Needs an engine with
   * `Config#withFuel`; throws {@linkcode ArgumentError} otherwise.
   */
  get fuelConsumed(): number {
    const backing = this.#backing;
    if (backing.dead) throw new DisposedError("an instance was used after it was disposed");
    const control = backing.control;
    if (control === null || !moduleState(this.#module).run.checks.fuel) {
      throw new ArgumentError("fuel needs an engine with fuel on: new Config().withFuel()");
    }
    return control.fuelConsumed;
  }

  /**
   * Gives the instance's memories and pool slot back (or, recycled, the instance itself, reset
   * for the next tenant): its functions throw DisposedError, the buffers it handed out are
   * detached, and the next tenant sees none of its state. Instances it shares a memory with
   * keep the memory until they are disposed too. Calling it again does nothing.
   */
  dispose(): void {
    this.#backing.dispose();
  }

  /**
   * A new module of the same engine whose instances start in the state this instance is in
   * now: its memories (as copy-on-write images), mutable globals and tables, without running the
   * start function again (see the README: "Snapshots"). Take it between calls. Throws
   * {@linkcode SnapshotError}, with nothing changed, when the state cannot be captured.
   *
   * @example
   * ```ts
   * const ready = instance.snapshot();
   * using tenant = engine.instantiate(ready, imports); // already initialized
   * ```
   */
  snapshot(): Module {
    return takeSnapshot(this.#module, this.#backing.snapshotSource());
  }

  /** Same as {@linkcode Instance.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** The longest deadline: about 24 days, so that every deadline is a whole number of µs. */
const MAX_DEADLINE_MS = 2 ** 31;

/** @internal `ms` checked as a deadline: null for none. */
export function checkDeadline(ms: unknown): number | null {
  if (ms === null || ms === undefined) return null;
  if (typeof ms !== "number" || !(ms > 0) || ms > MAX_DEADLINE_MS) {
    throw new ArgumentError(
      `a deadline must be a number of milliseconds above 0 and at most ${MAX_DEADLINE_MS}, ` +
        `or null, got ${String(ms)}`,
    );
  }
  return ms;
}
