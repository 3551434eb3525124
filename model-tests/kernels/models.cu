// One kernel per handler model of ringbridge.cuh, for the tests in tests/.
#include "ringbridge.cuh"

// Per-request, built from a typed parameter of 328 bytes (>= 256): reply[i]
// = table[request[i]] + add, then the parameter's 64-byte tail.
struct table_param {
    uint32_t add;
    uint32_t pad;
    uint8_t table[256];
    uint8_t tail[64];
};

struct param_handler {
    const table_param* p;
    RB_DEVICE explicit param_handler(const rb_launch& l) : p(&l.param<table_param>()) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.len + 64u > out_capacity) return 7;
        for (uint32_t i = 0; i < in.len; ++i) out_payload[i] = (uint8_t)(p->table[in_payload[i]] + p->add);
        for (uint32_t i = 0; i < 64u; ++i) out_payload[in.len + i] = p->tail[i];
        out.len = in.len + 64u;
        return 0;
    }
};
RB_KERNEL_ENTRY(models_param, param_handler)

// No reply: a request whose first byte is 0 is answered with nothing; any
// other gets its payload back with the thread that served it in flags.
struct quiet_handler {
    RB_DEVICE explicit quiet_handler(uint64_t) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.len > 0 && in_payload[0] == 0) return RB_NO_REPLY;
        if (in.len > out_capacity) return 7;
        for (uint32_t i = 0; i < in.len; ++i) out_payload[i] = in_payload[i];
        out.len = in.len;
        out.flags = rb_thread_index();
        return 0;
    }
};
RB_KERNEL_ENTRY(models_quiet, quiet_handler)

// Own messages: a request flagged 1 also sends one message with its payload
// reversed and flags = the request's seq; every request is replied to with
// its length. The idle hook sends `param` messages in all ("ticks", 4 bytes:
// the tick's number), one per idle turn, then no more.
struct sender_handler {
    static constexpr uint32_t rb_max_sends = 1;
    uint32_t ticks_left;
    uint32_t ticks_sent = 0;
    RB_DEVICE explicit sender_handler(uint64_t param) : ticks_left((uint32_t)param) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t, rb_sender& send) const {
        if (in.flags == 1) {
            uint8_t reversed[64];
            const uint32_t n = in.len < 64u ? in.len : 64u;
            for (uint32_t i = 0; i < n; ++i) reversed[i] = in_payload[n - 1 - i];
            if (!send.send((uint32_t)in.seq, reversed, n)) return 8;
        }
        const uint32_t len = in.len;
        for (uint32_t i = 0; i < 4u; ++i) out_payload[i] = (uint8_t)(len >> (8u * i));
        out.len = 4;
        return 0;
    }
    RB_DEVICE void idle(rb_sender& send) {
        if (ticks_left == 0) return;
        uint8_t tick[4];
        for (uint32_t i = 0; i < 4u; ++i) tick[i] = (uint8_t)(ticks_sent >> (8u * i));
        if (send.send(0xABCu, tick, 4)) {
            --ticks_left;
            ++ticks_sent;
        }
    }
};
RB_KERNEL_ENTRY(models_sender, sender_handler)

// Block-cooperative: the whole block sums the request's u32 words (a tree
// in shared scratch, with barriers) and replies {sum: u64, block size: u32,
// threads that took part: u32}.
struct sum_handler {
    static constexpr bool rb_cooperative = true;
    static constexpr uint32_t rb_scratch_bytes = 1024 * 8;
    RB_DEVICE explicit sum_handler(uint64_t) {}
    RB_DEVICE int operator()(rb_block& b, const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.len % 4u != 0) return 5;
        if (out_capacity < 16u) return 6;
        uint64_t* partial = b.scratch<uint64_t>();
        const uint32_t t = b.thread(), n = b.size(), words = in.len / 4u;
        uint64_t mine = 0;
        for (uint32_t i = t; i < words; i += n) {
            uint32_t w;
            memcpy(&w, in_payload + 4u * i, 4);
            mine += w;
        }
        partial[t] = mine;
        b.sync();
        // Tree over the next power of two at or above n.
        uint32_t width = 1;
        while (width < n) width <<= 1;
        for (uint32_t half = width / 2u; half > 0; half /= 2u) {
            if (t < half && t + half < n) partial[t] += partial[t + half];
            b.sync();
        }
        if (t == 0) {
            const uint64_t sum = partial[0];
            memcpy(out_payload, &sum, 8);
            memcpy(out_payload + 8, &n, 4);
            const uint32_t took_part = n;
            memcpy(out_payload + 12, &took_part, 4);
            out.len = 16;
        }
        return 0;
    }
};
RB_KERNEL_ENTRY(models_sum, sum_handler)

// Chunkwise, every kind of answer (issue 23, item 2), chosen by the
// request's flags: 1 answers with nothing, 2 with error reply 9, 3 is fatal
// (code -5); any other gets its payload back, every byte plus one.
struct chunk_answers_handler {
    static constexpr bool rb_chunkwise = true;
    RB_DEVICE explicit chunk_answers_handler(uint64_t) {}
    RB_DEVICE int admit(const rb_msg_header& in, uint32_t) const {
        switch (in.flags) {
            case 1: return RB_NO_REPLY;
            case 2: return 9;
            case 3: return -5;
            default: return 0;
        }
    }
    RB_DEVICE rb_vec16 chunk(rb_vec16 v) const {
        uint8_t b[16];
        memcpy(b, &v, 16);
        for (int i = 0; i < 16; ++i) b[i] = (uint8_t)(b[i] + 1u);
        memcpy(&v, b, 16);
        return v;
    }
};
RB_KERNEL_ENTRY(models_chunk_answers, chunk_answers_handler)
