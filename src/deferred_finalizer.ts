/**
 * A FinalizationRegistry whose registrations wait for the end of the job. Registering costs
 * more than the rest of an instantiation in Deno, and most instances are disposed within the
 * job that made them: so new instances wait here (their targets held, so that they cannot be
 * collected unregistered) and are registered at the end of the job, or when
 * `PENDING_LIMIT` wait, unless they were released by then.
 *
 * The registry holds the held value, never the target: the target is an instance's lease, an
 * object referenced by the instance and everything it hands out, collected with the last of
 * them. The held value must not reference the lease.
 *
 * @module
 */

const PENDING_LIMIT = 1024;

/** What the finalizer needs of a held value. */
export interface Finalizable {
  /** Whether it was released (disposed) already: then it is not registered. */
  readonly released: boolean;
  /** Whether it is registered with the registry (so that dispose unregisters it). */
  finalizing: boolean;
  /** Its place among the values waiting for registration, or -1. */
  pending: number;
}

/** A FinalizationRegistry with registration deferred to the end of the job. */
export class DeferredFinalizer<T extends Finalizable> {
  readonly #registry: FinalizationRegistry<T>;
  readonly #targets: (object | null)[] = [];
  readonly #held: (T | null)[] = [];
  #queued = false;
  readonly #flush = (): void => this.#register();

  /** Calls `collected(held)` for each held value whose target was collected. */
  constructor(collected: (held: T) => void) {
    this.#registry = new FinalizationRegistry<T>(collected);
  }

  /** Registers `target` with `held` at the end of this job, unless `held` is released by then. */
  track(target: object, held: T): void {
    held.pending = this.#held.length;
    this.#targets.push(target);
    this.#held.push(held);
    if (this.#held.length >= PENDING_LIMIT) this.#register();
    else if (!this.#queued) {
      this.#queued = true;
      queueMicrotask(this.#flush);
    }
  }

  /**
   * Unregisters `held` if it was registered, and lets go of it and its target if they still
   * wait: a disposed instance must not be kept alive (with its memories) until the end of the
   * job, neither through its target nor through its held value (a RunState holds its memories).
   */
  untrack(held: T): void {
    if (held.finalizing) this.#registry.unregister(held);
    if (held.pending >= 0) {
      this.#targets[held.pending] = null;
      this.#held[held.pending] = null;
      held.pending = -1;
    }
  }

  #register(): void {
    this.#queued = false;
    const targets = this.#targets;
    const held = this.#held;
    for (let i = 0; i < held.length; i++) {
      const value = held[i];
      const target = targets[i];
      if (target === null || value === null) continue;
      value.pending = -1;
      if (value.released) continue;
      value.finalizing = true;
      this.#registry.register(target, value, value);
    }
    targets.length = 0;
    held.length = 0;
  }
}
