/**
 * The few libc calls the host-memory probes make (memfd_create, ftruncate, pwrite, pread,
 * mmap, madvise, close), opened with `Deno.dlopen` or `bun:ffi`, addresses as numbers.
 * Probes only: the library's own natives live in zig/src.
 *
 * @module
 */

import { RUNTIME } from "./host_memory.ts";

/** The libc calls, with addresses and sizes as numbers. Each returns the C result. */
export interface Libc {
  /** memfd_create(2): the descriptor, or -1. */
  memfdCreate(name: string, flags: number): number;
  /** ftruncate(2). */
  ftruncate(fd: number, sizeBytes: number): number;
  /** pwrite(2) of all of `bytes` at `offset`: the bytes written. */
  pwrite(fd: number, bytes: Uint8Array, offset: number): number;
  /** pread(2) into all of `bytes` from `offset`: the bytes read. */
  pread(fd: number, bytes: Uint8Array, offset: number): number;
  /** mmap(2) at offset 0 of `fd`: the address, or -errno. */
  mmap(address: number, sizeBytes: number, prot: number, flags: number, fd: number): number;
  /** madvise(2). */
  madvise(address: number, sizeBytes: number, advice: number): number;
  /** close(2). */
  close(fd: number): number;
  /** The calling thread's errno. */
  errno(): number;
}

/** `PROT_READ` (x86_64, aarch64). */
export const PROT_READ = 1;
/** `PROT_WRITE`. */
export const PROT_WRITE = 2;
/** `MAP_PRIVATE`. */
export const MAP_PRIVATE = 0x02;
/** `MAP_FIXED`. */
export const MAP_FIXED = 0x10;
/** `MADV_DONTNEED`. */
export const MADV_DONTNEED = 4;
/** `MFD_CLOEXEC`. */
export const MFD_CLOEXEC = 1;

const symbols = {
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Fn = (...args: unknown[]) => unknown;

function cString(text: string): Uint8Array {
  return new TextEncoder().encode(text + "\0");
}

async function open(): Promise<Libc> {
  if (RUNTIME === "bun") {
    const ffi = await import(["bun", "ffi"].join(":")) as {
      dlopen(path: string, s: Record<string, { args: string[]; returns: string }>): {
        symbols: Record<string, Fn>;
      };
      read: { i32(pointer: number, offset: number): number };
    };
    const bunType = (t: string): string =>
      t === "buffer" || t === "pointer" ? "ptr" : t === "usize" ? "u64" : t === "isize" ? "i64" : t;
    const declared: Record<string, { args: string[]; returns: string }> = {};
    for (const [name, sig] of Object.entries(symbols)) {
      declared[name] = {
        args: sig.parameters.map(bunType),
        returns: sig.result === "pointer" ? "u64" : bunType(sig.result),
      };
    }
    const s = ffi.dlopen("libc.so.6", declared).symbols;
    return {
      memfdCreate: (name, flags) => s.memfd_create(cString(name), flags) as number,
      ftruncate: (fd, size) => s.ftruncate(fd, size) as number,
      pwrite: (fd, bytes, offset) => Number(s.pwrite(fd, bytes, bytes.length, offset)),
      pread: (fd, bytes, offset) => Number(s.pread(fd, bytes, bytes.length, offset)),
      mmap: (address, size, prot, flags, fd) => {
        const result = BigInt.asIntN(
          64,
          BigInt(s.mmap(address, size, prot, flags, fd, 0) as bigint),
        );
        return result < 0n ? -ffi.read.i32(Number(s.__errno_location()), 0) : Number(result);
      },
      madvise: (address, size, advice) => s.madvise(address, size, advice) as number,
      close: (fd) => s.close(fd) as number,
      errno: () => ffi.read.i32(Number(s.__errno_location()), 0),
    };
  }
  const deno = (globalThis as unknown as {
    Deno: {
      dlopen(path: string, s: typeof symbols): { symbols: Record<string, Fn> };
      UnsafePointer: { create(value: bigint): unknown; value(p: unknown): bigint };
      UnsafePointerView: new (p: unknown) => { getInt32(offset?: number): number };
    };
  }).Deno;
  const s = deno.dlopen("libc.so.6", symbols).symbols;
  const pointer = (address: number): unknown => deno.UnsafePointer.create(BigInt(address));
  const errno = (): number => new deno.UnsafePointerView(s.__errno_location()).getInt32(0);
  return {
    memfdCreate: (name, flags) => s.memfd_create(cString(name), flags) as number,
    ftruncate: (fd, size) => s.ftruncate(fd, BigInt(size)) as number,
    pwrite: (fd, bytes, offset) =>
      Number(s.pwrite(fd, bytes, BigInt(bytes.length), BigInt(offset))),
    pread: (fd, bytes, offset) => Number(s.pread(fd, bytes, BigInt(bytes.length), BigInt(offset))),
    mmap: (address, size, prot, flags, fd) => {
      const result = BigInt.asIntN(
        64,
        deno.UnsafePointer.value(s.mmap(pointer(address), BigInt(size), prot, flags, fd, 0n)),
      );
      return result < 0n ? -errno() : Number(result);
    },
    madvise: (address, size, advice) => s.madvise(pointer(address), BigInt(size), advice) as number,
    close: (fd) => s.close(fd) as number,
    errno,
  };
}

/** libc, opened once. */
export const libc: Libc = await open();
