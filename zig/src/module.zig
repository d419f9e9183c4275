//! A translated module as the native side keeps it: the blob the TypeScript side builds once
//! per module (memory and table types, data and element segments), copied ("boxed") into
//! native memory and checked once, so instantiation reads it without further checks.
//!
//! Blob layout, little-endian, every offset in bytes from the start of the blob:
//!   Header
//!   MemoryDesc  × defined_memories
//!   TableDesc   × defined_tables
//!   DataDesc    × data_segments
//!   ElemDesc    × elem_segments
//!   payload: element entries (u32, 4-byte aligned), then data bytes

const std = @import("std");
const assert = std.debug.assert;
const image_mod = @import("image.zig");
const Image = image_mod.Image;
const WorkingSet = @import("working_set.zig").WorkingSet;
const AffineList = @import("index_allocator.zig").AffineList;

pub const magic: u32 = 0x424d5057; // "WPMB"
pub const version: u32 = 1;

pub const Header = extern struct {
    magic: u32,
    version: u32,
    blob_bytes: u32,
    imported_memories: u32,
    defined_memories: u32,
    imported_tables: u32,
    defined_tables: u32,
    imported_globals: u32,
    data_segments: u32,
    elem_segments: u32,
    reserved: [6]u32,
};

pub const MemoryDesc = extern struct { min_pages: u32, max_pages: u32 };
pub const TableDesc = extern struct { min_elements: u32, max_elements: u32 };

pub const OffsetKind = enum(u32) {
    constant = 0,
    /// The offset is the value of imported global `offset_value`, given in the scratch area.
    imported_global = 1,
    _,
};

pub const DataDesc = extern struct {
    memory_index: u32,
    offset_kind: OffsetKind,
    offset_value: u32,
    bytes_offset: u32,
    bytes_len: u32,
    reserved: u32,
};

pub const ElemDesc = extern struct {
    table_index: u32,
    offset_kind: OffsetKind,
    offset_value: u32,
    entries_offset: u32,
    entries_count: u32,
    reserved: u32,
};

/// What the engine's allocator allows; a blob beyond them is refused.
pub const Limits = struct {
    memories: u32,
    tables: u32,
    memory_pages: u32,
    table_elements: u32,
};

pub const Module = struct {
    blob: []align(8) u8,
    header: *const Header,
    memories: []const MemoryDesc,
    tables: []const TableDesc,
    data: []const DataDesc,
    elems: []const ElemDesc,
    /// Instances alive with this module; a module is destroyed only at zero.
    live_instances: std.atomic.Value(u32),
    /// Whether every data segment is in an image (`images`), so instantiation applies none.
    /// False: the module initializes its memories segment by segment.
    imaged: bool = false,
    /// Per defined memory: its initial image, or null where it starts as zeros (or where the
    /// module is not `imaged`).
    images: []?*Image = &.{},
    /// uffd mode: per defined memory, the pages its instances use (see working_set.zig).
    working_sets: []WorkingSet = &.{},
    /// The pool slots whose last tenant was this module; the engine's mutex guards it.
    affine_slots: AffineList = .{},

    /// The image of defined memory `memory`, or null.
    pub fn image(self: *const Module, memory: u32) ?*const Image {
        if (memory >= self.images.len) return null;
        return self.images[memory];
    }

    /// Bytes of data held by this module's images.
    pub fn image_bytes(self: *const Module) u64 {
        var total: u64 = 0;
        for (self.images) |maybe| {
            if (maybe) |i| total += i.data_bytes;
        }
        return total;
    }

    pub fn data_bytes(self: *const Module, desc: DataDesc) []const u8 {
        return self.blob[desc.bytes_offset..][0..desc.bytes_len];
    }

    pub fn elem_entries(self: *const Module, desc: ElemDesc) []const u32 {
        const bytes = self.blob[desc.entries_offset..][0 .. @as(usize, desc.entries_count) * 4];
        return @alignCast(std.mem.bytesAsSlice(u32, bytes));
    }
};

pub const BlobError = error{ Malformed, OutOfMemory };

/// Copies and checks a blob. Every count is bounded by the blob's own length before use.
pub fn create(allocator: std.mem.Allocator, bytes: []const u8, limits: Limits) BlobError!*Module {
    if (bytes.len < @sizeOf(Header) or bytes.len > std.math.maxInt(u32)) return error.Malformed;
    const blob = try allocator.alignedAlloc(u8, .@"8", bytes.len);
    errdefer allocator.free(blob);
    @memcpy(blob, bytes);
    const header: *const Header = @ptrCast(blob.ptr);
    if (header.magic != magic or header.version != version) return error.Malformed;
    if (header.blob_bytes != blob.len) return error.Malformed;

    var cursor: u64 = @sizeOf(Header);
    const memories = try take(MemoryDesc, blob, &cursor, header.defined_memories);
    const tables = try take(TableDesc, blob, &cursor, header.defined_tables);
    const data = try take(DataDesc, blob, &cursor, header.data_segments);
    const elems = try take(ElemDesc, blob, &cursor, header.elem_segments);

    if (header.defined_memories > limits.memories) return error.Malformed;
    if (header.defined_tables > limits.tables) return error.Malformed;
    for (memories) |m| {
        if (m.min_pages > m.max_pages or m.max_pages > limits.memory_pages) return error.Malformed;
    }
    for (tables) |t| {
        if (t.min_elements > t.max_elements or t.max_elements > limits.table_elements) {
            return error.Malformed;
        }
    }
    const memory_count = @as(u64, header.imported_memories) + header.defined_memories;
    for (data) |d| {
        if (d.memory_index >= memory_count) return error.Malformed;
        try check_offset(d.offset_kind, d.offset_value, header.imported_globals);
        if (@as(u64, d.bytes_offset) + d.bytes_len > blob.len) return error.Malformed;
    }
    const table_count = @as(u64, header.imported_tables) + header.defined_tables;
    for (elems) |e| {
        if (e.table_index >= table_count) return error.Malformed;
        try check_offset(e.offset_kind, e.offset_value, header.imported_globals);
        if (e.entries_offset % 4 != 0) return error.Malformed;
        if (@as(u64, e.entries_offset) + @as(u64, e.entries_count) * 4 > blob.len) {
            return error.Malformed;
        }
    }

    const module = try allocator.create(Module);
    module.* = .{
        .blob = blob,
        .header = header,
        .memories = memories,
        .tables = tables,
        .data = data,
        .elems = elems,
        .live_instances = std.atomic.Value(u32).init(0),
    };
    return module;
}

pub fn destroy(allocator: std.mem.Allocator, module: *Module) void {
    assert(module.live_instances.load(.acquire) == 0);
    assert(module.affine_slots.count == 0);
    for (module.images) |maybe| {
        if (maybe) |i| i.destroy(allocator);
    }
    if (module.images.len > 0) allocator.free(module.images);
    for (module.working_sets) |*ws| ws.deinit(allocator);
    if (module.working_sets.len > 0) allocator.free(module.working_sets);
    allocator.free(module.blob);
    allocator.destroy(module);
}

fn check_offset(kind: OffsetKind, value: u32, imported_globals: u32) BlobError!void {
    switch (kind) {
        .constant => {},
        .imported_global => if (value >= imported_globals) return error.Malformed,
        _ => return error.Malformed,
    }
}

fn take(comptime T: type, blob: []align(8) u8, cursor: *u64, count: u32) BlobError![]const T {
    comptime assert(@alignOf(T) <= 8 and @sizeOf(T) % 4 == 0);
    const size = @as(u64, count) * @sizeOf(T);
    if (cursor.* + size > blob.len) return error.Malformed;
    const start: usize = @intCast(cursor.*);
    cursor.* += size;
    const bytes = blob[start..][0..@intCast(size)];
    return @alignCast(std.mem.bytesAsSlice(T, bytes));
}

comptime {
    assert(@sizeOf(Header) == 64);
    assert(@sizeOf(DataDesc) == 24);
    assert(@sizeOf(ElemDesc) == 24);
}

const wasm_page_bytes: u64 = image_mod.wasm_page_bytes;

/// An image may cover at most this much memory that is not data (holes, which read as zeros
/// but become shared pages of the memfd once read), beyond twice its data: room for the 1 MiB
/// shadow stack that Rust and C toolchains put below the data, without letting a few bytes
/// spread over a large memory make a large image.
const image_slack_bytes: u64 = 1 << 20;

/// Whether the module's initial memories can be images: every data segment has a constant
/// offset into a defined memory and fits its initial size, and each memory's data reaches no
/// further than 1 MiB plus the larger of 1 MiB and twice its data bytes.
pub fn can_image(module: *const Module) bool {
    const h = module.header;
    for (module.data) |d| {
        if (d.offset_kind != .constant or d.memory_index < h.imported_memories) return false;
        const memory = module.memories[d.memory_index - h.imported_memories];
        const end = @as(u64, d.offset_value) + d.bytes_len;
        if (end > @as(u64, memory.min_pages) * wasm_page_bytes) return false;
    }
    for (0..h.defined_memories) |m| {
        const index = h.imported_memories + @as(u32, @intCast(m));
        var data_bytes: u64 = 0;
        var extent_bytes: u64 = 0;
        for (module.data) |d| {
            if (d.memory_index != index or d.bytes_len == 0) continue;
            data_bytes += d.bytes_len;
            extent_bytes = @max(extent_bytes, @as(u64, d.offset_value) + d.bytes_len);
        }
        if (extent_bytes > image_slack_bytes + @max(image_slack_bytes, 2 * data_bytes)) return false;
    }
    return true;
}

/// Builds the image of every defined memory that has data, applying the segments in order as
/// instantiation would; on success the module is `imaged`.
pub fn build_images(allocator: std.mem.Allocator, module: *Module, failure: *image_mod.Failure) image_mod.CreateError!void {
    assert(can_image(module));
    assert(module.images.len == 0);
    const h = module.header;
    const images = try allocator.alloc(?*Image, h.defined_memories);
    @memset(images, null);
    errdefer {
        for (images) |maybe| {
            if (maybe) |i| i.destroy(allocator);
        }
        allocator.free(images);
    }
    for (images, 0..) |*slot, m| {
        const index = h.imported_memories + @as(u32, @intCast(m));
        var extent_bytes: u64 = 0;
        for (module.data) |d| {
            if (d.memory_index == index) extent_bytes = @max(extent_bytes, @as(u64, d.offset_value) + d.bytes_len);
        }
        if (extent_bytes == 0) continue;
        const contents = try allocator.alloc(u8, @intCast(extent_bytes));
        defer allocator.free(contents);
        @memset(contents, 0);
        for (module.data) |d| {
            if (d.memory_index != index) continue;
            @memcpy(contents[d.offset_value..][0..d.bytes_len], module.data_bytes(d));
        }
        slot.* = try Image.create(allocator, contents, failure);
    }
    module.images = images;
    module.imaged = true;
}

/// uffd mode: a working set per defined memory, up to its maximum size.
pub fn build_working_sets(allocator: std.mem.Allocator, module: *Module) error{OutOfMemory}!void {
    assert(module.working_sets.len == 0);
    const sets = try allocator.alloc(WorkingSet, module.memories.len);
    var built: usize = 0;
    errdefer {
        for (sets[0..built]) |*ws| ws.deinit(allocator);
        allocator.free(sets);
    }
    for (sets, module.memories) |*ws, desc| {
        ws.* = try WorkingSet.init(allocator, @as(u64, desc.max_pages) * wasm_page_bytes);
        built += 1;
    }
    module.working_sets = sets;
}
