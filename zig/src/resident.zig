//! /proc/self/pagemap, for resets that keep pages resident: which pages of a range are
//! populated, and whether each is still the file's page (an image page never written) or a
//! private one (written, or copied in). Pages that are not populated read as zero or as the
//! file beneath; a populated private page holds whatever its tenant wrote.
//! The invariant kept: a reader that cannot read pagemap treats every page as populated and
//! private, which makes every caller write over the whole range: slower, never wrong.

const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const sys = @import("sys.zig");

const present_bit: u64 = 1 << 63;
const swapped_bit: u64 = 1 << 62;
/// A page of a file mapping (or shared anonymous memory), not a private copy.
const file_bit: u64 = 1 << 61;
/// Mapped by this mapping only: a private page, not the shared zero page.
const exclusive_bit: u64 = 1 << 56;
/// Pagemap entries read per system call.
pub const batch_pages = 512;

/// What one entry says about its page.
pub const Page = enum {
    /// Not populated: reads zero (anonymous) or the file beneath (a file mapping).
    absent,
    /// Populated by the page of the mapped file: an image page no one wrote.
    file,
    /// Populated by a private page that may hold data (written, copied in, or swapped out).
    private,
    /// Populated by a shared anonymous page: the zero page after a read, as a rule.
    shared,
};

pub fn classify(entry: u64) Page {
    if (entry & swapped_bit != 0) return .private;
    if (entry & present_bit == 0) return .absent;
    if (entry & file_bit != 0) return .file;
    if (entry & exclusive_bit != 0) return .private;
    return .shared;
}

/// What a reader that could not read pagemap assumes of every page.
pub const unknown_entry: u64 = present_bit | exclusive_bit;

/// Opens /proc/self/pagemap, or returns null where it cannot be read.
pub fn open_pagemap() ?i32 {
    const rc = linux.open("/proc/self/pagemap", .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0);
    const signed: isize = @bitCast(rc);
    if (signed < 0) return null;
    return @intCast(rc);
}

pub fn close_pagemap(fd: i32) void {
    _ = linux.close(fd);
}

/// Fills `entries` with the pagemap entries of the pages from `base` on; where pagemap cannot
/// be read, with `unknown_entry`.
pub fn read_entries(pagemap_fd: ?i32, base: [*]const u8, entries: []u64) void {
    assert(@intFromPtr(base) % sys.page_size_bytes == 0);
    assert(entries.len <= batch_pages);
    if (pagemap_fd) |fd| {
        const first_page = @intFromPtr(base) / sys.page_size_bytes;
        const rc = linux.pread(fd, @ptrCast(entries.ptr), entries.len * 8, @intCast(first_page * 8));
        if (rc == entries.len * 8) return;
    }
    @memset(entries, unknown_entry);
}
