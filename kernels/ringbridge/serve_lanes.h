/*
 * ringbridge/serve_lanes.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * The lane format's serve loop (RB_FORMAT_LANES).
 */
#ifndef RINGBRIDGE_DETAIL_SERVE_LANES_H
#define RINGBRIDGE_DETAIL_SERVE_LANES_H

namespace rb_detail {

/* ------------------------------------------------------------------------ */
/* Lane format (RB_FORMAT_LANES): flagged 16-byte lanes.                    */
/* ------------------------------------------------------------------------ */
/*
 * A slot is slot_size / 16 lanes {data, tag}. The message at position pos
 * writes tag = pos + 1 into lane 0 (data: len | kind << 24 | flags << 32) and
 * into lanes 1..ceil(len / 8) (data: 8 payload bytes each). The receiver
 * takes the message only when all those lanes carry pos + 1, so it never
 * reads the ring's head: one round of loads brings the whole message
 * (docs/platform-facts.md, "Flagged 16-byte lanes": 2.4 us p50 up to
 * 128-byte messages, against 3.9-4.4 us for head-then-payload).
 *
 * A lane's tag is rb_lane_tag(pos, data): pos + 1 in the low RB_LANE_SEQ_BITS
 * bits, and above them a check mixed from the data and that position
 * (src/layout.rs lane_tag, the same function). Below, "the lane's tag" means
 * its position field.
 *
 * Tags a lane of slot(pos) may hold before the message arrives: 0, or
 * pos + 1 - k * capacity for k >= 1 (a lane a short message left alone keeps
 * an older lap's tag). Anything else (from the future, or not congruent to
 * pos + 1) is RB_ERR_RING_CORRUPTED, as are a current header with an unknown
 * kind or a len beyond the slot.
 *
 * MEMORY ORDER
 *   GPU reader: thread t of a warp loads lane t with ONE ld.relaxed.sys.v2
 *   (a single coalesced warp access; ld.global.cv.v2 measured the same; a
 *   plain weak load could hit a stale L1 line, so polling never uses one).
 *   System-scope relaxed: it reads the coherent (host) copy. The host writes
 *   each lane's data before its tag (release in the C++/Rust model).
 *   TORN LANES. The PTX memory model treats a vector access as one access
 *   per element, in no specified order, and covers scalars of at most 64
 *   bits (PTX ISA "Memory Operations on Vector Data Types"); no document
 *   promises that a 16-byte access to host memory is one piece (see
 *   docs/platform-facts.md, "16-byte accesses"). So a reader may see the
 *   current tag with an earlier write's data. The tag's check catches that:
 *   such a lane is RB_LANE_TORN, the slot is polled again (a tear lasts
 *   only until both halves of one write have landed), and a slot still
 *   torn after RB_LANE_TORN_TURNS turns in a row is RB_ERR_RING_CORRUPTED.
 *   Measured on an H200: 0 torn in 50,000 and in 270,000 messages.
 *   GPU writer: thread t writes reply lane t with ONE st.relaxed.sys.v2
 *   {data, tag}; no release store and no fence on the per-message path:
 *   each lane carries its own tag and check (the host reader acquires the
 *   tag, reads the data, and verifies the check).
 *   Host fallback: writer data RELAXED then tag RELEASE; reader tag ACQUIRE
 *   then data RELAXED (the acquire synchronises with the release, so the data
 *   of that lap is seen).
 *   Flow control as in the slot format: the H2K tail is RELEASE-stored after
 *   the batch's lanes were loaded (barriers put every warp's loads before
 *   thread 0's release, which is cumulative), the host's K2H tail is
 *   ACQUIRE-loaded when the cache says full. The K2H head is stored RELAXED
 *   for statistics (and a restart); nobody reads it to find messages.
 */

/* Per-lane states and per-slot poll results. */
#define RB_LANE_CUR 0u
#define RB_LANE_STALE 1u
#define RB_LANE_BAD 2u
#define RB_SLOT_WAIT 0u
#define RB_SLOT_READY 1u
#define RB_SLOT_CORRUPT 2u
#define RB_LANE_TORN 3u /* position current, check does not match the data */
#define RB_SLOT_TORN 3u /* a needed lane is torn: poll again */
/* Turns in a row whose first slot is torn before that is corruption: a real
   tear lasts one write's landing (well under one poll on the GPU, which
   takes a PCIe round trip), so 1024 turns (about 2 ms on an H200) in a row
   are not one. The host fallback's reader and writer are both on the host
   (acquire/release, never torn), so there a torn lane is corruption; its
   turns are a few ns until it backs off to 30 us sleeps, so it counts 2^17
   turns (about 2 s) to report it in a comparable time. */
#ifndef RB_LANE_TORN_TURNS
#if RB_ON_GPU
#define RB_LANE_TORN_TURNS 1024u
#else
#define RB_LANE_TORN_TURNS (1u << 17)
#endif
#endif

/* Slots polled per batch at most: the warps of a 1024-thread block (the host
   fallback, one thread, polls up to this many slots one after another). */
#define RB_LANE_WARPS 32u
/* 64-bit words of one lane slot's payload buffer: 31 lanes * 8 bytes, rounded
   up to whole 16-byte chunks for the handlers' rb_ld16 / rb_st16. */
#define RB_LANE_PAY_WORDS 32u

#define RB_LANE_LEN_MASK ((1ull << RB_LANE_LEN_BITS) - 1ull)

RB_INLINE uint64_t rb_lane_word(uint32_t kind, uint32_t len, uint32_t flags) {
    return ((uint64_t)len & RB_LANE_LEN_MASK) | ((uint64_t)(kind & 0xffu) << RB_LANE_KIND_SHIFT) |
           ((uint64_t)flags << RB_LANE_FLAGS_SHIFT);
}

#define RB_LANE_SEQ_MASK ((1ull << RB_LANE_SEQ_BITS) - 1ull)

/* src/layout.rs lane_mix: odd multiplies and xor-shifts, a bijection. */
RB_INLINE uint64_t rb_lane_mix(uint64_t x) {
    x *= RB_LANE_MIX_MUL1;
    x ^= x >> 32;
    x *= RB_LANE_MIX_MUL2;
    x ^= x >> 29;
    return x;
}

/* src/layout.rs lane_tag: position + 1, and the check of data above it. */
RB_INLINE uint64_t rb_lane_tag(uint64_t pos, uint64_t data) {
    const uint64_t seq = (pos + 1u) & RB_LANE_SEQ_MASK;
    return seq | ((rb_lane_mix(data ^ seq) >> RB_LANE_SEQ_BITS) << RB_LANE_SEQ_BITS);
}

/* What a lane says about the message whose position field is `want`
   (pos + 1): current (and whole), torn, stale or impossible. */
RB_INLINE uint32_t rb_lane_state(uint64_t tag, uint64_t data, uint64_t want, uint64_t mask) {
    const uint64_t seq = tag & RB_LANE_SEQ_MASK;
    if (seq == want) return rb_lane_tag(want - 1u, data) == tag ? RB_LANE_CUR : RB_LANE_TORN;
    if (seq == 0 || (seq < want && ((want - seq) & mask) == 0)) return RB_LANE_STALE;
    return RB_LANE_BAD;
}

/* Lanes of the slot of counter value `pos`. */
RB_INLINE rb_lane* rb_lane_slot(rb_ring* r, uint64_t pos, uint64_t mask, uint64_t slot_size) {
    return reinterpret_cast<rb_lane*>(rb_slot(r, pos, mask, slot_size));
}

#if RB_ON_GPU
/* RELAXED, system scope, ONE 16-byte access: a lane {data, tag}. */
RB_INLINE void rb_ld_lane(const rb_lane* p, uint64_t& data, uint64_t& tag) {
    asm volatile("ld.relaxed.sys.global.v2.u64 {%0, %1}, [%2];"
                 : "=l"(data), "=l"(tag)
                 : "l"(rb_global(p))
                 : "memory");
}
RB_INLINE void rb_st_lane(rb_lane* p, uint64_t data, uint64_t tag) {
    asm volatile("st.relaxed.sys.global.v2.u64 [%0], {%1, %2};" : : "l"(rb_global(p)), "l"(data), "l"(tag) : "memory");
}
#define RB_FULL_WARP 0xffffffffu
RB_INLINE uint64_t rb_warp_shfl(uint64_t v, uint32_t src) { return __shfl_sync(RB_FULL_WARP, v, src); }
RB_INLINE uint32_t rb_warp_shfl(uint32_t v, uint32_t src) { return __shfl_sync(RB_FULL_WARP, v, src); }
RB_INLINE bool rb_warp_any(bool p) { return __any_sync(RB_FULL_WARP, p); }
RB_INLINE bool rb_warp_all(bool p) { return __all_sync(RB_FULL_WARP, p); }
#elif RB_BLOCK_PARALLEL
/* Emulated lanes: the tag ACQUIRE then the data (a current tag was
   release-stored after its data, and the slot is not rewritten before it is
   released); stores are the data then the tag RELEASE. */
RB_INLINE void rb_ld_lane(const rb_lane* p, uint64_t& data, uint64_t& tag) {
    tag = __atomic_load_n(&p->tag, __ATOMIC_ACQUIRE);
    data = __atomic_load_n(&p->data, __ATOMIC_RELAXED);
}
RB_INLINE void rb_st_lane(rb_lane* p, uint64_t data, uint64_t tag) {
    __atomic_store_n(&p->data, data, __ATOMIC_RELAXED);
    __atomic_store_n(&p->tag, tag, __ATOMIC_RELEASE);
}
RB_INLINE uint64_t rb_warp_shfl(uint64_t v, uint32_t src) { return rb_emu_warp_shfl(v, src); }
RB_INLINE uint32_t rb_warp_shfl(uint32_t v, uint32_t src) { return (uint32_t)rb_emu_warp_shfl(v, src); }
RB_INLINE bool rb_warp_any(bool p) { return rb_emu_warp_any(p); }
RB_INLINE bool rb_warp_all(bool p) { return rb_emu_warp_all(p); }
#endif

#if !RB_BLOCK_PARALLEL
/* The slot state of a first lane that is not current. */
RB_INLINE uint32_t rb_lane_slot_state(uint32_t lane_state) {
    return lane_state == RB_LANE_STALE ? RB_SLOT_WAIT : (lane_state == RB_LANE_TORN ? RB_SLOT_TORN : RB_SLOT_CORRUPT);
}
#endif

/*
 * Polls the request at `pos` in `slot` once. On the GPU the whole warp calls
 * it (thread t loads lane t); on the host the one thread loads lane by lane.
 * Returns RB_SLOT_WAIT / READY / TORN / CORRUPT (warp-uniform). When READY, lane 0's
 * data is in *word and the payload words in pay[0..ceil(len/8)).
 */
RB_INLINE uint32_t rb_lane_poll(const rb_lane* slot, uint32_t nlanes, uint64_t pos, uint64_t mask, uint32_t max_len,
                                uint64_t* word, uint64_t* pay) {
    const uint64_t want = pos + 1;
#if RB_BLOCK_PARALLEL
    const uint32_t t = rb_thread_index() & 31u;
    uint64_t data = 0, tag = 0;
    if (t < nlanes) rb_ld_lane(&slot[t], data, tag); /* one coalesced warp access */
    const uint32_t st = rb_lane_state(tag, data, want, mask);
    const uint64_t w0 = rb_warp_shfl(data, 0u);
    const uint32_t st0 = rb_warp_shfl(st, 0u);
    const uint32_t len = (uint32_t)(w0 & RB_LANE_LEN_MASK);
    const uint32_t kind = (uint32_t)((w0 >> RB_LANE_KIND_SHIFT) & 0xffu);
    const bool bad_header = st0 == RB_LANE_CUR && (kind != RB_KIND_REQUEST || len > max_len);
    /* Lanes this message needs: lane 0, and its payload lanes once lane 0 is
       current and sane (before that, lane 0's len means nothing). */
    const uint32_t last = (st0 == RB_LANE_CUR && !bad_header) ? (len + 7u) / 8u : 0u;
    const bool needed = t <= last;
    const bool corrupt = rb_warp_any(needed && st == RB_LANE_BAD) || bad_header;
    const bool all_current = rb_warp_all(!needed || st == RB_LANE_CUR);
    const bool torn = rb_warp_any(needed && st == RB_LANE_TORN);
    if (t >= 1 && t <= last) pay[t - 1] = data;
    if (t == 0) *word = w0;
    return corrupt ? RB_SLOT_CORRUPT : (all_current ? RB_SLOT_READY : (torn ? RB_SLOT_TORN : RB_SLOT_WAIT));
#else
    (void)nlanes;
    /* ACQUIRE on each tag: pairs with the writer's release store of that tag
       (made after the lane's data), so the RELAXED data load that follows
       sees this lap's data; the check is verified all the same. */
    const uint64_t t0 = __atomic_load_n(&slot[0].tag, __ATOMIC_ACQUIRE);
    const uint64_t w0 = __atomic_load_n(&slot[0].data, __ATOMIC_RELAXED);
    const uint32_t st0 = rb_lane_state(t0, w0, want, mask);
    if (st0 != RB_LANE_CUR) return rb_lane_slot_state(st0);
    const uint32_t len = (uint32_t)(w0 & RB_LANE_LEN_MASK);
    const uint32_t kind = (uint32_t)((w0 >> RB_LANE_KIND_SHIFT) & 0xffu);
    if (kind != RB_KIND_REQUEST || len > max_len) return RB_SLOT_CORRUPT;
    const uint32_t last = (len + 7u) / 8u;
    for (uint32_t k = 1; k <= last; ++k) {
        const uint64_t tk = __atomic_load_n(&slot[k].tag, __ATOMIC_ACQUIRE); /* as lane 0 */
        const uint64_t dk = __atomic_load_n(&slot[k].data, __ATOMIC_RELAXED);
        const uint32_t st = rb_lane_state(tk, dk, want, mask);
        if (st != RB_LANE_CUR) return rb_lane_slot_state(st);
        pay[k - 1] = dk;
    }
    *word = w0;
    return RB_SLOT_READY;
#endif
}

/* Writes the reply at `pos` in `nl` lanes (lane 0: `word`, then `pay`), each
   lane with its rb_lane_tag. GPU: the whole warp calls it, thread t stores
   lane t with ONE 16-byte st.relaxed.sys (no fence: every lane carries its
   own tag and check). Host: payload lanes first, each data RELAXED then tag
   RELEASE (the release orders the data before the tag for a reader that
   acquires the tag). */
RB_INLINE void rb_lane_write(rb_lane* slot, uint32_t nl, uint64_t word, const uint64_t* pay, uint64_t pos) {
#if RB_BLOCK_PARALLEL
    const uint32_t t = rb_thread_index() & 31u;
    if (t < nl) {
        const uint64_t data = t == 0 ? word : pay[t - 1];
        rb_st_lane(&slot[t], data, rb_lane_tag(pos, data));
    }
#else
    /* Last payload lane first: the slot's first cache line (lane 0 with
       lanes 1-3) is then written in one burst at the end, so the reader
       spinning on lane 0 takes that line from us once, not twice (measured
       on the fallback, 64 B: about 10% off the round trip). */
    for (uint32_t k = nl; k-- > 1;) {
        __atomic_store_n(&slot[k].data, pay[k - 1], __ATOMIC_RELAXED);
        __atomic_store_n(&slot[k].tag, rb_lane_tag(pos, pay[k - 1]), __ATOMIC_RELEASE);
    }
    __atomic_store_n(&slot[0].data, word, __ATOMIC_RELAXED);
    __atomic_store_n(&slot[0].tag, rb_lane_tag(pos, word), __ATOMIC_RELEASE);
#endif
}

/*
 * Timing of the lane serve loop on the GPU: when it releases the H2K tail,
 * and when it polls after serving.
 *
 * The tail. A release store at system scope waits until the thread's earlier
 * accesses to host memory are performed (MEMBAR.SYS in the SASS). Made after
 * every batch, it sat between the replies and the next poll. No reply waits
 * for the tail (every lane carries its own tag); only a producer whose ring
 * looks full does. So with RB_LANE_LAZY_TAIL (the default) thread 0 releases
 * the tail at the start of a turn only when one of these holds:
 *   - a quarter of the ring was read since the last release, so slots read
 *     but not yet released never cost a producer more than a quarter ring;
 *   - RB_LANE_IDLE_TURNS turns in a row served nothing (a producer waiting
 *     for room gets it within those turns, it never waits forever);
 *   - the turn looks at terminate (rb_check_due), so a kernel that stops has
 *     released everything it read, and a relaunch resumes from there.
 * -DRB_LANE_LAZY_TAIL=0 releases after every batch.
 *
 * The poll. One warp's poll is one PCIe read that sees host memory as it
 * was when it reached the host, so a poll issued at once after a round
 * trip's replies comes back empty, and whether the next one finds the
 * request is a matter of tens of ns: p50 went bimodal. After a turn that
 * drained the ring, the polling warps therefore wait
 * RB_LANE_POLL_DELAY_CYCLES SM cycles first (0: no delay; a switch, e.g.
 * through RINGBRIDGE_KERNEL_DEFINES, since the best delay depends on the
 * host's and the link's turnaround). A stream that fills every polling
 * warp's slot is never delayed. The measurements behind 1200 cycles:
 * docs/performance.md, "Lane poll delay".
 */
#ifndef RB_LANE_LAZY_TAIL
#define RB_LANE_LAZY_TAIL 1
#endif
#define RB_LANE_IDLE_TURNS 8u
#ifndef RB_LANE_POLL_DELAY_CYCLES
#define RB_LANE_POLL_DELAY_CYCLES 1200
#endif

/* Block-shared state of the lane serve loop. */
struct rb_lane_shared {
    alignas(16) uint64_t in_pay[RB_LANE_WARPS][RB_LANE_PAY_WORDS];  /* request payloads */
    alignas(16) uint64_t out_pay[RB_LANE_WARPS][RB_LANE_PAY_WORDS]; /* reply payloads */
    uint64_t in_word[RB_LANE_WARPS];  /* request lane 0 data */
    uint64_t out_word[RB_LANE_WARPS]; /* reply lane 0 data */
    uint64_t code[RB_LANE_WARPS], detail[RB_LANE_WARPS]; /* a failing slot's error */
    uint32_t state[RB_LANE_WARPS];     /* RB_SLOT_* of each polled slot */
    uint32_t out_lanes[RB_LANE_WARPS]; /* reply lanes to write */
    uint64_t h2k_tail, k2h_head;
    uint32_t limit, stop, fatal_index;
};

/*
 * The lane-format serve loop (called by rb_serve once the start checks
 * passed; the counter arguments are thread 0's). Warp w polls slot
 * tail + w; the batch is the run of consecutive ready slots from the first,
 * capped by the free K2H slots (thread 0 waits when K2H is full, never drops).
 * Each ready warp's first thread runs the SAME handler as the slot format on
 * the request copied into block-shared memory; the reply lanes are then
 * written by the warp. On a fatal error the replies before the failing
 * request are written, nothing from it on.
 */
template <class Handler>
RB_INLINE int rb_serve_lanes(rb_control* ctl, rb_ring* h2k, rb_ring* k2h, Handler& handler, const rb_block_state& sh,
                             uint64_t& h2k_tail, uint64_t& k2h_head, uint64_t& k2h_tail, uint64_t h2k_cap,
                             uint64_t k2h_cap, rb_checks& checks, uint64_t& beat, uint32_t& idle) {
    const uint32_t tid = rb_thread_index();
#if RB_BLOCK_PARALLEL
    const uint32_t my_warp = tid / 32u;
    const uint32_t lane_id = tid & 31u;
    const uint32_t nwarps = rb_block_size() / 32u < RB_LANE_WARPS ? rb_block_size() / 32u : RB_LANE_WARPS;
    const uint32_t step = nwarps; /* one slot per warp per batch */
#else
    const uint32_t my_warp = 0, lane_id = 0;
    const uint32_t nwarps = RB_LANE_WARPS;
    const uint32_t step = 1; /* the one thread takes every slot in turn */
#endif
    RB_BLOCK_SHARED rb_lane_shared ls;
    const uint64_t h2k_mask = sh.h2k_mask, k2h_mask = sh.k2h_mask;
    const uint64_t h2k_slot = sh.h2k_slot_size, k2h_slot = sh.k2h_slot_size;
    const uint32_t in_lanes = (uint32_t)(h2k_slot / RB_LANE_SIZE);
    const uint32_t in_max = (in_lanes - 1u) * 8u;
    const uint32_t out_cap = (uint32_t)(k2h_slot / RB_LANE_SIZE - 1u) * 8u;
    /* Thread 0's: the tail last release-stored, requests read between
       publishes, and turns in a row that served nothing. */
    uint64_t published = h2k_tail;
    const uint64_t publish_every = RB_LANE_LAZY_TAIL && h2k_cap >= 4u ? h2k_cap / 4u : 1u;
    uint32_t empty_turns = 0;
    uint32_t torn_turns = 0; /* see RB_LANE_TORN_TURNS */
#if RB_ON_GPU
    long long poll_after = 0; /* SM clock before which this turn's poll waits */
#endif

    for (;;) {
        if (tid == 0) {
            if (h2k_tail != published &&
                (h2k_tail - published >= publish_every || empty_turns >= RB_LANE_IDLE_TURNS ||
                 rb_check_due(checks, idle))) {
                /* RELEASE, system scope: the block's loads of every request
                   lane below h2k_tail happened before the barriers of the
                   turns that read them, which put them before this store in
                   causality order; a release is cumulative, so the host
                   reuses those slots only after they were read. */
                rb_st_release(&h2k->tail, h2k_tail);
                /* RELAXED: statistics only; the reply lanes publish themselves. */
                rb_st_relaxed(&k2h->head, k2h_head);
                published = h2k_tail;
                rb_wake_host(ctl); /* a sender may be parked waiting for room */
            }
            uint32_t limit = 0;
            uint32_t stop = rb_turn_check(ctl, checks, idle, beat, h2k_tail, k2h_head);
            if (stop == 0) {
                uint64_t room = 0;
                stop = rb_k2h_room(ctl, k2h, k2h_tail, k2h_head, k2h_cap, h2k_tail, beat, room);
                if (stop == 0) {
                    uint64_t lim = room < h2k_cap ? room : h2k_cap;
                    if (lim > nwarps) lim = nwarps;
                    limit = (uint32_t)lim;
                    if (limit == 0) { /* back-pressure: wait, never drop */
                        ++empty_turns;
                        rb_idle(ctl, idle, false);
                    }
                }
            }
            ls.stop = stop;
            ls.limit = limit;
            ls.h2k_tail = h2k_tail;
            ls.k2h_head = k2h_head;
        }
        rb_block_sync(); /* broadcast the batch's bounds */
        if (ls.stop != 0) return (int)ls.stop;
        /* Reset here, not with the bounds above: slower warps read the last
           turn's fatal_index after that turn's last barrier, so only past
           this turn's first barrier has every thread done so; the handlers
           below set it only past the next barrier. (Reset with the bounds,
           it raced with those reads: the race check found it.) */
        if (tid == 0) ls.fatal_index = RB_NO_FATAL;
        /* Local copies: thread 0 rewrites ls for the next batch while slower
           warps may still be writing this batch's replies. */
        const uint32_t limit = ls.limit;
        const uint64_t in_base = ls.h2k_tail, out_base = ls.k2h_head;
        if (limit == 0) {
            /* Back-pressure. The barrier keeps thread 0 from rewriting
               ls.stop / ls.limit for the next turn before every warp has
               read this turn's: without it a slow warp could take the next
               turn's bounds and pair its barriers with the wrong ones (seen
               as a hang on an H200 with 1024 threads and 4-slot rings). */
            rb_block_sync();
            continue;
        }

#if RB_ON_GPU
        while (clock64() < poll_after) { /* see RB_LANE_POLL_DELAY_CYCLES */
        }
#endif
        for (uint32_t w = my_warp; w < limit; w += step) {
            const uint64_t pos = in_base + w;
            const uint32_t st =
                rb_lane_poll(rb_lane_slot(h2k, pos, h2k_mask, h2k_slot), in_lanes, pos, h2k_mask, in_max, &ls.in_word[w],
                             ls.in_pay[w]);
            if (lane_id == 0) ls.state[w] = st;
            if (!RB_BLOCK_PARALLEL && st != RB_SLOT_READY) break; /* the run ends here */
        }
        rb_block_sync(); /* every polled slot's state and lanes are in ls */

        uint32_t n = 0;
        while (n < limit && ls.state[n] == RB_SLOT_READY) ++n;
        /* Every thread counts the same (ls.state is block-shared): turns in a
           row that served nothing because the first slot was torn. */
        torn_turns = (n == 0 && ls.state[0] == RB_SLOT_TORN) ? torn_turns + 1u : 0u;
        if (n < limit && (ls.state[n] == RB_SLOT_CORRUPT || torn_turns >= RB_LANE_TORN_TURNS)) { /* block-uniform */
            if (tid == 0) {
                /* RELEASE: as at the top of the turn (what was read stays read). */
                if (h2k_tail != published) rb_st_release(&h2k->tail, h2k_tail);
                rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                rb_finish(ctl, RB_STATUS_FAILED, RB_ERR_RING_CORRUPTED, in_base + n);
            }
            return (int)RB_STATUS_FAILED;
        }
        if (n == 0) {
            if (tid == 0) {
                ++empty_turns;
                rb_idle(ctl, idle, true);
            }
            continue;
        }

        for (uint32_t w = my_warp; w < n; w += step) {
            if (lane_id == 0) {
                const uint64_t word = ls.in_word[w];
                rb_msg_header in;
                in.seq = in_base + w;
                in.correlation = 0;
                in.kind = RB_KIND_REQUEST;
                in.len = (uint32_t)(word & RB_LANE_LEN_MASK);
                in.flags = (uint32_t)(word >> RB_LANE_FLAGS_SHIFT);
                in.reserved = 0;
                rb_msg_header out = rb_reply_header(out_base + w, in);
                uint64_t code = 0, detail = 0;
                /* Handlers that send are refused the lane format at start. */
                uint32_t no_count = 0;
                rb_sender no_sends{k2h, 0, 0, 0, 0, &no_count, 0};
                const int rc = rb_handle(handler, in, reinterpret_cast<const uint8_t*>(ls.in_pay[w]), out,
                                         reinterpret_cast<uint8_t*>(ls.out_pay[w]), out_cap, no_sends);
                rb_settle_reply(rc, out, out_cap, code, detail);
                ls.out_word[w] = rb_lane_word(out.kind, out.len, out.flags);
                ls.out_lanes[w] = 1u + (out.len + 7u) / 8u;
                ls.code[w] = code;
                ls.detail[w] = detail;
                if (code != 0) rb_block_min_u32(&ls.fatal_index, w);
            }
        }
        /* Every request was handled; the batch's requests are all loaded. */
        rb_block_sync();

        /* On a fatal error, the replies before the failing request are still
           written and published (as the one-request batches of the host
           fallback's slot format do); nothing from the failing one on. */
        const uint32_t fatal = ls.fatal_index; /* block-uniform */
        const uint32_t done = fatal == RB_NO_FATAL ? n : fatal;
        for (uint32_t w = my_warp; w < done; w += step) {
            const uint64_t pos = out_base + w;
            rb_lane_write(rb_lane_slot(k2h, pos, k2h_mask, k2h_slot), ls.out_lanes[w], ls.out_word[w], ls.out_pay[w],
                          pos);
        }

        if (fatal != RB_NO_FATAL) {
            /* The barrier puts every warp's reply stores before thread 0's
               release store of the final status (cumulative), so a host that
               sees FAILED finds the replies before it already written. */
            rb_block_sync();
            if (tid == 0) {
                h2k_tail += done;
                k2h_head += done;
                rb_st_release(&h2k->tail, h2k_tail);
                rb_st_relaxed(&k2h->head, k2h_head);
                rb_publish_progress(ctl, ++beat, h2k_tail, k2h_head);
                rb_finish(ctl, RB_STATUS_FAILED, ls.code[fatal], ls.detail[fatal]);
            }
            return (int)RB_STATUS_FAILED;
        }

#if RB_ON_GPU
        /* The ring was drained (some polled slot was empty, or one warp
           polls one slot): the next request comes from a host that has yet
           to see these replies, so poll for it a little later. */
        if (RB_LANE_POLL_DELAY_CYCLES > 0 && (n < limit || limit == 1))
            poll_after = clock64() + RB_LANE_POLL_DELAY_CYCLES;
#endif
        if (tid == 0) {
            if (idle != 0) idle = 0;
            empty_turns = 0;
            h2k_tail += n;
            k2h_head += n;
            /* The replies' lanes are written (by this thread; in the block
               emulation other warps may still be writing theirs, and a host
               woken too early parks again until a later wake or its
               timeout: slower, never stuck). */
            rb_wake_host(ctl);
            /* The tail is published at the top of a later turn (see
               RB_LANE_LAZY_TAIL). */
            rb_after_batch(checks);
        }
    }
}

}  // namespace rb_detail

#endif /* RINGBRIDGE_DETAIL_SERVE_LANES_H */
