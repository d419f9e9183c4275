//! One table: a vector of u32 entries, each a function index plus one (0 is a null reference,
//! so memory that reads zero is a table of nulls).

const std = @import("std");
const assert = std.debug.assert;
const sys = @import("sys.zig");

pub const entry_bytes: u64 = @sizeOf(u32);
pub const null_entry: u32 = 0;

/// Below this many bytes a reset writes zeros (the page is resident and stays so); above it,
/// the pages are dropped instead of touched.
const reset_memset_limit_bytes: u64 = 4096;

pub const TableState = struct {
    entries: [*]align(sys.page_size_bytes) u32,
    capacity_elements: u32,
    size_elements: u32,
    max_elements: u32,

    pub fn init(entries: [*]align(sys.page_size_bytes) u32, capacity_elements: u32) TableState {
        return .{
            .entries = entries,
            .capacity_elements = capacity_elements,
            .size_elements = 0,
            .max_elements = 0,
        };
    }

    /// Grows by `delta`; returns the old size, or null when past `max_elements`.
    pub fn grow(self: *TableState, delta: u32) ?u32 {
        const old = self.size_elements;
        const new = @as(u64, old) + delta;
        if (new > self.max_elements) return null;
        assert(new <= self.capacity_elements);
        self.size_elements = @intCast(new);
        return old;
    }

    /// Gives the table back with every entry null.
    pub fn reset(self: *TableState) ?sys.Errno {
        const used_bytes = @as(u64, self.size_elements) * entry_bytes;
        self.size_elements = 0;
        self.max_elements = 0;
        if (used_bytes <= reset_memset_limit_bytes) {
            @memset(self.entries[0 .. used_bytes / entry_bytes], null_entry);
            return null;
        }
        const rounded_bytes = sys.round_up_to_page(used_bytes).?;
        return sys.decommit(@ptrCast(self.entries), rounded_bytes);
    }
};

test "table grow and reset" {
    var errno: sys.Errno = 0;
    const capacity_bytes = 4 * sys.page_size_bytes;
    const base = sys.map_read_write(capacity_bytes, &errno).?;
    defer sys.unmap(base, capacity_bytes);
    const capacity: u32 = @intCast(capacity_bytes / entry_bytes);
    var table = TableState.init(@ptrCast(base), capacity);
    table.max_elements = capacity;
    try std.testing.expectEqual(@as(?u32, 0), table.grow(10));
    table.entries[9] = 5;
    try std.testing.expectEqual(@as(?u32, null), table.grow(capacity));
    try std.testing.expectEqual(@as(?u32, 10), table.grow(capacity - 10));
    table.entries[capacity - 1] = 6;
    try std.testing.expectEqual(@as(?sys.Errno, null), table.reset());
    try std.testing.expectEqual(null_entry, table.entries[9]);
    try std.testing.expectEqual(null_entry, table.entries[capacity - 1]);
}
