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
 * here runs. The wrapper costs a JavaScript call and, with a deadline shorter than 100 ticks, a
 * read of the clock (a trivial export's call: 36 ns in Deno, 67 ns in Bun, against 4 and 16 ns
 * without checks, in bench/deadline_bench.ts with a far deadline): nothing for real workloads, which make few calls that each do much, and it is what catches every trap,
 * restores the deadline word after a call that threw, and maps errors in one place. (A deadline
 * the guest counted itself from a start it recorded, with no JavaScript at the call, would not
 * know which entries are calls from outside, and a trap would leave its bookkeeping behind.) Functions a wrapper stands for
 * are passed on unwrapped where the runtime needs its own (imports, tables, globals), so that
 * type checks and direct calls stay as they were; code reached that way runs under the
 * deadline of the call in progress (none when called from JavaScript outside one).
 *
 * @module
 */

import { DeadlineExceededError, FuelExhaustedError, type WasmpoolError } from "../errors.ts";
import type { EpochPage } from "./epoch.ts";
import { Dead, FUEL_EXPORT, SET_FUEL_EXPORT, WHY_EXPORT } from "./interrupt.ts";
import { KILL_EXPORT } from "./rewrite.ts";
import type { RunState } from "./tenancy.ts";

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

/** The calls into one running instance. */
export class CallControl {
  readonly #state: RunState;
  readonly #page: EpochPage | null;
  readonly #why: () => number;
  readonly #kill: (dead: number) => void;
  readonly #fuel: (() => number) | null;
  readonly #setFuel: ((fuel: number) => void) | null;
  #deadlineMs: number | null = null;
  readonly #tickUs: number;
  #fuelGiven = 0;
  #poisoned: WasmpoolError | null = null;

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
    this.#page = page;
    this.#tickUs = Math.round((tickMs ?? 1) * 1000);
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
   * A function that calls `fn` (an export of the instance) as {@linkcode call} does, written out
   * for the common arities: no rest parameter and no spread on the way (they cost as much as the
   * rest of the wrapper in JavaScriptCore).
   */
  wrap(fn: Fn): Fn {
    let wrapper: Fn;
    switch (fn.length) {
      case 0:
        wrapper = () => {
          this.#enter();
          try {
            return fn();
          } catch (error) {
            throw this.#failure(error);
          } finally {
            this.#page?.leave();
          }
        };
        break;
      case 1:
        wrapper = (a) => {
          this.#enter();
          try {
            return fn(a);
          } catch (error) {
            throw this.#failure(error);
          } finally {
            this.#page?.leave();
          }
        };
        break;
      case 2:
        wrapper = (a, b) => {
          this.#enter();
          try {
            return fn(a, b);
          } catch (error) {
            throw this.#failure(error);
          } finally {
            this.#page?.leave();
          }
        };
        break;
      case 3:
        wrapper = (a, b, c) => {
          this.#enter();
          try {
            return fn(a, b, c);
          } catch (error) {
            throw this.#failure(error);
          } finally {
            this.#page?.leave();
          }
        };
        break;
      default:
        wrapper = (...args) => this.call(fn, args);
    }
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
      throw this.#failure(error);
    } finally {
      this.#page?.leave();
    }
  }

  /** Refuses a call into a poisoned instance; gives the call its deadline. */
  #enter(): void {
    if (this.#poisoned !== null) throw this.#again(this.#poisoned);
    this.#page?.enter(this.#deadlineMs, this.#tickUs);
  }

  /** What a call that threw `error` throws: the error, or the stop it stands for. */
  #failure(error: unknown): unknown {
    if (error instanceof DeadlineExceededError || error instanceof FuelExhaustedError) {
      // An instance this call went into was stopped, and this call with it.
      this.#poison(error);
      return error;
    }
    let why = this.#why();
    const page = this.#page;
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
    const page = this.#page!;
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
    if (this.#poisoned !== null) return;
    this.#poisoned = error;
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
