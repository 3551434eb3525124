/*
 * ringbridge.cuh — the device half of ringbridge: what a handler needs.
 *
 * A persistent kernel serves the host-to-kernel ring (H2K), calls your
 * handler per request, and publishes replies on the kernel-to-host ring
 * (K2H). One .cu source is built three ways by ringbridge-build: by nvcc
 * for the GPU, by the host C++ compiler for the fallback (one CPU thread),
 * and for the block emulation (CPU threads as a GPU block, for tests).
 * Everything under ringbridge/ is internal (namespace rb_detail); the names
 * below, prefixed rb_ / RB_, are the public ones.
 *
 * ORDERING CONTRACT
 *   On the GPU the requests of one batch (up to one per thread) run
 *   concurrently; batches run one after another, and a batch's replies are
 *   published together, in request order. The fallback serves every
 *   request in order on one thread; the block emulation runs a batch
 *   concurrently, as the GPU does. Two requests for the same key that are
 *   in flight together may therefore be handled in either order on the
 *   GPU: for per-key order, wait for the first one's reply before sending
 *   the second, make the handler's updates atomic, or use a cooperative
 *   handler (one request at a time).
 *
 * HANDLER MODELS (pick one per handler struct)
 *   Every handler is built once per thread at launch, from
 *   `const rb_launch&` (typed parameter and buffers) or from `uint64_t` (the
 *   parameter's first 8 bytes). A return code of 0 replies (set out.len,
 *   write out_payload), > 0 sends an error reply with that code in flags,
 *   RB_NO_REPLY answers with nothing, < 0 stops the kernel (RB_ERR_HANDLER).
 *
 *   1. Per request: called by one thread per request.
 *        RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload,
 *                                 rb_msg_header& out, uint8_t* out_payload,
 *                                 uint32_t out_capacity);
 *   2. Chunkwise: element-wise over 16-byte chunks, spread over the block.
 *        static constexpr bool rb_chunkwise = true;
 *        RB_DEVICE int admit(const rb_msg_header& in, uint32_t out_capacity) const;
 *        RB_DEVICE rb_vec16 chunk(rb_vec16 v) const;   // reply: len and flags of the request
 *   3. Block-cooperative: every thread of the block calls it for each
 *      request, one request at a time; thread 0's code and `out` count.
 *        static constexpr bool rb_cooperative = true;
 *        static constexpr uint32_t rb_scratch_bytes = 4096;  // shared scratch, <= RB_MAX_SCRATCH_BYTES
 *        RB_DEVICE int operator()(rb_block& b, const rb_msg_header& in, const uint8_t* in_payload,
 *                                 rb_msg_header& out, uint8_t* out_payload, uint32_t out_capacity);
 *   4. Own messages: a per-request or cooperative handler may take a last
 *      `rb_sender& send` argument and declare how many messages a request
 *      may send; an idle hook is called by thread 0 when no request waits.
 *        static constexpr uint32_t rb_max_sends = 1;
 *        RB_DEVICE void idle(rb_sender& send);   // optional
 *      They reach the host as messages of kind RB_KIND_EVENT, after the
 *      batch's replies, numbered from 0 in `correlation`. Handlers that
 *      cooperate or send run in the slot format only.
 *      The budget: the n requests of a batch share n * rb_max_sends K2H
 *      slots (one request may use another's share); the idle hook may send
 *      rb_max_sends per call; batches shrink so that their replies and that
 *      budget fit in K2H, so K2H needs at least 1 + rb_max_sends slots (the
 *      host refuses a smaller capacity before launch). send.send() returns
 *      false when the budget is spent: the message is not sent.
 *
 *   5. Calls to the host: any thread of any handler, or the idle hook, may
 *      call a service the host registered (BridgeBuilder::service) and wait
 *      for its answer, or log a line through the host's `log` facade:
 *        uint64_t page = 0; int s = rb_call(SVC_NEXT_PAGE, cursor, page);
 *        rb_log(RB_LOG_INFO, "scanned {} records", count);
 *      See "CALLS TO THE HOST" below for what they cost and how they order.
 *
 * EXAMPLE
 *     #include "ringbridge.cuh"
 *     struct add_param { uint32_t add; };
 *     struct add_handler {
 *         uint32_t add;
 *         RB_DEVICE explicit add_handler(const rb_launch& l) : add(l.param<add_param>().add) {}
 *         RB_DEVICE int operator()(const rb_msg_header& in, const uint8_t* in_payload,
 *                                  rb_msg_header& out, uint8_t* out_payload, uint32_t out_capacity) {
 *             if (in.len > out_capacity) return 1;                       // error reply, code 1
 *             for (uint32_t i = 0; i < in.len; ++i) out_payload[i] = in_payload[i] + add;
 *             out.len = in.len;
 *             return 0;
 *         }
 *     };
 *     RB_KERNEL_ENTRY(add_bytes, add_handler)
 */
#ifndef RINGBRIDGE_CUH
#define RINGBRIDGE_CUH

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <type_traits>

#include "ringbridge_layout.h"
#include "ringbridge/target.h"
#include "ringbridge/structs.h"
#include "ringbridge/memory.h"
#include "ringbridge/block.h"
#include "ringbridge/handler_models.h"
#include "ringbridge/idle.h"
#include "ringbridge/call.h"
#include "ringbridge/control.h"
#include "ringbridge/serve_lanes.h"
#include "ringbridge/serve_slots.h"
#include "ringbridge/serve.h"

/* RB_DEVICE: declares a handler's member functions (device code under nvcc,
   inline host code otherwise). RB_ON_GPU: 1 under nvcc, else 0. */

/* A message's header: seq (its ring position), correlation (a reply: the
   request's seq; an event: its number), kind (RB_KIND_*), len (payload
   bytes), flags (free for the application; replies echo the request's). */
using rb_detail::rb_msg_header;

/* Payload access in 16-byte chunks. in_payload and out_payload are 16-byte
   aligned and readable/writable up to rb_round16(len) (the bytes past len
   are padding): rb_ld16/rb_st16 load and store one chunk (a uint4 on the
   GPU), rb_map16(in, out, len, f) maps every chunk through f. */
using rb_detail::rb_f32_as_u32;
using rb_detail::rb_ld16;
using rb_detail::rb_map16;
using rb_detail::rb_round16;
using rb_detail::rb_st16;
using rb_detail::rb_u32_as_f32;
using rb_detail::rb_vec16;

/* What a handler is built from: l.param<T>() is the typed parameter the
   host set with UserKernel::with_param (a trivially copyable struct of at
   most RB_MAX_PARAM_SIZE bytes, read through the constant bank on CUDA);
   the host must send exactly sizeof(T) bytes, or the launch fails with
   Error::ParamSize naming both sizes. l.param_size() is the number of
   bytes the host sent (0 without with_param), for a handler that reads
   the raw bytes itself. l.buffer<T>(i) is bridge-owned buffer i (device memory on CUDA,
   host memory on the fallback; nullptr when there is none), of
   l.buffer_bytes(i) bytes. Both stay valid for the kernel's lifetime.
     explicit my_handler(const rb_launch& l) : table(l.buffer<uint64_t>(0)) {} */
using rb_detail::rb_launch;

/* What a cooperative handler gets: b.thread() (0 .. b.size() - 1),
   b.size(), b.sync() (a block barrier: every thread must reach it),
   b.scratch<T>() (rb_scratch_bytes of block-shared memory, 16-byte
   aligned, reused by the next request).
     partial[b.thread()] = mine; b.sync(); if (b.thread() == 0) ... */
using rb_detail::rb_block;
/* The largest rb_scratch_bytes: 48 KiB of static shared memory less the
   serve loop's own (a few dozen bytes); a larger one fails to compile with
   a static_assert naming it. */
#define RB_MAX_SCRATCH_BYTES (::rb_detail::rb_max_scratch_bytes)

/* Where a handler's own messages go: send.send(flags, payload, len) writes
   an RB_KIND_EVENT message (len at most the K2H slot's payload) and returns
   true, or false when the batch's room (rb_max_sends per request, or the
   idle hook's) is used up or len is too long. Any thread may send; the
   messages are published after the batch's replies. Backpressure as for
   replies: the loop waits for room before a batch, it never drops.
     if (!send.send(0, &count, sizeof count)) return 2; */
using rb_detail::rb_sender;

/* The calling thread's index in its block and the block's size (index 0
   and size 1 on the fallback's one thread). */
using rb_detail::rb_block_size;
using rb_detail::rb_thread_index;

/*
 * CALLS TO THE HOST
 *   rb_call(service, request, request_len, answer, answer_capacity, &answer_len)
 *   rb_call(service, const Req& request, Ans& answer)      (trivially copyable types)
 *     The calling thread writes the request into a slot of the bridge's call
 *     ring, a ring of its own beside H2K and K2H, and waits for the answer
 *     of the host service registered under `service` (u32, any but
 *     0xFFFFFFFF). Returns RB_CALL_OK (0) with the answer copied out
 *     (answer_len: its length), or a status: RB_CALL_UNKNOWN_SERVICE,
 *     RB_CALL_FAILED (the service returned an error), RB_CALL_PANICKED,
 *     RB_CALL_TIMED_OUT (the service took longer than the bridge's service
 *     timeout: the host answered for it), RB_CALL_SHUTTING_DOWN,
 *     RB_CALL_TOO_LONG (request or answer larger than a call slot's
 *     payload), RB_CALL_ANSWER_SIZE (the answer did not fit `answer`, which
 *     holds its first bytes; typed: it was not sizeof(Ans)),
 *     RB_CALL_BAD_REQUEST (a typed service got another size), RB_CALL_NO_RING
 *     (the bridge has no call ring), or a service's own code (>=
 *     RB_CALL_FIRST_SERVICE_CODE). A call always ends: every status but
 *     RB_CALL_OK comes without waiting on the service.
 *   rb_block_call(b, service, request, request_len, answer, answer_capacity, &answer_len)
 *     In a cooperative handler: every thread calls it, thread 0 makes the
 *     call, every thread gets the status (answer: block-shared, b.scratch).
 *   rb_log(level, "text with {} and {}", a, b)   (level: RB_LOG_ERROR .. RB_LOG_TRACE)
 *     Sends a log line, formatted by the host: each {} takes the next of up
 *     to 8 numbers, bools or pointers. It reaches the host's `log` logger
 *     (target "ringbridge::kernel") as soon as the host's service thread
 *     reads it, with the bridge, block and thread attached. The thread does
 *     not wait for the host, only for a free call slot.
 *   Cost: a call blocks its thread until the answer, so the batch it is made
 *   in publishes its replies after its slowest call (on the GPU about two
 *   PCIe round trips plus the service; on the fallback a hand-off to the
 *   host's service thread and back, which under the parking wait policies
 *   includes waking it: about 25 us on a 2-vCPU machine, docs/performance.md
 *   "Calls from the kernel"). A warp's calls take consecutive slots with one
 *   shared-memory atomic, and each caller polls only its own slot. A kernel
 *   that never calls pays nothing.
 *   Order: a call's service runs, and has returned, before the call returns,
 *   so before the reply of the request that made it is published. Calls are
 *   served one at a time in the order their slots were claimed. Log lines
 *   are logged in that order too, but the host's service thread logs them
 *   on its own time: a line may reach the logger after the reply of the
 *   request that wrote it reached the host.
 */
#define RB_LOG_ERROR 1u
#define RB_LOG_WARN 2u
#define RB_LOG_INFO 3u
#define RB_LOG_DEBUG 4u
#define RB_LOG_TRACE 5u

RB_DEVICE int rb_call(uint32_t service, const void* request, uint32_t request_len, void* answer,
                      uint32_t answer_capacity, uint32_t* answer_len) {
    return ::rb_detail::rb_call_bytes(service, request, request_len, answer, answer_capacity, answer_len);
}

template <class Req, class Ans>
RB_DEVICE int rb_call(uint32_t service, const Req& request, Ans& answer) {
    static_assert(std::is_trivially_copyable<Req>::value && std::is_trivially_copyable<Ans>::value,
                  "rb_call: requests and answers are copied as bytes");
    uint32_t len = 0;
    const int status = ::rb_detail::rb_call_bytes(service, &request, (uint32_t)sizeof(Req), &answer,
                                                  (uint32_t)sizeof(Ans), &len);
    if (status == (int)RB_CALL_OK && len != (uint32_t)sizeof(Ans)) return (int)RB_CALL_ANSWER_SIZE;
    return status;
}

RB_DEVICE int rb_block_call(const rb_block& b, uint32_t service, const void* request, uint32_t request_len,
                            void* answer, uint32_t answer_capacity, uint32_t* answer_len) {
    (void)b;
    return ::rb_detail::rb_block_call_bytes(service, request, request_len, answer, answer_capacity, answer_len);
}

template <class... Args>
RB_DEVICE void rb_log(uint32_t level, const char* text, Args... args) {
    static_assert(sizeof...(Args) <= 8, "rb_log: at most 8 numbers");
    const ::rb_detail::rb_log_arg values[sizeof...(Args) + 1] = {::rb_detail::rb_log_arg_of(args)..., {0, 0}};
    ::rb_detail::rb_log_write(level, text, values, (uint32_t)sizeof...(Args));
}

/* RB_KERNEL_ENTRY(name, Handler): defines the kernel `name` serving Handler
   (write it at the start of a line: ringbridge-build finds entries so).
   RB_KERNEL_ENTRY_BOUNDED(name, Handler, threads): the same, compiled for
   blocks of at most `threads` (RB_KERNEL_ENTRY: RB_MAX_BLOCK_THREADS, 1024
   unless defined), so a handler built for small blocks need not spill. */
#include "ringbridge/entry.h"

#endif /* RINGBRIDGE_CUH */
