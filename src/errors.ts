/**
 * The errors wasmpool throws. Every error a caller or a module can cause is a
 * {@linkcode WasmpoolError}; the subclasses say which kind of thing went wrong.
 *
 * @module
 */

/** The base class of every error wasmpool throws on purpose. */
export class WasmpoolError extends Error {
  /** Creates the error with its message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The module bytes are not a well-formed WebAssembly binary. */
export class MalformedModuleError extends WasmpoolError {
  /** The byte offset in the module at which the problem was found. */
  readonly offset: number;
  /** Creates the error for `reason` found at byte `offset`. */
  constructor(reason: string, offset: number) {
    super(`malformed module at byte offset ${offset}: ${reason}`);
    this.offset = offset;
  }
}

/** The module is well formed but uses a WebAssembly feature wasmpool does not support. */
export class UnsupportedFeatureError extends WasmpoolError {
  /** The byte offset in the module at which the feature was found. */
  readonly offset: number;
  /** Creates the error for `feature` found at byte `offset`. */
  constructor(feature: string, offset: number) {
    super(`unsupported feature at byte offset ${offset}: ${feature}`);
    this.offset = offset;
  }
}

/** Which limit a {@linkcode LimitError} is about, where it is one of the named limits. */
export interface LimitDetails {
  /** The limit's name: a `ModuleLimits` field such as `"memoryPages"`, or `"maxPages"`. */
  readonly limit: string;
  /** The value that exceeds it. */
  readonly value: number;
  /** The limit's value. */
  readonly maximum: number;
}

/** A configuration value is invalid, or a module exceeds the limits of the engine's allocator. */
export class LimitError extends WasmpoolError {
  /** The limit, the offending value and the maximum, when the error is about a named limit. */
  readonly details: LimitDetails | null;

  /** Creates the error; `details` name the limit when there is one. */
  constructor(message: string, details: LimitDetails | null = null) {
    super(message);
    this.details = details;
  }
}

/** Instantiation failed; the subclasses say why. Nothing of the failed instance is left behind. */
export class InstantiationError extends WasmpoolError {}

/** The pool has no free instance slot: `Limit of N concurrent instances has been reached`. */
export class PoolExhaustedError extends InstantiationError {}

/** An active data or element segment does not fit in its memory or table. */
export class OutOfBoundsError extends InstantiationError {}

/** An import is missing or does not match the type the module declares for it. */
export class LinkError extends InstantiationError {}

/** The operating system refused a resource (address space, memory, mappings). */
export class ResourceError extends WasmpoolError {}

/** An engine, instance, memory or table was used after it was disposed or closed. */
export class DisposedError extends WasmpoolError {}

/**
 * A call into a running instance (or its start function) ran past its deadline and was stopped
 * (see `Config#withInterruption`). The instance is poisoned: every further call throws this
 * error again; dispose it.
 */
export class DeadlineExceededError extends WasmpoolError {
  /** The deadline that passed, in milliseconds from the start of the call that set it. */
  readonly deadlineMs: number;
  /** How long that call had run when it was stopped, in milliseconds. */
  readonly elapsedMs: number;

  /** Creates the error for a deadline of `deadlineMs` passed after `elapsedMs`. */
  constructor(message: string, deadlineMs: number, elapsedMs: number, options?: ErrorOptions) {
    super(message, options);
    this.deadlineMs = deadlineMs;
    this.elapsedMs = elapsedMs;
  }
}

/**
 * A running instance used all the fuel it was given and was stopped (see `Config#withFuel`).
 * The instance is poisoned: every further call throws this error again; dispose it.
 */
export class FuelExhaustedError extends WasmpoolError {
  /** The fuel the instance was given. */
  readonly fuel: number;

  /** Creates the error for an instance given `fuel`. */
  constructor(message: string, fuel: number, options?: ErrorOptions) {
    super(message, options);
    this.fuel = fuel;
  }
}

/** An argument is out of range or of the wrong kind (a table index, a global's value, ...). */
export class ArgumentError extends WasmpoolError {}

/**
 * `Instance#snapshot` refused: the instance's state cannot be captured (a host function in a
 * table, a mutable imported global, a call in progress, ...). Nothing changed: the instance is
 * still usable.
 */
export class SnapshotError extends WasmpoolError {}

/** userfaultfd mode was asked for, and the kernel or the process's privileges refuse it. */
export class UffdUnavailableError extends ResourceError {}

/** Why the native library could not be had: the kinds of {@linkcode LibraryError}. */
export type LibraryFailure =
  /** No library is packaged for this OS and architecture. */
  | "platform"
  /** The library file is not where it was looked for. */
  | "missing"
  /** The runtime refused an operation for want of a permission (Deno's `--allow-*` flags). */
  | "permission"
  /** Fetching the library failed (network, HTTP status, timeout). */
  | "fetch"
  /** The library's SHA-256 digest is not the one this version of wasmpool ships. */
  | "digest"
  /** The cache directory could not be found, made or written. */
  | "cache"
  /** The runtime could not open the library, or it speaks another ABI version. */
  | "open";

/**
 * The native library could not be found, fetched, verified or opened. The message names the
 * platform, the path or URL, the digests, or the permission flag, as the case may be.
 */
export class LibraryError extends WasmpoolError {
  /** What went wrong. */
  readonly failure: LibraryFailure;

  /** Creates the error for `failure`, with its message. */
  constructor(failure: LibraryFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.failure = failure;
  }
}
