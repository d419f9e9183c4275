//! uffd mode: the pages a module's instances use, recorded so that each new instance gets them
//! at instantiation, in a few ioctls from the instantiating thread, instead of one round trip
//! to the handler thread per page (5-80 µs each on a VM). Only the pages off that usual path
//! still reach the handler.
//!
//! Learning costs nothing on the usual path. The handler records the host page each fault asked
//! for, or the whole wasm page when part of it was there already (the instance uses more of it
//! than was recorded); and a tenancy that took a fault has its private pages read from pagemap
//! when it is reset (one pread per 512 host pages): pages filled from the image, and pages
//! outside the image's data that were written. Prefetching copies the first from the image,
//! the second from zeros (so they are writable at once), and maps the zero page at the others.
//! A pattern converges in two tenancies. The record only grows, and is bounded by the memory's
//! maximum size: a module whose instances touch different pages every time ends up
//! prefetching their union.
//!
//! The invariant kept: prefetching is an optimization only. Whatever it fails to fill (an ioctl
//! refused, a page already there) is missing, and the handler serves it on first touch.

const std = @import("std");
const assert = std.debug.assert;
const sys = @import("sys.zig");
const uffd = @import("uffd.zig");
const resident = @import("resident.zig");
const Image = @import("image.zig").Image;

const host_page_bytes: u64 = sys.page_size_bytes;
const Word = std.atomic.Value(u64);

/// Bytes of the read-only zero region that zero-filled copies come from.
pub const zero_source_bytes: u64 = 1 << 20;

const Action = enum { skip, copy_image, copy_zeros, zero_page };

pub const WorkingSet = struct {
    /// One bit per host page of `[0, host_pages)`: asked for in a fault, or private at the end
    /// of a tenancy that took one.
    populated: []Word,
    /// Of those, the pages outside the image's data that held a private (written) page.
    private: []Word,
    host_pages: u64,
    /// One past the highest page ever recorded: prefetch scans no further (0: none yet).
    end_page: std.atomic.Value(u64) = .init(0),

    pub fn init(allocator: std.mem.Allocator, max_bytes: u64) error{OutOfMemory}!WorkingSet {
        assert(max_bytes % host_page_bytes == 0);
        const host_pages = max_bytes / host_page_bytes;
        const words: usize = @intCast((host_pages + 63) / 64);
        const all = try allocator.alloc(Word, 2 * words);
        for (all) |*w| w.* = .init(0);
        return .{ .populated = all[0..words], .private = all[words..], .host_pages = host_pages };
    }

    pub fn deinit(self: *WorkingSet, allocator: std.mem.Allocator) void {
        allocator.free(self.populated.ptr[0 .. 2 * self.populated.len]);
        self.* = undefined;
    }

    /// Records the populated pages of `[base, base + used_bytes)` at the end of a tenancy.
    /// Safe from several threads at once (atomic ORs).
    pub fn learn(self: *WorkingSet, image: ?*const Image, pagemap_fd: ?i32, base: [*]const u8, used_bytes: u64) void {
        // Without pagemap every page would read as written: recording that would prefetch
        // everything. Learn nothing instead.
        if (pagemap_fd == null) return;
        const pages = @min(used_bytes / host_page_bytes, self.host_pages);
        var entries: [resident.batch_pages]u64 = undefined;
        var done: u64 = 0;
        while (done < pages) {
            const n: usize = @intCast(@min(resident.batch_pages, pages - done));
            resident.read_entries(pagemap_fd, base + done * host_page_bytes, entries[0..n]);
            for (entries[0..n], 0..) |entry, i| {
                const page = done + i;
                switch (resident.classify(entry)) {
                    // A shared page is the zero page the handler mapped; only the ones it was
                    // asked for are recorded, by `record`.
                    .absent, .file, .shared => continue,
                    .private => {
                        set(self.populated, page);
                        const in_data = if (image) |im| im.holds_data(page * host_page_bytes) else false;
                        if (!in_data) set(self.private, page);
                    },
                }
                _ = self.end_page.fetchMax(page + 1, .monotonic);
            }
            done += n;
        }
    }

    /// Records host pages `[first, first + count)` as used (the handler calls it for the pages
    /// a fault asked for). Safe from any thread.
    pub fn record(self: *WorkingSet, first: u64, count: u64) void {
        const end = @min(first + count, self.host_pages);
        var page = first;
        while (page < end) : (page += 1) set(self.populated, page);
        if (end > first) _ = self.end_page.fetchMax(end, .monotonic);
    }

    /// Fills the recorded pages of `[from_bytes, to_bytes)` of the memory at `base` (registered
    /// with `uffd_fd`, its pages missing) from the image, or with zeros. Returns the bytes filled.
    pub fn prefetch(
        self: *const WorkingSet,
        uffd_fd: i32,
        image: ?*const Image,
        base: [*]u8,
        from_bytes: u64,
        to_bytes: u64,
        zero_source: [*]const u8,
    ) u64 {
        assert(from_bytes % host_page_bytes == 0 and to_bytes % host_page_bytes == 0);
        const end = @min(to_bytes / host_page_bytes, self.end_page.load(.monotonic));
        var page = from_bytes / host_page_bytes;
        var filled_bytes: u64 = 0;
        while (page < end) {
            // Skip whole words of pages never recorded.
            if (page % 64 == 0 and self.populated[@intCast(page / 64)].load(.monotonic) == 0) {
                page += 64;
                continue;
            }
            const action = self.action_of(image, page);
            if (action == .skip) {
                page += 1;
                continue;
            }
            const first = page;
            page += 1;
            while (page < end and self.action_of(image, page) == action) page += 1;
            const offset = first * host_page_bytes;
            const len = (page - first) * host_page_bytes;
            filled_bytes += fill(uffd_fd, base + offset, len, action, if (image) |im| im.view + offset else zero_source, zero_source);
        }
        return filled_bytes;
    }

    fn action_of(self: *const WorkingSet, image: ?*const Image, page: u64) Action {
        if (!get(self.populated, page)) return .skip;
        if (image) |im| {
            if (im.holds_data(page * host_page_bytes)) return .copy_image;
        }
        if (get(self.private, page)) return .copy_zeros;
        return .zero_page;
    }
};

/// One run of pages with the same action; on a refusal, page by page. Returns the bytes filled.
fn fill(fd: i32, dst: [*]u8, len: u64, action: Action, image_src: [*]const u8, zero_source: [*]const u8) u64 {
    if (fill_run(fd, dst, len, action, image_src, zero_source) == .done) return len;
    var filled: u64 = 0;
    var at: u64 = 0;
    while (at < len) : (at += host_page_bytes) {
        if (fill_run(fd, dst + at, host_page_bytes, action, image_src + at, zero_source) == .done) {
            filled += host_page_bytes;
        }
    }
    return filled;
}

fn fill_run(fd: i32, dst: [*]u8, len: u64, action: Action, image_src: [*]const u8, zero_source: [*]const u8) uffd.Resolve {
    switch (action) {
        .skip => unreachable,
        .copy_image => return uffd.copy_mode(fd, dst, image_src, len, .dont_wake),
        .zero_page => return uffd.zeropage_mode(fd, dst, len, .dont_wake),
        .copy_zeros => {
            var at: u64 = 0;
            while (at < len) {
                const n = @min(len - at, zero_source_bytes);
                const result = uffd.copy_mode(fd, dst + at, zero_source, n, .dont_wake);
                if (result != .done) return result;
                at += n;
            }
            return .done;
        },
    }
}

fn set(words: []Word, page: u64) void {
    const mask = @as(u64, 1) << @intCast(page % 64);
    const word = &words[@intCast(page / 64)];
    if (word.load(.monotonic) & mask == 0) _ = word.fetchOr(mask, .monotonic);
}

fn get(words: []const Word, page: u64) bool {
    const mask = @as(u64, 1) << @intCast(page % 64);
    return words[@intCast(page / 64)].load(.monotonic) & mask != 0;
}
