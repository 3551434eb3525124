//! Launching a bridge: the backend's launch (see [`crate::backend::launch`])
//! made into bridges, and the wait until the device half serves.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{Backend, Engine, SharedMemory};
use crate::buffer::Buffers;
use crate::calls::ring::CallSlots;
use crate::calls::server::{CallServer, ServerConfig};
use crate::error::{Error, Result, RingId};
use crate::layout::{LaunchArgs, STATUS_FAILED, STATUS_LAUNCHING};
use crate::ring::{
    Control, LaneConsumer, LaneProducer, RegionLayout, RingConsumer, RingProducer, RingRef,
    SlotFormat,
};
use crate::wait::Doorbell;

use super::builder::BridgeBuilder;
use super::receive::{K2hConsumer, ReceiveState};
use super::send::H2kProducer;
use super::watchdog::{Heartbeat, report_error};
use super::{Bridge, BridgeState, Kernel};

/// What a bridge's log lines and service errors name it by: a number
/// unique in the process, the kernel, and the stripe of a striped group.
fn bridge_label(kernel: &Kernel, stripe: usize) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // Relaxed: a counter; only uniqueness matters.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = match kernel {
        Kernel::User(u) => u.entry().to_owned(),
        Kernel::Custom { entry, .. } => entry.clone(),
        Kernel::Echo => "echo".into(),
        Kernel::ScaleF32 { .. } => "scale".into(),
        Kernel::RustHandler(_) => "rust handler".into(),
    };
    if stripe == 0 {
        format!("bridge {n} ({name})")
    } else {
        format!("bridge {n} ({name}, stripe {stripe})")
    }
}

/// What a launch made for one bridge.
pub(super) struct Launched {
    pub(super) memory: Arc<dyn SharedMemory>,
    pub(super) engine: Box<dyn Engine>,
    /// The kernel's buffers (shared by the stripes of a group; a group
    /// has none).
    pub(super) buffers: Arc<Buffers>,
    /// What the kernel was launched with.
    pub(super) args: LaunchArgs,
}

impl Bridge {
    /// A bridge over `memory`, served by `engine`, not yet known to serve.
    pub(super) fn assemble(
        b: &BridgeBuilder,
        layout: &RegionLayout,
        launched: Launched,
        backend: Backend,
        reason: &str,
        max_payload: usize,
        stripe: usize,
    ) -> Result<Self> {
        let Launched {
            memory,
            engine,
            buffers,
            args,
        } = launched;
        let calls = if layout.call_offset != 0 {
            Some(CallServer::start(ServerConfig {
                slots: CallSlots::new(
                    memory.clone(),
                    layout.call_offset,
                    layout.call_slots,
                    layout.call_slot_size,
                ),
                services: b.services.clone(),
                timeout: b.service_timeout,
                policy: b.wait_policy,
                backend,
                label: bridge_label(&b.kernel, stripe),
            })?)
        } else {
            None
        };
        let control = Control::new(memory.clone());
        let doorbell = Doorbell::new(memory.clone(), b.wait_policy, backend);
        let h2k = RingRef::new(memory.clone(), layout, RingId::H2k);
        let k2h = RingRef::new(memory.clone(), layout, RingId::K2h);
        let (tx, rx) = match layout.spec.format() {
            SlotFormat::Lanes => (
                H2kProducer::Lanes(LaneProducer::new(h2k)),
                K2hConsumer::Lanes(LaneConsumer::new(k2h)),
            ),
            _ => (
                H2kProducer::Slots(RingProducer::new(h2k)),
                K2hConsumer::Slots(RingConsumer::new(k2h)),
            ),
        };
        Ok(Bridge {
            h2k: Mutex::new(tx),
            k2h: Mutex::new(ReceiveState::new(rx)),
            state: BridgeState {
                control,
                engine,
                memory,
                buffers,
                launch_args: args,
                backend,
                backend_reason: reason.to_owned(),
                spec: layout.spec,
                max_payload,
                hang_timeout: b.hang_timeout,
                shutdown_timeout: b.shutdown_timeout,
                heartbeat: Mutex::new(Heartbeat::new()),
                dead: Mutex::new(None),
                is_dead: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
                stopping: AtomicBool::new(false),
                leaked: AtomicBool::new(false),
                sent: AtomicU64::new(0),
                received: AtomicU64::new(0),
                no_reply: AtomicU64::new(0),
                events: AtomicU64::new(0),
                doorbell,
                router: Default::default(),
                calls,
            },
        })
    }

    /// Waits until the device half serves, fails, or `deadline` passes
    /// (`timeout` is what the caller allowed, for the error).
    pub(super) fn wait_started(&self, deadline: Instant, timeout: Duration) -> Result<()> {
        loop {
            let report = self.state.control.report();
            if report.status == STATUS_FAILED {
                return Err(self.state.fail(report_error(&report)));
            }
            if report.status != STATUS_LAUNCHING {
                return Ok(());
            }
            match self.state.engine.poll() {
                Err(e) => return Err(self.state.fail(e)),
                Ok(true) => {
                    // Release: as in `BridgeState::check`.
                    self.state.stopped.store(true, Ordering::Release);
                    let report = self.state.control.report();
                    return Err(self.state.fail(report_error(&report)));
                }
                Ok(false) => {}
            }
            if Instant::now() > deadline {
                return Err(self.state.fail(Error::Timeout {
                    op: "launch",
                    after: timeout,
                }));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}
