//! One linear memory: its place in the address space, its size, and protect_linear_memory,
//! which keeps exactly `[0, pages * 64 KiB)` read-write and the rest of the reservation
//! PROT_NONE, so that any access past the end traps on a guard page.

const std = @import("std");
const assert = std.debug.assert;
const sys = @import("sys.zig");
const resident = @import("resident.zig");

pub const wasm_page_bytes: u64 = 64 * 1024;
pub const wasm_max_pages: u32 = 65536;

/// How a memory's bounds are enforced.
pub const Mode = enum {
    /// `[0, pages)` read-write, the rest PROT_NONE; a grow is an mprotect.
    mprotect,
    /// The whole of `[0, max)` stays read-write and registered with userfaultfd; the fault
    /// handler traps accesses at or above `pages` by protecting those pages on demand.
    uffd,
};

const no_guard_page: u32 = std.math.maxInt(u32);

pub const MemoryState = struct {
    base: [*]align(sys.page_size_bytes) u8,
    mode: Mode = .mprotect,
    /// uffd mode: the range of wasm pages the fault handler protected because they were
    /// touched at or above `pages`. Written by the handler thread, cleared on grow and reset.
    guard_low_page: std.atomic.Value(u32) = .init(no_guard_page),
    guard_high_page: std.atomic.Value(u32) = .init(0),
    reservation_bytes: u64,
    /// The read-write prefix of the reservation. Between tenants of a pool slot it may stay
    /// larger than `pages`: the next tenant's protect_linear_memory shrinks it, so a slot reused
    /// at the same size costs no mprotect at all.
    accessible_bytes: u64,
    /// The size a tenant sees. Atomic: a fault handler on another thread reads it lock-free.
    pages: std.atomic.Value(u32),
    /// The most this memory may grow to: the module's maximum within the engine's limits.
    max_pages: u32,

    pub fn init(base: [*]align(sys.page_size_bytes) u8, reservation_bytes: u64) MemoryState {
        assert(reservation_bytes % wasm_page_bytes == 0);
        return .{
            .base = base,
            .reservation_bytes = reservation_bytes,
            .accessible_bytes = 0,
            .pages = std.atomic.Value(u32).init(0),
            .max_pages = 0,
        };
    }

    pub fn byte_length(self: *const MemoryState) u64 {
        return @as(u64, self.pages.load(.acquire)) * wasm_page_bytes;
    }

    /// Makes exactly `[0, pages * 64 KiB)` read-write and everything after it PROT_NONE.
    /// In uffd mode the read-write part never changes; the handler enforces `pages`.
    pub fn protect_linear_memory(self: *MemoryState, pages: u32) ?sys.Errno {
        assert(pages <= self.max_pages);
        const target_bytes = @as(u64, pages) * wasm_page_bytes;
        assert(target_bytes <= self.reservation_bytes);
        if (self.mode == .uffd) {
            assert(target_bytes <= self.accessible_bytes);
            if (self.restore_guard_pages()) |errno| return errno;
            self.pages.store(pages, .release);
            return null;
        }
        if (target_bytes > self.accessible_bytes) {
            const start = self.base + self.accessible_bytes;
            if (sys.protect(start, target_bytes - self.accessible_bytes, .read_write)) |errno| {
                return errno;
            }
        } else if (target_bytes < self.accessible_bytes) {
            const start = self.base + target_bytes;
            if (sys.protect(start, self.accessible_bytes - target_bytes, .none)) |errno| {
                return errno;
            }
        }
        self.accessible_bytes = target_bytes;
        self.pages.store(pages, .release);
        return null;
    }

    /// Grows by `delta_pages`; returns the old size, or null when past `max_pages`.
    pub fn grow(self: *MemoryState, delta_pages: u32, out_errno: *sys.Errno) GrowResult {
        const old_pages = self.pages.load(.acquire);
        const new_pages = @as(u64, old_pages) + delta_pages;
        if (new_pages > self.max_pages) return .{ .past_maximum = old_pages };
        if (self.protect_linear_memory(@intCast(new_pages))) |errno| {
            out_errno.* = errno;
            return .{ .failed = old_pages };
        }
        return .{ .grown = old_pages };
    }

    pub const GrowResult = union(enum) {
        grown: u32,
        past_maximum: u32,
        failed: u32,
    };

    /// Gives the memory back clean: every byte it ever exposed reads zero for the next tenant.
    /// In mprotect mode the first `keep_resident_bytes` are zeroed in place (see resident.zig)
    /// and only the rest is dropped; in uffd mode everything is dropped, so that the handler
    /// serves the next tenant's image.
    pub fn reset(self: *MemoryState, keep_resident_bytes: u64, pagemap_fd: ?i32) ?sys.Errno {
        // uffd mode: pages only grow within a tenancy, so [0, pages) is all it can have filled.
        const used_bytes = if (self.mode == .uffd) self.byte_length() else self.accessible_bytes;
        const keep_bytes = if (self.mode == .uffd) 0 else @min(keep_resident_bytes, used_bytes);
        resident.zero_resident(pagemap_fd, self.base, keep_bytes);
        const decommit_errno = sys.decommit(self.base + keep_bytes, used_bytes - keep_bytes);
        const restore_errno = if (self.mode == .uffd) self.restore_guard_pages() else null;
        self.pages.store(0, .release);
        self.max_pages = 0;
        return decommit_errno orelse restore_errno;
    }

    /// Called by the fault handler for an access at `page` >= `pages`: remember it, so grow and
    /// reset make it read-write again.
    pub fn record_guard_page(self: *MemoryState, page: u32) void {
        _ = self.guard_low_page.fetchMin(page, .acq_rel);
        _ = self.guard_high_page.fetchMax(page, .acq_rel);
    }

    fn restore_guard_pages(self: *MemoryState) ?sys.Errno {
        const low = self.guard_low_page.swap(no_guard_page, .acq_rel);
        const high = self.guard_high_page.swap(0, .acq_rel);
        if (low == no_guard_page) return null;
        assert(low <= high);
        const start = self.base + @as(u64, low) * wasm_page_bytes;
        return sys.protect(start, (@as(u64, high - low) + 1) * wasm_page_bytes, .read_write);
    }
};

const testing = std.testing;

test "protect_linear_memory grows and shrinks the read-write prefix; reset zeroes" {
    var errno: sys.Errno = 0;
    const reservation_bytes = 8 * wasm_page_bytes;
    const base = sys.reserve(reservation_bytes, &errno).?;
    defer sys.unmap(base, reservation_bytes);
    var memory = MemoryState.init(base, reservation_bytes);
    memory.max_pages = 4;
    try testing.expectEqual(@as(?sys.Errno, null), memory.protect_linear_memory(2));
    try testing.expectEqual(@as(u64, 2 * wasm_page_bytes), memory.byte_length());
    base[2 * wasm_page_bytes - 1] = 0xaa;
    var grow_errno: sys.Errno = 0;
    try testing.expectEqual(MemoryState.GrowResult{ .grown = 2 }, memory.grow(2, &grow_errno));
    try testing.expectEqual(MemoryState.GrowResult{ .past_maximum = 4 }, memory.grow(1, &grow_errno));
    base[4 * wasm_page_bytes - 1] = 0xbb;
    try testing.expectEqual(@as(?sys.Errno, null), memory.reset(wasm_page_bytes, null));
    try testing.expectEqual(@as(u8, 0), base[2 * wasm_page_bytes - 1]);
    try testing.expectEqual(@as(u8, 0), base[4 * wasm_page_bytes - 1]);
    memory.max_pages = 4;
    try testing.expectEqual(@as(?sys.Errno, null), memory.protect_linear_memory(1));
    try testing.expectEqual(@as(u64, wasm_page_bytes), memory.accessible_bytes);
}
