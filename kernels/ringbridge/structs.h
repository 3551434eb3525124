/*
 * ringbridge/structs.h — internal to ringbridge.cuh, which includes it (in
 * order, after the headers before it): not for handlers to include or use.
 *
 * The shared structs, mirroring src/layout.rs (static_asserted against the
 * generated ringbridge_layout.h), and the device half's codes.
 */
#ifndef RINGBRIDGE_DETAIL_STRUCTS_H
#define RINGBRIDGE_DETAIL_STRUCTS_H

namespace rb_detail {

/* ------------------------------------------------------------------------ */
/* The shared structs, mirroring src/layout.rs.                             */
/* ------------------------------------------------------------------------ */

/* Header of one ring, followed by `capacity` slots of `slot_size` bytes. */
struct alignas(RB_LINE) rb_ring {
    uint64_t head; /* written by the producer only (release) */
    uint64_t pad_head[(RB_RING_OFF_TAIL - RB_RING_OFF_HEAD) / 8 - 1];
    uint64_t tail; /* written by the consumer only (release) */
    uint64_t pad_tail[(RB_RING_OFF_MAGIC - RB_RING_OFF_TAIL) / 8 - 1];
    uint64_t magic;
    uint64_t version;
    uint64_t capacity; /* slots, a power of two */
    uint64_t mask;     /* capacity - 1 */
    uint64_t slot_size;
    uint64_t format; /* RB_FORMAT_SLOTS or RB_FORMAT_LANES, same for both rings */
    uint64_t pad_cfg[(RB_RING_HEADER_SIZE - RB_RING_OFF_FORMAT) / 8 - 1];
};

/* One 16-byte lane of a lane-format slot (src/layout.rs `Lane`). */
struct alignas(16) rb_lane {
    uint64_t data; /* lane 0: len | kind << 24 | flags << 32; else 8 payload bytes */
    uint64_t tag;  /* rb_lane_tag: position + 1 (0: never written) | a check of data */
};

/* Header of one slot; the payload follows it. 16 = one vector access. */
struct alignas(16) rb_msg_header {
    uint64_t seq;         /* position of the message in its ring */
    uint64_t correlation; /* reply: seq of the request it answers */
    uint32_t kind;        /* RB_KIND_* */
    uint32_t len;         /* payload bytes */
    uint32_t flags;       /* free for the application; echoed by default */
    uint32_t reserved;    /* zero */
};

/* Control block of one bridge. */
struct alignas(RB_LINE) rb_control {
    uint64_t terminate;   /* host only */
    uint64_t host_parked; /* host doorbell: set by the host, cleared by the serve loop's wake */
    uint64_t pad_host[(RB_CTL_OFF_STATUS - RB_CTL_OFF_HOST_PARKED) / 8 - 1];
    uint64_t status; /* kernel only: RB_STATUS_* */
    uint64_t error_code;
    uint64_t error_detail;
    uint64_t heartbeat;
    uint64_t consumed;
    uint64_t produced;
    uint64_t kernel_parked; /* kernel doorbell: set by the serve loop, cleared by the host's wake */
    uint64_t pad_kernel[(RB_CTL_OFF_MAGIC - RB_CTL_OFF_KERNEL_PARKED) / 8 - 1];
    uint64_t magic;
    uint64_t version;
    uint64_t param;
    uint64_t check_interval;
    uint64_t stripes;       /* regions served by one launch, one block each (region 0's counts) */
    uint64_t stripe_stride; /* bytes between two regions' starts */
    uint64_t wait_policy;   /* RB_WAIT_*: how the host fallback idles */
    uint64_t call_offset;   /* bytes from this block to the call ring; 0: none */
    uint64_t call_capacity; /* call slots, a power of two */
    uint64_t call_slot_size; /* bytes per call slot, header included */
    uint64_t pad_cfg[(RB_CONTROL_SIZE - RB_CTL_OFF_CALL_SLOT_SIZE) / 8 - 1];
};

/* The head of one call slot (src/layout.rs `CallHeader`): state =
   pos << 2 | phase, one writer per phase (see ringbridge/call.h). */
struct rb_call_header {
    uint64_t state;
    uint32_t service;
    uint32_t len;
    uint32_t status;
    uint32_t thread;
    uint32_t block;
    uint32_t reserved;
};

/* One bridge-owned buffer (src/layout.rs `BufferRef`): device memory on
   CUDA, host memory on the fallback. */
struct rb_buffer {
    uint64_t addr;  /* 0 when unused */
    uint64_t bytes;
};

/* What a kernel is launched with besides its rings (src/layout.rs
   `LaunchArgs`): a __grid_constant__ kernel parameter on CUDA (every thread
   reads it from the constant bank), a pointer on the host. */
struct alignas(16) rb_args {
    uint8_t param[RB_MAX_PARAM_SIZE]; /* the typed parameter, zero past param_size */
    rb_buffer buffers[RB_MAX_BUFFERS];
    uint32_t param_size;
    uint32_t buffer_count;
    uint64_t reserved;
};

static_assert(sizeof(rb_buffer) == RB_BUFFER_SIZE, "rb_buffer size");
static_assert(sizeof(rb_args) == RB_ARGS_SIZE, "rb_args size");
static_assert(offsetof(rb_args, param) == RB_ARGS_OFF_PARAM, "rb_args.param");
static_assert(offsetof(rb_args, buffers) == RB_ARGS_OFF_BUFFERS, "rb_args.buffers");
static_assert(offsetof(rb_args, param_size) == RB_ARGS_OFF_PARAM_SIZE, "rb_args.param_size");
static_assert(offsetof(rb_args, buffer_count) == RB_ARGS_OFF_BUFFER_COUNT, "rb_args.buffer_count");
static_assert(sizeof(rb_ring) == RB_RING_HEADER_SIZE, "rb_ring size");
static_assert(alignof(rb_ring) == RB_LINE, "rb_ring alignment");
static_assert(offsetof(rb_ring, head) == RB_RING_OFF_HEAD, "rb_ring.head");
static_assert(offsetof(rb_ring, tail) == RB_RING_OFF_TAIL, "rb_ring.tail");
static_assert(offsetof(rb_ring, magic) == RB_RING_OFF_MAGIC, "rb_ring.magic");
static_assert(offsetof(rb_ring, version) == RB_RING_OFF_VERSION, "rb_ring.version");
static_assert(offsetof(rb_ring, capacity) == RB_RING_OFF_CAPACITY, "rb_ring.capacity");
static_assert(offsetof(rb_ring, mask) == RB_RING_OFF_MASK, "rb_ring.mask");
static_assert(offsetof(rb_ring, slot_size) == RB_RING_OFF_SLOT_SIZE, "rb_ring.slot_size");
static_assert(offsetof(rb_ring, format) == RB_RING_OFF_FORMAT, "rb_ring.format");
static_assert(sizeof(rb_lane) == RB_LANE_SIZE, "rb_lane size");
static_assert(offsetof(rb_lane, data) == RB_LANE_OFF_DATA, "rb_lane.data");
static_assert(offsetof(rb_lane, tag) == RB_LANE_OFF_TAG, "rb_lane.tag");
static_assert(RB_MAX_LANE_SLOT_SIZE / RB_LANE_SIZE == 32, "a lane slot is at most one warp of lanes");

static_assert(sizeof(rb_msg_header) == RB_MSG_HEADER_SIZE, "rb_msg_header size");
static_assert(RB_MSG_HEADER_SIZE % 16 == 0, "the payload must start 16-byte aligned");
static_assert(offsetof(rb_msg_header, seq) == RB_MSG_OFF_SEQ, "rb_msg_header.seq");
static_assert(offsetof(rb_msg_header, correlation) == RB_MSG_OFF_CORRELATION, "rb_msg_header.correlation");
static_assert(offsetof(rb_msg_header, kind) == RB_MSG_OFF_KIND, "rb_msg_header.kind");
static_assert(offsetof(rb_msg_header, len) == RB_MSG_OFF_LEN, "rb_msg_header.len");
static_assert(offsetof(rb_msg_header, flags) == RB_MSG_OFF_FLAGS, "rb_msg_header.flags");
static_assert(offsetof(rb_msg_header, reserved) == RB_MSG_OFF_RESERVED, "rb_msg_header.reserved");

static_assert(sizeof(rb_control) == RB_CONTROL_SIZE, "rb_control size");
static_assert(alignof(rb_control) == RB_LINE, "rb_control alignment");
static_assert(offsetof(rb_control, terminate) == RB_CTL_OFF_TERMINATE, "rb_control.terminate");
static_assert(offsetof(rb_control, status) == RB_CTL_OFF_STATUS, "rb_control.status");
static_assert(offsetof(rb_control, error_code) == RB_CTL_OFF_ERROR_CODE, "rb_control.error_code");
static_assert(offsetof(rb_control, error_detail) == RB_CTL_OFF_ERROR_DETAIL, "rb_control.error_detail");
static_assert(offsetof(rb_control, heartbeat) == RB_CTL_OFF_HEARTBEAT, "rb_control.heartbeat");
static_assert(offsetof(rb_control, consumed) == RB_CTL_OFF_CONSUMED, "rb_control.consumed");
static_assert(offsetof(rb_control, produced) == RB_CTL_OFF_PRODUCED, "rb_control.produced");
static_assert(offsetof(rb_control, magic) == RB_CTL_OFF_MAGIC, "rb_control.magic");
static_assert(offsetof(rb_control, version) == RB_CTL_OFF_VERSION, "rb_control.version");
static_assert(offsetof(rb_control, param) == RB_CTL_OFF_PARAM, "rb_control.param");
static_assert(offsetof(rb_control, check_interval) == RB_CTL_OFF_CHECK_INTERVAL, "rb_control.check_interval");
static_assert(offsetof(rb_control, stripes) == RB_CTL_OFF_STRIPES, "rb_control.stripes");
static_assert(offsetof(rb_control, stripe_stride) == RB_CTL_OFF_STRIPE_STRIDE, "rb_control.stripe_stride");
static_assert(offsetof(rb_control, host_parked) == RB_CTL_OFF_HOST_PARKED, "rb_control.host_parked");
static_assert(offsetof(rb_control, kernel_parked) == RB_CTL_OFF_KERNEL_PARKED, "rb_control.kernel_parked");
static_assert(offsetof(rb_control, wait_policy) == RB_CTL_OFF_WAIT_POLICY, "rb_control.wait_policy");
static_assert(offsetof(rb_control, call_offset) == RB_CTL_OFF_CALL_OFFSET, "rb_control.call_offset");
static_assert(offsetof(rb_control, call_capacity) == RB_CTL_OFF_CALL_CAPACITY, "rb_control.call_capacity");
static_assert(offsetof(rb_control, call_slot_size) == RB_CTL_OFF_CALL_SLOT_SIZE, "rb_control.call_slot_size");
static_assert(sizeof(rb_call_header) == RB_CALL_HEADER_SIZE, "rb_call_header size");
static_assert(offsetof(rb_call_header, state) == RB_CALL_OFF_STATE, "rb_call_header.state");
static_assert(offsetof(rb_call_header, service) == RB_CALL_OFF_SERVICE, "rb_call_header.service");
static_assert(offsetof(rb_call_header, len) == RB_CALL_OFF_LEN, "rb_call_header.len");
static_assert(offsetof(rb_call_header, status) == RB_CALL_OFF_STATUS, "rb_call_header.status");
static_assert(offsetof(rb_call_header, thread) == RB_CALL_OFF_THREAD, "rb_call_header.thread");
static_assert(offsetof(rb_call_header, block) == RB_CALL_OFF_BLOCK, "rb_call_header.block");

/* ------------------------------------------------------------------------ */
/* Codes of the device half.                                                */
/* ------------------------------------------------------------------------ */

/* The codes (RB_BAD_* details of RB_ERR_BAD_MAGIC, RB_DETAIL_REPLY_TOO_LONG,
   the handlers' error-reply codes) come from src/layout.rs through
   ringbridge_layout.h. A handler returning RB_HANDLER_PANICKED fails the
   kernel with RB_ERR_HANDLER_PANICKED (detail 0) instead of RB_ERR_HANDLER:
   the fallback's Rust callback returns it after catching a panic. */
#define RB_HANDLER_PANICKED ((int32_t)(uint32_t)RB_HANDLER_PANICKED_BITS)
/* What a handler returns to answer a request with nothing (not fatal). */
#define RB_NO_REPLY ((int32_t)(uint32_t)RB_NO_REPLY_BITS)

}  // namespace rb_detail

#endif /* RINGBRIDGE_DETAIL_STRUCTS_H */
