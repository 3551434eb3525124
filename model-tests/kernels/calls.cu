// Kernels that call the host (rb_call, rb_block_call, rb_log), for
// tests/calls.rs: from a per-request handler, a cooperative handler and an
// idle hook.
#include "ringbridge.cuh"

// Request flags of calls_per_request.
#define CALLS_LOG 1u    // log "call {seq} of {len} bytes" first
#define CALLS_TYPED 2u  // typed call: the argument is a uint64_t, the answer one too
#define CALLS_SMALL 4u  // answer buffer of 8 bytes only
#define CALLS_NONE 8u   // no call: the argument is the answer (a host round trip's baseline)

// A request is {service: u32, argument...}; the reply is {status: i32,
// answer_len: u32, answer...}.
struct call_handler {
    RB_DEVICE explicit call_handler(uint64_t) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.len < 4u || out_capacity < 8u) return 7;
        uint32_t service;
        memcpy(&service, in_payload, 4);
        const uint8_t* arg = in_payload + 4;
        const uint32_t arg_len = in.len - 4u;
        if (in.flags & CALLS_LOG) rb_log(RB_LOG_INFO, "call {} of {} bytes", in.seq, in.len);
        int32_t status;
        uint32_t len = 0;
        if (in.flags & CALLS_NONE) {
            status = RB_CALL_OK;
            len = arg_len < out_capacity - 8u ? arg_len : out_capacity - 8u;
            memcpy(out_payload + 8, arg, len);
        } else if (in.flags & CALLS_TYPED) {
            uint64_t x = 0, y = 0;
            memcpy(&x, arg, arg_len < 8u ? arg_len : 8u);
            status = rb_call(service, x, y);
            memcpy(out_payload + 8, &y, 8);
            len = 8;
        } else {
            const uint32_t cap = (in.flags & CALLS_SMALL) ? 8u : out_capacity - 8u;
            status = rb_call(service, arg, arg_len, out_payload + 8, cap, &len);
            if (len > cap) len = cap;
        }
        memcpy(out_payload, &status, 4);
        memcpy(out_payload + 4, &len, 4);
        out.len = 8u + len;
        return 0;
    }
};
RB_KERNEL_ENTRY(calls_per_request, call_handler)

// Cooperative: thread 0 calls for the block (rb_block_call), the answer in
// block-shared scratch; every thread checks it got the same status and
// answer length, and the reply is {status, answer_len, threads that agreed,
// answer...}.
struct block_call_handler {
    static constexpr bool rb_cooperative = true;
    static constexpr uint32_t rb_scratch_bytes = 256;
    RB_DEVICE explicit block_call_handler(uint64_t) {}
    RB_DEVICE int operator()(rb_block& b, const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity) const {
        if (in.len < 4u || out_capacity < 12u + 128u) return 7;
        uint32_t service;
        memcpy(&service, in_payload, 4);
        uint8_t* answer = b.scratch<uint8_t>();
        uint32_t* agreed = reinterpret_cast<uint32_t*>(answer + 128);
        if (b.thread() == 0) *agreed = 0;
        b.sync();
        uint32_t len = 0;
        const int status = rb_block_call(b, service, in_payload + 4, in.len - 4u, answer, 128u, &len);
        int status0 = 0;
        uint32_t len0 = 0;
        if (b.thread() == 0) {
            memcpy(answer + 136, &status, 4);
            memcpy(answer + 140, &len, 4);
        }
        b.sync();
        memcpy(&status0, answer + 136, 4);
        memcpy(&len0, answer + 140, 4);
        if (status == status0 && len == len0) (void)rb_detail::rb_block_fetch_add_u32(agreed, 1u);
        b.sync();
        if (b.thread() == 0) {
            const uint32_t n = len < 128u ? len : 128u;
            memcpy(out_payload, &status, 4);
            memcpy(out_payload + 4, &n, 4);
            memcpy(out_payload + 8, agreed, 4);
            memcpy(out_payload + 12, answer, n);
            out.len = 12u + n;
        }
        return 0;
    }
};
RB_KERNEL_ENTRY(calls_cooperative, block_call_handler)

// Idle hook: calls service 100 with the tick's number (u64, typed) while it
// answers non-zero, and sends each answer as an event; logs each tick. A
// request gets its payload back.
struct idle_call_handler {
    static constexpr uint32_t rb_max_sends = 1;
    uint64_t tick = 0;
    bool done = false;
    RB_DEVICE explicit idle_call_handler(uint64_t) {}
    RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                             uint8_t* out_payload, uint32_t out_capacity, rb_sender&) const {
        if (in.len > out_capacity) return 7;
        memcpy(out_payload, in_payload, in.len);
        out.len = in.len;
        return 0;
    }
    RB_DEVICE void idle(rb_sender& send) {
        if (done) return;
        uint64_t answer = 0;
        const int status = rb_call(100u, tick, answer);
        if (status != RB_CALL_OK || answer == 0) {
            done = true;
            return;
        }
        rb_log(RB_LOG_DEBUG, "tick {} answered {}", tick, answer);
        if (send.send(0, &answer, 8)) ++tick;
    }
};
RB_KERNEL_ENTRY(calls_idle, idle_call_handler)
