//! Host twins: the block-emulation build of a kernel's `.cu`
//! (`lib<stem>_emulation.so`), which runs a launched block on CPU threads.
//!
//! The emulation keeps block-shared state in statics, so one loaded copy of
//! the library runs one block at a time. A twin therefore hands out
//! *instances*: private copies of the library file, each `dlopen`ed on its
//! own (its own statics), reused once their block has returned.
//!
//! A kernel fault ends the faulting thread for good: `__trap()` calls the
//! hook set here, an invalid store raises `SIGSEGV`, which the handler here
//! takes when the faulting instruction lies in an instance. Either records
//! the fault in the instance's slot and parks the thread forever (its block
//! is dead, as on a GPU); the driver turns the slot into the context's
//! sticky error at its next call ([`take_faults`]).

use std::ffi::{CString, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

use crate::abi::{CuResult, ILLEGAL_ADDRESS, LAUNCH_FAILED};

/// Most instances a process can have (each is a loaded copy of a library).
const MAX_INSTANCES: usize = 1024;

/// Per instance: the fault its block took (0: none). Written from a signal
/// handler or a trapping thread, so plain atomics only.
static FAULT: [AtomicU32; MAX_INSTANCES] = [const { AtomicU32::new(0) }; MAX_INSTANCES];
/// Per instance: its code's address range, for the `SIGSEGV` handler.
static RANGE: [(AtomicUsize, AtomicUsize); MAX_INSTANCES] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; MAX_INSTANCES];
/// Set when some slot of `FAULT` was written and not yet taken.
static PENDING: AtomicBool = AtomicBool::new(false);
/// Instances made so far (the next slot).
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// One RB_KERNEL_ENTRY of a twin, as its `name__rb_sim_*` exports describe it.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    /// The entry's `__launch_bounds__`.
    pub max_threads: u32,
    /// `(offset, size)` of each parameter in the parameter space.
    pub params: Vec<(u32, u32)>,
}

impl Entry {
    /// Bytes of the parameter space.
    pub fn space(&self) -> usize {
        self.params
            .iter()
            .map(|&(o, s)| (o + s) as usize)
            .max()
            .unwrap_or(0)
    }
}

type LaunchFn = unsafe extern "C" fn(*const c_void, u32, u32, u32) -> i32;
type MaxThreadsFn = unsafe extern "C" fn() -> u32;
type ParamsFn = unsafe extern "C" fn(*mut u32, *mut u32, u32) -> u32;
type SetHookFn = unsafe extern "C" fn(Option<unsafe extern "C" fn(*mut c_void)>, *mut c_void);

/// A kernel source's block-emulation library and its loaded copies.
pub struct Twin {
    path: PathBuf,
    /// The library itself, for the entries' descriptions only (a bridge's
    /// block emulation may run blocks in it).
    probe: libloading::Library,
    free: Mutex<Vec<Arc<Instance>>>,
}

/// One private copy of a twin's library, running at most one block.
pub struct Instance {
    lib: libloading::Library,
    /// Its slot in `FAULT` and `RANGE`.
    pub slot: usize,
}

impl Twin {
    pub fn open(path: &Path) -> Result<Self, String> {
        // SAFETY: a block-emulation library built by ringbridge-build: its
        // initialisers touch nothing outside it.
        let probe = unsafe { libloading::Library::new(path) }
            .map_err(|e| format!("cannot load the host twin {}: {e}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            probe,
            free: Mutex::new(Vec::new()),
        })
    }

    /// The entry `name`, or `None` when the twin has no such
    /// RB_KERNEL_ENTRY.
    pub fn entry(&self, name: &str) -> Option<Entry> {
        // SAFETY: the `__rb_sim_*` exports have exactly these signatures
        // (kernels/ringbridge/entry.h); the probe stays loaded while `self`
        // lives and the pointers are used only here.
        unsafe {
            self.probe
                .get::<LaunchFn>(format!("{name}__rb_sim_launch").as_bytes())
                .ok()?;
            let max = self
                .probe
                .get::<MaxThreadsFn>(format!("{name}__rb_sim_max_threads").as_bytes())
                .ok()?;
            let params = self
                .probe
                .get::<ParamsFn>(format!("{name}__rb_sim_params").as_bytes())
                .ok()?;
            let mut offsets = [0u32; 16];
            let mut sizes = [0u32; 16];
            let n = params(offsets.as_mut_ptr(), sizes.as_mut_ptr(), 16).min(16) as usize;
            Some(Entry {
                name: name.to_owned(),
                max_threads: max(),
                params: offsets[..n]
                    .iter()
                    .copied()
                    .zip(sizes[..n].iter().copied())
                    .collect(),
            })
        }
    }

    /// A copy of the library no block runs in.
    pub fn acquire(&self) -> Result<Arc<Instance>, String> {
        if let Some(i) = crate::lock(&self.free).pop() {
            return Ok(i);
        }
        let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        if slot >= MAX_INSTANCES {
            return Err(format!("more than {MAX_INSTANCES} blocks ran at once"));
        }
        install_segv_handler();
        let name = self.path.file_name().map_or_else(
            || "twin.so".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let copy = std::env::temp_dir().join(format!(
            "ringbridge-sim-{}-{slot}-{name}",
            std::process::id()
        ));
        std::fs::copy(&self.path, &copy)
            .map_err(|e| format!("copying {} for a block: {e}", self.path.display()))?;
        // SAFETY: as in `open`; a private copy, so a library of its own.
        let lib = unsafe { libloading::Library::new(&copy) };
        let range = code_range(&copy);
        // The mapping stays; the file is not needed any more, unless a
        // debugger is to read its symbols (RINGBRIDGE_SIM_KEEP_COPIES=1).
        if std::env::var_os("RINGBRIDGE_SIM_KEEP_COPIES").is_none() {
            let _ = std::fs::remove_file(&copy);
        }
        let lib = lib.map_err(|e| format!("loading a copy of {}: {e}", self.path.display()))?;
        if let Some((start, end)) = range {
            RANGE[slot].0.store(start, Ordering::Relaxed);
            // Release: the handler that sees `end` non-zero sees `start`.
            RANGE[slot].1.store(end, Ordering::Release);
        }
        // SAFETY: `rb_emu_set_trap_hook` has this signature
        // (kernels/host/block_emulation.h); the hook is a plain function
        // and the cookie an integer, valid for the process's lifetime.
        unsafe {
            let set = lib
                .get::<SetHookFn>(b"rb_emu_set_trap_hook")
                .map_err(|e| format!("{} has no trap hook: {e}", self.path.display()))?;
            set(Some(on_trap), slot as *mut c_void);
        }
        Ok(Arc::new(Instance { lib, slot }))
    }

    /// Gives back an instance whose block returned.
    pub fn release(&self, instance: Arc<Instance>) {
        crate::lock(&self.free).push(instance);
    }
}

impl Instance {
    /// Runs block `block` of `entry` with `nthreads` threads over the
    /// parameter space `params`, on the calling thread, until it returns.
    pub fn run(&self, entry: &str, params: &[u8], block: u32, nthreads: u32) -> i32 {
        // SAFETY: `name__rb_sim_launch` has the `LaunchFn` signature; it
        // reads `params.len()` bytes of `params`, which live for the call.
        unsafe {
            match self
                .lib
                .get::<LaunchFn>(format!("{entry}__rb_sim_launch").as_bytes())
            {
                Ok(f) => f(params.as_ptr().cast(), params.len() as u32, block, nthreads),
                Err(_) => -1,
            }
        }
    }
}

/// The trap hook: the calling emulated thread executed `__trap()`.
unsafe extern "C" fn on_trap(cookie: *mut c_void) {
    record(cookie as usize, LAUNCH_FAILED);
}

fn record(slot: usize, code: CuResult) {
    if slot < MAX_INSTANCES {
        // Relaxed + release flag: `take_faults` acquires the flag.
        FAULT[slot].store(code, Ordering::Relaxed);
        PENDING.store(true, Ordering::Release);
    }
}

/// Faults recorded since the last call, as `(instance slot, code)`.
pub fn take_faults() -> Vec<(usize, CuResult)> {
    // Acquire: pairs with `record`'s release.
    if !PENDING.swap(false, Ordering::Acquire) {
        return Vec::new();
    }
    let n = NEXT_SLOT.load(Ordering::Relaxed).min(MAX_INSTANCES);
    (0..n)
        .filter_map(|s| match FAULT[s].swap(0, Ordering::Relaxed) {
            0 => None,
            code => Some((s, code)),
        })
        .collect()
}

/// The address range of the loaded library at `path`, from the program
/// headers of its mapping.
fn code_range(path: &Path) -> Option<(usize, usize)> {
    struct Search {
        name: CString,
        found: Option<(usize, usize)>,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for each loaded
        // object and our `Search` as `data`.
        unsafe {
            let search = &mut *data.cast::<Search>();
            let info = &*info;
            if info.dlpi_name.is_null() || std::ffi::CStr::from_ptr(info.dlpi_name) != &*search.name
            {
                return 0;
            }
            let base = info.dlpi_addr as usize;
            let (mut lo, mut hi) = (usize::MAX, 0usize);
            for i in 0..usize::from(info.dlpi_phnum) {
                let ph = &*info.dlpi_phdr.add(i);
                if ph.p_type == libc::PT_LOAD {
                    lo = lo.min(base + ph.p_vaddr as usize);
                    hi = hi.max(base + (ph.p_vaddr + ph.p_memsz) as usize);
                }
            }
            if lo < hi {
                search.found = Some((lo, hi));
            }
            1
        }
    }
    let mut search = Search {
        name: CString::new(path.as_os_str().as_encoded_bytes()).ok()?,
        found: None,
    };
    // SAFETY: `each` only reads what dl_iterate_phdr hands it and writes
    // through `data`, which is our live `search`.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut search).cast()) };
    search.found
}

/// The `SIGSEGV` and `SIGBUS` actions that were installed before ours
/// (set before ours is installed; `get` is one atomic load, so the handler
/// may read it).
static OLD_ACTIONS: std::sync::OnceLock<[Option<libc::sigaction>; 2]> = std::sync::OnceLock::new();

/// The faulting instruction's address.
#[allow(unused_variables)]
fn fault_pc(uctx: *mut c_void) -> usize {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        // SAFETY: the kernel hands an SA_SIGINFO handler a valid ucontext.
        return unsafe {
            (*uctx.cast::<libc::ucontext_t>()).uc_mcontext.gregs[libc::REG_RIP as usize] as usize
        };
    }
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    {
        // SAFETY: as above.
        return unsafe { (*uctx.cast::<libc::ucontext_t>()).uc_mcontext.pc as usize };
    }
    #[allow(unreachable_code)]
    0
}

/// An invalid access inside an instance is the kernel's illegal address:
/// recorded, and the thread parked for good. Anything else is handed back
/// to the action installed before (restored, so the access faults again
/// under it).
extern "C" fn on_segv(sig: libc::c_int, _info: *mut libc::siginfo_t, uctx: *mut c_void) {
    let pc = fault_pc(uctx);
    let n = NEXT_SLOT.load(Ordering::Relaxed).min(MAX_INSTANCES);
    for (slot, (start, end)) in RANGE.iter().enumerate().take(n) {
        // Acquire: pairs with `acquire`'s release of the range.
        let end = end.load(Ordering::Acquire);
        let start = start.load(Ordering::Relaxed);
        if pc >= start && pc < end {
            record(slot, ILLEGAL_ADDRESS);
            loop {
                // SAFETY: pause is async-signal-safe; the thread sleeps
                // until the process ends (its block is dead).
                unsafe { libc::pause() };
            }
        }
    }
    let old = OLD_ACTIONS
        .get()
        .and_then(|a| a[usize::from(sig == libc::SIGBUS)].as_ref());
    // SAFETY: restoring the saved action with sigaction (async-signal-safe).
    unsafe {
        match old {
            Some(a) => libc::sigaction(sig, a, std::ptr::null_mut()),
            None => libc::signal(sig, libc::SIG_DFL) as libc::c_int,
        };
    }
}

fn install_segv_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];
        // SAFETY: sigaction with a null new action only reads the current
        // one into a zeroed (valid) struct.
        let old = SIGNALS.map(|sig| unsafe {
            let mut prev: libc::sigaction = std::mem::zeroed();
            (libc::sigaction(sig, std::ptr::null(), &mut prev) == 0).then_some(prev)
        });
        let old = OLD_ACTIONS.get_or_init(|| old);
        // SAFETY: a zeroed sigaction is valid; sa_sigaction is our handler,
        // with SA_SIGINFO for its signature; the previous actions are saved
        // (above) before ours can run.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_segv as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&raw mut act.sa_mask);
            for (sig, prev) in SIGNALS.iter().zip(old) {
                if prev.is_some() {
                    libc::sigaction(*sig, &act, std::ptr::null_mut());
                }
            }
        }
    });
}
