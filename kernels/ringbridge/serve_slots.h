/*
 * ringbridge/serve_slots.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * The slot format's batches: chunkwise over the whole block, cooperative
 * one request at a time, and one request per thread.
 */
#ifndef RINGBRIDGE_DETAIL_SERVE_SLOTS_H
#define RINGBRIDGE_DETAIL_SERVE_SLOTS_H

namespace rb_detail {

/* ------------------------------------------------------------------------ */
/* Slot format, chunkwise handlers: a batch served by the whole block.      */
/* ------------------------------------------------------------------------ */

/* Requests per batch at most on this path (block-shared state per request). */
#define RB_CHUNKWISE_MAX_BATCH 1024u
/* Requests per batch of a cooperative handler: served one after another,
   so a long batch would hold back the replies of its first requests. */
#define RB_COOPERATIVE_MAX_BATCH 32u
/* Pairs of adjacent 16-byte chunks each thread loads per round, all in
   flight together: 4 loads (64 bytes) per thread. */
#define RB_CHUNKWISE_PAIRS 2u
/* len of a request whose header failed validation. */
#define RB_LEN_CORRUPT 0xFFFFFFFFu

/* Whether a slot-format batch takes the chunkwise path below: a chunkwise
   handler in a block of threads. The host fallback's one thread serves
   chunkwise handlers request by request instead (rb_serve_per_request_batch,
   with rb_handle mapping the chunks): the chunkwise path's rounds, written
   to spread a batch over a block, cost one thread more than they save.
   (Measured: docs/performance.md, "Chunkwise on the host".) The chunkwise
   path still runs on the host in tests, under the block emulation (a block of
   CPU threads, RB_BLOCK_PARALLEL). */
template <class Handler>
struct rb_chunkwise_in_block {
    static constexpr bool value = rb_chunkwise_of<Handler>::value && RB_BLOCK_PARALLEL;
};

/* Block-shared per-request state of a chunkwise batch. */
struct rb_chunkwise_shared {
    uint32_t len[RB_CHUNKWISE_MAX_BATCH];   /* validated request len, or RB_LEN_CORRUPT */
    uint32_t flags[RB_CHUNKWISE_MAX_BATCH]; /* request flags */
    int32_t rc[RB_CHUNKWISE_MAX_BATCH];     /* the handler's admit() */
    uint32_t fatal_index;              /* first request that stops the kernel, or RB_NO_FATAL */
};

/* log2 of a power of two. */
RB_INLINE uint32_t rb_log2(uint64_t x) {
#if RB_ON_GPU
    return (uint32_t)(__ffsll((long long)x) - 1);
#else
    return (uint32_t)__builtin_ctzll(x);
#endif
}

/* Whether request state (len, rc) stops the kernel: a corrupted header, a
   fatal admit() (any negative code but RB_NO_REPLY, which answers the
   request with nothing, as for every other model), or a reply that would
   not fit a K2H slot. */
RB_INLINE bool rb_chunkwise_fatal(uint32_t len, int32_t rc, uint32_t out_cap) {
    return len == RB_LEN_CORRUPT || (rc < 0 && rc != RB_NO_REPLY) || (rc == 0 && len > out_cap);
}

/*
 * Serves the batch of n requests that thread 0 acquired (H2K positions
 * sh.h2k_tail.., K2H positions sh.k2h_head..) with a chunkwise handler. Every
 * thread of the block calls it. The batch's request slots, header chunks
 * included, form one index space of n * (slot_size / 16) chunks that the
 * block walks in rounds: in a round, thread t loads RB_CHUNKWISE_PAIRS pairs of
 * adjacent chunks (a slot's two header chunks are always one pair), with
 * plain 16-byte loads that are all in flight together, so a 4 KiB request
 * costs one PCIe round trip, not 64. A chunk whose request header arrives in
 * the same round is loaded speculatively (it lies inside its slot, so the
 * load is always in bounds) and used only if the header, checked after the
 * round's barrier, makes it payload; later rounds load only payload chunks.
 *
 * MEMORY ORDER: the loads are plain (weak): thread 0's ACQUIRE of the H2K
 * head and the block barrier that broadcast the batch order them after the
 * host's slot writes (see rb_serve). The reply stores are plain; the final
 * barrier here puts them all before thread 0's RELEASE of the K2H head.
 *
 * Returns RB_NO_FATAL, or (block-uniform) the index of the first request
 * that is corrupted or fatal, with thread 0's *code and *detail set; then
 * nothing of the batch may be published.
 */
template <class Handler>
RB_INLINE uint32_t rb_serve_chunkwise_batch(rb_ring* h2k, rb_ring* k2h, const Handler& handler,
                                            const rb_block_state& sh, uint32_t n, uint64_t* code, uint64_t* detail) {
    RB_BLOCK_SHARED rb_chunkwise_shared cs;
    const uint32_t tid = rb_thread_index();
    const uint32_t nthreads = rb_block_size();
    const uint64_t in_base = sh.h2k_tail, out_base = sh.k2h_head;
    const uint32_t in_shift = rb_log2(sh.h2k_slot_size / 16u); /* chunks per request slot, log2 */
    const uint32_t in_mask = (1u << in_shift) - 1u;
    const uint32_t in_cap = (uint32_t)(sh.h2k_slot_size - RB_MSG_HEADER_SIZE);
    const uint32_t out_cap = (uint32_t)(sh.k2h_slot_size - RB_MSG_HEADER_SIZE);
    const uint64_t total = (uint64_t)n << in_shift;
    const uint64_t per_round = (uint64_t)nthreads * 2u * RB_CHUNKWISE_PAIRS;
    if (tid == 0) cs.fatal_index = RB_NO_FATAL;
    rb_block_sync(); /* fatal_index is reset before any thread lowers it */

    for (uint64_t base = 0; base < total; base += per_round) {
        rb_vec16 v[RB_CHUNKWISE_PAIRS][2] = {}; /* zeroed: quiets maybe-uninitialized; only loaded pairs are used */
        uint64_t idx[RB_CHUNKWISE_PAIRS]; /* first chunk of each pair, or `total`: none */
        RB_UNROLL
        for (uint32_t p = 0; p < RB_CHUNKWISE_PAIRS; ++p) {
            const uint64_t i = base + (uint64_t)p * nthreads * 2u + 2u * tid;
            idx[p] = total;
            if (i >= total) continue;
            const uint32_t m = (uint32_t)(i >> in_shift), c = (uint32_t)i & in_mask;
            /* A header read in an earlier round: load only payload chunks of
               an admitted request (c >= 2 here: pairs and slots are even). */
            if (((uint64_t)m << in_shift) < base &&
                (cs.rc[m] != 0 || cs.len[m] == RB_LEN_CORRUPT || (c - 2u) * 16u >= cs.len[m]))
                continue;
            idx[p] = i;
            const uint8_t* chunk = rb_slot(h2k, in_base + m, sh.h2k_mask, sh.h2k_slot_size) + (size_t)c * 16u;
            v[p][0] = rb_ld16(chunk);
            v[p][1] = rb_ld16(chunk + 16);
        }
        /* The header pairs of this round: validate, admit, share. */
        RB_UNROLL
        for (uint32_t p = 0; p < RB_CHUNKWISE_PAIRS; ++p) {
            if (idx[p] == total || (idx[p] & in_mask) != 0) continue;
            const uint32_t m = (uint32_t)(idx[p] >> in_shift);
            rb_msg_header in;
            memcpy(reinterpret_cast<uint8_t*>(&in), &v[p][0], 16);
            memcpy(reinterpret_cast<uint8_t*>(&in) + 16, &v[p][1], 16);
            uint32_t len = in.len;
            int32_t rc = 0;
            if (in.seq != in_base + m || in.kind != RB_KIND_REQUEST || in.len > in_cap) {
                len = RB_LEN_CORRUPT;
            } else {
                rc = handler.admit(in, out_cap);
            }
            cs.len[m] = len;
            cs.flags[m] = in.flags;
            cs.rc[m] = rc;
            if (rb_chunkwise_fatal(len, rc, out_cap)) rb_block_min_u32(&cs.fatal_index, m);
        }
        rb_block_sync(); /* every header of this round is in cs */
        /* Replies: the header pair writes the reply header, payload pairs
           their mapped chunks up to rb_round16(len). */
        RB_UNROLL
        for (uint32_t p = 0; p < RB_CHUNKWISE_PAIRS; ++p) {
            if (idx[p] == total) continue;
            const uint32_t m = (uint32_t)(idx[p] >> in_shift), c = (uint32_t)idx[p] & in_mask;
            const uint32_t len = cs.len[m];
            const int32_t rc = cs.rc[m];
            if (rb_chunkwise_fatal(len, rc, out_cap)) continue; /* the batch is not published */
            uint8_t* out = rb_slot(k2h, out_base + m, sh.k2h_mask, sh.k2h_slot_size);
            if (c == 0) {
                rb_msg_header o;
                o.seq = out_base + m;
                o.correlation = in_base + m;
                /* rc: 0 a reply, RB_NO_REPLY the no-reply mark, > 0 an error
                   reply (the fatal codes were excluded above). */
                o.kind = rc == 0 ? RB_KIND_REPLY : rc == RB_NO_REPLY ? RB_KIND_NO_REPLY : RB_KIND_ERROR;
                o.len = rc == 0 ? len : 0u;
                o.flags = rc == 0 ? cs.flags[m] : rc == RB_NO_REPLY ? 0u : (uint32_t)rc;
                o.reserved = 0;
                rb_store_header(out, &o);
            } else if (rc == 0) {
                const uint32_t end = rb_round16(len);
                if ((c - 2u) * 16u < end) rb_st16(out + (size_t)c * 16u, handler.chunk(v[p][0]));
                if ((c - 1u) * 16u < end) rb_st16(out + (size_t)c * 16u + 16u, handler.chunk(v[p][1]));
            }
        }
    }
    /* Every reply chunk of the batch is stored and every request chunk read,
       before thread 0 publishes (or reports the failure). */
    rb_block_sync();
    const uint32_t fatal = cs.fatal_index;
    if (fatal != RB_NO_FATAL && tid == 0) {
        if (cs.len[fatal] == RB_LEN_CORRUPT) {
            *code = RB_ERR_RING_CORRUPTED;
            *detail = in_base + fatal;
        } else {
            /* A fatal admit(), or rc 0 with a reply (len = request len) that
               does not fit: the same errors as a per-request handler's. */
            rb_msg_header o{};
            o.len = cs.len[fatal];
            rb_settle_reply(cs.rc[fatal], o, out_cap, *code, *detail);
        }
    }
    return fatal;
}

/* The sender of a batch of n requests: rb_max_sends slots per request,
   reserved after the batch's replies (rb_serve sized the batch for them). */
template <class Handler>
RB_INLINE rb_sender rb_batch_sender(rb_ring* k2h, rb_block_state& sh, uint32_t n) {
    return rb_sender{k2h,          sh.k2h_head + n, sh.k2h_mask, sh.k2h_slot_size, sh.events, &sh.sent,
                     n * rb_max_sends_of<Handler>::value};
}

/* ------------------------------------------------------------------------ */
/* Slot format, cooperative handlers: the whole block per request.          */
/* ------------------------------------------------------------------------ */

/*
 * Serves the batch's n requests one after another, each by every thread of
 * the block (the host fallback's one thread is a block of one). Every
 * thread reads the request's header (plain loads, after the acquire and the
 * barrier) and calls the handler; thread 0's return code and reply header
 * count. A barrier after each request orders the handler's stores (reply,
 * scratch) before thread 0 settles the reply and before the next request
 * reuses the scratch. Returns RB_NO_FATAL, or (block-uniform) the first
 * request that is corrupted or fatal, with *code and *detail set; as in the
 * per-request path, a block publishes nothing of such a batch, the host's
 * one thread the replies before it.
 */
template <class Handler>
RB_INLINE uint32_t rb_serve_cooperative_batch(rb_ring* h2k, rb_ring* k2h, Handler& handler, rb_block_state& sh,
                                              uint32_t n, uint64_t* code, uint64_t* detail) {
    constexpr uint32_t scratch_bytes = rb_scratch_of<Handler>::value;
    /* Exact: what ptxas counts (the 16-byte aligned scratch beside the
       loop's own state) against the 48 KiB of static shared memory. */
    static_assert(scratch_bytes <= rb_max_scratch_bytes,
                  "rb_scratch_bytes: at most RB_MAX_SCRATCH_BYTES (48 KiB less the serve loop's own shared state)");
    struct alignas(16) scratch_memory {
        uint8_t bytes[scratch_bytes > 0 ? scratch_bytes : 16u];
    };
    RB_BLOCK_SHARED scratch_memory scratch;
    rb_block block{scratch.bytes};
    rb_sender sender = rb_batch_sender<Handler>(k2h, sh, n);
    const uint32_t tid = rb_thread_index();
    const uint32_t in_cap = (uint32_t)(sh.h2k_slot_size - RB_MSG_HEADER_SIZE);
    const uint32_t out_cap = (uint32_t)(sh.k2h_slot_size - RB_MSG_HEADER_SIZE);
    for (uint32_t k = 0; k < n; ++k) {
        const uint64_t in_pos = sh.h2k_tail + k, out_pos = sh.k2h_head + k;
        const uint8_t* in_slot = rb_slot(h2k, in_pos, sh.h2k_mask, sh.h2k_slot_size);
        uint8_t* out_slot = rb_slot(k2h, out_pos, sh.k2h_mask, sh.k2h_slot_size);
        rb_msg_header in;
        rb_load_header(&in, in_slot);
        /* Every thread read the same header: the test is block-uniform. */
        if (in.seq != in_pos || in.kind != RB_KIND_REQUEST || in.len > in_cap) {
            *code = RB_ERR_RING_CORRUPTED;
            *detail = in_pos;
            return k;
        }
        rb_msg_header out = rb_reply_header(out_pos, in);
        const int rc = rb_handle_cooperative(handler, block, in, in_slot + RB_MSG_HEADER_SIZE, out,
                                             out_slot + RB_MSG_HEADER_SIZE, out_cap, sender);
        rb_block_sync(); /* every thread's reply and scratch stores are done */
        if (tid == 0) {
            uint64_t c = 0, d = 0;
            rb_settle_reply(rc, out, out_cap, c, d);
            if (c == 0) {
                rb_store_header(out_slot, &out);
            } else {
                sh.fatal_index = k;
                sh.fatal_code = c;
                sh.fatal_detail = d;
            }
        }
        rb_block_sync(); /* broadcast the outcome */
        if (sh.fatal_index != RB_NO_FATAL) { /* block-uniform */
            *code = sh.fatal_code;
            *detail = sh.fatal_detail;
            return sh.fatal_index;
        }
    }
    return RB_NO_FATAL;
}

/* ------------------------------------------------------------------------ */
/* Slot format, other handlers: one request per thread.                     */
/* ------------------------------------------------------------------------ */

/* One request of a per-request batch: validates request in_pos, runs the
   handler straight in the slots and writes the reply header. Returns 0, or
   the error code with *detail set (then no reply header is written). */
template <class Handler>
RB_INLINE uint64_t rb_serve_one(rb_ring* h2k, rb_ring* k2h, Handler& handler, const rb_block_state& sh,
                                uint64_t in_pos, uint64_t out_pos, uint64_t* detail, rb_sender& sender) {
    const uint8_t* in_slot = rb_slot(h2k, in_pos, sh.h2k_mask, sh.h2k_slot_size);
    uint8_t* out_slot = rb_slot(k2h, out_pos, sh.k2h_mask, sh.k2h_slot_size);
    const uint32_t in_cap = (uint32_t)(sh.h2k_slot_size - RB_MSG_HEADER_SIZE);
    const uint32_t out_cap = (uint32_t)(sh.k2h_slot_size - RB_MSG_HEADER_SIZE);
    rb_msg_header in;
    rb_load_header(&in, in_slot); /* plain 16-byte loads, after the acquire + barrier */
    if (in.seq != in_pos || in.kind != RB_KIND_REQUEST || in.len > in_cap) {
        *detail = in_pos;
        return RB_ERR_RING_CORRUPTED;
    }
    rb_msg_header out = rb_reply_header(out_pos, in);
    uint64_t code = 0;
    const int rc =
        rb_handle(handler, in, in_slot + RB_MSG_HEADER_SIZE, out, out_slot + RB_MSG_HEADER_SIZE, out_cap, sender);
    rb_settle_reply(rc, out, out_cap, code, *detail);
    out.seq = out_pos;
    out.correlation = in.seq;
    out.reserved = 0;
    if (code == 0) rb_store_header(out_slot, &out); /* plain 16-byte stores */
    return code;
}

/*
 * Serves the batch of n requests that thread 0 acquired. In a block, thread
 * t < n <= block size serves request t; the host fallback's one thread
 * serves them in order. Each reads the request's header and calls the
 * handler, which reads and writes the payload straight in the slots (plain
 * loads and stores, ordered as in rb_serve_chunkwise_batch). Returns
 * RB_NO_FATAL, or (block-uniform) the first request that is corrupted or
 * fatal, with thread 0's *code and *detail set. In a block nothing of such
 * a batch may then be published; on the host the replies before it are
 * whole (it stops at the first failure) and may be.
 */
template <class Handler>
RB_INLINE uint32_t rb_serve_per_request_batch(rb_ring* h2k, rb_ring* k2h, Handler& handler, rb_block_state& sh,
                                              uint32_t n, uint64_t* code, uint64_t* detail) {
    rb_sender sender = rb_batch_sender<Handler>(k2h, sh, n);
#if !RB_BLOCK_PARALLEL
    for (uint32_t k = 0; k < n; ++k) {
        *code = rb_serve_one(h2k, k2h, handler, sh, sh.h2k_tail + k, sh.k2h_head + k, detail, sender);
        if (*code != 0) return k;
    }
    return RB_NO_FATAL;
#else
    const uint32_t tid = rb_thread_index();
    uint64_t my_code = 0, my_detail = 0;
    if (tid < n) {
        my_code = rb_serve_one(h2k, k2h, handler, sh, sh.h2k_tail + tid, sh.k2h_head + tid, &my_detail, sender);
        if (my_code != 0) rb_block_min_u32(&sh.fatal_index, tid);
    }
    /* Every reply slot of the batch is written and every request slot read. */
    rb_block_sync();

    if (sh.fatal_index == RB_NO_FATAL) return RB_NO_FATAL; /* block-uniform */
    if (tid == sh.fatal_index) {
        sh.fatal_code = my_code;
        sh.fatal_detail = my_detail;
    }
    rb_block_sync();
    *code = sh.fatal_code;
    *detail = sh.fatal_detail;
    return sh.fatal_index;
#endif
}

/* Thread 0, slot format: publishes the first n served requests of a batch
   (all of it, or on the host the run before a failing request).
   RELEASE, system scope, of the K2H head: publishes their replies. The
   barrier after the replies were written ordered every thread's reply stores
   before this thread's next operations (causality order), and a release is
   cumulative over what precedes it in that order, so a host that acquires
   the new head sees all n reply slots.
   RELEASE of the H2K tail: the block's loads of those request slots are
   done (the barrier again), so the host may now reuse them. */
RB_INLINE void rb_publish_served(rb_ring* h2k, rb_ring* k2h, uint64_t& h2k_tail, uint64_t& k2h_head, uint64_t n,
                                 uint64_t sent) {
    k2h_head += n + sent; /* the replies, then the handlers' own messages after them */
    rb_st_release(&k2h->head, k2h_head);
    h2k_tail += n;
    rb_st_release(&h2k->tail, h2k_tail);
}

}  // namespace rb_detail

#endif /* RINGBRIDGE_DETAIL_SERVE_SLOTS_H */
