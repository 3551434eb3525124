/*
 * kv.cu — a key-value store resident in the kernel's memory (device memory
 * on CUDA, host memory on the fallback): one table of u64 -> u64 entries,
 * open addressing with linear probing, served over ringbridge's rings.
 *
 * Requests are 24 bytes, three little-endian u64 {op, key, value}:
 *   KV_PUT   (1): stores value under key; answered with nothing (RB_NO_REPLY).
 *   KV_GET   (2): replies with the 8-byte value, or error KV_ERR_NOT_FOUND.
 *   KV_COUNT (3): replies with the 8-byte count of keys in the table.
 * Keys are 1 ..= 2^63 - 1: 0 marks an empty entry and bit 63 an entry
 * whose value is still being written (below). Other errors: KV_ERR_BAD_REQUEST
 * (not 24 bytes, or an unknown op), KV_ERR_BAD_KEY, KV_ERR_FULL (a PUT of a
 * new key into a full table: then it gets that error reply instead of nothing).
 *
 * The kernel sends one message of its own (an event, flags KV_EVENT_FILL,
 * payload {count, capacity} as two u64) when the number of keys reaches the
 * parameter's threshold: the PUT whose insert makes the count equal to it
 * sends it, so exactly one is sent.
 *
 * Buffers: 0, the table (capacity entries of {key, value}, 16 bytes each,
 * zeroed); 1, the count of keys (one u64, zeroed). Parameter: kv_param.
 *
 * Concurrency: on the GPU the requests of one batch run at the same time,
 * one per thread, so every access to the table is atomic. A new key takes
 * an empty entry with a compare-and-swap of key | KV_BUSY, then the value is
 * stored and the key published without the busy bit (release): a GET that
 * meets its key still busy treats it as absent (the PUT has not happened
 * yet for it), never reads a value that was not written. Requests of one
 * batch have no order among them; batches run one after another.
 */
#include "ringbridge.cuh"

#define KV_PUT 1u
#define KV_GET 2u
#define KV_COUNT 3u

#define KV_ERR_NOT_FOUND 1
#define KV_ERR_BAD_REQUEST 2
#define KV_ERR_BAD_KEY 3
#define KV_ERR_FULL 4

#define KV_EVENT_FILL 1u

#define KV_BUSY (1ull << 63)

/* The typed parameter, mirrored by KvParam in src/lib.rs. */
struct kv_param {
    uint64_t capacity;  /* entries in buffer 0, a power of two */
    uint64_t threshold; /* the count of keys that sends the fill event */
};

struct kv_entry {
    uint64_t key;
    uint64_t value;
};

/* Atomics on one u64 of the table, GPU scope on CUDA (only the kernel
   touches the table while it runs) and the C++ builtins on the host, where
   the block emulation runs the handler on many threads too. */
#if RB_ON_GPU
RB_DEVICE uint64_t kv_load_acquire(const uint64_t* p) {
    uint64_t v;
    asm volatile("ld.acquire.gpu.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
RB_DEVICE uint64_t kv_load_relaxed(const uint64_t* p) {
    uint64_t v;
    asm volatile("ld.relaxed.gpu.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
RB_DEVICE void kv_store_release(uint64_t* p, uint64_t v) {
    asm volatile("st.release.gpu.u64 [%0], %1;" : : "l"(p), "l"(v) : "memory");
}
RB_DEVICE void kv_store_relaxed(uint64_t* p, uint64_t v) {
    asm volatile("st.relaxed.gpu.u64 [%0], %1;" : : "l"(p), "l"(v) : "memory");
}
RB_DEVICE uint64_t kv_cas(uint64_t* p, uint64_t expected, uint64_t desired) {
    return atomicCAS(reinterpret_cast<unsigned long long*>(p), (unsigned long long)expected,
                     (unsigned long long)desired);
}
RB_DEVICE uint64_t kv_fetch_add(uint64_t* p, uint64_t v) {
    return atomicAdd(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
#else
RB_DEVICE uint64_t kv_load_acquire(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
RB_DEVICE uint64_t kv_load_relaxed(const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
RB_DEVICE void kv_store_release(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
RB_DEVICE void kv_store_relaxed(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
RB_DEVICE uint64_t kv_cas(uint64_t* p, uint64_t expected, uint64_t desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    return expected; /* the value found, as atomicCAS returns it */
}
RB_DEVICE uint64_t kv_fetch_add(uint64_t* p, uint64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
#endif

/* splitmix64's finalizer: spreads sequential keys over the table. */
RB_DEVICE uint64_t kv_hash(uint64_t k) {
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ull;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebull;
    k ^= k >> 31;
    return k;
}

RB_DEVICE uint64_t kv_read_u64(const uint8_t* p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

struct kv_handler {
    static constexpr uint32_t rb_max_sends = 1;

    kv_entry* table;
    uint64_t* count;
    uint64_t mask;
    uint64_t threshold;
    bool ok; /* the buffers match the parameter */

    RB_DEVICE explicit kv_handler(const rb_launch& l)
        : table(l.buffer<kv_entry>(0)),
          count(l.buffer<uint64_t>(1)),
          mask(l.param<kv_param>().capacity - 1),
          threshold(l.param<kv_param>().threshold) {
        const uint64_t cap = l.param<kv_param>().capacity;
        ok = table != nullptr && count != nullptr && cap != 0 && (cap & (cap - 1)) == 0 &&
             l.buffer_bytes(0) >= cap * sizeof(kv_entry) && l.buffer_bytes(1) >= sizeof(uint64_t);
    }

    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity, rb_sender& send) const {
        if (!ok) return -1; /* fatal: launched with the wrong buffers */
        if (in.len != 24 || out_capacity < 16) return KV_ERR_BAD_REQUEST;
        const uint64_t op = kv_read_u64(in_payload);
        const uint64_t key = kv_read_u64(in_payload + 8);
        const uint64_t value = kv_read_u64(in_payload + 16);
        if (op == KV_COUNT) {
            const uint64_t n = kv_load_relaxed(count);
            memcpy(out_payload, &n, 8);
            out.len = 8;
            return 0;
        }
        if (op != KV_PUT && op != KV_GET) return KV_ERR_BAD_REQUEST;
        if (key == 0 || (key & KV_BUSY) != 0) return KV_ERR_BAD_KEY;
        if (op == KV_GET) {
            uint64_t v;
            if (!get(key, v)) return KV_ERR_NOT_FOUND;
            memcpy(out_payload, &v, 8);
            out.len = 8;
            return 0;
        }
        return put(key, value, send);
    }

    /* Probes from the key's home entry up to the first empty one. */
    RB_DEVICE bool get(uint64_t key, uint64_t& value) const {
        uint64_t i = kv_hash(key) & mask;
        for (uint64_t probes = 0; probes <= mask; ++probes, i = (i + 1) & mask) {
            const uint64_t k = kv_load_acquire(&table[i].key);
            if (k == 0) return false;
            if (k == (key | KV_BUSY)) return false; /* its first PUT is still writing */
            if (k == key) {
                value = kv_load_relaxed(&table[i].value);
                return true;
            }
        }
        return false;
    }

    RB_DEVICE int put(uint64_t key, uint64_t value, rb_sender& send) const {
        uint64_t i = kv_hash(key) & mask;
        for (uint64_t probes = 0; probes <= mask; ++probes, i = (i + 1) & mask) {
            uint64_t k = kv_load_acquire(&table[i].key);
            if (k == 0) {
                k = kv_cas(&table[i].key, 0, key | KV_BUSY);
                if (k == 0) { /* ours: a new key */
                    kv_store_relaxed(&table[i].value, value);
                    kv_store_release(&table[i].key, key);
                    const uint64_t n = kv_fetch_add(count, 1) + 1;
                    if (n == threshold) {
                        const uint64_t event[2] = {n, mask + 1};
                        (void)send.send(KV_EVENT_FILL, event, sizeof event);
                    }
                    return RB_NO_REPLY;
                }
                /* Another PUT of this batch took it first: look at what it wrote. */
            }
            if ((k & ~KV_BUSY) == key) {
                /* Same key (maybe still being inserted by a PUT of this
                   batch, which has no order against this one). */
                kv_store_relaxed(&table[i].value, value);
                return RB_NO_REPLY;
            }
        }
        return KV_ERR_FULL;
    }
};

RB_KERNEL_ENTRY(kv_store, kv_handler)
