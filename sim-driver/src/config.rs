//! What the simulated machine looks like (read once from the environment)
//! and the faults a test asks for (set at run time through
//! [`crate::control`], or from the environment for a whole process).
//!
//! Environment (all optional):
//! - `RINGBRIDGE_SIM_DRIVER=1`: required; without it `cuInit` refuses
//!   (`CUDA_ERROR_STUB_LIBRARY`), so the library never stands in for a real
//!   driver by accident.
//! - `RINGBRIDGE_SIM_DEVICES` (default 1): how many GPUs; 0 makes `cuInit`
//!   return `CUDA_ERROR_NO_DEVICE`, as the real driver does.
//! - `RINGBRIDGE_SIM_SMS` (default 8), `RINGBRIDGE_SIM_BLOCKS_PER_SM`
//!   (default 32, as on Hopper), `RINGBRIDGE_SIM_DEVICE_MIB` (default 1024),
//!   `RINGBRIDGE_SIM_PINNED_MIB` (default 4096): each device's shape.
//! - `RINGBRIDGE_SIM_KERNELS`: folders holding the kernels' `.rbsim` index
//!   files (colon-separated); by default the `build/*/out` folders beside
//!   the running executable (cargo's target layout).
//! - `RINGBRIDGE_SIM_ON_VIOLATION=error`: a call that would wait forever
//!   returns `CUDA_ERROR_UNKNOWN` instead of aborting the process.
//! - `RINGBRIDGE_SIM_WAIT_SECS` (default 10): how long `cuStreamSynchronize`
//!   waits for a kernel before it calls the wait endless.
//! - `RINGBRIDGE_SIM_FAULTS="key=value,..."`: faults for the whole
//!   process, with the keys of [`Faults::set`].

use std::time::Duration;

/// Threads one SM holds at once (every NVIDIA GPU since Volta but Turing).
pub const THREADS_PER_SM: u32 = 2048;
/// The largest block.
pub const MAX_BLOCK_THREADS: u32 = 1024;

/// The simulated machine.
#[derive(Clone, Debug)]
pub struct Machine {
    pub enabled: bool,
    pub devices: u32,
    pub sms: u32,
    pub blocks_per_sm: u32,
    pub device_bytes: usize,
    pub pinned_bytes: usize,
    pub kernel_dirs: Option<Vec<String>>,
    pub abort_on_violation: bool,
    pub wait_horizon: Duration,
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("ringbridge-sim: {name}={v:?} is not a number; using {default}");
            default
        }),
        Err(_) => default,
    }
}

impl Machine {
    pub fn from_env() -> Self {
        Self {
            enabled: std::env::var("RINGBRIDGE_SIM_DRIVER").is_ok_and(|v| v == "1"),
            devices: env_u64("RINGBRIDGE_SIM_DEVICES", 1).min(64) as u32,
            sms: env_u64("RINGBRIDGE_SIM_SMS", 8).clamp(1, 1024) as u32,
            blocks_per_sm: env_u64("RINGBRIDGE_SIM_BLOCKS_PER_SM", 32).clamp(1, 64) as u32,
            device_bytes: (env_u64("RINGBRIDGE_SIM_DEVICE_MIB", 1024) as usize) << 20,
            pinned_bytes: (env_u64("RINGBRIDGE_SIM_PINNED_MIB", 4096) as usize) << 20,
            kernel_dirs: std::env::var("RINGBRIDGE_SIM_KERNELS").ok().map(|v| {
                v.split(':')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }),
            abort_on_violation: std::env::var("RINGBRIDGE_SIM_ON_VIOLATION")
                .map_or(true, |v| v != "error"),
            wait_horizon: Duration::from_secs(env_u64("RINGBRIDGE_SIM_WAIT_SECS", 10)),
        }
    }
}

/// Faults to inject. Counters count calls from the moment the fault is set:
/// `fail_alloc = 2` fails the second allocation after that.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The Nth `cuMemAlloc`/`cuMemHostAlloc` returns `CUDA_ERROR_OUT_OF_MEMORY`.
    pub fail_alloc: u64,
    /// The Nth `cuLaunchKernel` returns `CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES`.
    pub fail_launch: u64,
    /// The Nth `cuModuleLoadData` returns `CUDA_ERROR_NO_BINARY_FOR_GPU`.
    pub fail_module: u64,
    /// While set, no block of any later launch becomes resident (as when
    /// another process fills every SM): launches are accepted and queued.
    pub stall: bool,
    /// Each block becomes resident this long after its launch.
    pub start_delay: Duration,
}

impl Faults {
    /// Sets `key` (`fail_alloc`, `fail_launch`, `fail_module`, `stall`,
    /// `start_delay_ms`) to `value`; `false` for an unknown key.
    pub fn set(&mut self, key: &str, value: u64) -> bool {
        match key {
            "fail_alloc" => self.fail_alloc = value,
            "fail_launch" => self.fail_launch = value,
            "fail_module" => self.fail_module = value,
            "stall" => self.stall = value != 0,
            "start_delay_ms" => self.start_delay = Duration::from_millis(value),
            _ => return false,
        }
        true
    }

    /// Faults from `RINGBRIDGE_SIM_FAULTS`.
    pub fn from_env() -> Self {
        let mut f = Self::default();
        if let Ok(spec) = std::env::var("RINGBRIDGE_SIM_FAULTS") {
            for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let ok = item
                    .split_once('=')
                    .and_then(|(k, v)| Some((k.trim(), v.trim().parse().ok()?)))
                    .is_some_and(|(k, v)| f.set(k, v));
                if !ok {
                    eprintln!("ringbridge-sim: ignoring RINGBRIDGE_SIM_FAULTS item {item:?}");
                }
            }
        }
        f
    }

    /// Counts one call against a "fail the Nth" counter: `true` when this
    /// call is the one to fail.
    pub fn hit(counter: &mut u64) -> bool {
        match *counter {
            0 => false,
            1 => {
                *counter = 0;
                true
            }
            _ => {
                *counter -= 1;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_call_fails_once() {
        let mut n = 3;
        assert!(!Faults::hit(&mut n));
        assert!(!Faults::hit(&mut n));
        assert!(Faults::hit(&mut n));
        assert!(!Faults::hit(&mut n));
        let mut f = Faults::default();
        assert!(f.set("start_delay_ms", 5));
        assert_eq!(f.start_delay, Duration::from_millis(5));
        assert!(!f.set("no_such_fault", 1));
    }
}
