//! One memory's initial image: built once from the bytes of a module's data segments into a
//! sealed memfd, then mapped copy-on-write wherever a memory starts with it. It serves three
//! kinds of memory alike, since every operation here takes an address range, never a slot:
//! pool slots (mprotect mode), on-demand reservations, and memories another engine made
//! (a host `WebAssembly.Memory`), and it is the source the uffd handler copies pages from.
//!
//!     memory:  0                      size_bytes                    accessible end
//!              | image (MAP_PRIVATE of |  anonymous, zeros         | guard ...
//!              |  the memfd, CoW)      |                           |
//!     memfd:   [ data | hole | data ... ]  size_bytes, sealed; holes (all-zero host pages)
//!                                          store nothing
//!     view:    the memfd mapped shared and read-only: the source of copy-restores
//!
//! `size_bytes` is the non-zero extent of the initial memory rounded up to a 64 KiB wasm page,
//! so an image that reaches a memory's initial size covers it with one mapping.
//! The invariants kept: the memfd never changes after `create` (sealed against write, shrink
//! and grow); `data_pages` has a bit set exactly for the host pages that hold a non-zero byte,
//! and every other page of the memfd is a hole that reads zero.

const std = @import("std");
const assert = std.debug.assert;
const sys = @import("sys.zig");
const resident = @import("resident.zig");

pub const wasm_page_bytes: u64 = 64 * 1024;
const host_page_bytes: u64 = sys.page_size_bytes;

/// Which step of building an image failed, for the error message.
pub const Step = enum(u32) { memfd_create = 1, ftruncate = 2, write = 3, seal = 4, map_view = 5 };

pub const Failure = struct { step: Step, errno: sys.Errno };

pub const CreateError = error{ OutOfMemory, Failed };

pub const Image = struct {
    fd: i32,
    /// The memfd, mapped shared and read-only, `size_bytes` long.
    view: [*]align(sys.page_size_bytes) const u8,
    /// Bytes of memory the image covers from its start: a multiple of 64 KiB.
    size_bytes: u64,
    /// Bytes of the memfd that hold data (host pages with a non-zero byte).
    data_bytes: u64,
    /// One bit per host page of `[0, size_bytes)`: set when the page holds a non-zero byte.
    data_pages: std.DynamicBitSetUnmanaged,

    /// Builds the image of a memory whose initial contents are `contents` followed by zeros.
    /// Returns null when `contents` is all zeros: such a memory needs no image.
    pub fn create(allocator: std.mem.Allocator, contents: []const u8, failure: *Failure) CreateError!?*Image {
        const extent = nonzero_extent(contents);
        if (extent == 0) return null;
        const size_bytes = sys.round_up(extent, wasm_page_bytes).?;
        const host_pages: usize = @intCast(size_bytes / host_page_bytes);
        var data_pages = try std.DynamicBitSetUnmanaged.initEmpty(allocator, host_pages);
        errdefer data_pages.deinit(allocator);
        var data_bytes: u64 = 0;
        for (0..host_pages) |page| {
            const bytes = page_of(contents, page);
            if (!std.mem.allEqual(u8, bytes, 0)) {
                data_pages.set(page);
                data_bytes += host_page_bytes;
            }
        }

        var errno: sys.Errno = 0;
        const fd = sys.memfd_create("wasmpool-image", &errno) orelse {
            failure.* = .{ .step = .memfd_create, .errno = errno };
            return error.Failed;
        };
        errdefer sys.close(fd);
        if (sys.ftruncate(fd, size_bytes)) |e| {
            failure.* = .{ .step = .ftruncate, .errno = e };
            return error.Failed;
        }
        // Runs of data pages, written at once; zero pages stay holes.
        var page: usize = 0;
        while (page < host_pages) {
            if (!data_pages.isSet(page)) {
                page += 1;
                continue;
            }
            const first = page;
            while (page < host_pages and data_pages.isSet(page)) page += 1;
            const start = first * host_page_bytes;
            const end = @min(page * host_page_bytes, contents.len);
            if (sys.pwrite_all(fd, contents[start..end], start)) |e| {
                failure.* = .{ .step = .write, .errno = e };
                return error.Failed;
            }
        }
        if (sys.seal(fd)) |e| {
            failure.* = .{ .step = .seal, .errno = e };
            return error.Failed;
        }
        const view = sys.map_file_read_only(size_bytes, fd, &errno) orelse {
            failure.* = .{ .step = .map_view, .errno = errno };
            return error.Failed;
        };
        errdefer sys.unmap_const(view, size_bytes);
        const image = try allocator.create(Image);
        image.* = .{
            .fd = fd,
            .view = view,
            .size_bytes = size_bytes,
            .data_bytes = data_bytes,
            .data_pages = data_pages,
        };
        return image;
    }

    /// Closes the memfd and unmaps the view. Mappings of the image made with `map` keep its
    /// pages alive until they are unmapped or mapped over.
    pub fn destroy(self: *Image, allocator: std.mem.Allocator) void {
        sys.unmap_const(self.view, self.size_bytes);
        sys.close(self.fd);
        self.data_pages.deinit(allocator);
        allocator.destroy(self);
    }

    /// Maps the image copy-on-write, read-write, over `[base, base + size_bytes)`, replacing
    /// what was there. The caller owns that range and keeps it within its memory's
    /// accessible bytes: nothing is copied, every page reads the image until written.
    pub fn map(self: *const Image, base: [*]align(sys.page_size_bytes) u8) ?sys.Errno {
        assert(@intFromPtr(base) % host_page_bytes == 0);
        return sys.map_file_private_fixed(base, self.size_bytes, self.fd);
    }

    /// The source of `len_bytes` of the image at byte `offset`: the view where the first host
    /// page holds data, null where it reads zero (a hole, or past the image).
    pub fn source(self: *const Image, offset: u64) ?[*]const u8 {
        if (!self.holds_data(offset)) return null;
        return self.view + offset;
    }

    /// Whether the host page at byte `offset` holds data.
    pub fn holds_data(self: *const Image, offset: u64) bool {
        if (offset >= self.size_bytes) return false;
        return self.data_pages.isSet(@intCast(offset / host_page_bytes));
    }

    /// Whether any host page of `[offset, offset + len_bytes)` holds data.
    pub fn any_data(self: *const Image, offset: u64, len_bytes: u64) bool {
        return self.holds_data(offset) or Image.run_bytes(self, offset, len_bytes) < len_bytes;
    }

    /// The length of the run of host pages from `offset` (at most `len_bytes`) that all hold
    /// data, or all read zero, as the first does.
    pub fn run_bytes(image: ?*const Image, offset: u64, len_bytes: u64) u64 {
        assert(offset % host_page_bytes == 0 and len_bytes % host_page_bytes == 0);
        const self = image orelse return len_bytes;
        const data = self.holds_data(offset);
        var run: u64 = host_page_bytes;
        while (run < len_bytes and self.holds_data(offset + run) == data) run += host_page_bytes;
        return run;
    }
};

/// Writes the image's bytes (zeros past it, and where `image` is null) over
/// `[base + offset, base + offset + len_bytes)`: a copy-restore. Reads only data pages of the
/// view, never a hole, so the memfd gains no page.
pub fn restore_range(image: ?*const Image, base: [*]u8, offset: u64, len_bytes: u64) void {
    assert(@intFromPtr(base) % host_page_bytes == 0);
    assert(offset % host_page_bytes == 0 and len_bytes % host_page_bytes == 0);
    var at = offset;
    const end = offset + len_bytes;
    while (at < end) {
        const run = Image.run_bytes(image, at, end - at);
        const dst = base[at..][0..run];
        if (image) |i| {
            if (i.source(at)) |src| {
                @memcpy(dst, src[0..run]);
                at += run;
                continue;
            }
        }
        @memset(dst, 0);
        at += run;
    }
}

/// What a populated shared anonymous page of the range can be.
pub const SharedPages = enum {
    /// Anything: a page shared with a forked child, or merged by KSM, holds data.
    may_hold_data,
    /// The kernel's zero page only: the caller's mapping is MADV_DONTFORK and MADV_UNMERGEABLE
    /// and never remapped, so a shared anonymous page there reads zero and needs no restore
    /// where the image has no data.
    are_zero,
};

/// Returns `[base, base + used_bytes)`, a memory starting with `image` (mapped there with
/// `map`, or filled from it by a uffd handler; null: zeros), to its initial contents:
///   - of the first `keep_resident_bytes`, each populated page that may have been written is
///     restored by copy from the image (or zeroed), so that it stays resident and the next
///     tenant takes no fault on it; a page still the image's own file page is left alone (and
///     so is the zero page, where `shared` says a shared page can only be that);
///   - the rest is dropped with madvise(DONTNEED): image pages read the image again (or are
///     missing again, for a uffd handler to fill), the others zeros.
/// Returns the errno of the madvise, if it failed.
/// Preconditions: `base` and `used_bytes` host-page aligned; the caller owns the range; where
/// the image is mapped at `base`, it lies within the range (`size_bytes <= used_bytes`), so
/// that the madvise returns every written page of it to the image.
pub fn reset(
    image: ?*const Image,
    base: [*]align(sys.page_size_bytes) u8,
    used_bytes: u64,
    keep_resident_bytes: u64,
    pagemap_fd: ?i32,
    shared: SharedPages,
) ?sys.Errno {
    assert(@intFromPtr(base) % host_page_bytes == 0);
    assert(used_bytes % host_page_bytes == 0);
    const keep_bytes = kept_bytes(used_bytes, keep_resident_bytes);
    restore_populated(image, base, keep_bytes, pagemap_fd, shared);
    return sys.decommit(base + keep_bytes, used_bytes - keep_bytes);
}

/// The bytes `reset` keeps resident of a memory of `used_bytes`.
pub fn kept_bytes(used_bytes: u64, keep_resident_bytes: u64) u64 {
    return @min(sys.round_up(keep_resident_bytes, host_page_bytes) orelse used_bytes, used_bytes);
}

/// Restores the populated pages of `[base, base + size_bytes)` that may differ from the image,
/// found through pagemap (every page, where it cannot be read).
fn restore_populated(image: ?*const Image, base: [*]u8, size_bytes: u64, pagemap_fd: ?i32, shared: SharedPages) void {
    const pages = size_bytes / host_page_bytes;
    var entries: [resident.batch_pages]u64 = undefined;
    var done: u64 = 0;
    while (done < pages) {
        const n: usize = @intCast(@min(resident.batch_pages, pages - done));
        resident.read_entries(pagemap_fd, base + done * host_page_bytes, entries[0..n]);
        var i: usize = 0;
        while (i < n) {
            if (!needs_restore(entries[i], image, (done + i) * host_page_bytes, shared)) {
                i += 1;
                continue;
            }
            const start = i;
            while (i < n and needs_restore(entries[i], image, (done + i) * host_page_bytes, shared)) i += 1;
            restore_range(image, base, (done + start) * host_page_bytes, (i - start) * host_page_bytes);
        }
        done += n;
    }
}

fn needs_restore(entry: u64, image: ?*const Image, offset: u64, shared: SharedPages) bool {
    return switch (resident.classify(entry)) {
        .absent, .file => false,
        .private => true,
        .shared => switch (shared) {
            .may_hold_data => true,
            .are_zero => if (image) |i| i.holds_data(offset) else false,
        },
    };
}

fn nonzero_extent(contents: []const u8) u64 {
    var end = contents.len;
    while (end > 0 and contents[end - 1] == 0) end -= 1;
    return end;
}

fn page_of(contents: []const u8, page: usize) []const u8 {
    const start = page * host_page_bytes;
    if (start >= contents.len) return &.{};
    return contents[start..@min(start + host_page_bytes, contents.len)];
}

const testing = std.testing;

fn test_contents(allocator: std.mem.Allocator) ![]u8 {
    // 3 wasm pages: data in host page 0, a hole, data spanning host pages 20..21, zeros after.
    const contents = try allocator.alloc(u8, 2 * wasm_page_bytes + 100);
    @memset(contents, 0);
    @memcpy(contents[10..15], "hello");
    @memset(contents[20 * host_page_bytes - 3 ..][0..6], 0xab);
    contents[contents.len - 1] = 0x77;
    return contents;
}

test "create: extent rounded to 64 KiB, holes for zero pages, sealed" {
    const contents = try test_contents(testing.allocator);
    defer testing.allocator.free(contents);
    var failure: Failure = undefined;
    const image = (try Image.create(testing.allocator, contents, &failure)).?;
    defer image.destroy(testing.allocator);
    try testing.expectEqual(@as(u64, 3 * wasm_page_bytes), image.size_bytes);
    try testing.expect(image.holds_data(0));
    try testing.expect(!image.holds_data(host_page_bytes));
    try testing.expect(image.holds_data(19 * host_page_bytes));
    try testing.expect(image.holds_data(20 * host_page_bytes));
    try testing.expectEqual(@as(u64, 4 * host_page_bytes), image.data_bytes);
    try testing.expectEqualStrings("hello", image.view[10..15]);
    // Sealed: no write, no resize.
    try testing.expect(sys.pwrite_all(image.fd, "x", 0) != null);
    try testing.expect(sys.ftruncate(image.fd, 0) != null);
    try testing.expectEqual(@as(?*Image, null), try Image.create(testing.allocator, &[_]u8{ 0, 0, 0 }, &failure));
}

test "map, write, reset with and without keep-resident: back to the image" {
    const contents = try test_contents(testing.allocator);
    defer testing.allocator.free(contents);
    var failure: Failure = undefined;
    const image = (try Image.create(testing.allocator, contents, &failure)).?;
    defer image.destroy(testing.allocator);
    var errno: sys.Errno = 0;
    const used_bytes = 4 * wasm_page_bytes;
    const base = sys.map_read_write(used_bytes, &errno).?;
    defer sys.unmap(base, used_bytes);
    try testing.expectEqual(@as(?sys.Errno, null), image.map(base));
    const pagemap = resident.open_pagemap();
    defer if (pagemap) |fd| resident.close_pagemap(fd);
    for ([_]u64{ 0, host_page_bytes, 64 * 1024, used_bytes }) |keep| {
        try testing.expectEqualStrings("hello", base[10..15]);
        try testing.expectEqual(@as(u8, 0x77), base[contents.len - 1]);
        base[11] = 'a'; // an image data page
        base[5 * host_page_bytes] = 1; // an image hole
        base[3 * wasm_page_bytes + 5] = 2; // past the image
        try testing.expectEqual(@as(?sys.Errno, null), reset(image, base, used_bytes, keep, pagemap, .may_hold_data));
        try testing.expect(std.mem.eql(u8, contents, base[0..contents.len]));
        try testing.expect(std.mem.allEqual(u8, base[contents.len..used_bytes], 0));
    }
    // The view is untouched by the tenants' writes.
    try testing.expectEqualStrings("hello", image.view[10..15]);
}

test "an injected memfd_create failure is reported with its step" {
    const contents = try test_contents(testing.allocator);
    defer testing.allocator.free(contents);
    var failure: Failure = undefined;
    sys.inject_failures(.memfd_create, 1);
    try testing.expectError(error.Failed, Image.create(testing.allocator, contents, &failure));
    try testing.expectEqual(Step.memfd_create, failure.step);
    const image = (try Image.create(testing.allocator, contents, &failure)).?;
    image.destroy(testing.allocator);
}
