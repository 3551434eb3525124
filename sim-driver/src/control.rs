//! What a test asks of the simulator, through exports a test finds in the
//! loaded driver library by name (`tests/common/sim.rs` in ringbridge):
//! faults to inject and counters to check that nothing leaked.

use std::ffi::{CStr, c_char};

use crate::world::world;

/// Identifies the simulator: a loaded `libcuda` exporting this is this one.
#[unsafe(no_mangle)]
pub extern "C" fn ringbridge_sim_driver_version() -> *const c_char {
    c"ringbridge simulated CUDA driver 1 (CUDA 12.8 driver API)".as_ptr()
}

/// Sets fault `key` (see `Faults::set` in `config.rs`) to `value`, or
/// reshapes every device: `sms`, `blocks_per_sm` (refused, -2, while a
/// block is resident). Returns 0, or -1 for an unknown key or a null
/// pointer.
///
/// # Safety
/// `key` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rbsim_set(key: *const c_char, value: u64) -> i32 {
    if key.is_null() {
        return -1;
    }
    // SAFETY: NUL-terminated by the caller's contract.
    let key = unsafe { CStr::from_ptr(key) }.to_string_lossy();
    let mut g = world();
    match &*key {
        "sms" | "blocks_per_sm" => {
            let value = value.clamp(1, 1024) as u32;
            let (sms, per_sm) = match &*key {
                "sms" => (value, g.machine.blocks_per_sm),
                _ => (g.machine.sms, value.min(64)),
            };
            if g.reshape(sms, per_sm) { 0 } else { -2 }
        }
        _ if g.faults.set(&key, value) => 0,
        _ => -1,
    }
}

/// Clears every fault and gives the devices back the shape the
/// environment gave them (once no block is resident).
#[unsafe(no_mangle)]
pub extern "C" fn rbsim_reset() {
    let mut g = world();
    g.faults = Default::default();
    let (sms, per_sm) = g.initial_shape;
    if (g.machine.sms, g.machine.blocks_per_sm) != (sms, per_sm) && !g.reshape(sms, per_sm) {
        eprintln!("ringbridge-sim: rbsim_reset: blocks are resident; the devices keep their shape");
    }
}

/// A counter: `host_allocs`, `device_allocs`, `modules`, `streams`,
/// `contexts`, `active_launches`, `violations`, `left_at_destroy`,
/// `resident_blocks` (of every device); `u64::MAX` for an unknown name.
///
/// # Safety
/// `name` is null or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rbsim_get(name: *const c_char) -> u64 {
    if name.is_null() {
        return u64::MAX;
    }
    // SAFETY: NUL-terminated by the caller's contract.
    let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
    let g = world();
    match &*name {
        "host_allocs" => g.host_allocs.len() as u64,
        "device_allocs" => g.device_allocs.len() as u64,
        "modules" => g.modules.len() as u64,
        "streams" => g.streams.values().filter(|s| !s.destroyed).count() as u64,
        "contexts" => g.contexts.len() as u64,
        "active_launches" => g.launches.values().filter(|l| l.active()).count() as u64,
        "violations" => g.counters.violations,
        "left_at_destroy" => g.counters.left_at_destroy,
        "resident_blocks" => g
            .devices
            .iter()
            .flat_map(|d| d.sms.iter())
            .map(|sm| u64::from(sm.blocks))
            .sum(),
        _ => u64::MAX,
    }
}
