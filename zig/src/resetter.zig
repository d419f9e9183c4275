//! The resetter: one thread per process that resets host memories after their tenants, off the
//! caller's path. A reset is a PAGEMAP_SCAN (about a microsecond here, more than everything else
//! a recycled instance's cycle costs) plus the restores and protections of what the tenant
//! wrote; the caller queues it and goes on, and the thread does it on the other core.
//!
//! A host memory's reset state, and who moves it (only the caller's thread, the JS thread of
//! the memory's isolate, ever moves a memory out of `ready`):
//!
//!     ready ──later──▶ queued ──pop (thread)──▶ resetting ──(thread)──▶ ready | failed
//!       ▲                │
//!       └─────claim──────┘  (the caller takes it back and resets it inline)
//!
//! Invariants: a memory is in the queue iff it is `queued` (both under `mutex`); only the
//! thread touches a `resetting` memory's bytes; the caller touches a memory only once `claim`
//! returned it ready. The queue is intrusive (links in the HostMemory), so forgetting a memory
//! takes it out in O(1), and it never outlives its engine (HostMemories.drop and deinit claim).
//!
//! Waking a sleeping thread is a futex syscall, which costs what the reset would: the thread
//! spins a while after its last reset, and while it sleeps a reset is done inline unless the
//! previous one came within `wake_gap_ns` (a burst worth waking it for).

const std = @import("std");
const assert = std.debug.assert;
const host_memory = @import("host_memory.zig");
const HostMemory = host_memory.HostMemory;
const Counters = host_memory.Counters;

pub const thread_name = "wasmpool-reset";

/// The thread stays awake this long after its last reset, waiting for the next.
pub const spin_ns: u64 = 50 * std.time.ns_per_us;
/// While the thread sleeps, a reset queued within this long of the previous one wakes it.
pub const wake_gap_ns: u64 = 50 * std.time.ns_per_us;
/// A caller waiting for the thread to finish a memory spins this many times, then yields.
const claim_spins_max = 4096;

pub const State = enum(u32) { ready = 0, queued = 1, resetting = 2, failed = 3 };

/// What `later` did: done inline, failed, or queued under a ticket (see `settled`).
pub const Outcome = union(enum) { inline_done, failed, queued: u32 };

/// Tickets are 31-bit (positive as an i32, for the FFI), handed out in order, never 0.
const ticket_mask: u32 = 0x7fff_ffff;

/// What `claim` found.
pub const Claim = enum(i32) { ready = 0, pending = 1, failed = -1 };

var mutex: std.Thread.Mutex = .{};
var head: ?*HostMemory = null;
var tail: ?*HostMemory = null;
var queued_count: std.atomic.Value(u32) = .init(0);
var thread: ?std.Thread = null;
/// Whether `thread` is set (read without the mutex on the hot path).
var started: std.atomic.Value(bool) = .init(false);
/// Set once spawning failed, or the library is being unloaded: every reset is then inline.
var spawn_failed: std.atomic.Value(bool) = .init(false);
var stopping: std.atomic.Value(bool) = .init(false);
/// Whether the thread sleeps (or does not exist yet): a wake is a syscall.
var sleeping: std.atomic.Value(bool) = .init(true);
/// Bumped to wake the thread; it waits on it.
var wake_word: std.atomic.Value(u32) = .init(0);
/// When `later` was last called (CLOCK_MONOTONIC, ns).
var last_later_ns: std.atomic.Value(u64) = .init(0);
/// The next ticket, and the ticket of the memory the thread is resetting (0: none). Under
/// `mutex`.
var next_ticket: u32 = 1;
var resetting_ticket: u32 = 0;

const now_ns = sys.monotonic_ns;

/// Resets `memory` (ready: its tenant just ended) now or on the thread. `counters` must live
/// until the memory is claimed or forgotten (they are its engine's).
pub fn later(memory: *HostMemory, counters: *Counters) Outcome {
    assert(memory.reset_state.load(.acquire) == @intFromEnum(State.ready));
    const now = now_ns();
    const previous = last_later_ns.swap(now, .monotonic);
    const burst = now -% previous < wake_gap_ns;
    if ((sleeping.load(.seq_cst) and !burst) or spawn_failed.load(.acquire) or !ensure_thread()) {
        return inline_reset(memory, counters);
    }
    const ticket = blk: {
        mutex.lock();
        defer mutex.unlock();
        memory.reset_counters = counters;
        memory.reset_ticket = next_ticket;
        next_ticket = (next_ticket + 1) & ticket_mask;
        if (next_ticket == 0) next_ticket = 1;
        memory.reset_state.store(@intFromEnum(State.queued), .release);
        push(memory);
        break :blk memory.reset_ticket;
    };
    if (sleeping.swap(false, .seq_cst)) {
        Counters.add(&counters.reset_wakes, 1);
        _ = wake_word.fetchAdd(1, .acq_rel);
        std.Thread.Futex.wake(&wake_word, 1);
    }
    return .{ .queued = ticket };
}

/// Whether the reset queued under `ticket` is over (done, taken back, or forgotten), so that
/// the thread no longer touches that memory: what a caller keeping the memory's owner alive
/// meanwhile (the runtime frees a memory it collects) waits for. Conservative: a ticket may
/// read unsettled for a while after its reset, until every earlier one is over too.
pub fn settled(ticket: u32) bool {
    assert(ticket != 0 and ticket <= ticket_mask);
    mutex.lock();
    defer mutex.unlock();
    const floor = if (resetting_ticket != 0)
        resetting_ticket
    else if (head) |h| h.reset_ticket else next_ticket;
    // Tickets wrap at 2^31; far fewer than 2^30 are ever in flight.
    const distance = (floor -% ticket) & ticket_mask;
    return distance != 0 and distance < (1 << 30);
}

fn inline_reset(memory: *HostMemory, counters: *Counters) Outcome {
    Counters.add(&counters.resets_inline, 1);
    if (memory.reset(counters)) return .inline_done;
    memory.reset_state.store(@intFromEnum(State.failed), .release);
    return .failed;
}

/// Makes `memory` ready for its caller: nothing to do when it is; a queued one is taken back
/// and reset inline; one the thread is resetting is waited for. With `wait` false, a memory
/// not yet ready is left as it is (`pending`). `failed`: the memory cannot be trusted (drop it).
pub fn claim(memory: *HostMemory, wait: bool) Claim {
    switch (state_of(memory)) {
        .ready => return .ready,
        .failed => return .failed,
        .queued, .resetting => if (!wait) return .pending,
    }
    const counters = blk: {
        mutex.lock();
        defer mutex.unlock();
        if (state_of(memory) != .queued) break :blk null;
        remove(memory);
        memory.reset_state.store(@intFromEnum(State.resetting), .release);
        break :blk memory.reset_counters.?;
    };
    if (counters) |c| {
        Counters.add(&c.resets_claimed, 1);
        const ok = memory.reset(c);
        memory.reset_state.store(@intFromEnum(if (ok) State.ready else State.failed), .release);
        return if (ok) .ready else .failed;
    }
    var spins: u32 = 0;
    while (state_of(memory) == .resetting) : (spins +%= 1) {
        if (spins < claim_spins_max) std.atomic.spinLoopHint() else std.Thread.yield() catch {};
    }
    return if (state_of(memory) == .ready) .ready else .failed;
}

/// The memory is about to be dropped: after this, the thread neither holds nor touches it.
pub fn forget(memory: *HostMemory) void {
    _ = claim(memory, true);
}

fn state_of(memory: *HostMemory) State {
    return @enumFromInt(memory.reset_state.load(.acquire));
}

/// Starts the thread on first use. False when it cannot be started (resets stay inline).
fn ensure_thread() bool {
    if (started.load(.acquire)) return true;
    mutex.lock();
    defer mutex.unlock();
    if (thread != null) return true;
    if (spawn_failed.load(.acquire)) return false;
    thread = std.Thread.spawn(.{ .stack_size = 256 * 1024 }, run, .{}) catch {
        spawn_failed.store(true, .release);
        return false;
    };
    thread.?.setName(thread_name) catch {};
    started.store(true, .release);
    return true;
}

/// Stops the thread for good (the library is being unloaded): resets are inline from now on,
/// and queued memories stay queued until claimed (then reset inline).
pub fn shutdown() void {
    mutex.lock();
    spawn_failed.store(true, .release);
    const t = thread orelse {
        mutex.unlock();
        return;
    };
    stopping.store(true, .release);
    mutex.unlock();
    _ = wake_word.fetchAdd(1, .acq_rel);
    std.Thread.Futex.wake(&wake_word, 1);
    t.join();
    mutex.lock();
    defer mutex.unlock();
    thread = null;
    started.store(false, .release);
    sleeping.store(true, .seq_cst);
}

fn run() void {
    var idle_since = now_ns();
    var polls: u32 = 0;
    while (!stopping.load(.acquire)) {
        if (pop()) |memory| {
            const counters = memory.reset_counters.?;
            const ok = memory.reset(counters);
            Counters.add(&counters.resets_background, 1);
            {
                mutex.lock();
                defer mutex.unlock();
                assert(resetting_ticket == memory.reset_ticket);
                resetting_ticket = 0;
                memory.reset_state.store(@intFromEnum(if (ok) State.ready else State.failed), .release);
            }
            idle_since = now_ns();
            continue;
        }
        polls +%= 1;
        if (polls % 64 != 0 or now_ns() -% idle_since < spin_ns) {
            std.atomic.spinLoopHint();
            continue;
        }
        const seen = wake_word.load(.acquire);
        sleeping.store(true, .seq_cst);
        if (queued_count.load(.seq_cst) != 0 or stopping.load(.acquire)) {
            sleeping.store(false, .seq_cst);
            continue;
        }
        std.Thread.Futex.wait(&wake_word, seen);
        sleeping.store(false, .seq_cst);
        idle_since = now_ns();
    }
}

/// Takes the oldest queued memory, now `resetting`.
fn pop() ?*HostMemory {
    if (queued_count.load(.acquire) == 0) return null;
    mutex.lock();
    defer mutex.unlock();
    const memory = head orelse return null;
    remove(memory);
    assert(resetting_ticket == 0);
    resetting_ticket = memory.reset_ticket;
    memory.reset_state.store(@intFromEnum(State.resetting), .release);
    return memory;
}

fn push(memory: *HostMemory) void {
    assert(memory.reset_next == null and memory.reset_prev == null and head != memory);
    memory.reset_prev = tail;
    if (tail) |t| t.reset_next = memory else head = memory;
    tail = memory;
    _ = queued_count.fetchAdd(1, .seq_cst);
}

fn remove(memory: *HostMemory) void {
    assert(queued_count.load(.monotonic) > 0);
    if (memory.reset_prev) |p| p.reset_next = memory.reset_next else head = memory.reset_next;
    if (memory.reset_next) |n| n.reset_prev = memory.reset_prev else tail = memory.reset_prev;
    memory.reset_next = null;
    memory.reset_prev = null;
    _ = queued_count.fetchSub(1, .seq_cst);
}

const testing = std.testing;
const sys = @import("sys.zig");

test "queued resets are done by the thread or taken back by a claim; every memory comes back clean" {
    const memories_count = 8;
    const size_bytes = 4 * 65536;
    var errno: sys.Errno = 0;
    var bases: [memories_count][*]align(sys.page_size_bytes) u8 = undefined;
    var memories: [memories_count]HostMemory = undefined;
    var counters: Counters = .{};
    for (&bases, &memories) |*base, *memory| {
        base.* = sys.map_read_write(size_bytes, &errno).?;
        memory.adopt(base.*, size_bytes, false);
    }
    defer for (bases, &memories) |base, *memory| {
        forget(memory);
        memory.drop();
        sys.unmap(base, size_bytes);
    };
    var prng = std.Random.DefaultPrng.init(0x5eed);
    const random = prng.random();
    var queued: u32 = 0;
    var last_ticket: u32 = 0;
    for (0..20_000) |_| {
        // Two tenants end back to back: the second is a burst, which wakes the thread.
        const first = random.uintLessThan(usize, memories_count);
        const pair = [2]usize{ first, (first + 1 + random.uintLessThan(usize, memories_count - 1)) % memories_count };
        for (pair) |i| switch (claim(&memories[i], random.boolean())) {
            .pending, .ready => {},
            .failed => return error.ResetFailed,
        };
        for (pair) |i| {
            const memory = &memories[i];
            if (state_of(memory) != .ready) continue;
            // The caller owns a ready memory: everything its last tenant wrote is gone.
            try testing.expect(std.mem.allEqual(u8, bases[i][0..size_bytes], 0));
            if (random.uintLessThan(u32, 50) == 0) forget(memory);
            bases[i][random.uintLessThan(usize, size_bytes)] = 0xa5;
        }
        for (pair) |i| {
            const memory = &memories[i];
            if (state_of(memory) != .ready) continue;
            switch (later(memory, &counters)) {
                .queued => |ticket| {
                    queued += 1;
                    last_ticket = ticket;
                },
                .inline_done => {},
                .failed => return error.ResetFailed,
            }
        }
    }
    for (&memories, bases) |*memory, base| {
        try testing.expectEqual(Claim.ready, claim(memory, true));
        try testing.expect(std.mem.allEqual(u8, base[0..size_bytes], 0));
    }
    try testing.expectEqual(@as(u32, 0), queued_count.load(.acquire));
    try testing.expect(last_ticket != 0 and settled(last_ticket));
    const background = counters.resets_background.load(.monotonic);
    const claimed = counters.resets_claimed.load(.monotonic);
    // Bursts woke the thread, which did resets; every queued reset was done once.
    try testing.expect(background > 0 and background + claimed == queued);
}
