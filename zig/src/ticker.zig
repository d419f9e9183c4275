//! The epoch ticker: one thread per process that stores the monotonic clock, in microseconds,
//! into one shared page every tick, for as long as any holder wants it (an engine with
//! interruption on, in any isolate: the main thread's or a Worker's). Rewritten guest code
//! compares that word with its deadline at every function entry and loop header (see
//! src/run/interrupt.ts), so a guest in a tight loop stops within a tick of its deadline.
//!
//! The page is a memfd of one host page. The thread writes it through the process's own
//! mapping, made once here; each isolate's epoch memory (a shared `WebAssembly.Memory` that the
//! runtime reserved for itself, unmapped as a whole when it is collected) gets the same page
//! mapped `MAP_SHARED|MAP_FIXED` over its first host page. So the thread only ever writes
//! memory it owns, and an isolate that goes away (a terminated Worker) takes its view with it:
//!
//!     thread ──store──▶ [ memfd page ] ◀── view in isolate A's epoch memory (page 0)
//!                             ▲
//!                             └──────────── view in isolate B's epoch memory (page 0)
//!
//! Word 0 of the page: CLOCK_MONOTONIC in microseconds (a u64, stored whole, little-endian).
//! Invariants, under `mutex`: the thread runs iff `holder_count > 0`; its period is the
//! smallest tick of the live holders; `holder_count` is the number of non-zero `holders`.

const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const sys = @import("sys.zig");
const placement = @import("placement.zig");

pub const thread_name = "wasmpool-tick";

/// At most this many holders at once (engines with interruption on, across isolates).
pub const holders_max = 4096;
/// Ticks are whole microseconds from 100 µs to 1 s: faster costs a core, slower is no deadline.
pub const tick_us_min: u32 = 100;
pub const tick_us_max: u32 = 1_000_000;
/// The epoch memory's first wasm page holds the shared page; it must fit in it.
const wasm_page_bytes: usize = 64 * 1024;

pub const Error = enum(i32) {
    ok = 0,
    /// Every holder slot is taken.
    too_many_holders = -1,
    /// The tick is outside [tick_us_min, tick_us_max].
    bad_tick = -2,
    /// The page could not be made (memfd_create, ftruncate, mmap): errno in `last_errno`.
    page_failed = -3,
    /// The thread could not be started.
    thread_failed = -4,
    /// The holder is not one that `acquire` returned.
    bad_holder = -5,
    /// The memory is not one the runtime reserved for itself: mapping over it would be unsound.
    not_reserved = -6,
    /// The mapping over the memory failed: errno in `last_errno`.
    map_failed = -7,
};

var mutex: std.Thread.Mutex = .{};
var holders: [holders_max]u32 = @splat(0);
var holder_count: u32 = 0;
var thread: ?std.Thread = null;
/// The period the thread sleeps, in microseconds; read by the thread at every tick.
var period_us: std.atomic.Value(u32) = .init(1000);
/// Bumped to wake the thread early (a new period, or stop); the thread waits on it.
var wake_word: std.atomic.Value(u32) = .init(0);
var stopping: std.atomic.Value(bool) = .init(false);
/// The memfd and the process's own mapping of it: made once, kept for the process's life
/// (isolates' views of it may outlive any holder).
var page_fd: i32 = -1;
var page: ?*align(sys.page_size_bytes) volatile u64 = null;
/// The errno of the last `page_failed` or `map_failed`, for the message.
var last_errno: std.atomic.Value(u32) = .init(0);

pub fn errno() u32 {
    return last_errno.load(.acquire);
}

/// CLOCK_MONOTONIC in microseconds.
pub fn now_us() u64 {
    return sys.monotonic_ns() / std.time.ns_per_us;
}

/// Makes the page on first use. Called under `mutex`.
fn ensure_page() Error {
    if (page != null) return .ok;
    assert(sys.page_size_bytes <= wasm_page_bytes);
    var e: sys.Errno = 0;
    const fd = sys.memfd_create("wasmpool-epoch", &e) orelse return fail(.page_failed, e);
    if (sys.ftruncate(fd, sys.page_size_bytes)) |ferr| {
        sys.close(fd);
        return fail(.page_failed, ferr);
    }
    const rc = linux.mmap(null, sys.page_size_bytes, linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .SHARED }, fd, 0);
    const signed: isize = @bitCast(rc);
    if (signed < 0 and signed > -4096) {
        sys.close(fd);
        return fail(.page_failed, @intCast(-signed));
    }
    page_fd = fd;
    page = @ptrFromInt(rc);
    page.?.* = now_us();
    return .ok;
}

fn fail(err: Error, e: sys.Errno) Error {
    last_errno.store(e, .release);
    return err;
}

/// Takes a holder with a tick of `tick_us`: starts the thread for the first, shortens its
/// period when this tick is shorter. Returns the holder (>= 0) or a negative `Error`.
pub fn acquire(tick_us: u32) i32 {
    if (tick_us < tick_us_min or tick_us > tick_us_max) return @intFromEnum(Error.bad_tick);
    mutex.lock();
    defer mutex.unlock();
    const page_result = ensure_page();
    if (page_result != .ok) return @intFromEnum(page_result);
    const slot = std.mem.indexOfScalar(u32, &holders, 0) orelse return @intFromEnum(Error.too_many_holders);
    holders[slot] = tick_us;
    holder_count += 1;
    if (thread == null) {
        stopping.store(false, .release);
        period_us.store(tick_us, .release);
        page.?.* = now_us();
        thread = std.Thread.spawn(.{ .stack_size = 64 * 1024 }, run, .{}) catch {
            holders[slot] = 0;
            holder_count -= 1;
            return @intFromEnum(Error.thread_failed);
        };
        thread.?.setName(thread_name) catch {};
    } else if (tick_us < period_us.load(.acquire)) {
        period_us.store(tick_us, .release);
        poke();
    }
    assert(holder_count > 0 and thread != null);
    return @intCast(slot);
}

/// Gives back `holder`: the last one stops (and joins) the thread. 0, or `bad_holder`.
pub fn release(holder: u32) i32 {
    mutex.lock();
    defer mutex.unlock();
    if (holder >= holders_max or holders[holder] == 0) return @intFromEnum(Error.bad_holder);
    holders[holder] = 0;
    holder_count -= 1;
    if (holder_count == 0) {
        const t = thread.?;
        stopping.store(true, .release);
        poke();
        t.join();
        thread = null;
        return 0;
    }
    var shortest: u32 = tick_us_max;
    for (holders) |tick| {
        if (tick != 0) shortest = @min(shortest, tick);
    }
    period_us.store(shortest, .release);
    return 0;
}

/// Stops the thread whatever the holders: the library is being unloaded (Deno closes it as the
/// process exits, with engines still open), and the thread must not run code that is gone.
pub fn shutdown() void {
    mutex.lock();
    defer mutex.unlock();
    if (thread) |t| {
        stopping.store(true, .release);
        poke();
        t.join();
        thread = null;
    }
    holders = @splat(0);
    holder_count = 0;
}

/// Whether the thread runs (tests).
pub fn running() bool {
    mutex.lock();
    defer mutex.unlock();
    assert((thread != null) == (holder_count > 0));
    return thread != null;
}

fn poke() void {
    _ = wake_word.fetchAdd(1, .acq_rel);
    std.Thread.Futex.wake(&wake_word, 1);
}

fn run() void {
    // A thread that wakes for a microsecond every tick must not wait behind the guests it is
    // there to stop: SCHED_FIFO at the lowest priority where the process may (CAP_SYS_NICE or
    // RLIMIT_RTPRIO), else the ordinary scheduler, whose wake-up preference usually suffices.
    const param: linux.sched_param = .{ .priority = 1 };
    _ = linux.sched_setscheduler(0, .{ .mode = .FIFO, .RESET_ON_FORK = true }, &param);
    while (true) {
        const seen = wake_word.load(.acquire);
        if (stopping.load(.acquire)) return;
        page.?.* = now_us();
        const period_ns = @as(u64, period_us.load(.acquire)) * std.time.ns_per_us;
        std.Thread.Futex.timedWait(&wake_word, seen, period_ns) catch {};
    }
}

/// Maps the page over the first host page of the memory at `address`, after checking that it
/// is one the runtime reserved for itself: `accessible_wasm_pages` read-write and the rest of
/// `maximum_wasm_pages` PROT_NONE, nothing else in between (placement.zig). 0, or a negative
/// `Error`.
pub fn map_into(address: usize, accessible_wasm_pages: u32, maximum_wasm_pages: u32) i32 {
    if (address == 0 or address % sys.page_size_bytes != 0 or accessible_wasm_pages == 0) {
        return @intFromEnum(Error.not_reserved);
    }
    mutex.lock();
    defer mutex.unlock();
    const page_result = ensure_page();
    if (page_result != .ok) return @intFromEnum(page_result);
    const placed = placement.classify(.{
        .address = address,
        .accessible_bytes = @as(u64, accessible_wasm_pages) * wasm_page_bytes,
        .maximum_bytes = @as(u64, maximum_wasm_pages) * wasm_page_bytes,
    });
    if (placed.kind != .in_place) return @intFromEnum(Error.not_reserved);
    const rc = linux.mmap(@ptrFromInt(address), sys.page_size_bytes, linux.PROT.READ | linux.PROT.WRITE, .{
        .TYPE = .SHARED,
        .FIXED = true,
    }, page_fd, 0);
    const signed: isize = @bitCast(rc);
    if (signed < 0 and signed > -4096) return @intFromEnum(fail(.map_failed, @intCast(-signed)));
    assert(rc == address);
    return 0;
}

test "the ticker advances the page while held, and stops with its last holder" {
    const a = acquire(1000);
    try std.testing.expect(a >= 0);
    const b = acquire(200);
    try std.testing.expect(b >= 0 and b != a);
    try std.testing.expect(running());
    try std.testing.expectEqual(@as(u32, 200), period_us.load(.acquire));
    const first = page.?.*;
    std.Thread.sleep(5 * std.time.ns_per_ms);
    try std.testing.expect(page.?.* > first);
    try std.testing.expectEqual(@as(i32, 0), release(@intCast(b)));
    try std.testing.expectEqual(@as(u32, 1000), period_us.load(.acquire));
    try std.testing.expectEqual(@as(i32, @intFromEnum(Error.bad_holder)), release(@intCast(b)));
    try std.testing.expectEqual(@as(i32, 0), release(@intCast(a)));
    try std.testing.expect(!running());
    const stopped = page.?.*;
    std.Thread.sleep(3 * std.time.ns_per_ms);
    try std.testing.expectEqual(stopped, page.?.*);
    try std.testing.expectEqual(@as(i32, @intFromEnum(Error.bad_tick)), acquire(10));
}

test "the page is mapped only over a reservation of its own, then shows the clock" {
    var e: sys.Errno = 0;
    const max_pages = 16;
    const size = max_pages * wasm_page_bytes;
    const base = sys.reserve(size, &e) orelse return error.ReserveFailed;
    defer sys.unmap(base, size);
    // Not yet accessible: refused.
    try std.testing.expectEqual(@as(i32, @intFromEnum(Error.not_reserved)), map_into(@intFromPtr(base), 2, max_pages));
    try std.testing.expectEqual(@as(?sys.Errno, null), sys.protect(base, 2 * wasm_page_bytes, .read_write));
    try std.testing.expectEqual(@as(i32, 0), map_into(@intFromPtr(base), 2, max_pages));
    const word: *volatile u64 = @ptrCast(@alignCast(base));
    const holder = acquire(100);
    try std.testing.expect(holder >= 0);
    const seen = word.*;
    std.Thread.sleep(3 * std.time.ns_per_ms);
    try std.testing.expect(word.* > seen);
    try std.testing.expect(word.* <= now_us());
    try std.testing.expectEqual(@as(i32, 0), release(@intCast(holder)));
    // The rest of the first wasm page is still the memory's own.
    base[sys.page_size_bytes] = 1;
    try std.testing.expectEqual(@as(u8, 1), base[sys.page_size_bytes]);
}
