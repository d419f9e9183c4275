/**
 * Turns the native side's negative result codes (and the detail words it leaves in the scratch
 * area) into WasmpoolErrors that name the value and the limit.
 *
 * @module
 */

import {
  InstantiationError,
  LinkError,
  OutOfBoundsError,
  PoolExhaustedError,
  ResourceError,
  type WasmpoolError,
} from "./errors.ts";

/** The codes of `zig/src/engine.zig`'s `Code`. */
export const Code = {
  ok: 0,
  poolFull: -1,
  dataOutOfBounds: -2,
  elemOutOfBounds: -3,
  resource: -4,
  badModule: -5,
  badImport: -6,
  growPastMaximum: -7,
  overflow: -8,
  reservationFailed: -9,
  scratchTooSmall: -10,
  badConfig: -11,
  badInstance: -12,
  outOfMemory: -13,
  uffdUnavailable: -14,
  tooManyEngines: -15,
  imageFailed: -16,
  quarantined: -17,
} as const;

const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  38: "ENOSYS",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  22: "EINVAL",
};

/** `ENOMEM (errno 12)`, with a hint where the cause is usually a system limit. */
export function describeErrno(errno: number): string {
  const name = ERRNO_NAMES[errno] ?? "errno";
  const hint = errno === 12
    ? " (out of address space, memory, or mappings: see vm.max_map_count and ulimit -v)"
    : "";
  return `${name} (errno ${errno})${hint}`;
}

/** What `detail[2]` of a `resource` failure names (memory.zig's `MapStep`). */
const MAP_STEPS = [
  "mprotect",
  "the mmap of the module's memory image over its slot",
  "the mmap of anonymous memory over the previous module's image in its slot",
];

/** What image.zig's `Step` numbers name. */
const IMAGE_STEPS = [
  "",
  "memfd_create",
  "ftruncate of the memfd",
  "writing the memfd",
  "sealing the memfd (F_ADD_SEALS)",
  "mapping the memfd read-only",
];

/** The error for a module whose memory image could not be built (`Code.imageFailed`). */
export function imageError(step: number, errno: number, bytes: number): WasmpoolError {
  return new ResourceError(
    `the module's memory image could not be built: ${IMAGE_STEPS[step] ?? "a step"} failed ` +
      `with ${describeErrno(errno)} (module blob of ${bytes} bytes)`,
  );
}

/** What a quarantine's operation (`EngineStats#quarantineOperation`) was doing. */
const QUARANTINE_TEXT: Readonly<Record<string, string>> = {
  madvise: "madvise(MADV_DONTNEED) of its memory",
  mmap: "mmap of a fresh reservation over its memory",
  mprotect: "mprotect of its memory",
};

/**
 * The error for a disposal whose reset failed and whose slot could not be restored either, so
 * is now quarantined (`Code.quarantined`): the instance is disposed all the same.
 */
export function quarantineError(
  id: number,
  operation: string | null,
  errno: number,
): WasmpoolError {
  const what = operation === null ? "a system call" : QUARANTINE_TEXT[operation] ?? operation;
  return new ResourceError(
    `instance ${id} is disposed, but its slot could not be reset: ${what} failed with ` +
      `${describeErrno(errno)}; the slot is quarantined and never handed out again`,
  );
}

/**
 * The error for data segment `segment` of `bytes` bytes at `offset`, past the end of memory
 * `memory` of `memoryBytes` bytes: the same whether the allocator or the runtime found it.
 */
export function dataOutOfBounds(
  segment: number,
  bytes: number,
  offset: number,
  memory: number,
  memoryBytes: number,
  options?: ErrorOptions,
): OutOfBoundsError {
  return new OutOfBoundsError(
    `memory out of bounds: data segment does not fit (data segment ${segment} of ${bytes} ` +
      `bytes at offset ${offset} in memory ${memory} of ${memoryBytes} bytes)`,
    options,
  );
}

/** The error for element segment `segment` of `count` elements at `offset`, past the end of
 * table `table` of `tableElements` elements. */
export function elementsOutOfBounds(
  segment: number,
  count: number,
  offset: number,
  table: number,
  tableElements: number,
  options?: ErrorOptions,
): OutOfBoundsError {
  return new OutOfBoundsError(
    `table out of bounds: elements segment does not fit (element segment ${segment} of ` +
      `${count} elements at offset ${offset} in table ${table} of ${tableElements} elements)`,
    options,
  );
}

/** The error for a failed `wasmpool_allocate`; `detail` is the scratch's first 8 words. */
export function instantiationError(code: number, detail: Uint32Array): WasmpoolError {
  switch (code) {
    case Code.poolFull:
      return new PoolExhaustedError(`Limit of ${detail[0]} concurrent instances has been reached`);
    case Code.dataOutOfBounds:
      return dataOutOfBounds(detail[0], detail[3], detail[2], detail[1], detail[4] * 65536);
    case Code.elemOutOfBounds:
      return elementsOutOfBounds(detail[0], detail[3], detail[2], detail[1], detail[4]);
    case Code.resource:
      return new ResourceError(
        `instantiation failed: for memory ${detail[1]}, ${MAP_STEPS[detail[2]] ?? "a mapping"} ` +
          `failed with ${describeErrno(detail[0])}; ` +
          (detail[7] === 1
            ? "the slot could not be restored and is quarantined"
            : "the slot was restored and is reusable"),
      );
    case Code.outOfMemory:
      return new ResourceError("instantiation failed: the native heap is exhausted (ENOMEM)");
    case Code.badImport:
      return new LinkError(
        `imported ${detail[0] === 0 ? "memory" : "table"} ${detail[1]} refers to instance ` +
          `${detail[2]}, which is not alive in this engine`,
      );
    default:
      return new InstantiationError(`instantiation failed with native code ${code}`);
  }
}
