//! The simulated machine's state: devices, contexts, memory, modules,
//! streams and launches, behind one lock, and the rules every call checks
//! (a current context, the context's sticky error, implicit
//! synchronization).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::abi::*;
use crate::config::{Faults, Machine, THREADS_PER_SM};
use crate::image::{Index, Kind};
use crate::twin::{Entry, Twin};

/// The world, created at the first call.
static WORLD: Mutex<Option<World>> = Mutex::new(None);
/// Signalled whenever a launch, block or stream changes state.
pub static CHANGED: Condvar = Condvar::new();

/// The locked world.
pub struct Guard(pub MutexGuard<'static, Option<World>>);

impl std::ops::Deref for Guard {
    type Target = World;
    fn deref(&self) -> &World {
        self.0.as_ref().expect("the world is created by `world()`")
    }
}
impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut World {
        self.0.as_mut().expect("the world is created by `world()`")
    }
}

/// Locks the world (creating it from the environment the first time) and
/// takes in any kernel fault recorded since the last call.
pub fn world() -> Guard {
    let mut g = crate::lock(&WORLD);
    if g.is_none() {
        *g = Some(World::new(Machine::from_env(), Faults::from_env()));
    }
    let mut g = Guard(g);
    g.absorb_faults();
    g
}

/// Waits on [`CHANGED`] for at most `timeout`.
pub fn wait(g: Guard, timeout: Duration) -> Guard {
    let (inner, _) = CHANGED
        .wait_timeout(g.0, timeout)
        .unwrap_or_else(|e| e.into_inner());
    let mut g = Guard(inner);
    g.absorb_faults();
    g
}

/// Handle tags, in the top 16 bits, so that a handle of one kind passed as
/// another is caught (`CUDA_ERROR_INVALID_HANDLE`).
pub const TAG_CONTEXT: u64 = 0x5c01;
pub const TAG_MODULE: u64 = 0x5c02;
pub const TAG_FUNCTION: u64 = 0x5c03;
pub const TAG_STREAM: u64 = 0x5c04;

pub fn handle(tag: u64, id: u64) -> Handle {
    ((tag << 48) | id) as usize as Handle
}

/// The id of `h` if it carries `tag`.
pub fn id_of(h: Handle, tag: u64) -> Option<u64> {
    let v = h as usize as u64;
    (v >> 48 == tag).then_some(v & ((1 << 48) - 1))
}

thread_local! {
    /// The calling thread's current context (0: none).
    pub static CURRENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

pub struct Sm {
    pub threads: u32,
    pub blocks: u32,
}

pub struct Device {
    pub sms: Vec<Sm>,
    pub primary: Option<u64>,
    pub primary_refs: u32,
    pub device_bytes: usize,
}

pub struct Context {
    pub device: usize,
    /// The sticky error every later call on this context returns (0: none).
    pub sticky: CuResult,
}

pub struct Module {
    pub ctx: u64,
    pub kind: Kind,
    pub digest: u64,
    pub twin: Option<Arc<Twin>>,
    pub ptx_entries: Vec<String>,
}

pub struct Function {
    pub module: u64,
    pub name: String,
    /// `None`: the image has this entry but no host twin runs it.
    pub entry: Option<Entry>,
}

/// A copy a stream runs in order with its other work.
pub struct Copy {
    pub dst: usize,
    pub src: usize,
    pub len: usize,
}

pub enum Op {
    Kernel(u64),
    Copy(Copy),
}

pub struct Stream {
    pub ctx: u64,
    /// Work not finished yet, the front one possibly under way.
    pub ops: VecDeque<Op>,
    pub worker: bool,
    pub destroyed: bool,
}

pub struct Launch {
    pub ctx: u64,
    pub device: usize,
    pub stream: u64,
    pub module: u64,
    pub entry: Entry,
    pub twin: Arc<Twin>,
    pub grid: u32,
    pub threads: u32,
    pub params: Arc<Vec<u8>>,
    /// Blocks not returned yet (faulted blocks never return).
    pub blocks_left: u32,
    /// The SM of each resident block that has not returned.
    pub resident: HashMap<u32, usize>,
    pub fault: CuResult,
    pub done: bool,
    pub launched: Instant,
}

impl Launch {
    /// Running or waiting to run: work a synchronizing call would wait for.
    pub fn active(&self) -> bool {
        !self.done && self.fault == 0
    }

    pub fn describe(&self, id: u64) -> String {
        format!(
            "kernel `{}` (launch {id}, grid {}, block {}, stream {:#x}, launched {:.1?} ago)",
            self.entry.name,
            self.grid,
            self.threads,
            handle(TAG_STREAM, self.stream) as usize,
            self.launched.elapsed()
        )
    }
}

pub struct HostAlloc {
    pub len: usize,
    pub layout: std::alloc::Layout,
    pub ctx: u64,
    pub flags: u32,
}

pub struct DeviceAlloc {
    pub len: usize,
    pub layout: std::alloc::Layout,
    pub ctx: u64,
    pub device: usize,
}

/// What a synchronizing call waits for.
#[derive(Clone, Copy)]
pub enum Scope {
    /// Every device's running work (portable pinned memory).
    AllDevices,
    /// One device's.
    Device(usize),
}

#[derive(Default)]
pub struct Counters {
    pub violations: u64,
    /// Allocations, modules and streams still alive when their context was
    /// destroyed (the library did not free them).
    pub left_at_destroy: u64,
}

pub struct World {
    pub machine: Machine,
    /// `(sms, blocks_per_sm)` as the environment set them.
    pub initial_shape: (u32, u32),
    pub faults: Faults,
    pub initialized: bool,
    pub devices: Vec<Device>,
    next_id: u64,
    pub contexts: HashMap<u64, Context>,
    pub modules: HashMap<u64, Module>,
    pub functions: HashMap<u64, Function>,
    pub streams: HashMap<u64, Stream>,
    pub launches: HashMap<u64, Launch>,
    pub host_allocs: BTreeMap<usize, HostAlloc>,
    pub device_allocs: BTreeMap<usize, DeviceAlloc>,
    pub twins: HashMap<PathBuf, Arc<Twin>>,
    pub index: Index,
    /// Instance slot → the launch whose block runs in it.
    pub running_in: HashMap<usize, u64>,
    pub counters: Counters,
    pub last_violation: Option<String>,
}

impl World {
    fn new(machine: Machine, faults: Faults) -> Self {
        let devices = (0..machine.devices)
            .map(|_| Device {
                sms: (0..machine.sms)
                    .map(|_| Sm {
                        threads: 0,
                        blocks: 0,
                    })
                    .collect(),
                primary: None,
                primary_refs: 0,
                device_bytes: 0,
            })
            .collect();
        Self {
            initial_shape: (machine.sms, machine.blocks_per_sm),
            machine,
            faults,
            initialized: false,
            devices,
            next_id: 1,
            contexts: HashMap::new(),
            modules: HashMap::new(),
            functions: HashMap::new(),
            streams: HashMap::new(),
            launches: HashMap::new(),
            host_allocs: BTreeMap::new(),
            device_allocs: BTreeMap::new(),
            twins: HashMap::new(),
            index: Index::default(),
            running_in: HashMap::new(),
            counters: Counters::default(),
            last_violation: None,
        }
    }

    pub fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Turns faults recorded by trapping or faulting threads into their
    /// launch's fault and their context's sticky error.
    pub fn absorb_faults(&mut self) {
        let faults = crate::twin::take_faults();
        if faults.is_empty() {
            return;
        }
        for (slot, code) in faults {
            let Some(&id) = self.running_in.get(&slot) else {
                continue;
            };
            self.fault_launch(id, code);
        }
        CHANGED.notify_all();
    }

    /// Kills launch `id` with `code`: its context gets the sticky error.
    pub fn fault_launch(&mut self, id: u64, code: CuResult) {
        let Some(l) = self.launches.get_mut(&id) else {
            return;
        };
        if l.fault == 0 {
            l.fault = code;
        }
        let ctx = l.ctx;
        if let Some(c) = self.contexts.get_mut(&ctx)
            && c.sticky == 0
        {
            c.sticky = code;
        }
    }

    /// The calling thread's current context, checked: its id and device.
    pub fn current(&self) -> Result<(u64, usize), CuResult> {
        if !self.initialized {
            return Err(NOT_INITIALIZED);
        }
        let id = CURRENT.with(std::cell::Cell::get);
        let ctx = self.contexts.get(&id).ok_or(INVALID_CONTEXT)?;
        if ctx.sticky != 0 {
            return Err(ctx.sticky);
        }
        Ok((id, ctx.device))
    }

    /// A launch that `scope` covers and that has not finished.
    pub fn busy(&self, scope: Scope) -> Option<String> {
        self.launches
            .iter()
            .filter(|(_, l)| l.active())
            .find(|(_, l)| match scope {
                Scope::AllDevices => true,
                Scope::Device(d) => l.device == d,
            })
            .map(|(id, l)| format!("{} on device {}", l.describe(*id), l.device))
    }

    /// Checks the implicit-synchronization rule for `call`: while a kernel
    /// in `scope` runs, the real driver would wait for it (forever, for a
    /// persistent kernel). The simulator aborts with the reason instead of
    /// hanging, or returns `CUDA_ERROR_UNKNOWN` when told to.
    pub fn check_idle(&mut self, call: &str, scope: Scope) -> Result<(), CuResult> {
        match self.busy(scope) {
            None => Ok(()),
            Some(kernel) => Err(self.violation(format!(
                "{call} while {kernel} has not finished: the real driver waits for the \
                 device's running work here (implicit synchronization, CUDA C++ Programming \
                 Guide), forever for a persistent kernel"
            ))),
        }
    }

    /// Reports a call that would never return.
    pub fn violation(&mut self, what: String) -> CuResult {
        self.counters.violations += 1;
        eprintln!("ringbridge-sim: {what}");
        if self.machine.abort_on_violation {
            eprintln!(
                "ringbridge-sim: aborting instead of hanging (RINGBRIDGE_SIM_ON_VIOLATION=error \
                 makes the call fail instead)"
            );
            std::process::abort();
        }
        self.last_violation = Some(what);
        UNKNOWN
    }

    /// The device allocation or mapped host allocation holding
    /// `[addr, addr + len)`, as the device of `ctx` sees it.
    pub fn device_range(&self, addr: usize, len: usize) -> Result<(), CuResult> {
        let end = addr.checked_add(len).ok_or(INVALID_VALUE)?;
        if let Some((&start, a)) = self.device_allocs.range(..=addr).next_back()
            && end <= start + a.len
        {
            return Ok(());
        }
        if let Some((&start, a)) = self.host_allocs.range(..=addr).next_back()
            && a.flags & MEMHOSTALLOC_DEVICEMAP != 0
            && end <= start + a.len
        {
            return Ok(());
        }
        Err(INVALID_VALUE)
    }

    /// Whether `[addr, addr + len)` lies in page-locked memory of ours.
    pub fn pinned(&self, addr: usize, len: usize) -> bool {
        self.host_allocs
            .range(..=addr)
            .next_back()
            .is_some_and(|(&s, a)| addr + len <= s + a.len)
    }

    /// The twin of the image with `digest`, loaded once.
    pub fn twin(&mut self, digest: u64) -> Option<Arc<Twin>> {
        let dirs = self
            .machine
            .kernel_dirs
            .as_ref()
            .map_or_else(crate::image::default_dirs, |d| {
                d.iter().map(PathBuf::from).collect()
            });
        let path = self.index.twin(digest, &dirs)?;
        if let Some(t) = self.twins.get(&path) {
            return Some(Arc::clone(t));
        }
        match Twin::open(&path) {
            Ok(t) => {
                let t = Arc::new(t);
                self.twins.insert(path, Arc::clone(&t));
                Some(t)
            }
            Err(e) => {
                eprintln!("ringbridge-sim: {e}");
                None
            }
        }
    }

    /// Places one block of `threads` threads on an SM of `device` with room.
    pub fn place(&mut self, device: usize, threads: u32) -> Option<usize> {
        let need = threads.div_ceil(32) * 32;
        let max_blocks = self.machine.blocks_per_sm;
        let d = &mut self.devices[device];
        let (i, sm) = d
            .sms
            .iter_mut()
            .enumerate()
            .find(|(_, sm)| sm.blocks < max_blocks && sm.threads + need <= THREADS_PER_SM)?;
        sm.blocks += 1;
        sm.threads += need;
        Some(i)
    }

    /// Gives every device `sms` SMs of `blocks_per_sm` blocks; `false`
    /// (nothing changed) while a block is resident anywhere.
    pub fn reshape(&mut self, sms: u32, blocks_per_sm: u32) -> bool {
        let busy = self
            .devices
            .iter()
            .any(|d| d.sms.iter().any(|s| s.blocks > 0));
        if busy {
            return false;
        }
        self.machine.sms = sms;
        self.machine.blocks_per_sm = blocks_per_sm;
        for d in &mut self.devices {
            d.sms = (0..sms)
                .map(|_| Sm {
                    threads: 0,
                    blocks: 0,
                })
                .collect();
        }
        true
    }

    /// Frees the SM slot of a block that returned (or whose context died).
    pub fn unplace(&mut self, device: usize, sm: usize, threads: u32) {
        let need = threads.div_ceil(32) * 32;
        if let Some(s) = self.devices.get_mut(device).and_then(|d| d.sms.get_mut(sm)) {
            s.blocks = s.blocks.saturating_sub(1);
            s.threads = s.threads.saturating_sub(need);
        }
    }

    /// Destroys context `id` (its primary context's last reference went):
    /// what the library left in it is counted, and its faulted blocks'
    /// SMs are freed. Memory left behind stays mapped (never reused), so a
    /// host pointer the library still held cannot reach freed memory.
    pub fn destroy_context(&mut self, id: u64) {
        let Some(ctx) = self.contexts.remove(&id) else {
            return;
        };
        let mut left = 0;
        self.host_allocs.retain(|_, a| {
            let keep = a.ctx != id;
            left += u64::from(!keep);
            keep
        });
        self.device_allocs.retain(|_, a| {
            let keep = a.ctx != id;
            left += u64::from(!keep);
            keep
        });
        let modules: Vec<u64> = self
            .modules
            .iter()
            .filter(|(_, m)| m.ctx == id)
            .map(|(k, _)| *k)
            .collect();
        left += modules.len() as u64;
        for m in modules {
            self.remove_module(m);
        }
        let before = self.streams.len();
        self.streams.retain(|_, s| s.ctx != id || s.worker);
        left += (before - self.streams.len()) as u64;
        let dead: Vec<(usize, usize, u32)> = self
            .launches
            .values_mut()
            .filter(|l| l.ctx == id)
            .flat_map(|l| {
                l.done = true;
                let (device, threads) = (l.device, l.threads);
                l.resident
                    .drain()
                    .map(move |(_, sm)| (device, sm, threads))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (d, sm, t) in dead {
            self.unplace(d, sm, t);
        }
        self.launches.retain(|_, l| l.ctx != id);
        self.devices[ctx.device].device_bytes = self
            .device_allocs
            .values()
            .filter(|a| a.device == ctx.device)
            .map(|a| a.len)
            .sum();
        if left > 0 {
            eprintln!(
                "ringbridge-sim: context {id:#x} destroyed with {left} allocation(s), module(s) \
                 or stream(s) still in it"
            );
        }
        self.counters.left_at_destroy += left;
        CHANGED.notify_all();
    }

    pub fn remove_module(&mut self, id: u64) {
        self.modules.remove(&id);
        self.functions.retain(|_, f| f.module != id);
    }
}
