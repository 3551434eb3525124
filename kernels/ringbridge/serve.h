/*
 * ringbridge/serve.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * The serve loop (rb_serve) and the idle hook.
 */
#ifndef RINGBRIDGE_DETAIL_SERVE_H
#define RINGBRIDGE_DETAIL_SERVE_H

namespace rb_detail {

/* Thread 0, idle (no request waiting), for a handler with an idle hook:
   calls handler.idle(sender) with room for rb_max_sends messages (at least
   1, at most the free K2H slots; none free: not called) and publishes what
   it sent. RELEASE of the K2H head: the messages are this thread's own
   plain stores, before the release in program order. Returns a final status
   when the K2H ring is corrupted, else 0. `busy`: whether the loop must not
   idle yet: the hook sent something (it may have more), or K2H had no room
   for it (the host frees room without ringing the kernel's doorbell), or it
   called the host. A kernel with messages to send, or work it pulls from
   the host, is not idle. */
template <class Handler>
RB_INLINE uint32_t rb_idle_hook(rb_control* ctl, rb_ring* k2h, Handler& handler, rb_block_state& sh,
                                uint64_t& k2h_tail, uint64_t& k2h_head, uint64_t k2h_cap, uint64_t h2k_tail,
                                uint64_t& beat, uint64_t& events, bool& busy) {
    uint64_t room = 0;
    busy = false;
    const uint32_t stop = rb_k2h_room(ctl, k2h, k2h_tail, k2h_head, k2h_cap, h2k_tail, beat, room);
    if (stop != 0) return stop;
    if (room == 0) {
        busy = true;
        return 0;
    }
    constexpr uint64_t per_turn = rb_max_sends_of<Handler>::value > 0 ? rb_max_sends_of<Handler>::value : 1u;
    /* sh.sent is free: the other threads wait at the barrier for the batch. */
    sh.sent = 0;
    rb_sender sender{k2h, k2h_head, sh.k2h_mask, sh.k2h_slot_size, events, &sh.sent,
                     (uint32_t)(room < per_turn ? room : per_turn)};
    const uint32_t calls_before = rb_calls.next;
    handler.idle(sender);
    /* A hook that called the host (or logged) did work: not idle either. */
    if (rb_calls.next != calls_before) busy = true;
    const uint32_t sent = sender.sent();
    if (sent > 0) {
        k2h_head += sent;
        rb_st_release(&k2h->head, k2h_head);
        events += sent;
        rb_wake_host(ctl);
        busy = true;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The serve loop.                                                          */
/* ------------------------------------------------------------------------ */

/*
 * Serves until the host sets ctl->terminate (returns RB_STATUS_STOPPED) or an
 * error stops it (returns RB_STATUS_FAILED; ctl->error_code/error_detail say
 * why). Every thread of the block must call it; a block other than the first
 * of the grid returns RB_STATUS_LAUNCHING at once and touches nothing.
 *
 * Requests must have seq == their H2K position, kind == RB_KIND_REQUEST and
 * len <= H2K slot_size - RB_MSG_HEADER_SIZE; anything else is
 * RB_ERR_RING_CORRUPTED (detail = that position). A reply has seq = its K2H
 * position, correlation = the request's seq, flags = the request's flags
 * unless the handler changes them. The K2H ring full is back-pressure: the
 * loop waits (still watching terminate), it never drops a reply. On a fatal
 * error nothing of the failing batch is published by a block; the host
 * fallback's one thread, which serves a batch in order and stops at the
 * failing request, publishes the replies before it.
 */
template <class Handler>
RB_INLINE int rb_serve(rb_control* ctl, rb_ring* h2k, rb_ring* k2h, Handler& handler, uint64_t param_error = 0) {
    if (!rb_select_stripe(ctl, h2k, k2h)) return (int)RB_STATUS_LAUNCHING;
    const uint32_t tid = rb_thread_index();
    const uint32_t nthreads = rb_block_size();
    RB_BLOCK_SHARED rb_block_state sh;
#if !RB_BLOCK_PARALLEL
    /* The host's sh is a plain local: zero it, so the compiler, which cannot
       tell that thread 0 is the only thread, sees every field set. */
    sh = rb_block_state();
#endif

    /* Thread 0's own state: the counters it owns and caches of the peer's. */
    uint64_t h2k_tail = 0;   /* ours: requests consumed */
    uint64_t h2k_head = 0;   /* cache of the host's H2K head */
    uint64_t k2h_head = 0;   /* ours: replies published */
    uint64_t k2h_tail = 0;   /* cache of the host's K2H tail */
    uint64_t h2k_cap = 0, k2h_cap = 0, beat = 0;
    rb_checks checks = {0, 0, 0};
    uint32_t idle = 0;
    uint32_t start_failed = 0; /* thread 0: the final status if the start checks failed */
    /* Requests per batch: one per thread, or (chunkwise, in a block of
       threads) as many as the block-shared state holds; the host fallback's
       one thread takes up to RB_HOST_MAX_BATCH in turn. */
    const uint64_t max_batch = rb_cooperative_of<Handler>::value ? RB_COOPERATIVE_MAX_BATCH
                               : rb_chunkwise_in_block<Handler>::value    ? RB_CHUNKWISE_MAX_BATCH
                                                                : (RB_BLOCK_PARALLEL ? nthreads : RB_HOST_MAX_BATCH);
    /* K2H slots per request: its reply and the messages it may send. */
    constexpr uint64_t per_request = 1u + rb_max_sends_of<Handler>::value;
    constexpr bool slots_only = rb_cooperative_of<Handler>::value || rb_sends_of<Handler>::value;
    uint64_t events = 0; /* thread 0: the handlers' own messages published so far */

    if (tid == 0) {
        sh.stop = 0;
        sh.n = 0;
        sh.fatal_index = RB_NO_FATAL;
        sh.lanes = 0;
        sh.sent = 0;
        sh.events = 0;
        uint64_t bad = 0;
        /* RELAXED reads of words the host wrote before the launch. */
        const uint64_t interval = rb_ld_relaxed(&ctl->check_interval);
        const uint64_t stripes = rb_ld_relaxed(&ctl->stripes);
        const uint64_t stride = rb_ld_relaxed(&ctl->stripe_stride);
        if (rb_ld_relaxed(&ctl->magic) != RB_MAGIC || rb_ld_relaxed(&ctl->version) != RB_LAYOUT_VERSION) {
            bad = RB_BAD_CONTROL;
        } else if (interval == 0 || (interval & (interval - 1)) != 0) {
            bad = RB_BAD_CHECK_INTERVAL;
        } else if (stripes == 0 || (stripes > 1 && (stride == 0 || stride % RB_LINE != 0))) {
            bad = RB_BAD_STRIPES;
        } else if (!rb_ring_ok(h2k)) {
            bad = RB_BAD_H2K;
        } else if (!rb_ring_ok(k2h) || rb_ld_relaxed(&k2h->capacity) < per_request) {
            /* a K2H ring too small for a reply and a handler's own messages
               would never have room for a batch */
            bad = RB_BAD_K2H;
        } else {
            /* RELAXED: written by the host before the launch. */
            const uint64_t format = rb_ld_relaxed(&h2k->format);
            const bool lanes = format == RB_FORMAT_LANES;
            if (rb_ld_relaxed(&k2h->format) != format || (format != RB_FORMAT_SLOTS && !lanes) || (lanes && slots_only) ||
                (lanes && (rb_ld_relaxed(&h2k->slot_size) > RB_MAX_LANE_SLOT_SIZE ||
                           rb_ld_relaxed(&k2h->slot_size) > RB_MAX_LANE_SLOT_SIZE || (RB_BLOCK_PARALLEL && nthreads < 32u)))) {
                bad = RB_BAD_FORMAT;
            } else {
                sh.lanes = lanes ? 1u : 0u;
            }
        }
        if (bad != 0) {
            start_failed = (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_BAD_MAGIC, bad);
        } else if (param_error != 0) {
            /* The handler read a typed parameter of another size than the
               host sent (rb_make_handler): refused before serving. */
            start_failed = (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_PARAM_SIZE, param_error);
        } else {
            checks.mask = interval - 1;
            checks.checked_ns = rb_clock_ns();
            h2k_cap = rb_ld_relaxed(&h2k->capacity);
            k2h_cap = rb_ld_relaxed(&k2h->capacity);
            sh.h2k_mask = h2k_cap - 1;
            sh.k2h_mask = k2h_cap - 1;
            sh.h2k_slot_size = rb_ld_relaxed(&h2k->slot_size);
            sh.k2h_slot_size = rb_ld_relaxed(&k2h->slot_size);
            /* RELAXED: our own counters, only we write them. */
            h2k_tail = rb_ld_relaxed(&h2k->tail);
            k2h_head = rb_ld_relaxed(&k2h->head);
            h2k_head = h2k_tail; /* "empty": the first poll acquires the real head */
            /* ACQUIRE: the host's K2H tail; reply slots below it are free. */
            k2h_tail = rb_ld_acquire(&k2h->tail);
            beat = rb_ld_relaxed(&ctl->heartbeat);
            if (k2h_head - k2h_tail > k2h_cap) {
                start_failed = (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_RING_CORRUPTED, k2h_tail);
                sh.lanes = 0; /* the slot loop below reports the failure */
            } else {
                rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                /* RELEASE: the host that acquires RUNNING sees the progress words. */
                rb_st_release(&ctl->status, RB_STATUS_RUNNING);
            }
        }
    }

    rb_block_sync(); /* broadcast the format */
    if constexpr (!slots_only) {
        if (sh.lanes != 0) { /* block-uniform */
            return rb_serve_lanes(ctl, h2k, k2h, handler, sh, h2k_tail, k2h_head, k2h_tail, h2k_cap, k2h_cap, checks,
                                  beat, idle);
        }
    }

    for (;;) {
        if (tid == 0) {
            uint32_t stop = start_failed;
            uint64_t n = 0;
            while (stop == 0) {
                /* terminate and heartbeat: see rb_check_due, so an idle
                   poll costs one PCIe read, not two. */
                stop = rb_turn_check(ctl, checks, idle, beat, h2k_tail, k2h_head);
                if (stop != 0) break;
                uint64_t avail = h2k_head - h2k_tail;
                if (avail == 0) {
                    /* ACQUIRE: the slots below the head are written. */
                    const uint64_t head = rb_ld_acquire(&h2k->head);
                    if (head - h2k_tail > h2k_cap) { /* backwards or past a full ring */
                        rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                        stop = (uint32_t)rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_RING_CORRUPTED, head);
                        break;
                    }
                    h2k_head = head;
                    avail = head - h2k_tail;
                    if (avail == 0) {
                        bool hook_busy = false;
                        if constexpr (rb_has_idle<Handler>::value) {
                            stop = rb_idle_hook(ctl, k2h, handler, sh, k2h_tail, k2h_head, k2h_cap, h2k_tail, beat,
                                                events, hook_busy);
                            if (stop != 0) break;
                        }
                        if (hook_busy) {
                            /* It sent: call it again at once. No room: wait
                               for the host to free some, never parking. */
                            if (k2h_head - k2h_tail >= k2h_cap) {
                                rb_idle(ctl, idle, false);
                            } else {
                                idle = 0;
                            }
                            continue;
                        }
                        rb_idle(ctl, idle, true);
                        continue;
                    }
                }
                uint64_t room = 0;
                stop = rb_k2h_room(ctl, k2h, k2h_tail, k2h_head, k2h_cap, h2k_tail, beat, room, per_request);
                if (stop != 0) break;
                room /= per_request; /* whole requests: a reply and its own messages each */
                if (room == 0) { /* back-pressure: wait, never drop */
                    rb_idle(ctl, idle, false);
                    continue;
                }
                idle = 0;
                n = avail < room ? avail : room;
                if (n > max_batch) n = max_batch;
                break;
            }
            sh.stop = stop;
            sh.n = (uint32_t)n;
            sh.h2k_tail = h2k_tail;
            sh.k2h_head = k2h_head;
            sh.sent = 0;
            sh.events = events;
        }
        rb_block_sync(); /* broadcast the batch (block-shared memory) */
        if (sh.stop != 0) return (int)sh.stop;

        const uint32_t n = sh.n;
        uint64_t code = 0, detail = 0;
        uint32_t fatal;
        if constexpr (rb_cooperative_of<Handler>::value) {
            fatal = rb_serve_cooperative_batch(h2k, k2h, handler, sh, n, &code, &detail);
        } else if constexpr (rb_chunkwise_in_block<Handler>::value) {
            fatal = rb_serve_chunkwise_batch(h2k, k2h, handler, sh, n, &code, &detail);
        } else {
            fatal = rb_serve_per_request_batch(h2k, k2h, handler, sh, n, &code, &detail);
        }
        if (fatal != RB_NO_FATAL) { /* block-uniform */
            if (tid == 0) {
#if !RB_BLOCK_PARALLEL
                /* The host's one thread stopped at the failing request: the
                   replies before it are whole. */
                if (fatal > 0) rb_publish_served(h2k, k2h, h2k_tail, k2h_head, fatal, 0);
#else
                /* Publish nothing of this batch: the counters stay put. */
#endif
                rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                rb_finish(ctl, RB_STATUS_FAILED, code, detail);
            }
            return (int)RB_STATUS_FAILED;
        }

        if (tid == 0) {
            /* The barrier that ended the batch ordered every send's count. */
            const uint32_t sent = rb_batch_sender<Handler>(k2h, sh, n).sent();
            rb_publish_served(h2k, k2h, h2k_tail, k2h_head, n, sent);
            events += sent;
            rb_wake_host(ctl); /* after the publish: the host may be parked */
#if !RB_ON_GPU
            rb_host_warm_slot(k2h, k2h_head, k2h_tail, k2h_cap, sh.k2h_mask, sh.k2h_slot_size);
#endif
            rb_after_batch(checks); /* after the publish: the clock read delays no reply */
        }
    }
}

#if !RB_ON_GPU
/* Whether a host entry's regions are usable: the control block and both
   ring headers 128-byte aligned and not null. */
inline bool rb_host_regions_ok(const void* ctl, const void* h2k, const void* k2h) {
    const auto aligned = [](const void* p) { return p != nullptr && reinterpret_cast<uintptr_t>(p) % RB_LINE == 0; };
    return aligned(ctl) && aligned(h2k) && aligned(k2h);
}
#endif

}  // namespace rb_detail

#endif /* RINGBRIDGE_DETAIL_SERVE_H */
