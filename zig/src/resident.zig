//! Keep-resident reset: instead of dropping a memory's first pages (after which the next
//! tenant's first write to each costs a page fault), write zeros over the ones that are
//! populated, found through /proc/self/pagemap. Pages that are not populated already read zero.

const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const sys = @import("sys.zig");

const present_bit: u64 = 1 << 63;
const swapped_bit: u64 = 1 << 62;
/// Pagemap entries read per system call.
const batch_pages = 512;

/// Opens /proc/self/pagemap, or returns null where it cannot be read (then every reset writes
/// zeros over the whole keep-resident region, which is always correct).
pub fn open_pagemap() ?i32 {
    const rc = linux.open("/proc/self/pagemap", .{ .ACCMODE = .RDONLY, .CLOEXEC = true }, 0);
    const signed: isize = @bitCast(rc);
    if (signed < 0) return null;
    return @intCast(rc);
}

pub fn close_pagemap(fd: i32) void {
    _ = linux.close(fd);
}

/// Makes `[base, base + size_bytes)` read zero, keeping its populated pages resident.
/// A swapped-out page is not resident but holds data: it is zeroed too (written, so swapped in).
pub fn zero_resident(pagemap_fd: ?i32, base: [*]u8, size_bytes: u64) void {
    assert(@intFromPtr(base) % sys.page_size_bytes == 0);
    assert(size_bytes % sys.page_size_bytes == 0);
    const fd = pagemap_fd orelse return @memset(base[0..size_bytes], 0);
    const pages = size_bytes / sys.page_size_bytes;
    var entries: [batch_pages]u64 = undefined;
    var done: u64 = 0;
    while (done < pages) {
        const n: usize = @intCast(@min(batch_pages, pages - done));
        const first_page = @intFromPtr(base) / sys.page_size_bytes + done;
        const rc = linux.pread(fd, @ptrCast(&entries), n * 8, @intCast(first_page * 8));
        const chunk = base + done * sys.page_size_bytes;
        if (rc != n * 8) {
            @memset(chunk[0 .. n * sys.page_size_bytes], 0);
        } else {
            zero_populated(chunk, entries[0..n]);
        }
        done += n;
    }
}

/// Writes zeros over each run of populated pages.
fn zero_populated(base: [*]u8, entries: []const u64) void {
    var i: usize = 0;
    while (i < entries.len) {
        if (entries[i] & (present_bit | swapped_bit) == 0) {
            i += 1;
            continue;
        }
        const start = i;
        while (i < entries.len and entries[i] & (present_bit | swapped_bit) != 0) i += 1;
        @memset(base[start * sys.page_size_bytes .. i * sys.page_size_bytes], 0);
    }
}

test "zero_resident zeroes written pages and leaves untouched ones unpopulated" {
    var errno: sys.Errno = 0;
    const size_bytes = 16 * sys.page_size_bytes;
    const base = sys.map_read_write(size_bytes, &errno).?;
    defer sys.unmap(base, size_bytes);
    base[0] = 1;
    base[5 * sys.page_size_bytes + 9] = 2;
    base[15 * sys.page_size_bytes] = 3;
    const fd = open_pagemap();
    defer if (fd) |f| close_pagemap(f);
    zero_resident(fd, base, size_bytes);
    try std.testing.expect(std.mem.allEqual(u8, base[0..size_bytes], 0));
    if (fd) |f| {
        // Reading pages 1..4 above populated them (zero page); page 0 stays resident and zero.
        var entry: u64 = 0;
        _ = linux.pread(f, @ptrCast(&entry), 8, @intCast(@intFromPtr(base) / sys.page_size_bytes * 8));
        try std.testing.expect(entry & present_bit != 0);
    }
    // Without pagemap, the whole region is written with zeros.
    base[7] = 9;
    zero_resident(null, base, size_bytes);
    try std.testing.expectEqual(@as(u8, 0), base[7]);
}
