/*
 * ringbridge/control.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * Thread 0's control-block work: progress, finish, check cadence, K2H room,
 * the block-shared state, and settling a handler's return code.
 */
#ifndef RINGBRIDGE_DETAIL_CONTROL_H
#define RINGBRIDGE_DETAIL_CONTROL_H

namespace rb_detail {

/* ------------------------------------------------------------------------ */
/* Control-block helpers (thread 0 only).                                   */
/* ------------------------------------------------------------------------ */

/* Whether a ring header can be trusted (magic, version, power-of-two
   capacity with its mask, power-of-two slot size within bounds). */
RB_INLINE bool rb_ring_ok(const rb_ring* r) {
    /* RELAXED: written once by the host before the launch, which orders them. */
    const uint64_t magic = rb_ld_relaxed(&r->magic);
    const uint64_t version = rb_ld_relaxed(&r->version);
    const uint64_t cap = rb_ld_relaxed(&r->capacity);
    const uint64_t mask = rb_ld_relaxed(&r->mask);
    const uint64_t slot = rb_ld_relaxed(&r->slot_size);
    return magic == RB_MAGIC && version == RB_LAYOUT_VERSION && cap != 0 && (cap & (cap - 1)) == 0 &&
           mask == cap - 1 && slot >= RB_MIN_SLOT_SIZE && slot <= RB_MAX_SLOT_SIZE && (slot & (slot - 1)) == 0;
}

/* Progress words for watchdogs and humans: heartbeat, and consumed/produced
   as the absolute ring counters (H2K tail, K2H head). RELAXED: they order
   nothing. */
RB_INLINE void rb_publish_progress(rb_control* ctl, uint64_t beat, uint64_t consumed, uint64_t produced) {
    rb_st_relaxed(&ctl->heartbeat, beat);
    rb_st_relaxed(&ctl->consumed, consumed);
    rb_st_relaxed(&ctl->produced, produced);
}

/* Final status. The error words are RELAXED; the status store is a RELEASE
   after them, so a host that acquires status sees the error words and the
   last progress counters. */
RB_INLINE uint64_t rb_finish(rb_control* ctl, uint64_t status, uint64_t code, uint64_t detail) {
    if (status == RB_STATUS_FAILED) {
        rb_st_relaxed(&ctl->error_code, code);
        rb_st_relaxed(&ctl->error_detail, detail);
    }
    rb_st_release(&ctl->status, status);
    rb_wake_host(ctl); /* a parked host sees the end at once */
    return status;
}

/*
 * When thread 0 publishes the heartbeat and looks at terminate (a check):
 *   - after check_interval turns since the last check. A turn that serves
 *     nothing (an idle poll, back-pressure) costs no clock read, and a
 *     stream of small messages reads terminate (a PCIe round trip on the
 *     GPU) only every so many turns, not on every one;
 *   - on the turn after a batch that ended RB_CHECK_NS or more after the
 *     last check (rb_after_batch: one clock read per batch). So however
 *     slow the handler and however large the messages, a loop that makes
 *     progress beats, and sees terminate, within one batch's handler time
 *     plus RB_CHECK_NS (or the host clock's tick, if coarser): the host's
 *     hang timeout measures a stalled handler, not a slow stream;
 *   - on every turn while the host fallback backs off.
 */
#ifndef RB_CHECK_NS
#define RB_CHECK_NS 1000000ull
#endif

/* Thread 0's check cadence. */
struct rb_checks {
    uint64_t turns;      /* turns since the last check */
    uint64_t mask;       /* check_interval - 1 */
    uint64_t checked_ns; /* rb_clock_ns() at the last check */
};

/* Whether this turn's rb_turn_check checks. */
RB_INLINE bool rb_check_due(const rb_checks& c, uint32_t idle) { return c.turns + 1u > c.mask || rb_backing_off(idle); }

/* Thread 0, after serving (and publishing) a batch: makes the next turn
   check if RB_CHECK_NS passed since the last check. */
RB_INLINE void rb_after_batch(rb_checks& c) {
    if (rb_clock_ns() - c.checked_ns >= RB_CHECK_NS) c.turns = c.mask;
}

/* Thread 0, once per turn of a serve loop: when rb_check_due says so,
   publishes the progress words and looks at terminate. Returns
   RB_STATUS_STOPPED to stop, else 0. RELAXED: the stop request orders
   nothing; what was served is already published. */
RB_INLINE uint32_t rb_turn_check(rb_control* ctl, rb_checks& c, uint32_t idle, uint64_t& beat, uint64_t h2k_tail,
                                 uint64_t k2h_head) {
    if (!rb_check_due(c, idle)) {
        ++c.turns;
        return 0;
    }
    c.turns = 0;
    c.checked_ns = rb_clock_ns();
    rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
    if (rb_ld_relaxed(&ctl->terminate) == 0) return 0;
    return (uint32_t)rb_finish(ctl, RB_STATUS_STOPPED, 0, 0);
}

/* Thread 0: the free K2H slots, in *room. The host's tail is read only when
   the cached one says fewer than `need` are free (ACQUIRE: the host has
   finished reading the slots, or lanes, below it). A tail ahead of our head,
   or gone backwards, fails the kernel: returns RB_STATUS_FAILED; else 0. */
RB_INLINE uint32_t rb_k2h_room(rb_control* ctl, rb_ring* k2h, uint64_t& k2h_tail, uint64_t k2h_head, uint64_t k2h_cap,
                               uint64_t h2k_tail, uint64_t& beat, uint64_t& room, uint64_t need = 1) {
    room = k2h_cap - (k2h_head - k2h_tail);
    if (room >= need) return 0;
    const uint64_t tail = rb_ld_acquire(&k2h->tail);
    if (k2h_head - tail > k2h_cap) {
        rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
        return (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_RING_CORRUPTED, tail);
    }
    k2h_tail = tail;
    room = k2h_cap - (k2h_head - k2h_tail);
    return 0;
}

#if !RB_ON_GPU
/* Host fallback, after publishing replies: claims the next K2H slot's cache
   lines, as many as the last reply used (at most 64: 4 KiB), for this core
   while the slot is free, so the next reply's stores find them here instead
   of waiting, ahead of the head store, for the host core that read them a
   lap ago to give them up (RingProducer::warm_next_slot on the Rust side
   does the same; the figures are there). RELAXED stores of 0: the slot is
   ours (our cached tail says the host left it, and the host reads no slot
   before a head covering it), and the next reply overwrites these words
   before its head is released. They follow the head's release store, so
   they cannot delay it. The last reply's length is read back from the
   header we wrote (our own store). The GPU writes mapped memory over PCIe,
   where this would buy nothing. */
RB_INLINE void rb_host_warm_slot(rb_ring* k2h, uint64_t k2h_head, uint64_t k2h_tail, uint64_t k2h_cap, uint64_t mask,
                                 uint64_t slot_size) {
    if (k2h_head - k2h_tail >= k2h_cap) return; /* full as far as we know */
    const uint8_t* last = rb_slot(k2h, k2h_head - 1, mask, slot_size);
    uint32_t len = 0;
    memcpy(&len, last + offsetof(rb_msg_header, len), sizeof len);
    uint64_t bytes = (uint64_t)RB_MSG_HEADER_SIZE + len;
    if (bytes > slot_size) bytes = slot_size;
    if (bytes > 4096u) bytes = 4096u;
    uint8_t* slot = rb_slot(k2h, k2h_head, mask, slot_size);
    for (uint64_t off = 0; off < bytes; off += 64u)
        __atomic_store_n(reinterpret_cast<uint64_t*>(slot + off), 0ull, __ATOMIC_RELAXED);
}
#endif

/* State thread 0 shares with the block through block-shared memory. */
struct rb_block_state {
    uint64_t h2k_tail;     /* position of the batch's first request */
    uint64_t k2h_head;     /* position of the batch's first reply */
    uint64_t h2k_mask, h2k_slot_size, k2h_mask, k2h_slot_size; /* read once */
    uint64_t fatal_code, fatal_detail; /* the failing thread's error */
    uint32_t n;            /* requests in the batch, <= block size */
    uint32_t stop;         /* 0: serve the batch; else the final RB_STATUS_* */
    uint32_t fatal_index;  /* lowest failing thread of the batch, or RB_NO_FATAL */
    uint32_t lanes;        /* 1: the rings are in RB_FORMAT_LANES */
    uint32_t sent;         /* the handlers' own messages in this batch (rb_sender) */
    uint64_t events;       /* event number of the batch's first own message */
};

/* The largest rb_scratch_bytes of a cooperative handler: the block's static
   shared memory (48 KiB) holds the scratch, rounded up to 16 bytes, the
   serve loop's rb_block_state and the call ring's state (rb_call_ring); a
   cooperative handler compiles no other (it runs in the slot format only).
   Checked by serve_slots.h. */
constexpr uint32_t rb_max_scratch_bytes =
    (uint32_t)((48u * 1024u - sizeof(rb_block_state) - sizeof(rb_call_ring)) & ~(size_t)15u);
#define RB_NO_FATAL 0xFFFFFFFFu


/* The reply header for request `in` at K2H position out_pos, before the
   handler runs: an empty REPLY with the request's flags. */
RB_INLINE rb_msg_header rb_reply_header(uint64_t out_pos, const rb_msg_header& in) {
    rb_msg_header out;
    out.seq = out_pos;
    out.correlation = in.seq;
    out.kind = RB_KIND_REPLY;
    out.len = 0;
    out.flags = in.flags;
    out.reserved = 0;
    return out;
}

/* Settles a handler's return code: 0 keeps the REPLY (a len beyond out_cap
   is fatal), > 0 makes it an empty ERROR reply with that code in flags,
   < 0 is fatal. For a fatal code *code / *detail get the kernel's error
   (RB_ERR_HANDLER_PANICKED or RB_ERR_HANDLER); otherwise they stay 0. */
RB_INLINE void rb_settle_reply(int rc, rb_msg_header& out, uint32_t out_cap, uint64_t& code, uint64_t& detail) {
    if (rc == 0) {
        out.kind = RB_KIND_REPLY;
        if (out.len > out_cap) {
            code = RB_ERR_HANDLER;
            detail = RB_DETAIL_REPLY_TOO_LONG | out.len;
        }
    } else if (rc > 0) {
        out.kind = RB_KIND_ERROR;
        out.flags = (uint32_t)rc;
        out.len = 0;
    } else if (rc == RB_NO_REPLY) {
        /* The request's mark on K2H: it keeps K2H one position per
           request, and the host counts the request as answered. */
        out.kind = RB_KIND_NO_REPLY;
        out.flags = 0;
        out.len = 0;
    } else if (rc == RB_HANDLER_PANICKED) {
        code = RB_ERR_HANDLER_PANICKED;
        detail = 0;
    } else {
        code = RB_ERR_HANDLER;
        detail = (uint64_t)(-(int64_t)rc);
    }
}

}  // namespace rb_detail

#endif /* RINGBRIDGE_DETAIL_CONTROL_H */
