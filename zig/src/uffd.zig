//! userfaultfd: the descriptor, the API handshake, registration and the resolving ioctls.
//! Every call returns the errno on failure; nothing here panics on a refusal by the kernel.

const std = @import("std");
const assert = std.debug.assert;
const linux = std.os.linux;
const sys = @import("sys.zig");

const uffd_api: u64 = 0xaa;
const ioctl_type: u8 = 0xaa;
const nr_register = 0x00;
const nr_wake = 0x02;
const nr_copy = 0x03;
const nr_zeropage = 0x04;
const nr_api = 0x3f;
const user_mode_only: usize = 1;
pub const event_pagefault: u8 = 0x12;
const register_mode_missing: u64 = 1;

pub const Range = extern struct { start: u64, len: u64 };
const Api = extern struct { api: u64, features: u64, ioctls: u64 };
const Register = extern struct { range: Range, mode: u64, ioctls: u64 };
const Copy = extern struct { dst: u64, src: u64, len: u64, mode: u64, copy: i64 };
const Zeropage = extern struct { range: Range, mode: u64, zeropage: i64 };

/// What the kernel writes for each event (struct uffd_msg).
pub const Message = extern struct {
    event: u8,
    reserved1: u8,
    reserved2: u16,
    reserved3: u32,
    flags: u64,
    address: u64,
    feature: u64,
};

comptime {
    assert(@sizeOf(Message) == 32);
    assert(@sizeOf(Copy) == 40);
}

/// Which step failed, for the error message.
pub const Step = enum(u32) { syscall = 1, api = 2, register = 3, thread = 4 };

pub const Failure = struct { step: Step, errno: sys.Errno };

fn errno_of(rc: usize) ?sys.Errno {
    const signed: isize = @bitCast(rc);
    if (signed > -4096 and signed < 0) return @intCast(-signed);
    return null;
}

/// Opens a userfaultfd and checks that the kernel speaks the API and offers what the handler
/// needs. Unprivileged, faults from user mode only are asked for first: that needs no sysctl on
/// kernels 5.11+, and every access wasmpool serves comes from user mode.
pub fn open(failure: *Failure) ?i32 {
    const flags: usize = @as(u32, @bitCast(linux.O{ .CLOEXEC = true, .NONBLOCK = true }));
    if (sys.injected_failure(.userfaultfd)) {
        failure.* = .{ .step = .syscall, .errno = @intFromEnum(linux.E.PERM) };
        return null;
    }
    var rc: usize = undefined;
    if (linux.geteuid() != 0) {
        rc = linux.syscall1(.userfaultfd, flags | user_mode_only);
        // EINVAL: a kernel before 5.11 does not know the flag; try the privileged form.
        if (errno_of(rc) == @intFromEnum(linux.E.INVAL)) rc = linux.syscall1(.userfaultfd, flags);
    } else {
        rc = linux.syscall1(.userfaultfd, flags);
    }
    if (errno_of(rc)) |errno| {
        failure.* = .{ .step = .syscall, .errno = errno };
        return null;
    }
    const fd: i32 = @intCast(rc);
    var api = Api{ .api = uffd_api, .features = 0, .ioctls = 0 };
    if (errno_of(linux.ioctl(fd, linux.IOCTL.IOWR(ioctl_type, nr_api, Api), @intFromPtr(&api)))) |errno| {
        _ = linux.close(fd);
        failure.* = .{ .step = .api, .errno = errno };
        return null;
    }
    const needed: u64 = (1 << nr_register) | (1 << 0x01) | (1 << nr_api);
    if (api.ioctls & needed != needed) {
        _ = linux.close(fd);
        failure.* = .{ .step = .api, .errno = @intFromEnum(linux.E.NOSYS) };
        return null;
    }
    return fd;
}

pub fn close(fd: i32) void {
    _ = linux.close(fd);
}

/// Registers `[base, base + len)` for missing-page faults and checks that COPY, ZEROPAGE and
/// WAKE can resolve them.
pub fn register(fd: i32, base: [*]u8, len: u64) ?sys.Errno {
    var reg = Register{
        .range = .{ .start = @intFromPtr(base), .len = len },
        .mode = register_mode_missing,
        .ioctls = 0,
    };
    if (errno_of(linux.ioctl(fd, linux.IOCTL.IOWR(ioctl_type, nr_register, Register), @intFromPtr(&reg)))) |errno| {
        return errno;
    }
    const needed: u64 = (1 << nr_wake) | (1 << nr_copy) | (1 << nr_zeropage);
    if (reg.ioctls & needed != needed) return @intFromEnum(linux.E.NOSYS);
    return null;
}

pub const Resolve = enum { done, exists, again, failed };

fn classify(rc: usize) Resolve {
    const errno = errno_of(rc) orelse return .done;
    return switch (errno) {
        @intFromEnum(linux.E.EXIST) => .exists,
        @intFromEnum(linux.E.AGAIN) => .again,
        else => .failed,
    };
}

/// Whether a resolving ioctl wakes the threads waiting on the range. Prefetching into a memory
/// no thread can be waiting on yet skips the wake.
pub const Wake = enum(u64) { wake = 0, dont_wake = 1 };

/// Copies `len` bytes from `src` into the missing pages at `dst`, waking the waiters or not.
pub fn copy_mode(fd: i32, dst: [*]u8, src: [*]const u8, len: u64, wake_mode: Wake) Resolve {
    var arg = Copy{ .dst = @intFromPtr(dst), .src = @intFromPtr(src), .len = len, .mode = @intFromEnum(wake_mode), .copy = 0 };
    return classify(linux.ioctl(fd, linux.IOCTL.IOWR(ioctl_type, nr_copy, Copy), @intFromPtr(&arg)));
}

/// Maps zero pages at the missing pages of `[dst, dst + len)`, waking the waiters or not.
pub fn zeropage_mode(fd: i32, dst: [*]u8, len: u64, wake_mode: Wake) Resolve {
    var arg = Zeropage{ .range = .{ .start = @intFromPtr(dst), .len = len }, .mode = @intFromEnum(wake_mode), .zeropage = 0 };
    return classify(linux.ioctl(fd, linux.IOCTL.IOWR(ioctl_type, nr_zeropage, Zeropage), @intFromPtr(&arg)));
}

/// Wakes the threads waiting on a fault in `[dst, dst + len)` without resolving it.
pub fn wake(fd: i32, dst: [*]u8, len: u64) Resolve {
    var arg = Range{ .start = @intFromPtr(dst), .len = len };
    return classify(linux.ioctl(fd, linux.IOCTL.IOR(ioctl_type, nr_wake, Range), @intFromPtr(&arg)));
}

/// Reads pending events into `messages`; returns how many (0 when none is pending).
pub fn read_messages(fd: i32, messages: []Message) usize {
    const rc = linux.read(fd, @ptrCast(messages.ptr), messages.len * @sizeOf(Message));
    if (errno_of(rc) != null) return 0;
    return rc / @sizeOf(Message);
}
