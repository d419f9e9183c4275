//! Live engines by id, so that another thread (a Worker) can attach to an engine by a number
//! that is safe to pass around: a stale or forged id finds nothing instead of freed memory.
//! An id is (generation << index_bits) | index; a slot's generation changes when it is freed.

const std = @import("std");
const assert = std.debug.assert;

pub const max_engines = 4096;
const index_bits = 12;
comptime {
    assert(max_engines == 1 << index_bits);
}

var mutex: std.Thread.Mutex = .{};
var slots: [max_engines]?*anyopaque = [_]?*anyopaque{null} ** max_engines;
var generations: [max_engines]u32 = [_]u32{1} ** max_engines;

/// Registers `engine`; returns its id, or null when `max_engines` are live.
pub fn add(engine: *anyopaque) ?u32 {
    mutex.lock();
    defer mutex.unlock();
    for (&slots, 0..) |*slot, i| {
        if (slot.* == null) {
            slot.* = engine;
            return (generations[i] << index_bits) | @as(u32, @intCast(i));
        }
    }
    return null;
}

pub fn remove(id: u32) void {
    mutex.lock();
    defer mutex.unlock();
    const i = id & (max_engines - 1);
    assert(slots[i] != null and generations[i] == id >> index_bits);
    slots[i] = null;
    generations[i] = (generations[i] + 1) & ((1 << (32 - index_bits)) - 1);
    if (generations[i] == 0) generations[i] = 1;
}

/// Calls `retain` on the engine with `id` while holding the registry's lock, so the engine
/// cannot be destroyed in between; returns it, or null for an unknown id.
pub fn find_and_retain(id: u32, retain: *const fn (*anyopaque) bool) ?*anyopaque {
    mutex.lock();
    defer mutex.unlock();
    const i = id & (max_engines - 1);
    const engine = slots[i] orelse return null;
    if (generations[i] != id >> index_bits) return null;
    if (!retain(engine)) return null;
    return engine;
}

test "ids are not reused across generations" {
    var a: u8 = 0;
    const id = add(&a).?;
    const always = struct {
        fn f(_: *anyopaque) bool {
            return true;
        }
    }.f;
    try std.testing.expect(find_and_retain(id, always) != null);
    remove(id);
    try std.testing.expect(find_and_retain(id, always) == null);
    const again = add(&a).?;
    try std.testing.expect(again != id);
    try std.testing.expect(find_and_retain(id, always) == null);
    remove(again);
}
