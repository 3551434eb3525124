//! # ringbridge-build
//!
//! Build-script helper for crates that write their own ringbridge kernel:
//! one `.cu` source with a handler and an `RB_KERNEL_ENTRY(name, Handler)`
//! line, built for both of ringbridge's backends.
//!
//! - nvcc compiles it to a fatbin (CUDA backend), when nvcc is found;
//! - the host C++ compiler compiles the same file as C++17 into a static
//!   library linked into the crate (the host fallback), where
//!   `RB_KERNEL_ENTRY` defines the host entry `name__rb_host`;
//! - `$OUT_DIR/<lib>.rs`, which the crate `include!`s, gets one
//!   `pub fn name() -> ringbridge::UserKernel` per entry, carrying both.
//!
//! Why a crate of its own: a build-dependency on `ringbridge` itself would
//! pull its runtime dependencies (cudarc, clap, ...) into every build script
//! and run ringbridge's own build script (layout header, nvcc) once more for
//! the host. This crate depends on `cc` only, so it does neither.
//!
//! nvcc is looked for, in this order: `$NVCC` (when set, and only there: a
//! `NVCC` naming a missing file means "no nvcc"; a bare name is looked up on
//! `PATH`), `$CUDA_HOME/bin/nvcc`, `$CUDA_PATH/bin/nvcc`, `nvcc` on `PATH`,
//! `/usr/local/cuda/bin/nvcc`, and the ringbridge checkout's
//! `.toolchain/cuda/nvidia/cu13/bin/nvcc` (installed by
//! `scripts/install-nvcc.sh`). `$NVCC_CCBIN` is passed as `-ccbin`. When
//! none is found the folders searched are watched, so the first build after
//! nvcc appears compiles the kernels. `RINGBRIDGE_CUDA_ARCHS` (comma list,
//! e.g. `sm_90,compute_80`) overrides the targets; `RINGBRIDGE_KERNEL_DEFINES`
//! (comma list of `NAME` or `NAME=VALUE`) defines macros for both builds.
//!
//! With nvcc and block emulation both on, `$OUT_DIR/<stem>.rbsim` is the
//! simulated driver's index: which host twin runs which image. Its first
//! line is `ringbridge-sim-index 1`; then one `image <digest> <path>` line
//! for the fatbin and one for the PTX file, if any, where digest is
//! [`image_digest`] of that file (16 lowercase hex digits) and path the
//! absolute path of `lib<stem>_emulation.so` (the rest of the line). Read
//! only by the project's test simulator (`sim-driver`).
//!
//! The device header `ringbridge.cuh` ships with the `ringbridge` crate
//! (its `kernels/` folder) and is found through ringbridge's
//! `links = "ringbridge"` metadata: `DEP_RINGBRIDGE_INCLUDE`, set for the
//! build script of every crate that depends on ringbridge, names that
//! folder in whatever copy of ringbridge cargo built (a registry download,
//! a git checkout, a path). So a user's build compiles against the very
//! headers of the ringbridge it links, and never looks for them by a path
//! relative to this crate. A build script that does not depend on
//! ringbridge (ringbridge's own) names the folder with
//! [`Kernels::headers`]: see [`header_dir`].
#![warn(missing_docs)]

mod generate;
mod nvcc;
mod options;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use options::DEFAULT_ARCHS;

/// The folder holding `ringbridge.cuh`, `ringbridge_layout.h` and
/// `handlers.h`: `$DEP_RINGBRIDGE_INCLUDE`, which ringbridge's build script
/// publishes to the build scripts of the crates that depend on it (the
/// `kernels/` folder of that ringbridge package). Panics, saying what to
/// do, when it is not set or holds no `ringbridge.cuh`: nothing can be
/// compiled without it.
///
/// ```no_run
/// // In a build script of a crate that depends on ringbridge:
/// let dir = ringbridge_build::header_dir();
/// assert!(dir.join("ringbridge.cuh").is_file());
/// ```
pub fn header_dir() -> PathBuf {
    headers_or(None)
}

/// `explicit` when given (it must hold `ringbridge.cuh`), else
/// [`header_dir`].
fn headers_or(explicit: Option<&Path>) -> PathBuf {
    let dir = match explicit {
        Some(dir) => dir.to_path_buf(),
        None => match std::env::var_os("DEP_RINGBRIDGE_INCLUDE") {
            Some(dir) => PathBuf::from(dir),
            None => panic!(
                "ringbridge-build: DEP_RINGBRIDGE_INCLUDE is not set, so the device headers \
                 (ringbridge.cuh) cannot be found: add `ringbridge` to [dependencies] (its \
                 build script publishes the folder to yours), or name the folder with \
                 Kernels::headers"
            ),
        },
    };
    assert!(
        dir.join("ringbridge.cuh").is_file(),
        "ringbridge-build: no ringbridge.cuh in {}",
        dir.display()
    );
    dir.canonicalize().unwrap_or(dir)
}

/// One compiled source, as [`Kernels::compile`] reports it.
#[derive(Clone, Debug)]
pub struct CompiledImage {
    /// The `.cu` file.
    pub source: PathBuf,
    /// Its file stem, which names its outputs (`<stem>.fatbin`, `<stem>.ptx`).
    pub stem: String,
    /// Its `RB_KERNEL_ENTRY` names, in source order.
    pub entries: Vec<String>,
    /// Whether it was compiled for the host fallback too (and so has
    /// constructors in the generated Rust file).
    pub host: bool,
    /// `$OUT_DIR/<stem>.fatbin`, when nvcc compiled it.
    pub fatbin: Option<PathBuf>,
    /// `$OUT_DIR/<stem>.ptx`, when nvcc compiled it and PTX was asked for.
    pub ptx: Option<PathBuf>,
    /// `$OUT_DIR/lib<stem>_emulation.so`, the block emulation's build of a
    /// host source, or of a CUDA-only source with entries (the test
    /// simulator's host twin of its fatbin), when it was compiled.
    pub emulation: Option<PathBuf>,
}

/// What [`Kernels::compile`] did.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// `Ok((nvcc release, architectures))` when every source got a fatbin;
    /// `Err(why not)` otherwise (no nvcc, or nvcc failed): then no source
    /// has one, and the kernels run on the host fallback only.
    pub cuda: Result<(String, Vec<String>), String>,
    /// Every source, in the order given.
    pub images: Vec<CompiledImage>,
    /// The generated Rust file, `$OUT_DIR/<lib name>.rs`.
    pub rust_file: PathBuf,
}

/// A set of kernel sources built for both backends.
///
/// Use it from `build.rs`; see [`compile`](Self::compile) for what it
/// produces.
///
/// ```no_run
/// // build.rs
/// ringbridge_build::Kernels::new()
///     .source("kernels/double.cu")
///     .define("MY_FACTOR", Some("2"))
///     .compile("my_kernels");
/// // src/lib.rs: include!(concat!(env!("OUT_DIR"), "/my_kernels.rs"));
/// // then ringbridge::Kernel::User(double()) launches on either backend.
/// ```
#[derive(Clone, Debug, Default)]
pub struct Kernels {
    headers: Option<PathBuf>,
    sources: Vec<(PathBuf, bool)>,
    defines: Vec<(String, Option<String>)>,
    includes: Vec<PathBuf>,
    archs: Option<Vec<String>>,
    ptx: bool,
    emulation: bool,
    race_check: bool,
}

impl Kernels {
    /// An empty set: no sources, no defines, the default architectures
    /// ([`DEFAULT_ARCHS`]), no PTX files.
    ///
    /// ```
    /// let k = ringbridge_build::Kernels::new();
    /// # let _ = k;
    /// ```
    pub fn new() -> Self {
        Self {
            emulation: true,
            ..Self::default()
        }
    }

    /// Whether to build each host source's block emulation too (default
    /// on): `$OUT_DIR/lib<stem>_emulation.so`, the same source compiled
    /// with `RB_EMULATE_BLOCK` so a bridge can run the handler on a block of
    /// CPU threads (`BridgeBuilder::emulate_block`), as a GPU block would.
    /// The bridge loads it only when asked to; nothing of it is linked.
    /// A CUDA-only source with `RB_KERNEL_ENTRY` lines gets one too, for the
    /// test simulator only (its failure is a warning, never an error).
    ///
    /// ```
    /// let k = ringbridge_build::Kernels::new().block_emulation(false);
    /// # let _ = k;
    /// ```
    pub fn block_emulation(mut self, on: bool) -> Self {
        self.emulation = on;
        self
    }

    /// Whether to build each host source's race-check library too
    /// (default off): `$OUT_DIR/lib<stem>_racecheck.so`, the block
    /// emulation built once more with ThreadSanitizer and schedule shaking,
    /// which a test run through `ringbridge::race_check` uses instead of
    /// the plain emulation library, so a data race between the emulated
    /// threads of a batch is reported with both source lines. Costs one
    /// more host compile per source, only when on.
    ///
    /// ```
    /// let k = ringbridge_build::Kernels::new().race_check(true);
    /// # let _ = k;
    /// ```
    pub fn race_check(mut self, on: bool) -> Self {
        self.race_check = on;
        self
    }

    /// Adds a `.cu` source (relative paths are taken from the crate's
    /// folder, as cargo runs build scripts there) compiled for both
    /// backends: each `RB_KERNEL_ENTRY(name, ..)` line in it gets a host
    /// entry `name__rb_host` and a constructor `name()` in the generated
    /// file. Entry names are C symbols: they must be unique in the final
    /// program.
    ///
    /// ```
    /// let k = ringbridge_build::Kernels::new().source("kernels/double.cu");
    /// # let _ = k;
    /// ```
    pub fn source(mut self, path: impl AsRef<Path>) -> Self {
        self.sources.push((path.as_ref().to_path_buf(), true));
        self
    }

    /// Adds a `.cu` source compiled by nvcc only (code that has no host
    /// form, such as `__trap()`): it gets a fatbin, no host entry and no
    /// constructor; load it by entry name through ringbridge's CUDA backend.
    ///
    /// ```
    /// let k = ringbridge_build::Kernels::new().cuda_only_source("kernels/faults.cu");
    /// # let _ = k;
    /// ```
    pub fn cuda_only_source(mut self, path: impl AsRef<Path>) -> Self {
        self.sources.push((path.as_ref().to_path_buf(), false));
        self
    }

    /// Defines a macro (`-DNAME` or `-DNAME=VALUE`) for both compilers, after
    /// those of `RINGBRIDGE_KERNEL_DEFINES`. Panics on a name that is not a
    /// C identifier or a value that is not a plain token (letters, digits,
    /// `_`), which would not read the same on both command lines.
    ///
    /// ```
    /// let k = ringbridge_build::Kernels::new().define("FACTOR", Some("2")).define("FAST", None);
    /// # let _ = k;
    /// ```
    pub fn define(mut self, name: &str, value: Option<&str>) -> Self {
        options::check_define(name, value).unwrap_or_else(|e| panic!("ringbridge-build: {e}"));
        self.defines
            .push((name.to_string(), value.map(str::to_string)));
        self
    }

    /// The folder of ringbridge's device headers (`ringbridge.cuh` and the
    /// rest), instead of [`header_dir`]'s `$DEP_RINGBRIDGE_INCLUDE`: for a
    /// build script that does not depend on ringbridge, ringbridge's own
    /// among them. A crate that depends on ringbridge needs no call.
    ///
    /// ```
    /// let k = ringbridge_build::Kernels::new().headers("kernels");
    /// # let _ = k;
    /// ```
    pub fn headers(mut self, dir: impl AsRef<Path>) -> Self {
        self.headers = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Adds an include folder for both compilers, searched before
    /// [`header_dir`] (in the order added).
    ///
    /// ```
    /// let k = ringbridge_build::Kernels::new().include("kernels/include");
    /// # let _ = k;
    /// ```
    pub fn include(mut self, dir: impl AsRef<Path>) -> Self {
        self.includes.push(dir.as_ref().to_path_buf());
        self
    }

    /// The GPU targets of the fatbin, replacing [`DEFAULT_ARCHS`]: `sm_XY`
    /// embeds SASS for that GPU, `compute_XY` PTX that the driver compiles
    /// for XY and newer. `RINGBRIDGE_CUDA_ARCHS`, when set, still wins: it
    /// is the builder's choice at build time. Panics on a malformed name.
    ///
    /// ```
    /// let k = ringbridge_build::Kernels::new().archs(&["sm_80", "compute_80"]);
    /// # let _ = k;
    /// ```
    pub fn archs(mut self, archs: &[&str]) -> Self {
        for a in archs {
            options::check_arch(a).unwrap_or_else(|e| panic!("ringbridge-build: {e}"));
        }
        self.archs = Some(archs.iter().map(|a| a.to_string()).collect());
        self
    }

    /// Also writes `$OUT_DIR/<stem>.ptx` for every source (for the highest
    /// architecture listed), e.g. for tests that read the generated code.
    ///
    /// ```
    /// let k = ringbridge_build::Kernels::new().ptx(true);
    /// # let _ = k;
    /// ```
    pub fn ptx(mut self, on: bool) -> Self {
        self.ptx = on;
        self
    }

    /// Builds everything; call it from a build script (it reads `OUT_DIR`,
    /// prints `cargo:` lines, and panics on what must stop the build).
    ///
    /// - the host build: every [`source`](Self::source) compiled with the
    ///   host C++ compiler (`-x c++ -std=c++17`) into the static library
    ///   `lib<name>.a`, linked into the crate. A compile error stops the
    ///   build.
    /// - the device build: every source compiled by nvcc into
    ///   `$OUT_DIR/<stem>.fatbin`. No nvcc, or nvcc failing, does not stop
    ///   the build: a `cargo:warning` says why, and the kernels run on the
    ///   host fallback only ([`Compiled::cuda`] holds the reason).
    /// - `$OUT_DIR/<name>.rs`: one `pub fn <entry>() -> ringbridge::UserKernel`
    ///   per entry of every host-built source.
    /// - with block emulation on: `$OUT_DIR/lib<stem>_emulation.so` per
    ///   source with entries, and `$OUT_DIR/<stem>.rbsim` per source with a
    ///   fatbin too (the test simulator's index, see the crate docs).
    ///
    /// ```no_run
    /// // build.rs
    /// let built = ringbridge_build::Kernels::new().source("kernels/double.cu").compile("my_kernels");
    /// if let Err(why) = &built.cuda {
    ///     println!("cargo:warning=host fallback only: {why}");
    /// }
    /// ```
    pub fn compile(self, name: &str) -> Compiled {
        let out_dir =
            PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR: run from a build script"));
        let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let header_dir = headers_or(self.headers.as_deref());
        let toolchain_root = header_dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for var in nvcc::ENV_VARS.iter().chain(&[
            "RINGBRIDGE_CUDA_ARCHS",
            "RINGBRIDGE_KERNEL_DEFINES",
            "DEP_RINGBRIDGE_INCLUDE",
        ]) {
            println!("cargo:rerun-if-env-changed={var}");
        }
        println!("cargo:rerun-if-changed={}", header_dir.display());
        // Only real inputs: a folder under OUT_DIR is this build script's
        // own output (a generated header), rewritten by every run; naming it
        // would rebuild the crate, and every crate that depends on it, on
        // every `cargo build`.
        let generated = std::env::var_os("OUT_DIR").map(PathBuf::from);
        for dir in &self.includes {
            if generated.as_ref().is_some_and(|out| dir.starts_with(out)) {
                continue;
            }
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        let mut defines = kernel_defines();
        defines.extend(self.defines.iter().cloned());
        let mut includes = self.includes.clone();
        includes.push(header_dir.clone());

        let mut images = Vec::new();
        for (source, host) in &self.sources {
            println!("cargo:rerun-if-changed={}", source.display());
            let text = std::fs::read_to_string(source)
                .unwrap_or_else(|e| panic!("ringbridge-build: reading {}: {e}", source.display()));
            images.push(CompiledImage {
                source: source.clone(),
                stem: source
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                entries: generate::entries_of(&text),
                host: *host,
                fatbin: None,
                ptx: None,
                emulation: None,
            });
        }

        compile_host(name, &images, &includes, &defines);
        if self.emulation {
            // A CUDA-only source with entries gets one too: the test
            // simulator runs its fatbin's launches on it. Without entries
            // (raw __global__ kernels) there is nothing it could run.
            for img in images
                .iter_mut()
                .filter(|i| i.host || !i.entries.is_empty())
            {
                let lib = format!("{}_emulation", img.stem);
                match emulation_library(
                    &lib,
                    std::slice::from_ref(&img.source),
                    &self.includes,
                    &defines,
                    Some(&header_dir),
                ) {
                    Ok(path) => img.emulation = Some(path),
                    Err(why) => println!(
                        "cargo:warning={name}: no block emulation for {}: {why}",
                        img.source.display()
                    ),
                }
                if self.race_check && img.host {
                    // Beside the emulation library, named after it: the
                    // bridge finds it from that path.
                    let lib = format!("{}_racecheck", img.stem);
                    if let Err(why) = build_emulation(
                        &lib,
                        std::slice::from_ref(&img.source),
                        &self.includes,
                        &defines,
                        Some(&header_dir),
                        true,
                    ) {
                        println!(
                            "cargo:warning={name}: no race-check library for {}: {why}",
                            img.source.display()
                        );
                    }
                }
            }
        }
        let fallback_archs: Vec<String> = match &self.archs {
            Some(a) => a.clone(),
            None => DEFAULT_ARCHS.iter().map(|s| s.to_string()).collect(),
        };
        let cuda = compile_device(
            &out_dir,
            &toolchain_root,
            &crate_dir,
            &mut images,
            &includes,
            &defines,
            &fallback_archs,
            self.ptx,
        );
        if let Err(why) = &cuda {
            println!(
                "cargo:warning={name}: kernels not compiled: {why}; they run on the host fallback only"
            );
        }
        for img in &images {
            write_sim_index(&out_dir, img);
        }
        let reason = cuda.as_ref().err().map(String::as_str).unwrap_or("");
        let rust_file = out_dir.join(format!("{name}.rs"));
        write_if_changed(&rust_file, generate::rust_file(&images, reason).as_bytes());
        Compiled {
            cuda,
            images,
            rust_file,
        }
    }
}

/// Builds `$OUT_DIR/lib<lib>.so`: `sources` compiled with `RB_EMULATE_BLOCK`
/// for the block emulation, with its runtime (`host/block_emulation.cpp`
/// beside the header), hidden visibility but for the entries the sources
/// export (`name__rb_emulate` and the test simulator's `name__rb_sim_*` of
/// each `RB_KERNEL_ENTRY`, and `rb_emu_set_trap_hook`). Loaded at run
/// time by the bridge, never linked: its serve loops cannot mix with the
/// fallback's. `includes` and `defines` as for the kernels; the header
/// folder (`headers`, or [`header_dir`] when `None`, as with
/// [`Kernels::headers`]) is added. Call it from a build script.
///
/// ```no_run
/// let so = ringbridge_build::emulation_library(
///     "my_emulation",
///     &["kernels/host/emulate_callback.cpp".into()],
///     &[],
///     &[],
///     Some(std::path::Path::new("kernels")),
/// )
/// .expect("emulation library");
/// assert!(so.is_file());
/// ```
pub fn emulation_library(
    lib: &str,
    sources: &[PathBuf],
    includes: &[PathBuf],
    defines: &[(String, Option<String>)],
    headers: Option<&Path>,
) -> Result<PathBuf, String> {
    build_emulation(lib, sources, includes, defines, headers, false)
}

/// [`emulation_library`], or with `race_check` its ThreadSanitizer build:
/// `-fsanitize=thread`, debug lines for the reports, and schedule shaking
/// (`RB_EMU_SHAKE`, with `host/race_check.cpp`).
fn build_emulation(
    lib: &str,
    sources: &[PathBuf],
    includes: &[PathBuf],
    defines: &[(String, Option<String>)],
    headers: Option<&Path>,
    race_check: bool,
) -> Result<PathBuf, String> {
    let out_dir =
        PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR: run from a build script")?);
    let header_dir = headers_or(headers);
    let out = out_dir.join(format!("lib{lib}.so"));
    let compiler = cc::Build::new()
        .cpp(true)
        .try_get_compiler()
        .map_err(|e| format!("no host C++ compiler: {e}"))?;
    let mut cmd = compiler.to_command();
    cmd.args(["-std=c++17", "-shared", "-fPIC", "-pthread"])
        .arg("-fvisibility=hidden")
        .arg("-DRB_EMULATE_BLOCK=1");
    if race_check {
        cmd.args(["-O1", "-g", "-fsanitize=thread", "-DRB_EMU_SHAKE=1"]);
    } else {
        cmd.arg("-O2");
    }
    for (n, v) in defines {
        match v {
            Some(v) => cmd.arg(format!("-D{n}={v}")),
            None => cmd.arg(format!("-D{n}")),
        };
    }
    for dir in includes.iter().chain(std::iter::once(&header_dir)) {
        cmd.arg(format!("-I{}", dir.display()));
    }
    cmd.arg("-x").arg("c++");
    for src in sources {
        println!("cargo:rerun-if-changed={}", src.display());
        cmd.arg(src);
    }
    cmd.arg(header_dir.join("host/block_emulation.cpp"));
    if race_check {
        // The shaking runtime is not instrumented itself: it stands in for
        // ThreadSanitizer's atomic entry points, so its own atomics (a
        // static's guard) must not call them again.
        let runtime = out_dir.join(format!("lib{lib}_runtime.o"));
        let mut rt = compiler.to_command();
        rt.args(["-std=c++17", "-O2", "-fPIC", "-pthread", "-c"])
            .arg("-fvisibility=hidden")
            .arg("-DRB_EMULATE_BLOCK=1")
            .arg("-DRB_EMU_SHAKE=1")
            .arg(format!("-I{}", header_dir.display()))
            .arg(header_dir.join("host/race_check.cpp"))
            .arg("-o")
            .arg(&runtime);
        let output = rt
            .output()
            .map_err(|e| format!("cannot run the host C++ compiler: {e}"))?;
        if !output.status.success() {
            return Err(failure(
                "the host C++ compiler failed on race_check.cpp",
                &output,
            ));
        }
        cmd.arg("-x").arg("none").arg(&runtime);
    }
    cmd.arg("-o").arg(&out);
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run the host C++ compiler: {e}"))?;
    if !output.status.success() {
        return Err(failure("the host C++ compiler failed", &output));
    }
    Ok(out)
}

/// The host fallback's build of every host source, into `lib<name>.a`.
fn compile_host(
    name: &str,
    images: &[CompiledImage],
    includes: &[PathBuf],
    defines: &[(String, Option<String>)],
) {
    let host: Vec<&CompiledImage> = images.iter().filter(|i| i.host).collect();
    if host.is_empty() {
        return;
    }
    let mut b = cc::Build::new();
    b.cpp(true)
        .std("c++17")
        .opt_level(2)
        .flag("-Wall")
        .flag("-Wextra");
    // A .cu file is no C++ file to the host compiler: say what it is.
    b.flag("-x").flag("c++");
    for dir in includes {
        b.include(dir);
    }
    for (n, v) in defines {
        b.define(n, v.as_deref());
    }
    for img in host {
        b.file(&img.source);
    }
    b.compile(name);
}

/// nvcc's build of every source: a fatbin each (and a PTX file each when
/// `ptx`), all or nothing.
#[allow(clippy::too_many_arguments)]
fn compile_device(
    out_dir: &Path,
    toolchain_root: &Path,
    crate_dir: &Path,
    images: &mut [CompiledImage],
    includes: &[PathBuf],
    defines: &[(String, Option<String>)],
    fallback_archs: &[String],
    ptx: bool,
) -> Result<(String, Vec<String>), String> {
    let nvcc = nvcc::find_nvcc(toolchain_root, crate_dir)?;
    println!("cargo:rerun-if-changed={}", nvcc.display());
    let version = nvcc::nvcc_version(&nvcc)?;
    let archs = options::archs(fallback_archs)?;
    if images.is_empty() {
        return Ok((version, archs));
    }
    let ccbin = std::env::var("NVCC_CCBIN").ok();
    let ptx_arch = options::ptx_arch(&archs);
    let base = |src: &Path| -> Command {
        let mut c = Command::new(&nvcc);
        if let Some(cc) = &ccbin {
            c.arg("-ccbin").arg(cc);
        }
        for (name, value) in defines {
            match value {
                Some(v) => c.arg(format!("-D{name}={v}")),
                None => c.arg(format!("-D{name}")),
            };
        }
        c.arg("-std=c++17").arg("-O3");
        for dir in includes {
            c.arg(format!("-I{}", dir.display()));
        }
        c.arg(src);
        c
    };
    // Every (source, output kind) pair is one nvcc run; run them side by side.
    let mut jobs: Vec<(String, Command)> = Vec::new();
    for img in images.iter() {
        let mut fatbin = base(&img.source);
        fatbin.arg("-fatbin");
        for a in &archs {
            fatbin.arg("-gencode").arg(options::gencode(a));
        }
        fatbin
            .arg("-o")
            .arg(out_dir.join(format!("{}.fatbin", img.stem)));
        jobs.push((format!("{} (fatbin)", img.source.display()), fatbin));
        if ptx {
            let mut p = base(&img.source);
            p.arg("-ptx")
                .arg(format!("-arch={ptx_arch}"))
                .arg("-o")
                .arg(out_dir.join(format!("{}.ptx", img.stem)));
            jobs.push((format!("{} (ptx)", img.source.display()), p));
        }
    }
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter_mut()
            .map(|(what, cmd)| s.spawn(move || run_nvcc(what, cmd)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    for img in images.iter_mut() {
        let fatbin = out_dir.join(format!("{}.fatbin", img.stem));
        match std::fs::metadata(&fatbin) {
            Ok(m) if m.len() > 0 => {}
            _ => return Err(format!("nvcc wrote no (or an empty) {}.fatbin", img.stem)),
        }
        img.fatbin = Some(fatbin);
        if ptx {
            img.ptx = Some(out_dir.join(format!("{}.ptx", img.stem)));
        }
    }
    Ok((version, archs))
}

/// `"<what> (<exit status>): <the first 12 lines of stderr, joined>"`: a
/// failed compiler run, short enough for a cargo warning.
fn failure(what: &str, out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first: Vec<&str> = stderr.lines().take(12).collect();
    format!("{what} ({}): {}", out.status, first.join(" | "))
}

fn run_nvcc(what: &str, cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run nvcc for {what}: {e}"))?;
    if !out.status.success() {
        return Err(failure(&format!("nvcc failed on {what}"), &out));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    for l in stderr.lines().filter(|l| !l.trim().is_empty()) {
        println!("cargo:warning=nvcc: {l}");
    }
    Ok(())
}

/// The digest the test simulator (`sim-driver`) knows an image by in a
/// `.rbsim` index: FNV-1a, 64 bits, over `bytes` without its trailing zero
/// bytes. Why trimmed: the simulator sees an image only as the pointer
/// handed to `cuModuleLoadData`, a PTX text with its terminating NUL or a
/// fatbin that may be padded, so it hashes up to the last non-zero byte and
/// both sides agree whatever the padding. FNV-1a because it is tiny and
/// written the same on both sides; no adversary is assumed.
///
/// ```
/// assert_eq!(ringbridge_build::image_digest(b"a\0\0"), 0xaf63dc4c8601ec8c);
/// ```
pub fn image_digest(bytes: &[u8]) -> u64 {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    bytes[..end].iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes `$OUT_DIR/<stem>.rbsim` (the format is in the crate docs) when
/// the image has both a fatbin and an emulation library, and removes a
/// stale one otherwise, so the simulator never maps an image to a library
/// of another build.
fn write_sim_index(out_dir: &Path, img: &CompiledImage) {
    let index = out_dir.join(format!("{}.rbsim", img.stem));
    let (Some(fatbin), Some(lib)) = (&img.fatbin, &img.emulation) else {
        match std::fs::remove_file(&index) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", index.display()),
        }
        return;
    };
    // Absolute, as the simulator runs from anywhere (OUT_DIR already is).
    let lib = lib.canonicalize().unwrap_or_else(|_| lib.clone());
    let mut text = String::from("ringbridge-sim-index 1\n");
    for image in std::iter::once(fatbin).chain(&img.ptx) {
        let bytes =
            std::fs::read(image).unwrap_or_else(|e| panic!("reading {}: {e}", image.display()));
        text.push_str(&format!(
            "image {:016x} {}\n",
            image_digest(&bytes),
            lib.display()
        ));
    }
    write_if_changed(&index, text.as_bytes());
}

fn write_if_changed(path: &Path, bytes: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// `RINGBRIDGE_KERNEL_DEFINES` (comma list of `NAME` or `NAME=VALUE`, e.g.
/// `RB_LANE_LAZY_TAIL=0`) as (name, value) pairs: the macros
/// [`Kernels::compile`] defines for both compilers, for a build script that
/// compiles more C++ against `ringbridge.cuh` and must agree with the
/// kernels. Panics on a malformed entry: a switch silently ignored would
/// mislabel a measurement.
///
/// ```no_run
/// for (name, value) in ringbridge_build::kernel_defines() {
///     println!("{name} = {value:?}");
/// }
/// ```
pub fn kernel_defines() -> Vec<(String, Option<String>)> {
    options::env_defines().unwrap_or_else(|e| panic!("ringbridge-build: {e}"))
}

#[cfg(test)]
mod tests {
    use super::image_digest;

    #[test]
    fn image_digest_is_fnv1a_64_without_trailing_zeros() {
        // FNV-1a's published values: the empty input is the offset basis.
        assert_eq!(image_digest(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(image_digest(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(image_digest(b"foobar"), 0x8594_4171_f739_67e8);
        // Trailing zeros, and only those, are trimmed.
        assert_eq!(image_digest(b"a\0\0\0"), image_digest(b"a"));
        assert_eq!(image_digest(b"\0\0"), image_digest(b""));
        assert_ne!(image_digest(b"\0a"), image_digest(b"a"));
        assert_ne!(image_digest(b"a\0b"), image_digest(b"ab"));
    }
}
