//! The C ABI of libwasmpool, loaded by the TypeScript side through Deno.dlopen or bun:ffi.
//! Every export is listed once here and once in src/ffi/symbols.ts, under the same name.
//! Hot-path signatures take and return only pointers and 32-bit integers (the FFI fast path).

const std = @import("std");
const engine_mod = @import("engine.zig");
const Engine = engine_mod.Engine;
const Module = @import("module.zig").Module;
const Scratch = @import("scratch.zig").Scratch;
const HostMemory = @import("host_memory.zig").HostMemory;
const write_tracker = @import("write_tracker.zig");
const placement = @import("placement.zig");
const resetter = @import("resetter.zig");
const ticker = @import("ticker.zig");

const allocator = std.heap.c_allocator;

/// The ABI version; the TypeScript side refuses a library that answers another.
export fn wasmpool_abi_version() u32 {
    return 8;
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

/// Takes a pool slot for an instance that runs on the runtime's engine: the slot index, or
/// a negative error code (pool full).
export fn wasmpool_instance_admit(engine: *Engine) i32 {
    return engine.admit();
}

/// Gives back a slot taken by `wasmpool_instance_admit`.
export fn wasmpool_instance_leave(engine: *Engine, index: u32) i32 {
    return @intFromEnum(engine.leave(index));
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

/// Whether every data segment of `module` is in its memory image (then the running layer's
/// rewrite empties them all): 1 or 0.
export fn wasmpool_module_imaged(module: *Module) u32 {
    return @intFromBool(module.imaged);
}

/// Adopts the runtime's memory at `address`, `pages` wasm pages accessible (its initial size),
/// `max_pages` its maximum: decides from where the runtime placed it whether an image may be
/// mapped over it (`min_reserved_pages`: how much the runtime must have reserved in place, see
/// placement.zig), and tracks its writes where the kernel allows. Null when it cannot be had.
export fn wasmpool_host_memory_adopt(engine: *Engine, address: ?[*]u8, pages: u32, max_pages: u32, min_reserved_pages: u32) ?*HostMemory {
    const base = address orelse return null;
    if (@intFromPtr(base) % std.heap.page_size_min != 0 or pages > max_pages) return null;
    const page_bytes: u64 = 64 * 1024;
    const placed = placement.classify(.{
        .address = @intFromPtr(base),
        .accessible_bytes = @as(u64, pages) * page_bytes,
        .maximum_bytes = @as(u64, max_pages) * page_bytes,
        .minimum_reserved_bytes = @as(u64, min_reserved_pages) * page_bytes,
    });
    return engine.host_memories.adopt(allocator, @alignCast(base), @as(u64, pages) * page_bytes, placed.kind == .in_place);
}

/// Makes the host memory hold the image of `module`'s defined memory `index` (zeros without
/// one) for a new tenant. 0, or a negative code (the memory must then be dropped).
export fn wasmpool_host_memory_prepare(engine: *Engine, memory: *HostMemory, module: *Module, index: u32) i32 {
    if (index >= module.header.defined_memories) return @intFromEnum(engine_mod.Code.bad_module);
    if (resetter.claim(memory, true) != .ready) return @intFromEnum(engine_mod.Code.resource);
    if (!memory.prepare(module.image(index), &engine.host_memories.counters)) {
        return @intFromEnum(engine_mod.Code.resource);
    }
    return 0;
}

/// Restores what the last tenant wrote. 0, or a negative code (the memory must be dropped).
export fn wasmpool_host_memory_reset(engine: *Engine, memory: *HostMemory) i32 {
    if (resetter.claim(memory, true) != .ready) return @intFromEnum(engine_mod.Code.resource);
    if (!memory.reset(&engine.host_memories.counters)) return @intFromEnum(engine_mod.Code.resource);
    return 0;
}

/// The last tenant grew the host memory in place (its base did not move) to `pages` wasm pages:
/// the record takes the new pages in, zeroed and tracked, before the memory's reset (see
/// HostMemory.extend). 0, `grow_past_maximum` for a size not above the record's or past 4 GiB,
/// or another negative code (the memory must be dropped).
export fn wasmpool_host_memory_extend(engine: *Engine, memory: *HostMemory, pages: u32) i32 {
    const wasm_page_bytes: u64 = 64 * 1024;
    const max_pages: u32 = 65536;
    if (pages > max_pages or @as(u64, pages) * wasm_page_bytes <= memory.size_bytes) {
        return @intFromEnum(engine_mod.Code.grow_past_maximum);
    }
    if (resetter.claim(memory, true) != .ready) return @intFromEnum(engine_mod.Code.resource);
    if (!memory.extend(@as(u64, pages) * wasm_page_bytes, &engine.host_memories.counters)) {
        return @intFromEnum(engine_mod.Code.resource);
    }
    return 0;
}

/// Restores the whole accessible part of the host memory to its image and zeros, whatever was
/// written before it was adopted (see HostMemory.restore_all). 0, or a negative code (the memory
/// must be dropped).
export fn wasmpool_host_memory_restore_all(engine: *Engine, memory: *HostMemory) i32 {
    if (resetter.claim(memory, true) != .ready) return @intFromEnum(engine_mod.Code.resource);
    if (!memory.restore_all(&engine.host_memories.counters)) return @intFromEnum(engine_mod.Code.resource);
    return 0;
}

/// Restores what the last tenant wrote, on the resetter's thread when it is awake (see
/// resetter.zig): a ticket > 0 when queued (claim the memory before its next use, and keep it
/// from being freed until `wasmpool_reset_settled(ticket)`), 0 done inline, or a negative code
/// (the memory must be dropped).
export fn wasmpool_host_memory_reset_later(engine: *Engine, memory: *HostMemory) i32 {
    if (resetter.claim(memory, true) != .ready) return @intFromEnum(engine_mod.Code.resource);
    return switch (resetter.later(memory, &engine.host_memories.counters)) {
        .queued => |ticket| @intCast(ticket),
        .inline_done => 0,
        .failed => @intFromEnum(engine_mod.Code.resource),
    };
}

/// 1 when the reset queued under `ticket` is over (the thread no longer touches its memory).
export fn wasmpool_reset_settled(ticket: u32) u32 {
    if (ticket == 0 or ticket > 0x7fff_ffff) return 1;
    return @intFromBool(resetter.settled(ticket));
}

/// Makes a memory whose reset was queued ready for its next use: 0 ready, 1 still being reset
/// (only with `wait` 0), or a negative code (its reset failed: drop it).
export fn wasmpool_host_memory_claim(engine: *Engine, memory: *HostMemory, wait: u32) i32 {
    _ = engine;
    return switch (resetter.claim(memory, wait != 0)) {
        .ready => 0,
        .pending => 1,
        .failed => @intFromEnum(engine_mod.Code.resource),
    };
}

/// Gives up a host memory (it grew, moved, or is dropped) and frees its record.
export fn wasmpool_host_memory_drop(engine: *Engine, memory: *HostMemory) i32 {
    if (!engine.host_memories.drop(allocator, memory)) return @intFromEnum(engine_mod.Code.bad_instance);
    return 0;
}

/// Test hook: the next `count` calls of `operation` (0 mmap, 1 mprotect, 2 madvise, 4
/// memfd_create, 5 mmap over a slot: ENOMEM; 3 userfaultfd: EPERM) fail, process-wide. Lets
/// tests check that exhaustion leaves every pool consistent.
export fn wasmpool_test_inject_failures(operation: u32, count: u32) i32 {
    const op = std.meta.intToEnum(@import("sys.zig").Operation, operation) catch return -1;
    @import("sys.zig").inject_failures(op, count);
    return 0;
}

/// Where the runtime placed a host memory: 1 when it is reserved in place for at least
/// `maximum_wasm_pages` and `minimum_reserved_wasm_pages` (it never moves; an image may be mapped
/// over it), 0 when it is not, a negative `placement.Kind` when that cannot be told. Writes how
/// far the reservation reaches, in wasm pages (saturated), to `out_reserved_wasm_pages`.
export fn wasmpool_memory_placement(
    address: ?[*]u8,
    accessible_wasm_pages: u32,
    maximum_wasm_pages: u32,
    minimum_reserved_wasm_pages: u32,
    out_reserved_wasm_pages: *u32,
) i32 {
    const wasm_page_bytes: u64 = 64 * 1024;
    out_reserved_wasm_pages.* = 0;
    if (address == null) return @intFromEnum(placement.Kind.invalid);
    const placed = placement.classify(.{
        .address = @intFromPtr(address),
        .accessible_bytes = @as(u64, accessible_wasm_pages) * wasm_page_bytes,
        .maximum_bytes = @as(u64, maximum_wasm_pages) * wasm_page_bytes,
        .minimum_reserved_bytes = @as(u64, minimum_reserved_wasm_pages) * wasm_page_bytes,
    });
    out_reserved_wasm_pages.* = @intCast(@min(placed.reserved_bytes / wasm_page_bytes, std.math.maxInt(u32)));
    return @intFromEnum(placed.kind);
}

/// Opens a write tracker (write_tracker.zig). Null when the kernel or the process cannot have
/// one, with `out_reason[0]` the `write_tracker.Reason` and `out_reason[1]` the errno.
export fn wasmpool_write_tracker_create(out_reason: *[2]i32) ?*write_tracker.Tracker {
    var why: write_tracker.Unavailable = undefined;
    const opened = write_tracker.Tracker.open(&why) orelse {
        out_reason.* = .{ @intFromEnum(why.reason), why.errno };
        return null;
    };
    const tracker = allocator.create(write_tracker.Tracker) catch {
        opened.close();
        out_reason.* = .{ @intFromEnum(write_tracker.Reason.other), @intFromEnum(std.os.linux.E.NOMEM) };
        return null;
    };
    tracker.* = opened;
    out_reason.* = .{ 0, 0 };
    return tracker;
}

/// Closes the tracker: every range it registered is released by the kernel.
export fn wasmpool_write_tracker_destroy(tracker: *write_tracker.Tracker) void {
    tracker.close();
    allocator.destroy(tracker);
}

/// Registers `size_host_pages` 4 KiB pages at `address` and protects them. 0, or -errno.
export fn wasmpool_write_tracker_register(tracker: *write_tracker.Tracker, address: ?[*]u8, size_host_pages: u32) i32 {
    const range = host_range(address, size_host_pages) orelse return -@as(i32, @intFromEnum(std.os.linux.E.INVAL));
    const errno = tracker.register(range.start, range.size_bytes) orelse return 0;
    return -@as(i32, errno);
}

/// Unregisters `size_host_pages` 4 KiB pages at `address`. 0, or -errno.
export fn wasmpool_write_tracker_unregister(tracker: *write_tracker.Tracker, address: ?[*]u8, size_host_pages: u32) i32 {
    const range = host_range(address, size_host_pages) orelse return -@as(i32, @intFromEnum(std.os.linux.E.INVAL));
    const errno = tracker.unregister(range.start, range.size_bytes) orelse return 0;
    return -@as(i32, errno);
}

/// Scans `size_host_pages` 4 KiB pages at `address` for pages written since the last scan and
/// protects them again. Writes up to `capacity_runs` runs to `out_runs` as pairs
/// (first page, page count), pages counted from `address`, and to `out_end_host_page` the page
/// where the walk stopped (`size_host_pages` when it is complete; else scan again from there).
/// Returns the number of runs, or -errno (-EPERM: some of the range is not tracked); after an
/// error, treat the whole range as written.
export fn wasmpool_write_tracker_scan(
    tracker: *write_tracker.Tracker,
    address: ?[*]u8,
    size_host_pages: u32,
    out_runs: [*]u32,
    capacity_runs: u32,
    out_end_host_page: *u32,
) i32 {
    const range = host_range(address, size_host_pages) orelse return -@as(i32, @intFromEnum(std.os.linux.E.INVAL));
    if (capacity_runs == 0 or capacity_runs > std.math.maxInt(i32)) return -@as(i32, @intFromEnum(std.os.linux.E.INVAL));
    const page_bytes = std.heap.page_size_min;
    const end = range.start + range.size_bytes;
    var batch: [scan_batch_runs]write_tracker.Run = undefined;
    var count: u32 = 0;
    var cursor = range.start;
    // Each pass that does not reach the end moves the cursor past one run at least.
    var passes: u64 = 0;
    while (cursor < end and count < capacity_runs) : (passes += 1) {
        std.debug.assert(passes <= size_host_pages);
        const room = @min(batch.len, capacity_runs - count);
        var found: write_tracker.Scan = undefined;
        if (tracker.scan(cursor, end, batch[0..room], .protect, &found)) |errno| return -@as(i32, errno);
        for (batch[0..found.runs_count]) |run| {
            const first: u32 = @intCast((run.start - range.start) / page_bytes);
            const pages: u32 = @intCast((run.end - run.start) / page_bytes);
            // A run cut by the end of a previous batch goes on in this one: join them.
            if (count > 0 and out_runs[2 * (count - 1)] + out_runs[2 * (count - 1) + 1] == first) {
                out_runs[2 * (count - 1) + 1] += pages;
                continue;
            }
            std.debug.assert(count < capacity_runs);
            out_runs[2 * count] = first;
            out_runs[2 * count + 1] = pages;
            count += 1;
        }
        cursor = found.walk_end;
    }
    out_end_host_page.* = @intCast((cursor - range.start) / page_bytes);
    return @intCast(count);
}

/// Copies back from `source` (`size_host_pages` 4 KiB pages, as laid out at `address`) every
/// page written since the last scan, then protects the range again. Returns the pages
/// restored, or -errno.
export fn wasmpool_write_tracker_restore(tracker: *write_tracker.Tracker, address: ?[*]u8, size_host_pages: u32, source: ?[*]const u8) i32 {
    const range = host_range(address, size_host_pages) orelse return -@as(i32, @intFromEnum(std.os.linux.E.INVAL));
    const from = source orelse return -@as(i32, @intFromEnum(std.os.linux.E.INVAL));
    var pages: u64 = 0;
    if (tracker.restore(range.start, range.size_bytes, from, &pages)) |errno| return -@as(i32, errno);
    return @intCast(@min(pages, std.math.maxInt(i32)));
}

/// Takes a holder of the process's epoch ticker (ticker.zig) with a tick of `tick_us`: the
/// first starts its thread. The holder (>= 0), or a negative `ticker.Error`.
export fn wasmpool_ticker_acquire(tick_us: u32) i32 {
    return ticker.acquire(tick_us);
}

/// Gives back a holder; the last one stops the thread. 0, or a negative `ticker.Error`.
export fn wasmpool_ticker_release(holder: u32) i32 {
    return ticker.release(holder);
}

/// Maps the ticker's page over the first host page of the epoch memory at `address` (after
/// checking that the runtime reserved it for itself). 0, or a negative `ticker.Error`.
export fn wasmpool_ticker_map(address: ?[*]u8, accessible_wasm_pages: u32, maximum_wasm_pages: u32) i32 {
    return ticker.map_into(@intFromPtr(address), accessible_wasm_pages, maximum_wasm_pages);
}

/// The errno behind the last `page_failed` or `map_failed` of the ticker.
export fn wasmpool_ticker_errno() u32 {
    return ticker.errno();
}

/// The low 32 bits of CLOCK_MONOTONIC in microseconds: with the page's word (which lags by
/// less than a tick), the exact time, through a call on the FFI fast path.
export fn wasmpool_ticker_now_low() u32 {
    return @truncate(ticker.now_us());
}

/// Runs when the library is unloaded (or the process exits): no thread of ours may go on
/// running code that is about to be unmapped.
fn on_unload() callconv(.c) void {
    ticker.shutdown();
    resetter.shutdown();
}

export const wasmpool_fini_array_entry: *const fn () callconv(.c) void linksection(".fini_array") = &on_unload;

/// PAGEMAP_SCAN calls gather at most this many runs each (on the stack: 64 × 24 bytes).
const scan_batch_runs = 64;

const HostRange = struct { start: u64, size_bytes: u64 };

/// A page-aligned, non-empty range that does not wrap; null otherwise.
fn host_range(address: ?[*]u8, size_host_pages: u32) ?HostRange {
    const page_bytes = std.heap.page_size_min;
    const start: u64 = @intFromPtr(address orelse return null);
    if (start % page_bytes != 0 or size_host_pages == 0) return null;
    const size_bytes = @as(u64, size_host_pages) * page_bytes;
    _ = std.math.add(u64, start, size_bytes) catch return null;
    return .{ .start = start, .size_bytes = size_bytes };
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
    _ = @import("placement.zig");
    _ = @import("write_tracker.zig");
    _ = @import("host_memory.zig");
    _ = @import("resetter.zig");
    _ = @import("ticker.zig");
}
