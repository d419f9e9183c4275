//! One linear memory: its place in the address space, its size, and protect_linear_memory,
//! which keeps exactly `[0, pages * 64 KiB)` read-write and the rest of the reservation
//! PROT_NONE, so that any access past the end traps on a guard page. In mprotect mode the
//! memory may start with a module's image mapped copy-on-write over `[0, image.size_bytes)`
//! (image.zig); `image` names the one mapped, and `prepare` maps another in its place.
//!
//!     reservation: | image (CoW, rw) | anonymous rw | PROT_NONE guard ...            |
//!                  0          image.size   accessible_bytes                reservation_bytes

const std = @import("std");
const assert = std.debug.assert;
const sys = @import("sys.zig");
const image_mod = @import("image.zig");
const Image = image_mod.Image;

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
    /// The image this memory follows between tenants (null: zeros). mprotect mode: mapped over
    /// `[0, image.size_bytes)`. uffd mode: the one its first `kept_bytes` were restored to.
    /// Outlives a tenancy: a slot keeps its last module's image until another module's tenant
    /// (or that module's teardown) replaces it.
    image: ?*const Image = null,
    /// uffd mode: bytes at the start whose populated pages a reset kept, holding `image`.
    kept_bytes: u64 = 0,
    /// A mapping over this memory failed half way: what it holds is unknown until
    /// `restore_reservation` succeeds. Never handed to a tenant in this state.
    poisoned: bool = false,
    /// uffd mode: pages the handler filled during this tenancy (reset reads and clears it).
    uffd_faults: std.atomic.Value(u32) = .init(0),

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

    /// Which mapping `prepare` was making when it failed.
    pub const MapStep = enum(u32) { protect = 0, map_image = 1, map_anonymous = 2, decommit = 3 };

    pub const MapFailure = struct { step: MapStep, errno: sys.Errno };

    /// mprotect mode: makes the memory start with `image` (null: anonymous zeros) before a
    /// tenant of a module gets it. Nothing to do when it already does (module affinity);
    /// otherwise the old image's range beyond the new one becomes anonymous memory again and
    /// the new image is mapped, so nothing of the previous module remains. Must follow a reset:
    /// whatever the last tenant wrote is already gone. Returns whether a mapping changed.
    /// On failure the memory is `poisoned`.
    /// uffd mode: the pages a reset kept hold the old image: they are dropped, for the handler
    /// (or the prefetch) to fill from the new one.
    pub fn prepare(self: *MemoryState, image: ?*const Image, failure: *MapFailure) error{MapFailed}!bool {
        assert(!self.poisoned);
        if (self.image == image) return false;
        if (self.mode == .uffd) {
            if (sys.decommit(self.base, self.kept_bytes)) |errno| {
                self.poisoned = true;
                failure.* = .{ .step = .decommit, .errno = errno };
                return error.MapFailed;
            }
            self.kept_bytes = 0;
            self.image = image;
            return true;
        }
        const old_bytes = if (self.image) |i| i.size_bytes else 0;
        const new_bytes = if (image) |i| i.size_bytes else 0;
        assert(new_bytes <= self.reservation_bytes);
        if (old_bytes > new_bytes) {
            // The old image lies within what its tenant could access: keep it read-write.
            assert(old_bytes <= self.accessible_bytes);
            if (sys.map_anonymous_fixed(self.base + new_bytes, old_bytes - new_bytes, .read_write)) |errno| {
                self.poisoned = true;
                failure.* = .{ .step = .map_anonymous, .errno = errno };
                return error.MapFailed;
            }
        }
        if (image) |i| {
            if (i.map(self.base)) |errno| {
                self.poisoned = true;
                failure.* = .{ .step = .map_image, .errno = errno };
                return error.MapFailed;
            }
            self.accessible_bytes = @max(self.accessible_bytes, new_bytes);
        }
        self.image = image;
        return true;
    }

    /// uffd mode: drops the kept pages at or above `size_bytes`, so that no page of the memory
    /// is present beyond the size of its next tenant (the handler makes an access there trap
    /// only where a page is missing). On failure the memory is `poisoned`.
    pub fn trim_kept(self: *MemoryState, size_bytes: u64, failure: *MapFailure) error{MapFailed}!void {
        assert(self.mode == .uffd);
        if (self.kept_bytes <= size_bytes) return;
        if (sys.decommit(self.base + size_bytes, self.kept_bytes - size_bytes)) |errno| {
            self.poisoned = true;
            failure.* = .{ .step = .decommit, .errno = errno };
            return error.MapFailed;
        }
        self.kept_bytes = size_bytes;
    }

    /// Gives the memory back clean: every byte it ever exposed reads as the image it starts
    /// with (zeros without one) for the next tenant. The first `keep_resident_bytes` are
    /// restored in place (image.zig's `reset`) and only the rest is dropped. In uffd mode the
    /// dropped pages are missing again, for the handler (or the next prefetch) to fill.
    pub fn reset(self: *MemoryState, keep_resident_bytes: u64, pagemap_fd: ?i32) ?sys.Errno {
        assert(!self.poisoned);
        if (self.mode == .uffd) {
            // Pages only grow within a tenancy, so [0, pages) is all it can have filled, besides
            // the pages the last reset kept (the tenant may have been smaller, even of size 0).
            // The pool's uffd range is MADV_DONTFORK and MADV_UNMERGEABLE and never remapped: a
            // shared page there is the zero page.
            const used_bytes = @max(self.byte_length(), self.kept_bytes);
            const decommit_errno = image_mod.reset(self.image, self.base, used_bytes, keep_resident_bytes, pagemap_fd, .are_zero);
            self.kept_bytes = if (decommit_errno == null) image_mod.kept_bytes(used_bytes, keep_resident_bytes) else 0;
            const restore_errno = self.restore_guard_pages();
            self.pages.store(0, .release);
            self.max_pages = 0;
            return decommit_errno orelse restore_errno;
        }
        const errno = image_mod.reset(self.image, self.base, self.accessible_bytes, keep_resident_bytes, pagemap_fd, .may_hold_data);
        self.pages.store(0, .release);
        self.max_pages = 0;
        return errno;
    }

    /// The way back from a failed reset or `prepare`, in either mode: `drop_all` (uffd) or
    /// `restore_reservation` (mprotect). On success the memory holds nothing of anyone.
    pub fn recover(self: *MemoryState) ?sys.Errno {
        return switch (self.mode) {
            .uffd => self.drop_all(),
            .mprotect => self.restore_reservation(),
        };
    }

    /// uffd mode: drops every page of the registered range and restores the pages the handler
    /// protected: the way back from a failed `prepare` or `trim_kept`. On success the memory
    /// holds nothing of anyone and is no longer poisoned.
    pub fn drop_all(self: *MemoryState) ?sys.Errno {
        assert(self.mode == .uffd);
        if (sys.decommit(self.base, self.accessible_bytes)) |errno| return errno;
        if (self.restore_guard_pages()) |errno| return errno;
        self.kept_bytes = 0;
        self.image = null;
        self.poisoned = false;
        self.pages.store(0, .release);
        self.max_pages = 0;
        return null;
    }

    /// mprotect mode: makes the whole reservation fresh PROT_NONE anonymous memory, as a pool
    /// slot starts: the way back from a failed reset or a failed `prepare`. On success the
    /// memory holds nothing of anyone and is no longer poisoned.
    pub fn restore_reservation(self: *MemoryState) ?sys.Errno {
        assert(self.mode == .mprotect);
        if (sys.map_anonymous_fixed(self.base, self.reservation_bytes, .none)) |errno| {
            self.poisoned = true;
            return errno;
        }
        self.accessible_bytes = 0;
        self.image = null;
        self.poisoned = false;
        self.pages.store(0, .release);
        self.max_pages = 0;
        return null;
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
