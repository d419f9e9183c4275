/**
 * Calls into running instances of an engine with interruption or fuel on. Each exported
 * function (and the start function) is called through a wrapper that:
 *
 * - gives the call its deadline: the instance's `deadlineMs` from the call's start, written to
 *   the isolate's deadline word (see interrupt.ts) for the call's duration and put back after
 *   it, however it ends. A call made while another is running (from a host import) never
 *   outlives the outer call's deadline: it runs with the earlier of the two;
 * - turns the trap of a tripped check into DeadlineExceededError or FuelExhaustedError: the
 *   check set the instance's `dead` global to the reason before trapping, and the isolate's
 *   tripped word, for a trap that reached this call from another instance called directly;
 * - poisons the instance after such a stop: every further call throws the same kind of error,
 *   and its memories are dropped, not pooled, when it is disposed.
 *
 * On engines without interruption and fuel, exports are the runtime's own functions: nothing
 * here runs. The wrapper is code compiled for its arity ({@linkcode CallControl.wrap}), or for
 * the function itself in a recycled instance's tenant (tenant_function.ts, wrappers.ts), with the
 * deadline's bookkeeping written out in it ({@linkcode controlledCallSource}): the deadline in
 * force is saved in locals and put back, as the epoch memory's words, with no clock read for a
 * deadline of 100 ticks or more. A trivial export's call with a far deadline costs 5 to 6 times
 * a plain instance's in Bun and about 4 times in Deno (bench/call_bench.ts: 10.6 and 11 ns,
 * against 24 and 20 ns before, measured on a shared machine): nothing for real workloads, and it
 * is what catches every trap, restores the deadline word after a call that threw, and maps
 * errors in one place. (A deadline the guest counted itself from a start it recorded, with no
 * JavaScript at the call, would not know which entries are calls from outside, and a trap would
 * leave its bookkeeping behind.) Functions a wrapper stands for
 * are passed on unwrapped where the runtime needs its own (imports, tables, globals), so that
 * type checks and direct calls stay as they were; code reached that way runs under the
 * deadline of the call in progress (none when called from JavaScript outside one).
 *
 * @module
 */

import { DeadlineExceededError, FuelExhaustedError, type WasmpoolError } from "../errors.ts";
import { COARSE_TICKS, DEADLINE_WORD, type EpochPage, TRIPPED_WORD } from "./epoch.ts";
import { Dead, FUEL_EXPORT, SET_FUEL_EXPORT, WHY_EXPORT } from "./interrupt.ts";
import { KILL_EXPORT } from "./rewrite.ts";
import type { RunState } from "./tenancy.ts";
import { generate, parameters } from "./wrappers.ts";

type Fn = (...args: unknown[]) => unknown;

/** The fuel of an instance given none: 2^53 - 1 units, more than a process runs. */
export const UNLIMITED_FUEL = Number.MAX_SAFE_INTEGER;

// Each wrapper, to the runtime's function it stands for.
const raws = new WeakMap<object, Fn>();

/** The runtime's function behind `value` when it is a wrapper; else `value`. */
export function unwrapFunction(value: unknown): unknown {
  if (typeof value !== "function") return value;
  return raws.get(value) ?? value;
}

type DedicatedFactory = (fn: Fn, control: CallControl, page: EpochPage | null) => Fn;

// Wrappers of dedicated instances' functions, by arity and whether interruption is on: their
// functions are new with each instance, so code per function would be compiled per instance.
const dedicatedFactories = new Map<number, DedicatedFactory>();

/**
 * @internal The source of a wrapper's body that returns `call` (an expression) under `control`
 * (a {@linkcode CallControl}) and, with `interruption`, `page` (its {@linkcode EpochPage}): the
 * free names of the code it goes in. The deadline in force before the call is kept in locals
 * and put back after it, however it ends. `around.enter` runs just before the call (once
 * nothing can throw before it), `around.leave` after it however it ends: one try for both.
 */
export function controlledCallSource(
  call: string,
  interruption: boolean,
  around: { enter: string; leave: string } = { enter: "", leave: "" },
): string {
  if (!interruption) {
    return `if (control.stopped !== null) control.refuse();
${around.enter}
try {
  return ${call};
} catch (error) {
  throw control.failure(error);
} finally {
  ${around.leave}
}`;
  }
  // The words' indices are constants of the source, as the guest's loads' offsets are. A
  // deadline counted from the epoch is set here, in integer words; one read from the clock (a
  // read costs 50 ns anyway) by EpochPage#tighten.
  return `if (control.stopped !== null) control.refuse();
const words = page.words;
const outerLo = words[${DEADLINE_WORD}];
const outerHi = words[${DEADLINE_WORD + 1}];
const outerMs = page.deadlineMs;
const outerSpanUs = page.spanUs;
const depth = page.depth;
if (depth === 0 && words[${TRIPPED_WORD}] !== 0) words[${TRIPPED_WORD}] = 0;
const lengthUs = control.lengthUs;
if (lengthUs >= 0) {
  if (control.coarse) {
    let hi = words[1];
    let lo = words[0];
    while (words[1] !== hi) {
      hi = words[1];
      lo = words[0];
    }
    lo += control.aheadUs;
    if (lo >= ${2 ** 32}) {
      const carry = Math.floor(lo / ${2 ** 32});
      hi += carry;
      lo -= carry * ${2 ** 32};
    }
    if (hi < outerHi || (hi === outerHi && lo < outerLo)) {
      words[${DEADLINE_WORD}] = lo;
      words[${DEADLINE_WORD + 1}] = hi;
      page.deadlineMs = control.ms;
      page.spanUs = lengthUs;
    }
  } else {
    page.tighten(lengthUs, control.ms, false, control.tickUs);
  }
}
page.depth = depth + 1;
${around.enter}
try {
  return ${call};
} catch (error) {
  throw control.failure(error);
} finally {
  page.depth = depth;
  words[${DEADLINE_WORD}] = outerLo;
  words[${DEADLINE_WORD + 1}] = outerHi;
  page.deadlineMs = outerMs;
  page.spanUs = outerSpanUs;
  ${around.leave}
}`;
}

/** The calls into one running instance. */
export class CallControl {
  readonly #state: RunState;
  /** @internal The isolate's epoch memory, with interruption on; else null. */
  readonly page: EpochPage | null;
  readonly #why: () => number;
  readonly #kill: (dead: number) => void;
  readonly #fuel: (() => number) | null;
  readonly #setFuel: ((fuel: number) => void) | null;
  #deadlineMs: number | null = null;
  /** @internal The deadline of each call in whole µs, or -1 for none. */
  lengthUs = -1;
  /** @internal Whether that deadline is counted from the epoch (see `EpochPage#tighten`). */
  coarse = false;
  /** @internal The deadline's length as given, in ms, or 0 for none. */
  ms = 0;
  /** @internal The µs from the epoch to a coarse deadline: a tick and its length. */
  aheadUs = 0;
  /** @internal The engine's tick, in µs. */
  readonly tickUs: number;
  #fuelGiven = 0;
  /** @internal The stop that poisoned the instance, or null: every call then throws. */
  stopped: WasmpoolError | null = null;

  /**
   * The calls into `raw` (an instance of a module compiled with checks), whose state is
   * `state`; `page` is the isolate's epoch memory and `tickMs` the engine's tick, with
   * interruption.
   */
  constructor(
    raw: WebAssembly.Instance,
    state: RunState,
    page: EpochPage | null,
    tickMs: number | null,
  ) {
    const exports = raw.exports;
    this.#state = state;
    this.page = page;
    this.tickUs = Math.round((tickMs ?? 1) * 1000);
    this.#why = exports[WHY_EXPORT] as () => number;
    this.#kill = exports[KILL_EXPORT] as (dead: number) => void;
    this.#fuel = (exports[FUEL_EXPORT] as (() => number) | undefined) ?? null;
    this.#setFuel = (exports[SET_FUEL_EXPORT] as ((fuel: number) => void) | undefined) ?? null;
  }

  /** The deadline of each call, in ms from its start; null for none. */
  get deadlineMs(): number | null {
    return this.#deadlineMs;
  }

  set deadlineMs(ms: number | null) {
    this.#deadlineMs = ms;
    this.lengthUs = ms === null ? -1 : Math.ceil(ms * 1000);
    this.coarse = ms !== null && ms * 1000 >= COARSE_TICKS * this.tickUs;
    this.ms = ms ?? 0;
    this.aheadUs = this.tickUs + Math.max(this.lengthUs, 0);
  }

  /** Gives the instance `fuel` units (replacing what it had). */
  giveFuel(fuel: number): void {
    this.#fuelGiven = fuel;
    this.#setFuel!(fuel);
  }

  /** The fuel used so far: what it was given, less what is left. */
  get fuelConsumed(): number {
    return this.#fuelGiven - Math.max(0, this.#fuel!());
  }

  /**
   * A function that calls `fn` (an export of the instance) as {@linkcode call} does: a closure
   * of code compiled once per arity (see wrappers.ts and {@linkcode controlledCallSource}).
   */
  wrap(fn: Fn): Fn {
    const interruption = this.page !== null;
    const key = fn.length * 2 + (interruption ? 1 : 0);
    let factory = dedicatedFactories.get(key);
    if (factory === undefined) {
      const { params, args } = parameters(fn.length);
      factory = generate<DedicatedFactory>(
        [],
        [],
        `return function (fn, control, page) {
  return function (${params}) {
${controlledCallSource(`fn(${args})`, interruption)}
  };
};`,
      );
      dedicatedFactories.set(key, factory);
    }
    const wrapper = factory(fn, this, this.page);
    Object.defineProperty(wrapper, "name", { value: fn.name });
    Object.defineProperty(wrapper, "length", { value: fn.length });
    raws.set(wrapper, fn);
    return wrapper;
  }

  /** Calls `fn` with `args` under the instance's deadline, mapping a stop to its error. */
  call(fn: Fn, args: unknown[]): unknown {
    this.#enter();
    try {
      return fn(...args);
    } catch (error) {
      throw this.failure(error);
    } finally {
      this.page?.leave();
    }
  }

  /** Refuses a call into a poisoned instance; gives the call its deadline. */
  #enter(): void {
    if (this.stopped !== null) this.refuse();
    this.page?.enter(this.#deadlineMs, this.tickUs);
  }

  /** @internal Throws for a call into the instance after a stop poisoned it. */
  refuse(): never {
    throw this.#again(this.stopped!);
  }

  /** @internal What a call that threw `error` throws: the error, or the stop it stands for. */
  failure(error: unknown): unknown {
    if (error instanceof DeadlineExceededError || error instanceof FuelExhaustedError) {
      // An instance this call went into was stopped, and this call with it.
      this.#poison(error);
      return error;
    }
    let why = this.#why();
    const page = this.page;
    if (why !== Dead.deadline && why !== Dead.fuel) {
      why = page !== null && error instanceof WebAssembly.RuntimeError ? page.tripped() : 0;
      if (why !== Dead.deadline && why !== Dead.fuel) return error;
    }
    page?.clearTripped();
    const stopped = why === Dead.deadline ? this.#deadlineError(error) : this.#fuelError(error);
    this.#poison(stopped);
    return stopped;
  }

  #deadlineError(cause: unknown): DeadlineExceededError {
    const page = this.page!;
    const ms = page.deadlineMs;
    const elapsedMs = (page.now() - page.startUs) / 1000;
    return new DeadlineExceededError(
      `the deadline of ${ms} ms passed: the call was stopped after ${elapsedMs.toFixed(2)} ms`,
      ms,
      elapsedMs,
      { cause },
    );
  }

  #fuelError(cause: unknown): FuelExhaustedError {
    const fuel = this.#fuelGiven;
    return new FuelExhaustedError(
      `the instance ran out of fuel: it was given ${fuel} units and used them all`,
      fuel,
      { cause },
    );
  }

  #poison(error: WasmpoolError): void {
    if (this.stopped !== null) return;
    this.stopped = error;
    this.#state.poisoned = true;
    // Functions called directly (taken from a table) find it dead too.
    if (this.#why() === Dead.alive) this.#kill(Dead.disposed);
  }

  #again(first: WasmpoolError): WasmpoolError {
    const message = `the instance was stopped earlier and cannot be called again ` +
      `(dispose it): ${first.message}`;
    return first instanceof DeadlineExceededError
      ? new DeadlineExceededError(message, first.deadlineMs, first.elapsedMs, { cause: first })
      : new FuelExhaustedError(message, (first as FuelExhaustedError).fuel, { cause: first });
  }
}
