//! Test-only kernels of ringbridge, kept out of the library so that no
//! user's build compiles or embeds them: `kernels/faults.cu`, whose entries
//! echo like `ringbridge_echo` until a request's `flags` equal
//! `ringbridge::layout::FAULT_FLAG`, then trap ([`TRAP_ENTRY`]), store
//! through an invalid address ([`ILLEGAL_ADDRESS_ENTRY`]) or spin forever
//! without heartbeat ([`HANG_ENTRY`]). Compiled by nvcc only (CUDA only:
//! load the fatbin by entry name through ringbridge's `Kernel::Custom`).
//!
//! ```
//! match ringbridge_test_kernels::faults() {
//!     Some(img) => assert!(img.entries.contains(&ringbridge_test_kernels::TRAP_ENTRY)),
//!     None => assert!(!ringbridge_test_kernels::NOT_COMPILED_REASON.is_empty()),
//! }
//! ```

/// One compiled `.cu` file: its fatbin, its PTX and its entries.
#[derive(Debug)]
pub struct Image {
    /// The source's stem: `"faults"`.
    pub name: &'static str,
    /// The fatbin nvcc produced, to load with the driver.
    pub fatbin: &'static [u8],
    /// The same source as PTX for the highest architecture compiled.
    pub ptx: &'static str,
    /// Its `RB_KERNEL_ENTRY` entry points.
    pub entries: &'static [&'static str],
}

mod generated {
    use super::Image;
    include!(concat!(env!("OUT_DIR"), "/faults_image.rs"));

    pub(super) fn faults() -> Option<&'static Image> {
        FAULTS.as_ref()
    }
    pub(super) const REASON: &str = NOT_COMPILED;
    pub(super) const ALL_ENTRIES: &[&str] = ENTRIES;
}

/// Why nvcc did not compile the kernels (`""` when it did).
pub const NOT_COMPILED_REASON: &str = generated::REASON;

/// The entries `kernels/faults.cu` defines (also when not compiled).
pub const ENTRIES: &[&str] = generated::ALL_ENTRIES;

/// Traps on a request flagged `FAULT_FLAG`.
pub const TRAP_ENTRY: &str = "ringbridge_test_trap";
/// Hangs (no heartbeat) on a request flagged `FAULT_FLAG`.
pub const HANG_ENTRY: &str = "ringbridge_test_hang";
/// Stores through an invalid address on a request flagged `FAULT_FLAG`.
pub const ILLEGAL_ADDRESS_ENTRY: &str = "ringbridge_test_illegal_address";

/// The compiled `faults` image, `None` when nvcc did not compile it
/// ([`NOT_COMPILED_REASON`] says why).
pub fn faults() -> Option<&'static Image> {
    generated::faults()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entries_are_the_named_ones() {
        let mut got = ENTRIES.to_vec();
        got.sort_unstable();
        let mut want = vec![TRAP_ENTRY, HANG_ENTRY, ILLEGAL_ADDRESS_ENTRY];
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(faults().is_some(), NOT_COMPILED_REASON.is_empty());
    }
}
