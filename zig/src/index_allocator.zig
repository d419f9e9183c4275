//! The free list of instance slot indices. Not thread-safe by itself: the engine holds its
//! mutex around every call. Storage is allocated up front for `count` indices.

const std = @import("std");
const assert = std.debug.assert;

pub const Strategy = enum(u32) {
    /// Reuse the most recently freed slot: its pages are the most likely to still be warm.
    next_available = 0,
    /// Pick a free slot uniformly at random: a tenant cannot predict its neighbour.
    random = 1,
};

pub const IndexAllocator = struct {
    strategy: Strategy,
    /// free[0..free_count] are the free indices; the most recently freed is last.
    free: []u32,
    free_count: u32,
    /// Whether an index is currently handed out, to catch double frees.
    in_use: []bool,
    prng: std.Random.DefaultPrng,

    pub fn init(
        allocator: std.mem.Allocator,
        count: u32,
        strategy: Strategy,
        seed: u64,
    ) error{OutOfMemory}!IndexAllocator {
        assert(count > 0);
        const free = try allocator.alloc(u32, count);
        errdefer allocator.free(free);
        const in_use = try allocator.alloc(bool, count);
        @memset(in_use, false);
        // Reversed, so that next-available hands out 0, 1, 2, ... on a fresh pool.
        for (free, 0..) |*slot, i| slot.* = count - 1 - @as(u32, @intCast(i));
        return .{
            .strategy = strategy,
            .free = free,
            .free_count = count,
            .in_use = in_use,
            .prng = std.Random.DefaultPrng.init(seed),
        };
    }

    pub fn deinit(self: *IndexAllocator, allocator: std.mem.Allocator) void {
        allocator.free(self.free);
        allocator.free(self.in_use);
        self.* = undefined;
    }

    pub fn capacity(self: *const IndexAllocator) u32 {
        return @intCast(self.free.len);
    }

    pub fn live_count(self: *const IndexAllocator) u32 {
        return self.capacity() - self.free_count;
    }

    /// Returns a free index, or null when every index is in use.
    pub fn alloc(self: *IndexAllocator) ?u32 {
        if (self.free_count == 0) return null;
        const position: u32 = switch (self.strategy) {
            .next_available => self.free_count - 1,
            .random => self.prng.random().uintLessThan(u32, self.free_count),
        };
        const index = self.free[position];
        // Swap-remove: order among the remaining free indices only matters for the last one.
        self.free[position] = self.free[self.free_count - 1];
        self.free_count -= 1;
        assert(!self.in_use[index]);
        self.in_use[index] = true;
        return index;
    }

    pub fn release(self: *IndexAllocator, index: u32) void {
        assert(index < self.capacity());
        assert(self.in_use[index]);
        assert(self.free_count < self.capacity());
        self.in_use[index] = false;
        self.free[self.free_count] = index;
        self.free_count += 1;
    }
};

const testing = std.testing;

test "next-available hands out ascending indices, then reuses the most recently freed" {
    var ia = try IndexAllocator.init(testing.allocator, 4, .next_available, 0);
    defer ia.deinit(testing.allocator);
    try testing.expectEqual(@as(?u32, 0), ia.alloc());
    try testing.expectEqual(@as(?u32, 1), ia.alloc());
    try testing.expectEqual(@as(?u32, 2), ia.alloc());
    ia.release(1);
    ia.release(0);
    try testing.expectEqual(@as(?u32, 0), ia.alloc());
    try testing.expectEqual(@as(?u32, 1), ia.alloc());
    try testing.expectEqual(@as(?u32, 3), ia.alloc());
    try testing.expectEqual(@as(?u32, null), ia.alloc());
    try testing.expectEqual(@as(u32, 4), ia.live_count());
}

test "random hands out every index exactly once and covers the pool" {
    const count = 64;
    var ia = try IndexAllocator.init(testing.allocator, count, .random, 42);
    defer ia.deinit(testing.allocator);
    var seen = [_]bool{false} ** count;
    var in_order = true;
    for (0..count) |i| {
        const index = ia.alloc().?;
        try testing.expect(!seen[index]);
        seen[index] = true;
        if (index != i) in_order = false;
    }
    try testing.expectEqual(@as(?u32, null), ia.alloc());
    try testing.expect(!in_order);
    // After freeing all, a long run of alloc/release visits every slot.
    for (0..count) |i| ia.release(@intCast(i));
    var visited = [_]bool{false} ** count;
    for (0..count * 50) |_| {
        const index = ia.alloc().?;
        visited[index] = true;
        ia.release(index);
    }
    for (visited) |v| try testing.expect(v);
}
