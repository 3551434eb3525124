//! The serve loop of `kernels/ringbridge.cuh`, exercised through the host
//! fallback: the same source the GPU runs, as a block of one thread.
//!
//! Moved out of `src/kernels.rs`; it drives the fallback's C entry points
//! directly, through the `#[doc(hidden)]` test-support module
//! `ringbridge::fallback::ffi`.

use core::ffi::c_void;
use ringbridge::fallback::ffi::{self, RawHandlerFn};
use ringbridge::kernels::{
    BAD_CHECK_INTERVAL, BAD_CONTROL, BAD_FORMAT, BAD_H2K, BAD_K2H, BAD_STRIPES,
    DETAIL_REPLY_TOO_LONG, ERR_REPLY_TOO_LONG, SCALE_ERR_BAD_LEN,
};
use ringbridge::layout::{
    CONTROL_BLOCK_SIZE, ControlBlock, ERR_BAD_MAGIC, ERR_HANDLER, ERR_HANDLER_PANICKED,
    ERR_RING_CORRUPTED, KIND_ERROR, KIND_REPLY, KIND_REQUEST, LAYOUT_VERSION, MAGIC,
    MESSAGE_HEADER_SIZE, MessageHeader, RING_HEADER_SIZE, RingHeader, STATUS_FAILED,
    STATUS_LAUNCHING, STATUS_RUNNING, STATUS_STOPPED,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[repr(C, align(128))]
struct Line([AtomicU64; 16]);

/// Control block, H2K ring and K2H ring in one 128-byte aligned region.
struct Region {
    lines: Vec<Line>,
    h2k: usize,
    k2h: usize,
    h2k_slot: usize,
    k2h_slot: usize,
    h2k_cap: u64,
    k2h_cap: u64,
}

impl Region {
    fn new(h2k_cap: u64, h2k_slot: usize, k2h_cap: u64, k2h_slot: usize) -> Arc<Self> {
        let h2k = CONTROL_BLOCK_SIZE;
        let k2h = h2k + RING_HEADER_SIZE + h2k_cap as usize * h2k_slot;
        let bytes = k2h + RING_HEADER_SIZE + k2h_cap as usize * k2h_slot;
        let lines = (0..bytes.div_ceil(128))
            .map(|_| Line(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        let r = Self {
            lines,
            h2k,
            k2h,
            h2k_slot,
            k2h_slot,
            h2k_cap,
            k2h_cap,
        };
        r.ctl(ringbridge::word_of!(ControlBlock, magic))
            .store(MAGIC, Relaxed);
        r.ctl(ringbridge::word_of!(ControlBlock, version))
            .store(LAYOUT_VERSION, Relaxed);
        r.ctl(ringbridge::word_of!(ControlBlock, check_interval))
            .store(64, Relaxed);
        r.ctl(ringbridge::word_of!(ControlBlock, stripes))
            .store(1, Relaxed);
        for (base, cap, slot) in [(h2k, h2k_cap, h2k_slot), (k2h, k2h_cap, k2h_slot)] {
            let w = |f: usize| r.word(base / 8 + f);
            w(ringbridge::word_of!(RingHeader, magic)).store(MAGIC, Relaxed);
            w(ringbridge::word_of!(RingHeader, version)).store(LAYOUT_VERSION, Relaxed);
            w(ringbridge::word_of!(RingHeader, capacity)).store(cap, Relaxed);
            w(ringbridge::word_of!(RingHeader, mask)).store(cap - 1, Relaxed);
            w(ringbridge::word_of!(RingHeader, slot_size)).store(slot as u64, Relaxed);
        }
        Arc::new(r)
    }
    fn word(&self, i: usize) -> &AtomicU64 {
        &self.lines[i / 16].0[i % 16]
    }
    fn ctl(&self, field: usize) -> &AtomicU64 {
        self.word(field)
    }
    fn ring(&self, base: usize, field: usize) -> &AtomicU64 {
        self.word(base / 8 + field)
    }
    fn base(&self) -> *mut u8 {
        self.lines.as_ptr() as *mut u8
    }
    fn slot_word(&self, base: usize, slot: usize, mask: u64, pos: u64, w: usize) -> &AtomicU64 {
        self.word((base + RING_HEADER_SIZE + (pos & mask) as usize * slot) / 8 + w)
    }
    fn status(&self) -> u64 {
        self.ctl(ringbridge::word_of!(ControlBlock, status))
            .load(Acquire)
    }
    /// The kernel's (consumed, produced) progress words. Relaxed: read
    /// after the serve loop returned (the join orders them).
    fn progress(&self) -> (u64, u64) {
        (
            self.ctl(ringbridge::word_of!(ControlBlock, consumed))
                .load(Relaxed),
            self.ctl(ringbridge::word_of!(ControlBlock, produced))
                .load(Relaxed),
        )
    }
    fn error(&self) -> (u64, u64) {
        (
            self.ctl(ringbridge::word_of!(ControlBlock, error_code))
                .load(Relaxed),
            self.ctl(ringbridge::word_of!(ControlBlock, error_detail))
                .load(Relaxed),
        )
    }

    /// Writes request `pos` (seq = pos unless `seq` is given) and publishes it.
    fn send(&self, pos: u64, flags: u32, payload: &[u8], seq: Option<u64>) {
        let head = self.ring(self.h2k, ringbridge::word_of!(RingHeader, head));
        let tail = self.ring(self.h2k, ringbridge::word_of!(RingHeader, tail));
        while pos - tail.load(Acquire) >= self.h2k_cap {
            std::thread::yield_now();
        }
        let w = |i| self.slot_word(self.h2k, self.h2k_slot, self.h2k_cap - 1, pos, i);
        w(0).store(seq.unwrap_or(pos), Relaxed);
        w(1).store(0x1234, Relaxed);
        w(2).store(
            u64::from(KIND_REQUEST) | (payload.len() as u64) << 32,
            Relaxed,
        );
        w(3).store(u64::from(flags), Relaxed);
        for (i, chunk) in payload.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            w(4 + i).store(u64::from_le_bytes(b), Relaxed);
        }
        head.store(pos + 1, Release);
    }

    /// Waits for reply `pos`, reads it and frees its slot.
    fn recv(&self, pos: u64) -> (MessageHeader, Vec<u8>) {
        let head = self.ring(self.k2h, ringbridge::word_of!(RingHeader, head));
        let tail = self.ring(self.k2h, ringbridge::word_of!(RingHeader, tail));
        let deadline = Instant::now() + Duration::from_secs(10);
        while head.load(Acquire) <= pos {
            assert!(
                Instant::now() < deadline,
                "no reply {pos}; status {}",
                self.status()
            );
            std::thread::yield_now();
        }
        let w = |i| {
            self.slot_word(self.k2h, self.k2h_slot, self.k2h_cap - 1, pos, i)
                .load(Relaxed)
        };
        let h = MessageHeader {
            seq: w(0),
            correlation: w(1),
            kind: w(2) as u32,
            len: (w(2) >> 32) as u32,
            flags: w(3) as u32,
            reserved: (w(3) >> 32) as u32,
        };
        let len = (h.len as usize).min(self.k2h_slot - MESSAGE_HEADER_SIZE);
        let mut p: Vec<u8> = (0..len.div_ceil(8))
            .flat_map(|i| w(4 + i).to_le_bytes())
            .collect();
        p.truncate(len);
        tail.store(pos + 1, Release);
        (h, p)
    }

    fn serve(self: &Arc<Self>, id: u32, f: Option<RawHandlerFn>) -> JoinHandle<i32> {
        let r = Arc::clone(self);
        std::thread::spawn(move || {
            let b = r.base();
            // SAFETY: the region is 128-byte aligned, laid out by `new`,
            // and kept alive by `r` until the call returns.
            unsafe {
                ffi::host_serve(
                    b.cast(),
                    b.add(r.h2k).cast(),
                    b.add(r.k2h).cast(),
                    id,
                    f,
                    core::ptr::null_mut(),
                    0,
                )
            }
        })
    }

    fn stop(&self, t: JoinHandle<i32>) -> i32 {
        self.ctl(ringbridge::word_of!(ControlBlock, terminate))
            .store(1, Relaxed);
        t.join().unwrap()
    }

    fn wait_status(&self, want: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status() != want {
            assert!(
                Instant::now() < deadline,
                "status {} != {want}",
                self.status()
            );
            std::thread::yield_now();
        }
    }
}

impl Region {
    /// Switches both rings to lane format (call before `serve`).
    fn lanes(self: Arc<Self>) -> Arc<Self> {
        for base in [self.h2k, self.k2h] {
            self.ring(base, ringbridge::word_of!(RingHeader, format))
                .store(ringbridge::layout::FORMAT_LANES, Relaxed);
        }
        self
    }
    /// (data, tag) words of lane `k` of the slot of `pos`.
    fn lane(
        &self,
        base: usize,
        slot: usize,
        cap: u64,
        pos: u64,
        k: usize,
    ) -> (&AtomicU64, &AtomicU64) {
        (
            self.slot_word(base, slot, cap - 1, pos, 2 * k),
            self.slot_word(base, slot, cap - 1, pos, 2 * k + 1),
        )
    }
    /// Writes lane `k` of the slot of request `pos`: data, then (release)
    /// the tag of position field `seq` (`seq - 1` is the position it
    /// claims) with the check of `data`.
    fn put_lane(&self, pos: u64, k: usize, data: u64, seq: u64) {
        self.put_lane_raw(pos, k, data, ringbridge::layout::lane_tag(seq - 1, data));
    }
    /// Writes lane `k` of the slot of request `pos` with this exact tag.
    fn put_lane_raw(&self, pos: u64, k: usize, data: u64, tag: u64) {
        let (d, t) = self.lane(self.h2k, self.h2k_slot, self.h2k_cap, pos, k);
        d.store(data, Relaxed);
        t.store(tag, Release);
    }
    /// The lanes of a request, lane 0 first.
    fn request_lanes(flags: u32, payload: &[u8]) -> Vec<(usize, u64)> {
        let mut v = vec![(
            0,
            ringbridge::layout::lane_header_word(KIND_REQUEST, payload.len() as u32, flags),
        )];
        for (i, c) in payload.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            v.push((1 + i, u64::from_le_bytes(b)));
        }
        v
    }
    fn send_lanes(&self, pos: u64, flags: u32, payload: &[u8]) {
        let tail = self.ring(self.h2k, ringbridge::word_of!(RingHeader, tail));
        while pos - tail.load(Acquire) >= self.h2k_cap {
            std::thread::yield_now();
        }
        for (k, data) in Self::request_lanes(flags, payload) {
            self.put_lane(pos, k, data, pos + 1);
        }
    }
    /// Reply `pos` if it is whole (every lane carries `lane_tag(pos, data)`).
    fn try_recv_lanes(&self, pos: u64) -> Option<(u32, u32, u32, Vec<u8>)> {
        let read = |k: usize| {
            let (d, t) = self.lane(self.k2h, self.k2h_slot, self.k2h_cap, pos, k);
            let tag = t.load(Acquire);
            let data = d.load(Relaxed);
            (tag == ringbridge::layout::lane_tag(pos, data)).then_some(data)
        };
        let (kind, len, flags) = ringbridge::layout::lane_header_fields(read(0)?);
        let mut p = Vec::new();
        for k in 1..=(len as usize).div_ceil(8) {
            p.extend_from_slice(&read(k)?.to_le_bytes());
        }
        p.truncate(len as usize);
        Some((kind, len, flags, p))
    }
    fn recv_lanes(&self, pos: u64) -> (u32, u32, u32, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.try_recv_lanes(pos) {
                self.ring(self.k2h, ringbridge::word_of!(RingHeader, tail))
                    .store(pos + 1, Release);
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no reply {pos}; status {}",
                self.status()
            );
            std::thread::yield_now();
        }
    }
}

#[test]
fn lane_echo_round_trips_over_many_laps() {
    let r = Region::new(8, 128, 4, 128).lanes();
    let t = r.serve(ffi::HANDLER_ECHO, None);
    r.wait_status(STATUS_RUNNING);
    let max = ringbridge::layout::lane_max_payload(128);
    let mut next = 0;
    for pos in 0..2000u64 {
        let len = (pos as usize * 5) % (max + 1);
        r.send_lanes(pos, pos as u32 ^ 0x55, &payload(pos, len));
        while pos >= next + 3 {
            let want_len = (next as usize * 5) % (max + 1);
            let want: Vec<u8> = payload(next, want_len)
                .iter()
                .map(|b| b.wrapping_add(1))
                .collect();
            assert_eq!(
                r.recv_lanes(next),
                (KIND_REPLY, want_len as u32, next as u32 ^ 0x55, want),
                "reply {next}"
            );
            next += 1;
        }
    }
    while next < 2000 {
        r.recv_lanes(next);
        next += 1;
    }
    assert_eq!(r.stop(t), STATUS_STOPPED as i32);
    assert_eq!(r.progress(), (2000, 2000));
}

#[test]
fn lane_loop_serves_only_whole_requests() {
    let r = Region::new(2, 128, 2, 128).lanes();
    let t = r.serve(ffi::HANDLER_ECHO, None);
    r.wait_status(STATUS_RUNNING);
    // Lap 0: two full requests; a short one at position 2 leaves lanes
    // 2.. of slot 0 with lap 0's tag 1.
    for pos in 0..3 {
        let len = if pos == 2 { 3 } else { 56 };
        r.send_lanes(pos, 0, &payload(pos, len));
        assert_eq!(r.recv_lanes(pos).3.len(), len);
    }
    // Position 4 (slot 0, two laps after tag 1), written lane by lane,
    // header first: no reply until the last lane lands.
    r.send_lanes(3, 0, b"");
    r.recv_lanes(3);
    let p = payload(4, 56);
    let lanes = Region::request_lanes(9, &p);
    for &(k, data) in &lanes {
        std::thread::sleep(Duration::from_millis(5));
        assert!(r.try_recv_lanes(4).is_none(), "a torn request was served");
        assert_eq!(r.status(), STATUS_RUNNING);
        r.put_lane(4, k, data, 5);
    }
    let want: Vec<u8> = p.iter().map(|b| b.wrapping_add(1)).collect();
    assert_eq!(r.recv_lanes(4), (KIND_REPLY, 56, 9, want));
    assert_eq!(r.stop(t), STATUS_STOPPED as i32);
}

#[test]
fn lane_corruption_fails_the_loop() {
    type Spoil = fn(&Region);
    let cases: [(&str, Spoil); 4] = [
        ("tag from the future", |r| {
            r.put_lane(
                0,
                0,
                ringbridge::layout::lane_header_word(KIND_REQUEST, 0, 0),
                5,
            )
        }),
        ("payload lane not congruent", |r| {
            r.put_lane(0, 1, 0, 2);
            r.put_lane(
                0,
                0,
                ringbridge::layout::lane_header_word(KIND_REQUEST, 8, 0),
                1,
            );
        }),
        ("len beyond the slot", |r| {
            r.put_lane(
                0,
                0,
                ringbridge::layout::lane_header_word(KIND_REQUEST, 57, 0),
                1,
            )
        }),
        ("unknown kind", |r| {
            r.put_lane(
                0,
                0,
                ringbridge::layout::lane_header_word(KIND_REPLY, 0, 0),
                1,
            )
        }),
    ];
    for (what, spoil) in cases {
        let r = Region::new(4, 128, 4, 128).lanes();
        let t = r.serve(ffi::HANDLER_ECHO, None);
        r.wait_status(STATUS_RUNNING);
        spoil(&r);
        assert_eq!(t.join().unwrap(), STATUS_FAILED as i32, "{what}");
        assert_eq!(r.error(), (ERR_RING_CORRUPTED, 0), "{what}");
    }
}

/// A lane with the current position whose check does not match its data
/// (what a 16-byte access seen in two pieces looks like) is never
/// served: the loop polls it again, serves it once the lane is whole,
/// and fails with RING_CORRUPTED when it stays torn.
#[test]
fn lane_loop_never_serves_a_torn_lane() {
    let r = Region::new(4, 128, 4, 128).lanes();
    let t = r.serve(ffi::HANDLER_ECHO, None);
    r.wait_status(STATUS_RUNNING);
    let p = payload(0, 16);
    let lanes = Region::request_lanes(2, &p);
    // Lane 2's tag is the current one for the real data, but the data
    // word still holds what an earlier write left (0): torn.
    let (k, data) = lanes[2];
    r.put_lane_raw(0, k, 0, ringbridge::layout::lane_tag(0, data));
    r.put_lane(0, lanes[1].0, lanes[1].1, 1);
    r.put_lane(0, 0, lanes[0].1, 1);
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(2));
        assert!(r.try_recv_lanes(0).is_none(), "a torn request was served");
    }
    // The second half lands: whole, served.
    r.put_lane(0, k, data, 1);
    let want: Vec<u8> = p.iter().map(|b| b.wrapping_add(1)).collect();
    assert_eq!(r.recv_lanes(0), (KIND_REPLY, 16, 2, want));
    // A lane that stays torn is corruption.
    let (k, data) = Region::request_lanes(0, b"x")[1];
    r.put_lane_raw(1, k, data ^ 1, ringbridge::layout::lane_tag(1, data));
    r.put_lane(1, 0, Region::request_lanes(0, b"x")[0].1, 2);
    assert_eq!(t.join().unwrap(), STATUS_FAILED as i32);
    assert_eq!(r.error(), (ERR_RING_CORRUPTED, 1));
}

#[test]
fn lane_format_mismatch_is_refused() {
    let r = Region::new(4, 64, 4, 64);
    r.ring(r.h2k, ringbridge::word_of!(RingHeader, format))
        .store(ringbridge::layout::FORMAT_LANES, Relaxed);
    assert_eq!(
        r.serve(ffi::HANDLER_ECHO, None).join().unwrap(),
        STATUS_FAILED as i32
    );
    assert_eq!(r.error(), (ERR_BAD_MAGIC, BAD_FORMAT));
    let r = Region::new(4, 1024, 4, 1024).lanes();
    assert_eq!(
        r.serve(ffi::HANDLER_ECHO, None).join().unwrap(),
        STATUS_FAILED as i32
    );
    assert_eq!(r.error(), (ERR_BAD_MAGIC, BAD_FORMAT));
}

#[test]
fn lane_callback_fatal_publishes_the_replies_before_it() {
    unsafe extern "C" fn fatal_on_flag(
        _ctx: *mut c_void,
        input: *const MessageHeader,
        in_payload: *const u8,
        out: *mut MessageHeader,
        out_payload: *mut u8,
        _cap: u32,
    ) -> i32 {
        // SAFETY: the serve loop passes valid headers and buffers of at
        // least `len` bytes (rounded up to 16) for the call's duration.
        unsafe {
            if (*input).flags == 3 {
                return -7;
            }
            let len = (*input).len as usize;
            core::ptr::copy_nonoverlapping(in_payload, out_payload, len);
            (*out).len = len as u32;
        }
        0
    }
    let r = Region::new(8, 64, 8, 64).lanes();
    // All five requests are there before the loop starts: one batch.
    for pos in 0..5u64 {
        r.send_lanes(pos, pos as u32, &payload(pos, 9));
    }
    let t = r.serve(ffi::HANDLER_CALLBACK, Some(fatal_on_flag));
    assert_eq!(t.join().unwrap(), STATUS_FAILED as i32);
    assert_eq!(r.error(), (ERR_HANDLER, 7));
    for pos in 0..3 {
        assert_eq!(r.try_recv_lanes(pos).unwrap().3, payload(pos, 9));
    }
    assert!(r.try_recv_lanes(3).is_none());
    assert!(r.try_recv_lanes(4).is_none());
    assert_eq!(
        r.ring(r.h2k, ringbridge::word_of!(RingHeader, tail))
            .load(Acquire),
        3
    );
}

fn payload(pos: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (pos as usize * 7 + i * 13) as u8)
        .collect()
}

#[test]
fn echo_round_trips_over_many_laps() {
    let r = Region::new(8, 128, 4, 128);
    let t = r.serve(ffi::HANDLER_ECHO, None);
    r.wait_status(STATUS_RUNNING);
    let max = 128 - MESSAGE_HEADER_SIZE;
    let mut next_recv = 0;
    for pos in 0..300u64 {
        let len = (pos as usize * 5) % (max + 1);
        r.send(pos, pos as u32 ^ 0x55, &payload(pos, len), None);
        // Keep up to 3 in flight: the loop batches and the ring wraps.
        while pos >= next_recv + 3 {
            let (h, p) = r.recv(next_recv);
            let want_len = (next_recv as usize * 5) % (max + 1);
            assert_eq!(h.seq, next_recv);
            assert_eq!(h.correlation, next_recv);
            assert_eq!(h.kind, KIND_REPLY);
            assert_eq!(h.len as usize, want_len);
            assert_eq!(h.flags, next_recv as u32 ^ 0x55);
            assert_eq!(h.reserved, 0);
            let want: Vec<u8> = payload(next_recv, want_len)
                .iter()
                .map(|b| b.wrapping_add(1))
                .collect();
            assert_eq!(p, want, "reply {next_recv}");
            next_recv += 1;
        }
    }
    while next_recv < 300 {
        assert_eq!(r.recv(next_recv).0.seq, next_recv);
        next_recv += 1;
    }
    assert_eq!(r.stop(t), STATUS_STOPPED as i32);
    assert_eq!(r.status(), STATUS_STOPPED);
    assert_eq!(r.progress(), (300, 300));
    assert!(
        r.ctl(ringbridge::word_of!(ControlBlock, heartbeat))
            .load(Relaxed)
            > 0
    );
}

#[test]
fn echo_bytes_wrap() {
    let r = Region::new(4, 64, 4, 64);
    let t = r.serve(ffi::HANDLER_ECHO, None);
    let all: Vec<u8> = (0..32).map(|i| 255 - i as u8 * 8).collect();
    r.send(0, 0, &all, None);
    let (_, p) = r.recv(0);
    assert_eq!(p, all.iter().map(|b| b.wrapping_add(1)).collect::<Vec<_>>());
    assert_eq!(r.stop(t), STATUS_STOPPED as i32);
}

#[test]
fn scale_multiplies_and_rejects_odd_lengths() {
    let r = Region::new(4, 256, 4, 256);
    r.ctl(ringbridge::word_of!(ControlBlock, param))
        .store(u64::from((-2.5f32).to_bits()), Relaxed);
    let t = r.serve(ffi::HANDLER_SCALE_F32, None);
    let xs = [1.0f32, -3.25, 1e-40, f32::MAX, 0.1, 7.0, -0.0];
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    r.send(0, 9, &bytes, None);
    let (h, p) = r.recv(0);
    assert_eq!((h.kind, h.len, h.flags), (KIND_REPLY, 28, 9));
    let ys: Vec<u32> = p
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let want: Vec<u32> = xs.iter().map(|x| (x * -2.5).to_bits()).collect();
    assert_eq!(ys, want);
    r.send(1, 9, &[1, 2, 3, 4, 5], None);
    let (h, p) = r.recv(1);
    assert_eq!(
        (h.kind, h.len, h.flags, h.correlation),
        (KIND_ERROR, 0, SCALE_ERR_BAD_LEN, 1)
    );
    assert!(p.is_empty());
    assert_eq!(r.stop(t), STATUS_STOPPED as i32);
}

#[test]
fn full_k2h_is_back_pressure_not_loss() {
    let r = Region::new(16, 64, 2, 64);
    let t = r.serve(ffi::HANDLER_ECHO, None);
    for pos in 0..16 {
        r.send(pos, 0, &[pos as u8; 4], None);
    }
    std::thread::sleep(Duration::from_millis(50));
    let k2h_head = r
        .ring(r.k2h, ringbridge::word_of!(RingHeader, head))
        .load(Acquire);
    assert_eq!(k2h_head, 2, "the kernel must stop at a full K2H ring");
    assert_eq!(r.status(), STATUS_RUNNING);
    for pos in 0..16 {
        let (h, p) = r.recv(pos);
        assert_eq!((h.seq, h.correlation), (pos, pos));
        assert_eq!(p, vec![pos as u8 + 1; 4]);
    }
    assert_eq!(r.stop(t), STATUS_STOPPED as i32);
}

#[test]
fn reply_larger_than_k2h_slot_is_an_error_reply() {
    let r = Region::new(4, 256, 4, 64);
    let t = r.serve(ffi::HANDLER_ECHO, None);
    r.send(0, 0, &[1; 100], None);
    let (h, _) = r.recv(0);
    assert_eq!(
        (h.kind, h.flags, h.len),
        (KIND_ERROR, ERR_REPLY_TOO_LONG, 0)
    );
    assert_eq!(r.stop(t), STATUS_STOPPED as i32);
}

#[test]
fn terminate_stops_an_idle_backed_off_loop_promptly() {
    let r = Region::new(4, 64, 4, 64);
    r.ctl(ringbridge::word_of!(ControlBlock, check_interval))
        .store(1 << 30, Relaxed);
    let t = r.serve(ffi::HANDLER_ECHO, None);
    std::thread::sleep(Duration::from_millis(300)); // well into the sleeping phase
    let start = Instant::now();
    assert_eq!(r.stop(t), STATUS_STOPPED as i32);
    assert!(
        start.elapsed() < Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
}

unsafe extern "C" fn reverse_or_code(
    _ctx: *mut c_void,
    input: *const MessageHeader,
    in_payload: *const u8,
    out: *mut MessageHeader,
    out_payload: *mut u8,
    out_capacity: u32,
) -> i32 {
    // SAFETY: the serve loop passes valid header and payload pointers.
    unsafe {
        let h = *input;
        match h.flags {
            1 => return 77,
            2 => return -5,
            3 => return ffi::HANDLER_PANICKED,
            4 => {
                (*out).len = out_capacity + 1;
                return 0;
            }
            _ => {}
        }
        let inp = std::slice::from_raw_parts(in_payload, h.len as usize);
        let o = std::slice::from_raw_parts_mut(out_payload, out_capacity as usize);
        for (i, b) in inp.iter().rev().enumerate() {
            o[i] = *b;
        }
        (*out).len = h.len;
        (*out).flags = 0xF00D;
        0
    }
}

fn callback_until_fatal(flags: u32) -> Arc<Region> {
    let r = Region::new(4, 64, 4, 64);
    let t = r.serve(ffi::HANDLER_CALLBACK, Some(reverse_or_code));
    r.send(0, 0, &[1, 2, 3], None);
    let (h, p) = r.recv(0);
    assert_eq!(
        (h.kind, h.flags, &p[..]),
        (KIND_REPLY, 0xF00D, &[3u8, 2, 1][..])
    );
    r.send(1, 1, &[], None);
    let (h, _) = r.recv(1);
    assert_eq!(
        (h.kind, h.flags, h.len, h.seq, h.correlation),
        (KIND_ERROR, 77, 0, 1, 1)
    );
    r.send(2, flags, &[], None);
    assert_eq!(t.join().unwrap(), STATUS_FAILED as i32);
    assert_eq!(r.status(), STATUS_FAILED);
    // Nothing of the failing batch is published.
    assert_eq!(
        r.ring(r.k2h, ringbridge::word_of!(RingHeader, head))
            .load(Acquire),
        2
    );
    assert_eq!(
        r.ring(r.h2k, ringbridge::word_of!(RingHeader, tail))
            .load(Acquire),
        2
    );
    r
}

#[test]
fn callback_replies_errors_and_fatal_codes() {
    assert_eq!(callback_until_fatal(2).error(), (ERR_HANDLER, 5));
    assert_eq!(callback_until_fatal(3).error(), (ERR_HANDLER_PANICKED, 0));
    assert_eq!(
        callback_until_fatal(4).error(),
        (ERR_HANDLER, DETAIL_REPLY_TOO_LONG | (64 - 32 + 1))
    );
}

#[test]
fn corrupted_counters_and_requests_fail_the_loop() {
    // H2K head past a full ring.
    let r = Region::new(4, 64, 4, 64);
    r.ring(r.h2k, ringbridge::word_of!(RingHeader, head))
        .store(5, Release);
    assert_eq!(
        r.serve(ffi::HANDLER_ECHO, None).join().unwrap(),
        STATUS_FAILED as i32
    );
    assert_eq!(r.error(), (ERR_RING_CORRUPTED, 5));
    // K2H tail ahead of the kernel's head.
    let r = Region::new(4, 64, 4, 64);
    r.ring(r.k2h, ringbridge::word_of!(RingHeader, tail))
        .store(3, Release);
    assert_eq!(
        r.serve(ffi::HANDLER_ECHO, None).join().unwrap(),
        STATUS_FAILED as i32
    );
    assert_eq!(r.error(), (ERR_RING_CORRUPTED, 3));
    // A stale slot: seq is not the position.
    let r = Region::new(4, 64, 4, 64);
    let t = r.serve(ffi::HANDLER_ECHO, None);
    r.send(0, 0, &[1], None);
    r.recv(0);
    r.send(1, 0, &[1], Some(5));
    assert_eq!(t.join().unwrap(), STATUS_FAILED as i32);
    assert_eq!(r.error(), (ERR_RING_CORRUPTED, 1));
    assert_eq!(
        r.ring(r.k2h, ringbridge::word_of!(RingHeader, head))
            .load(Acquire),
        1
    );
    // A len beyond the slot.
    let r = Region::new(4, 64, 4, 64);
    let t = r.serve(ffi::HANDLER_ECHO, None);
    r.slot_word(r.h2k, 64, 3, 0, 0).store(0, Relaxed);
    r.slot_word(r.h2k, 64, 3, 0, 2)
        .store(u64::from(KIND_REQUEST) | 33 << 32, Relaxed);
    r.ring(r.h2k, ringbridge::word_of!(RingHeader, head))
        .store(1, Release);
    assert_eq!(t.join().unwrap(), STATUS_FAILED as i32);
    assert_eq!(r.error(), (ERR_RING_CORRUPTED, 0));
}

#[test]
fn bad_layout_is_reported_with_its_detail() {
    type Spoil = fn(&Region);
    let cases: [(&str, u64, Spoil); 9] = [
        ("ctl magic", BAD_CONTROL, |r| {
            r.ctl(ringbridge::word_of!(ControlBlock, magic))
                .store(1, Relaxed)
        }),
        ("ctl version", BAD_CONTROL, |r| {
            r.ctl(ringbridge::word_of!(ControlBlock, version))
                .store(9, Relaxed)
        }),
        ("interval", BAD_CHECK_INTERVAL, |r| {
            r.ctl(ringbridge::word_of!(ControlBlock, check_interval))
                .store(3, Relaxed)
        }),
        ("h2k mask", BAD_H2K, |r| {
            r.ring(r.h2k, ringbridge::word_of!(RingHeader, mask))
                .store(1, Relaxed)
        }),
        ("h2k slot", BAD_H2K, |r| {
            r.ring(r.h2k, ringbridge::word_of!(RingHeader, slot_size))
                .store(96, Relaxed)
        }),
        ("k2h magic", BAD_K2H, |r| {
            r.ring(r.k2h, ringbridge::word_of!(RingHeader, magic))
                .store(0, Relaxed)
        }),
        ("no stripes", BAD_STRIPES, |r| {
            r.ctl(ringbridge::word_of!(ControlBlock, stripes))
                .store(0, Relaxed)
        }),
        ("stripes without a stride", BAD_STRIPES, |r| {
            r.ctl(ringbridge::word_of!(ControlBlock, stripes))
                .store(2, Relaxed)
        }),
        ("stride off the line", BAD_STRIPES, |r| {
            r.ctl(ringbridge::word_of!(ControlBlock, stripes))
                .store(2, Relaxed);
            r.ctl(ringbridge::word_of!(ControlBlock, stripe_stride))
                .store(64, Relaxed)
        }),
    ];
    for (what, detail, spoil) in cases {
        let r = Region::new(4, 64, 4, 64);
        spoil(&r);
        assert_eq!(
            r.serve(ffi::HANDLER_ECHO, None).join().unwrap(),
            STATUS_FAILED as i32,
            "{what}"
        );
        assert_eq!(r.error(), (ERR_BAD_MAGIC, detail), "{what}");
    }
}

#[test]
fn a_block_without_a_region_returns_untouched() {
    let r = Region::new(4, 64, 4, 64);
    let b = r.base();
    for block in [1, 7] {
        // SAFETY: the region is laid out by `new`; `stripes` is 1, so a
        // block other than 0 has no region and must touch nothing.
        let rc = unsafe {
            ffi::host_serve(
                b.cast(),
                b.add(r.h2k).cast(),
                b.add(r.k2h).cast(),
                ffi::HANDLER_ECHO,
                None,
                core::ptr::null_mut(),
                block,
            )
        };
        assert_eq!(rc, STATUS_LAUNCHING as i32, "block {block}");
        assert_eq!(r.status(), STATUS_LAUNCHING, "block {block} wrote a status");
    }
}

#[test]
fn bad_arguments_are_refused() {
    let r = Region::new(4, 64, 4, 64);
    assert_eq!(r.serve(7, None).join().unwrap(), ffi::SERVE_BAD_ARGUMENT);
    assert_eq!(
        r.serve(ffi::HANDLER_CALLBACK, None).join().unwrap(),
        ffi::SERVE_BAD_ARGUMENT
    );
    let b = r.base();
    // SAFETY: a misaligned pointer is refused before any access.
    let rc = unsafe {
        ffi::host_serve(
            b.add(8).cast(),
            b.add(r.h2k).cast(),
            b.add(r.k2h).cast(),
            0,
            None,
            core::ptr::null_mut(),
            0,
        )
    };
    assert_eq!(rc, ffi::SERVE_BAD_ARGUMENT);
    assert_eq!(r.status(), 0, "nothing written");
}
