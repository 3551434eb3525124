//! Which driver library cudarc loaded: the file, and whether it is the
//! project's simulated driver (`sim-driver/`, for tests) rather than
//! NVIDIA's.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::driver_available;

/// The CUDA driver library this process loaded.
///
/// ```
/// match ringbridge::cuda::driver_library() {
///     Some(lib) if lib.simulated => println!("simulated driver: {}", lib.path.display()),
///     Some(lib) => println!("CUDA driver: {}", lib.path.display()),
///     None => println!("no CUDA driver library"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverLibrary {
    /// The loaded file, as the process maps it (symbolic links resolved).
    pub path: PathBuf,
    /// `true` for ringbridge's simulated driver (it exports
    /// `ringbridge_sim_driver_version`), which only a test run loads.
    pub simulated: bool,
}

/// The driver library cudarc loads, or `None` when there is none. Never
/// panics. Found once per process (the process loads one driver library
/// for good), then cached.
pub fn driver_library() -> Option<DriverLibrary> {
    static FOUND: OnceLock<Option<DriverLibrary>> = OnceLock::new();
    FOUND.get_or_init(find).clone()
}

fn find() -> Option<DriverLibrary> {
    if !driver_available() {
        return None;
    }
    // SAFETY: a driver library can be loaded (checked above), so `culib`
    // returns it instead of panicking. Looking symbols up calls nothing.
    let lib = unsafe { cudarc::driver::sys::culib() };
    // SAFETY: only the symbols' addresses are taken; neither is called.
    let (init, simulated) = unsafe {
        (
            lib.get::<unsafe extern "C" fn()>(b"cuInit")
                .ok()
                .map(|f| *f as usize),
            lib.get::<unsafe extern "C" fn()>(b"ringbridge_sim_driver_version")
                .is_ok(),
        )
    };
    Some(DriverLibrary {
        path: init.and_then(mapped_file).unwrap_or_default(),
        simulated,
    })
}

/// The file mapped at `addr`, from `/proc/self/maps` (Linux).
fn mapped_file(addr: usize) -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (lo, hi) = fields.next()?.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        let path = fields.nth(4)?;
        (lo <= addr && addr < hi && path.starts_with('/')).then(|| PathBuf::from(path))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn mapped_file_finds_this_test_binary() {
        let here = super::mapped_file(mapped_file_finds_this_test_binary as *const () as usize);
        let exe = std::env::current_exe().expect("exe");
        assert_eq!(
            here.map(|p| p.file_name().map(ToOwned::to_owned)),
            Some(exe.file_name().map(ToOwned::to_owned))
        );
        assert_eq!(super::mapped_file(0), None);
    }
}
