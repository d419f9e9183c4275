/**
 * The idle timeout of warm instances (`PoolingOptions.idleInstanceTimeoutMs`): after a burst,
 * the idle instances beyond `maxUnusedWarmSlots` are released once they have waited this long,
 * so that the warm set shrinks back to what the steady load needs.
 *
 * No clock is read on the hot path. While idle instances exceed the kept number, a timer
 * sweeps every quarter of the timeout; each sweep (and the timer's start) advances a counter,
 * which an instance copies when it goes idle. An instance whose copy is five counts behind has
 * waited between the timeout and 1.25 times it; one that went idle while the timer was stopped
 * counts from the timer's start (released later, never earlier). The timer stops once no
 * instance is beyond the kept number, and never keeps the process alive (`Deno.unrefTimer`, or
 * the `unref()` of Bun's and Node's timers).
 *
 * @module
 */

/** Sweep periods per timeout. */
const SWEEPS_PER_TIMEOUT = 4;

/** The smallest sweep period, in milliseconds (timers are not finer anyway). */
const MIN_SWEEP_MS = 1;

/** What the timer asks of the running layer at each sweep. */
export interface IdleSweeper {
  /**
   * Releases idle instances beyond the kept number that went idle at or before sweep
   * `expiredSweep`; returns whether some still exceed the kept number (the timer goes on).
   */
  expireIdle(expiredSweep: number): boolean;
}

/** Makes a timer not keep the process alive, in Deno, Bun and Node. */
function unref(timer: unknown): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer) {
    const method: unknown = timer.unref;
    if (typeof method === "function") {
      method.call(timer);
      return;
    }
  }
  const deno: unknown = Reflect.get(globalThis, "Deno");
  if (typeof deno === "object" && deno !== null && "unrefTimer" in deno) {
    const method: unknown = deno.unrefTimer;
    if (typeof method === "function" && typeof timer === "number") method.call(deno, timer);
  }
}

/** The sweeping timer of one running layer. */
export class IdleTimer {
  /** Sweeps done since the engine was made: what an instance going idle copies. */
  sweep = 0;
  readonly #sweeper: IdleSweeper;
  readonly #periodMs: number;
  #handle: ReturnType<typeof setTimeout> | null = null;

  /** A stopped timer for `timeoutMs` (finite, positive), sweeping through `sweeper`. */
  constructor(timeoutMs: number, sweeper: IdleSweeper) {
    if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) {
      throw new RangeError(`idle timeout ${timeoutMs} ms is not finite and positive`);
    }
    this.#sweeper = sweeper;
    this.#periodMs = Math.max(MIN_SWEEP_MS, timeoutMs / SWEEPS_PER_TIMEOUT);
  }

  /** Whether a sweep is scheduled. */
  get armed(): boolean {
    return this.#handle !== null;
  }

  /** Schedules the next sweep unless one is; a start counts as a sweep (see the module doc). */
  arm(): void {
    if (this.#handle !== null) return;
    this.sweep += 1;
    this.#schedule();
  }

  #schedule(): void {
    this.#handle = setTimeout(() => this.#fire(), this.#periodMs);
    unref(this.#handle);
  }

  /** Cancels the next sweep (the engine is closing). */
  stop(): void {
    if (this.#handle === null) return;
    clearTimeout(this.#handle);
    this.#handle = null;
  }

  #fire(): void {
    this.#handle = null;
    this.sweep += 1;
    // A copy one count older than the timeout's four periods: idle for at least four of them.
    if (this.#sweeper.expireIdle(this.sweep - SWEEPS_PER_TIMEOUT - 1)) this.#schedule();
  }
}
