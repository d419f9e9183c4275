//! The C ABI of libwasmpool, loaded by the TypeScript side through Deno.dlopen or bun:ffi.
//! Every export is listed once here and once in src/ffi/symbols.ts, under the same name.
//! Hot-path signatures take and return only pointers and 32-bit integers (the FFI fast path).

const std = @import("std");
const engine_mod = @import("engine.zig");
const Engine = engine_mod.Engine;
const Module = @import("module.zig").Module;
const Scratch = @import("scratch.zig").Scratch;

const allocator = std.heap.c_allocator;

/// The ABI version; the TypeScript side refuses a library that answers another.
export fn wasmpool_abi_version() u32 {
    return 4;
}

export fn wasmpool_engine_create(config: *engine_mod.Config) ?*Engine {
    return Engine.create(allocator, config);
}

/// Drops the caller's hold on the engine; the last holder's release destroys it.
export fn wasmpool_engine_release(engine: *Engine) void {
    engine.release();
}

/// The engine's id, which another thread can pass to `wasmpool_engine_attach`.
export fn wasmpool_engine_id(engine: *Engine) u32 {
    return engine.id;
}

/// Holds the live engine `id` for the calling thread; null when no such engine is alive.
export fn wasmpool_engine_attach(id: u32) ?*Engine {
    return Engine.attach(id);
}

/// Copies at most `out_bytes` of the stats: a caller built for fewer fields gets a prefix.
export fn wasmpool_engine_stats(engine: *Engine, out: [*]u8, out_bytes: u32) void {
    const stats = engine.stats();
    const bytes = std.mem.asBytes(&stats);
    const n = @min(out_bytes, bytes.len);
    @memcpy(out[0..n], bytes[0..n]);
}

/// Copies the blob and builds the module's images; returns null when it is refused, with
/// `out` = [code, errno, step] (errno and step: image.zig's Failure, for `image_failed`).
export fn wasmpool_module_create(engine: *Engine, blob: [*]const u8, blob_bytes: u32, out: *[4]i32) ?*Module {
    out.* = .{ 0, 0, 0, 0 };
    var failure: @import("image.zig").Failure = undefined;
    const module = engine.module_create_with(blob[0..blob_bytes], &failure) catch |err| {
        out[0] = @intFromEnum(switch (err) {
            error.Malformed => engine_mod.Code.bad_module,
            error.OutOfMemory => engine_mod.Code.out_of_memory,
            error.ImageFailed => engine_mod.Code.image_failed,
        });
        if (err == error.ImageFailed) {
            out[1] = failure.errno;
            out[2] = @intCast(@intFromEnum(failure.step));
        }
        return null;
    };
    return module;
}

export fn wasmpool_module_destroy(engine: *Engine, module: *Module) i32 {
    return @intFromEnum(engine.module_destroy(module));
}

/// A scratch area of `size_bytes`, 8-byte aligned and zeroed; see scratch.zig for its layout.
export fn wasmpool_scratch_create(size_bytes: u32) ?[*]u8 {
    const bytes = allocator.alignedAlloc(u8, .@"8", size_bytes) catch return null;
    @memset(bytes, 0);
    return bytes.ptr;
}

export fn wasmpool_scratch_destroy(scratch: [*]align(8) u8, size_bytes: u32) void {
    allocator.free(scratch[0..size_bytes]);
}

/// Returns the instance id (>= 0) or a negative error code, detail in the scratch area.
export fn wasmpool_allocate(engine: *Engine, module: *Module, scratch: [*]align(8) u8, scratch_bytes: u32) i32 {
    return engine.allocate(module, .{ .bytes = scratch[0..scratch_bytes] });
}

export fn wasmpool_instance_dispose(engine: *Engine, id: u32) i32 {
    return @intFromEnum(engine.dispose(id));
}

/// Returns the old size in pages, or a negative error code.
export fn wasmpool_memory_grow(engine: *Engine, id: u32, index: u32, delta_pages: u32, scratch: [*]align(8) u8, scratch_bytes: u32) i32 {
    return engine.memory_grow(id, index, delta_pages, .{ .bytes = scratch[0..scratch_bytes] });
}

/// Returns the old size in elements, or a negative error code.
export fn wasmpool_table_grow(engine: *Engine, id: u32, index: u32, delta: u32, scratch: [*]align(8) u8, scratch_bytes: u32) i32 {
    return engine.table_grow(id, index, delta, .{ .bytes = scratch[0..scratch_bytes] });
}

/// Test hook: the next `count` calls of `operation` (0 mmap, 1 mprotect, 2 madvise, 4
/// memfd_create, 5 mmap over a slot: ENOMEM; 3 userfaultfd: EPERM) fail, process-wide. Lets
/// tests check that exhaustion leaves every pool consistent.
export fn wasmpool_test_inject_failures(operation: u32, count: u32) i32 {
    const op = std.meta.intToEnum(@import("sys.zig").Operation, operation) catch return -1;
    @import("sys.zig").inject_failures(op, count);
    return 0;
}

test {
    _ = @import("sys.zig");
    _ = @import("resident.zig");
    _ = @import("image.zig");
    _ = @import("image_test.zig");
    _ = @import("registry.zig");
    _ = @import("index_allocator.zig");
    _ = @import("memory.zig");
    _ = @import("table.zig");
    _ = @import("layout.zig");
    _ = @import("pool.zig");
    _ = @import("engine_test.zig");
    _ = @import("uffd_test.zig");
}
