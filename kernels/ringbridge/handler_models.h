/*
 * ringbridge/handler_models.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * The handler models: detection of a handler's declarations (chunkwise,
 * cooperative, rb_max_sends, idle hook), rb_sender, rb_block, rb_launch,
 * and the calls the serve loops make.
 */
#ifndef RINGBRIDGE_DETAIL_HANDLER_MODELS_H
#define RINGBRIDGE_DETAIL_HANDLER_MODELS_H

namespace rb_detail {

/* ------------------------------------------------------------------------ */
/* Chunkwise handlers: the fast path for element-wise work.                 */
/* ------------------------------------------------------------------------ */
/*
 * A handler whose reply is its request with every 16-byte chunk mapped on
 * its own (echo, scale, any element-wise transform) may say so:
 *
 *   static constexpr bool rb_chunkwise = true;
 *   // 0: reply with len = in.len, flags = in.flags, chunks mapped by chunk();
 *   // > 0: error reply with that code; RB_NO_REPLY: answered with nothing;
 *   // other < 0: fatal (as operator()).
 *   RB_DEVICE int admit(const rb_msg_header& in, uint32_t out_capacity) const;
 *   RB_DEVICE rb_vec16 chunk(rb_vec16 v) const;
 *
 * The slot-format serve loop then spreads the chunks of a whole batch over
 * every thread of the block, so a long message is read by many threads at
 * once (all its loads in flight together, one PCIe round trip) instead of
 * by one thread 64 bytes at a time. A handler without the flag is called
 * once per request by one thread (operator()).
 */
template <class H, class = void>
struct rb_chunkwise_of {
    static constexpr bool value = false;
};
template <class H>
struct rb_chunkwise_of<H, decltype((void)H::rb_chunkwise)> {
    static constexpr bool value = H::rb_chunkwise;
};

/* operator() of a chunkwise handler, for the per-request paths (the lane
   format): admit, then map every chunk up to rb_round16(len). */
template <class H>
RB_INLINE int rb_chunkwise_call(const H& h, const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                                uint8_t* out_payload, uint32_t out_capacity) {
    const int rc = h.admit(in, out_capacity);
    if (rc != 0) return rc;
    rb_map16(in_payload, out_payload, in.len, [&h](rb_vec16 v) { return h.chunk(v); });
    out.len = in.len;
    return 0;
}


/* Slot of counter value `pos`. */
RB_INLINE uint8_t* rb_slot(rb_ring* r, uint64_t pos, uint64_t mask, uint64_t slot_size) {
    return reinterpret_cast<uint8_t*>(r) + RB_RING_HEADER_SIZE + (pos & mask) * slot_size;
}

/* ------------------------------------------------------------------------ */
/* Handler models: sending, cooperative, dispatch.                          */
/* ------------------------------------------------------------------------ */

/* rb_max_sends of a handler (0 when it declares none). */
template <class H, class = void>
struct rb_max_sends_of {
    static constexpr uint32_t value = 0;
};
template <class H>
struct rb_max_sends_of<H, decltype((void)H::rb_max_sends)> {
    static constexpr uint32_t value = H::rb_max_sends;
};

/* Whether a handler is block-cooperative (rb_cooperative = true). */
template <class H, class = void>
struct rb_cooperative_of {
    static constexpr bool value = false;
};
template <class H>
struct rb_cooperative_of<H, decltype((void)H::rb_cooperative)> {
    static constexpr bool value = H::rb_cooperative;
};

/* rb_scratch_bytes of a cooperative handler (0 when it declares none). */
template <class H, class = void>
struct rb_scratch_of {
    static constexpr uint32_t value = 0;
};
template <class H>
struct rb_scratch_of<H, decltype((void)H::rb_scratch_bytes)> {
    static constexpr uint32_t value = H::rb_scratch_bytes;
};

/* Whether a handler has an idle hook, `void idle(rb_sender&)`. */
struct rb_sender;
template <class H, class = void>
struct rb_has_idle {
    static constexpr bool value = false;
};
template <class H>
struct rb_has_idle<H, decltype((void)std::declval<H&>().idle(std::declval<rb_sender&>()))> {
    static constexpr bool value = true;
};

/* Whether a handler sends messages of its own: then it is served in the
   slot format only (as is a cooperative one). */
template <class H>
struct rb_sends_of {
    static constexpr bool value = rb_max_sends_of<H>::value > 0 || rb_has_idle<H>::value;
};

/*
 * Where a handler's own messages go: K2H positions reserved after the
 * batch's replies (rb_max_sends per request; the idle hook's: the free
 * room). Any thread may send; each send takes the next reserved position
 * (a block-shared count) and writes the whole message there with plain
 * stores; thread 0 publishes them with the batch's replies, by the same
 * release of the K2H head (the barrier before it orders every thread's
 * stores). So the host receives a batch's replies, then its messages.
 */
struct rb_sender {
    rb_ring* k2h;
    uint64_t base;       /* position of the first reserved slot */
    uint64_t mask, slot_size;
    uint64_t first_event; /* event number of the first reserved slot */
    uint32_t* count;     /* block-shared: sends so far (may pass limit) */
    uint32_t limit;      /* reserved slots */

    RB_DEVICE bool send(uint32_t flags, const void* payload, uint32_t len) const {
        if (limit == 0 || len > slot_size - RB_MSG_HEADER_SIZE) return false;
        const uint32_t i = rb_block_fetch_add_u32(count, 1u);
        if (i >= limit) return false;
        uint8_t* slot = reinterpret_cast<uint8_t*>(k2h) + RB_RING_HEADER_SIZE + ((base + i) & mask) * slot_size;
        rb_msg_header h;
        h.seq = base + i;
        h.correlation = first_event + i;
        h.kind = RB_KIND_EVENT;
        h.len = len;
        h.flags = flags;
        h.reserved = 0;
        /* Plain stores, published by thread 0's release of the head. */
        rb_store_header(slot, &h);
        uint8_t* out = slot + RB_MSG_HEADER_SIZE;
        const uint8_t* in = static_cast<const uint8_t*>(payload);
        uint32_t k = 0;
        if ((reinterpret_cast<uintptr_t>(in) & 15u) == 0)
            for (; k + 16u <= len; k += 16u) rb_st16(out + k, rb_ld16(in + k));
        for (; k < len; ++k) out[k] = in[k];
        return true;
    }
    /* Sends made, at most the reserved slots (after the block barrier). */
    RB_DEVICE uint32_t sent() const { return *count < limit ? *count : limit; }
};

/* What a cooperative handler gets: the block, its barrier, and scratch
   memory shared by the block (rb_scratch_bytes, 16-byte aligned). */
struct rb_block {
    uint8_t* scratch_memory;
    RB_DEVICE uint32_t thread() const { return rb_thread_index(); }
    RB_DEVICE uint32_t size() const { return rb_block_size(); }
    RB_DEVICE void sync() const { rb_block_sync(); }
    template <class T>
    RB_DEVICE T* scratch() const {
        return reinterpret_cast<T*>(scratch_memory);
    }
};

/* Calls a per-request or chunkwise handler for one request: operator()
   (with the sender when it takes one), or admit + chunk. */
template <class H>
RB_INLINE int rb_handle(H& h, const rb_msg_header& in, const uint8_t* in_payload, rb_msg_header& out,
                        uint8_t* out_payload, uint32_t out_capacity, rb_sender& sender) {
    RB_SHAKE_POINT();
    if constexpr (rb_chunkwise_of<H>::value) {
        (void)sender;
        return rb_chunkwise_call(h, in, in_payload, out, out_payload, out_capacity);
    } else if constexpr (std::is_invocable<H&, const rb_msg_header&, const uint8_t*, rb_msg_header&, uint8_t*,
                                           uint32_t, rb_sender&>::value) {
        return h(in, in_payload, out, out_payload, out_capacity, sender);
    } else {
        (void)sender;
        return h(in, in_payload, out, out_payload, out_capacity);
    }
}

/* Calls a cooperative handler (every thread of the block) for one request. */
template <class H>
RB_INLINE int rb_handle_cooperative(H& h, rb_block& block, const rb_msg_header& in, const uint8_t* in_payload,
                                    rb_msg_header& out, uint8_t* out_payload, uint32_t out_capacity,
                                    rb_sender& sender) {
    RB_SHAKE_POINT();
    if constexpr (std::is_invocable<H&, rb_block&, const rb_msg_header&, const uint8_t*, rb_msg_header&, uint8_t*,
                                    uint32_t, rb_sender&>::value) {
        return h(block, in, in_payload, out, out_payload, out_capacity, sender);
    } else {
        (void)sender;
        return h(block, in, in_payload, out, out_payload, out_capacity);
    }
}

/*
 * What a handler may be built from instead of the uint64_t parameter: a
 * constructor taking `const rb_launch&` gets the launch's typed parameter
 * (any trivially copyable struct of at most RB_MAX_PARAM_SIZE bytes, set on
 * the host with UserKernel::with_param) and the bridge's buffers (device
 * memory on CUDA, host memory on the fallback; BridgeBuilder::buffer). The
 * references stay valid for the kernel's lifetime: on CUDA they point into
 * the __grid_constant__ kernel parameter, read through the constant bank.
 */
struct rb_launch {
    const rb_args* args;
    /* Where param<T>() notes a T whose size is not the parameter's (the
       serve loop then fails the launch with RB_ERR_PARAM_SIZE). */
    uint32_t* param_mismatch = nullptr;
    /* The parameter as a T. The host must have sent exactly sizeof(T)
       bytes (UserKernel::with_param of the same type): any other size
       fails the launch, naming both sizes, instead of reading a T that was
       zero padded or cut off. */
    template <class T>
    RB_DEVICE const T& param() const {
        static_assert(sizeof(T) <= RB_MAX_PARAM_SIZE, "parameter larger than RB_MAX_PARAM_SIZE");
        static_assert(alignof(T) <= 16, "parameter aligned beyond 16 bytes");
        if (args->param_size != (uint32_t)sizeof(T) && param_mismatch != nullptr) {
            *param_mismatch = (uint32_t)sizeof(T);
        }
        return *reinterpret_cast<const T*>(args->param);
    }
    /* Bytes of the parameter the host set. */
    RB_DEVICE uint32_t param_size() const { return args->param_size; }
    /* Buffers the bridge owns for this kernel. */
    RB_DEVICE uint32_t buffer_count() const { return args->buffer_count; }
    /* Buffer i as an array of T (nullptr when there is no buffer i). */
    template <class T>
    RB_DEVICE T* buffer(uint32_t i) const {
        return i < args->buffer_count ? reinterpret_cast<T*>(args->buffers[i].addr) : nullptr;
    }
    /* Size of buffer i in bytes (0 when there is none). */
    RB_DEVICE uint64_t buffer_bytes(uint32_t i) const { return i < args->buffer_count ? args->buffers[i].bytes : 0; }
};

/* Builds a handler from the launch: `H(const rb_launch&)` when it has that
   constructor, else `H(uint64_t)` from the parameter's first 8 bytes.
   `param_error`: 0, or the RB_ERR_PARAM_SIZE detail when the handler read
   a typed parameter of another size than the host sent ((its size << 32) |
   the size sent), for rb_serve to fail the launch with. */
template <class H>
RB_DEVICE H rb_make_handler(const rb_args& args, uint64_t& param_error) {
    param_error = 0;
    if constexpr (std::is_constructible<H, const rb_launch&>::value) {
        uint32_t wanted = 0;
        H h(rb_launch{&args, &wanted});
        if (wanted != 0) param_error = ((uint64_t)wanted << 32) | (uint64_t)args.param_size;
        return h;
    } else {
        return H(*reinterpret_cast<const uint64_t*>(args.param));
    }
}

/* The RB_TRAIT_* bits of a handler type, for the host (the name__rb_traits
   function each entry's host build defines). */
template <class H>
constexpr uint32_t rb_traits_of() {
    return (rb_chunkwise_of<H>::value ? (uint32_t)RB_TRAIT_CHUNKWISE : 0u) |
           (rb_cooperative_of<H>::value ? (uint32_t)RB_TRAIT_COOPERATIVE : 0u) |
           (rb_sends_of<H>::value ? (uint32_t)RB_TRAIT_SENDS : 0u) |
           /* rb_max_sends in the high half (capped), so the host can check
              K2H's room for a request's sends before launch. */
           ((rb_max_sends_of<H>::value < 0xffffu ? rb_max_sends_of<H>::value : 0xffffu) << 16);
}

}  // namespace rb_detail

#endif /* RINGBRIDGE_DETAIL_HANDLER_MODELS_H */
