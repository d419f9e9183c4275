//! The userfaultfd fault-handling thread. Per fault it locates (instance, memory, wasm page)
//! by arithmetic relative to the memory pool's base, reading only atomics: it takes no lock,
//! so a thread that faults while holding one can never deadlock against it. It fills the
//! whole wasm page: host pages that hold image data by UFFDIO_COPY from the module's image
//! (image.zig: the same memfd that mprotect mode maps), the others by UFFDIO_ZEROPAGE.

const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const sys = @import("sys.zig");
const uffd = @import("uffd.zig");
const Pool = @import("pool.zig").Pool;
const Module = @import("module.zig").Module;
const Image = @import("image.zig").Image;
const working_set = @import("working_set.zig");
const wasm_page_bytes = @import("memory.zig").wasm_page_bytes;

pub const thread_name = "wasmpool-uffd";

pub const Counters = struct {
    pages_zeroed: std.atomic.Value(u64) = .init(0),
    pages_copied: std.atomic.Value(u64) = .init(0),
    guard_faults: std.atomic.Value(u64) = .init(0),
};

pub const Handler = struct {
    fd: i32,
    /// An eventfd the engine writes to stop the thread.
    stop_fd: i32,
    pool: *const Pool,
    thread: std.Thread,
    counters: Counters = .{},
    /// `working_set.zero_source_bytes` of read-only zeros: the source of zero-filled copies
    /// when the engine prefetches written pages.
    zero_source: [*]align(sys.page_size_bytes) const u8,

    /// Starts the thread on `self`, which must not move until `stop`.
    pub fn start(self: *Handler, fd: i32, pool: *const Pool, failure: *uffd.Failure) bool {
        const rc = linux.eventfd(0, linux.EFD.CLOEXEC);
        const signed: isize = @bitCast(rc);
        if (signed < 0 and signed > -4096) {
            failure.* = .{ .step = .thread, .errno = @intCast(-signed) };
            return false;
        }
        var errno: sys.Errno = 0;
        const zeros = sys.map_zeros(working_set.zero_source_bytes, &errno) orelse {
            _ = linux.close(@intCast(rc));
            failure.* = .{ .step = .thread, .errno = errno };
            return false;
        };
        self.* = .{ .fd = fd, .stop_fd = @intCast(rc), .pool = pool, .thread = undefined, .zero_source = zeros };
        self.thread = std.Thread.spawn(.{ .stack_size = 64 * 1024 }, run, .{self}) catch {
            sys.unmap_const(zeros, working_set.zero_source_bytes);
            _ = linux.close(self.stop_fd);
            failure.* = .{ .step = .thread, .errno = @intFromEnum(linux.E.AGAIN) };
            return false;
        };
        // Named, so that tools (and tests) can tell it from the runtime's own threads.
        self.thread.setName(thread_name) catch {};
        return true;
    }

    /// Stops and joins the thread and closes both descriptors.
    pub fn stop(self: *Handler) void {
        const one: u64 = 1;
        _ = linux.write(self.stop_fd, std.mem.asBytes(&one), @sizeOf(u64));
        self.thread.join();
        sys.unmap_const(self.zero_source, working_set.zero_source_bytes);
        _ = linux.close(self.stop_fd);
        uffd.close(self.fd);
    }

    fn run(self: *Handler) void {
        var fds = [2]linux.pollfd{
            .{ .fd = self.fd, .events = linux.POLL.IN, .revents = 0 },
            .{ .fd = self.stop_fd, .events = linux.POLL.IN, .revents = 0 },
        };
        var messages: [16]uffd.Message = undefined;
        while (true) {
            _ = linux.poll(&fds, fds.len, -1); // EINTR: just poll again.
            if (fds[1].revents != 0) return;
            if (fds[0].revents == 0) continue;
            const count = uffd.read_messages(self.fd, &messages);
            for (messages[0..count]) |message| {
                if (message.event == uffd.event_pagefault) self.handle(message.address);
            }
        }
    }

    fn handle(self: *Handler, address: u64) void {
        const pool = self.pool;
        const region = pool.memory_region.?;
        const slot_bytes = pool.layout.memory_slot_bytes;
        const offset = address - @intFromPtr(region.base);
        assert(offset < region.size_bytes);
        const slot = offset / slot_bytes;
        const page: u32 = @intCast((offset % slot_bytes) / wasm_page_bytes);
        const instance = &pool.instances[slot / pool.limits.memories];
        const memory_index: u32 = @intCast(slot % pool.limits.memories);
        const state = &instance.memory_slots[memory_index];
        const dst = state.base + @as(u64, page) * wasm_page_bytes;

        if (page >= state.pages.load(.acquire)) {
            // Beyond the memory's size: make the page trap, as it would in mprotect mode.
            // Counted before the wake, so whoever the fault released sees it counted.
            _ = self.counters.guard_faults.fetchAdd(1, .monotonic);
            state.record_guard_page(page);
            _ = sys.protect(dst, wasm_page_bytes, .none);
            _ = uffd.wake(self.fd, dst, wasm_page_bytes);
            return;
        }
        const module = @atomicLoad(?*Module, &instance.module, .acquire);
        const image: ?*const Image = if (module) |m| m.image(memory_index) else null;
        const page_offset = @as(u64, page) * wasm_page_bytes;
        _ = state.uffd_faults.fetchAdd(1, .monotonic);
        const from_image = if (image) |i| i.any_data(page_offset, wasm_page_bytes) else false;
        const counter = if (from_image) &self.counters.pages_copied else &self.counters.pages_zeroed;
        _ = counter.fetchAdd(1, .monotonic);
        // Runs of host pages that hold image data (copied) or not (zero pages), none of them
        // waking the faulting threads: they resume only once the whole wasm page is there, so
        // none of them can go on (and dispose the memory) while this thread still fills it.
        var filled: u64 = 0;
        var result: uffd.Resolve = .done;
        while (filled < wasm_page_bytes) {
            const run_len = Image.run_bytes(image, page_offset + filled, wasm_page_bytes - filled);
            const src = if (image) |i| i.source(page_offset + filled) else null;
            result = fill(self.fd, dst + filled, src, run_len);
            if (result != .done) break;
            filled += run_len;
        }
        // Teach the module's working set: the host page asked for, or the whole wasm page when
        // part of it was there already (prefetched: the instance uses more of it than recorded).
        if (module) |m| {
            if (memory_index < m.working_sets.len) {
                const host_pages_per_wasm = wasm_page_bytes / sys.page_size_bytes;
                const first_host = page_offset / sys.page_size_bytes;
                if (result == .exists) {
                    m.working_sets[memory_index].record(first_host, host_pages_per_wasm);
                } else {
                    const host = (address - @intFromPtr(state.base)) / sys.page_size_bytes;
                    m.working_sets[memory_index].record(host, 1);
                }
            }
        }
        switch (result) {
            .done => {},
            // Part of the wasm page is already there (prefetched, or filled for another
            // thread): fill the rest host page by host page, skipping what exists.
            .exists => {
                var at = filled;
                while (at < wasm_page_bytes) : (at += sys.page_size_bytes) {
                    const src = if (image) |i| i.source(page_offset + at) else null;
                    _ = fill(self.fd, dst + at, src, sys.page_size_bytes);
                }
            },
            // The mapping is changing (a reset in flight): the thread faults again once woken.
            .again => {},
            // Never leave a thread hanging: make the access trap instead.
            .failed => {
                state.record_guard_page(page);
                _ = sys.protect(dst, wasm_page_bytes, .none);
            },
        }
        _ = uffd.wake(self.fd, dst, wasm_page_bytes);
    }
};

/// Fills `[dst, dst + len)` without waking anyone: the caller wakes the whole wasm page.
fn fill(fd: i32, dst: [*]u8, src: ?[*]const u8, len: u64) uffd.Resolve {
    if (src) |s| return uffd.copy_mode(fd, dst, s, len, .dont_wake);
    return uffd.zeropage_mode(fd, dst, len, .dont_wake);
}
