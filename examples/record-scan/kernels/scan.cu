/*
 * scan.cu — a kernel that scans a table the host owns, one page at a time,
 * by calling the host (rb_call), keeps per-bucket aggregates of what it has
 * seen in a bridge-owned buffer, logs its progress (rb_log), and answers
 * queries over the records scanned so far.
 *
 * The table: records {key: u32, value: u32} (8 bytes, little-endian). Record
 * r belongs to bucket r.key % buckets. Per bucket the kernel keeps the
 * number of records, the sum of their values and the largest value.
 *
 * Pages: the host service RS_SERVICE_PAGE answers a page index (one u64)
 * with that page's records, at most RS_PAGE_RECORDS of them (4000 bytes:
 * the bridge's call slots are 4096 bytes, 4064 of payload). A page past the
 * end of the table is refused with status RS_PAST_END, which is how the
 * kernel learns the table's length; any other failed call stops the scan
 * and is kept (rs_state.failure) for the host to see.
 *
 * Who scans: the idle hook, one page per idle turn of the serve loop, when
 * the parameter's `background` is set (the kernel scans while no request
 * waits, and requests are served between its pages); and the RS_OP_PULL
 * request, one page per request, from whichever thread serves it.
 *
 * Requests are 8 bytes, two little-endian u32 {op, arg}:
 *   RS_OP_QUERY    (1): arg = a bucket; replies an rs_view (64 bytes) with
 *                       the bucket's aggregates and the progress.
 *   RS_OP_PROGRESS (2): replies an rs_view with the progress only.
 *   RS_OP_PULL     (3): claims the next page, pulls it and folds it in;
 *                       replies an rs_pull (16 bytes).
 * Errors: RS_ERR_BAD_REQUEST (not 8 bytes, an unknown op), RS_ERR_BAD_BUCKET.
 *
 * Buffers: 0, the buckets (param.buckets entries of rs_bucket, zeroed);
 * 1, the scan's state (one rs_state, zeroed). Parameter: rs_param.
 *
 * Concurrency: on the GPU (and in the block emulation) the requests of one
 * batch run at the same time, one per thread, so several RS_OP_PULLs fold
 * pages at once: every update of the shared buffers is an atomic operation,
 * pages are claimed with a fetch-and-add of the next page, and a page's
 * count of pages and of records go into one word with one add, so the two
 * never disagree. The idle hook runs on thread 0 between batches (no
 * request is being served then), so a query in a batch without pulls sees
 * every page claimed so far folded in completely: the aggregates of the
 * first `records` records of the table, exactly.
 */
#include "ringbridge.cuh"

#define RS_SERVICE_PAGE 1u
#define RS_PAGE_RECORDS 500u
/* The page service's "past the end": the first status a service may use. */
#define RS_PAST_END ((uint32_t)RB_CALL_FIRST_SERVICE_CODE)

#define RS_OP_QUERY 1u
#define RS_OP_PROGRESS 2u
#define RS_OP_PULL 3u

#define RS_ERR_BAD_REQUEST 1
#define RS_ERR_BAD_BUCKET 2

/* rs_state.progress: pages scanned above bit 40, records below. */
#define RS_PAGES_SHIFT 40
#define RS_RECORDS_MASK ((1ull << RS_PAGES_SHIFT) - 1)

/* rs_pull.page when no page was claimed. */
#define RS_NO_PAGE (~0ull)

/* The typed parameter, mirrored by ScanParam in src/lib.rs. */
struct rs_param {
    uint32_t buckets;    /* entries of buffer 0, at least 1 */
    uint32_t log_every;  /* log a progress line every this many pages (0: never) */
    uint32_t background; /* non-zero: the idle hook scans */
    uint32_t reserved;
};

struct rs_record {
    uint32_t key;
    uint32_t value;
};

/* Buffer 0, one per bucket (BucketStats in src/lib.rs). */
struct rs_bucket {
    uint64_t count;
    uint64_t sum;
    uint64_t max;
};

/* Buffer 1. */
struct rs_state {
    uint64_t progress;  /* pages << RS_PAGES_SHIFT | records, folded in */
    uint64_t next_page; /* the next page to claim */
    uint64_t end;       /* 0: not known yet; else the first page past the end, + 1 */
    uint64_t failure;   /* 0: none; else the first failed page << 32 | its call's status */
};

struct rs_request {
    uint32_t op;
    uint32_t arg;
};

/* The reply to RS_OP_QUERY and RS_OP_PROGRESS (View in src/lib.rs). */
struct rs_view {
    uint64_t count, sum, max; /* the bucket's; 0 for RS_OP_PROGRESS */
    uint64_t pages, records;  /* folded in so far */
    uint64_t end, failure;    /* rs_state's */
    uint64_t reserved;
};

/* The reply to RS_OP_PULL. */
struct rs_pull {
    uint64_t page;    /* the page claimed, or RS_NO_PAGE */
    uint32_t records; /* its records, when folded */
    uint32_t status;  /* 0: folded; RS_PAST_END; or a failed call's status */
};

/* Atomics on the buffers' u64 words, GPU scope on CUDA (only the kernel
   touches the buffers while it runs) and the C++ builtins on the host,
   where the block emulation runs the handler on many threads too. Relaxed:
   the barrier between batches orders a batch's updates before the next
   batch's reads, and within a batch no order is promised. */
#if RB_ON_GPU
RB_DEVICE uint64_t rs_load(const uint64_t* p) {
    uint64_t v;
    asm volatile("ld.relaxed.gpu.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
RB_DEVICE uint64_t rs_fetch_add(uint64_t* p, uint64_t v) {
    return atomicAdd(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
RB_DEVICE void rs_fetch_max(uint64_t* p, uint64_t v) {
    (void)atomicMax(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
RB_DEVICE uint64_t rs_cas(uint64_t* p, uint64_t expected, uint64_t desired) {
    return atomicCAS(reinterpret_cast<unsigned long long*>(p), (unsigned long long)expected,
                     (unsigned long long)desired);
}
#else
RB_DEVICE uint64_t rs_load(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
RB_DEVICE uint64_t rs_fetch_add(uint64_t* p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
RB_DEVICE void rs_fetch_max(uint64_t* p, uint64_t v) {
    uint64_t seen = __atomic_load_n(p, __ATOMIC_RELAXED);
    /* A failed exchange reloads `seen`; stop once it is at least v. */
    while (v > seen && !__atomic_compare_exchange_n(p, &seen, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}
RB_DEVICE uint64_t rs_cas(uint64_t* p, uint64_t expected, uint64_t desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return expected; /* the value found, as atomicCAS returns it */
}
#endif

/* *p = min(*p, v) where 0 stands for "none yet" (v > 0). */
RB_DEVICE void rs_min_nonzero(uint64_t* p, uint64_t v) {
    uint64_t seen = rs_load(p);
    while (seen == 0 || v < seen) {
        const uint64_t found = rs_cas(p, seen, v);
        if (found == seen) return;
        seen = found;
    }
}

struct rs_handler {
    rs_bucket* table;
    rs_state* state;
    uint32_t buckets;
    uint32_t log_every;
    bool background;
    bool ok;               /* the buffers match the parameter */
    bool reported = false; /* thread 0's: the idle hook logged the end of the scan */

    RB_DEVICE explicit rs_handler(const rb_launch& l)
        : table(l.buffer<rs_bucket>(0)),
          state(l.buffer<rs_state>(1)),
          buckets(l.param<rs_param>().buckets),
          log_every(l.param<rs_param>().log_every),
          background(l.param<rs_param>().background != 0) {
        ok = table != nullptr && state != nullptr && buckets != 0 &&
             l.buffer_bytes(0) >= (uint64_t)buckets * sizeof(rs_bucket) && l.buffer_bytes(1) >= sizeof(rs_state);
    }

    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (!ok) return -1; /* fatal: launched with the wrong buffers */
        if (in.len != sizeof(rs_request) || out_capacity < sizeof(rs_view)) return RS_ERR_BAD_REQUEST;
        rs_request r;
        memcpy(&r, in_payload, sizeof r);
        if (r.op == RS_OP_PULL) {
            rs_pull p;
            p.status = pull(p.page, p.records);
            memcpy(out_payload, &p, sizeof p);
            out.len = sizeof p;
            return 0;
        }
        if (r.op != RS_OP_QUERY && r.op != RS_OP_PROGRESS) return RS_ERR_BAD_REQUEST;
        rs_view v;
        memset(&v, 0, sizeof v);
        if (r.op == RS_OP_QUERY) {
            if (r.arg >= buckets) return RS_ERR_BAD_BUCKET;
            const rs_bucket& b = table[r.arg];
            v.count = rs_load(&b.count);
            v.sum = rs_load(&b.sum);
            v.max = rs_load(&b.max);
        }
        const uint64_t progress = rs_load(&state->progress);
        v.pages = progress >> RS_PAGES_SHIFT;
        v.records = progress & RS_RECORDS_MASK;
        v.end = rs_load(&state->end);
        v.failure = rs_load(&state->failure);
        memcpy(out_payload, &v, sizeof v);
        out.len = sizeof v;
        return 0;
    }

    /* Thread 0, when no request waits: scans one page (background), or
       logs the end of the scan once it is known. */
    RB_DEVICE void idle(rb_sender&) {
        if (!ok || reported) return;
        if (rs_load(&state->failure) == 0 && rs_load(&state->end) == 0) {
            if (background) {
                uint64_t page = 0;
                uint32_t records = 0;
                (void)pull(page, records);
            }
            return;
        }
        reported = true;
        if (rs_load(&state->failure) != 0) return; /* the failing call logged it */
        /* Between batches every claimed page before the end is folded in. */
        const uint64_t progress = rs_load(&state->progress);
        rb_log(RB_LOG_INFO, "scan complete: {} pages, {} records", progress >> RS_PAGES_SHIFT,
               progress & RS_RECORDS_MASK);
    }

    /* Claims the next page, pulls it from the host and folds it in. Returns
       0 (`page` and `records` say which and how many), RS_PAST_END (the
       table ended at or before the page; `page` is RS_NO_PAGE when the end
       was known already), or the status of the call that failed (this one,
       or an earlier one: then `page` is RS_NO_PAGE). */
    RB_DEVICE uint32_t pull(uint64_t& page, uint32_t& records) const {
        page = RS_NO_PAGE;
        records = 0;
        const uint64_t failure = rs_load(&state->failure);
        if (failure != 0) return (uint32_t)failure; /* its status */
        if (rs_load(&state->end) != 0) return RS_PAST_END;
        page = rs_fetch_add(&state->next_page, 1);
        rs_record recs[RS_PAGE_RECORDS];
        uint32_t len = 0;
        int status = rb_call(RS_SERVICE_PAGE, &page, (uint32_t)sizeof page, recs, (uint32_t)sizeof recs, &len);
        if (status == (int)RB_CALL_OK && len % sizeof(rs_record) != 0) status = (int)RB_CALL_ANSWER_SIZE;
        if (status == (int)RS_PAST_END) {
            rs_min_nonzero(&state->end, page + 1);
            return RS_PAST_END;
        }
        if (status != (int)RB_CALL_OK) {
            /* The first failure is kept, and logged unless the bridge is
               being shut down (then nobody waits for the scan). */
            if (rs_cas(&state->failure, 0, (page << 32) | (uint32_t)status) == 0 &&
                status != (int)RB_CALL_SHUTTING_DOWN)
                rb_log(RB_LOG_ERROR, "page {} failed with status {}: the scan stops", page, status);
            return (uint32_t)status;
        }
        records = len / (uint32_t)sizeof(rs_record);
        for (uint32_t i = 0; i < records; ++i) {
            rs_bucket& b = table[recs[i].key % buckets];
            (void)rs_fetch_add(&b.count, 1);
            (void)rs_fetch_add(&b.sum, recs[i].value);
            rs_fetch_max(&b.max, recs[i].value);
        }
        const uint64_t add = (1ull << RS_PAGES_SHIFT) | records;
        const uint64_t now = rs_fetch_add(&state->progress, add) + add;
        const uint64_t pages = now >> RS_PAGES_SHIFT;
        if (log_every != 0 && pages % log_every == 0)
            rb_log(RB_LOG_INFO, "scanned {} pages, {} records", pages, now & RS_RECORDS_MASK);
        return 0;
    }
};

RB_KERNEL_ENTRY(record_scan, rs_handler)
