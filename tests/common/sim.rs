//! The simulated driver's test controls (sim-driver/src/control.rs), found
//! in the loaded driver library by name: faults to inject, counters to
//! check that nothing leaked.

use std::ffi::{CString, c_char};

type SetFn = unsafe extern "C" fn(*const c_char, u64) -> i32;
type GetFn = unsafe extern "C" fn(*const c_char) -> u64;
type ResetFn = unsafe extern "C" fn();

/// The simulated driver, when it is the one loaded.
pub struct Sim {
    lib: libloading::Library,
}

impl Sim {
    /// The loaded simulated driver, or `None` (a real driver, or none).
    pub fn get() -> Option<Self> {
        if !super::on_simulated_driver() {
            return None;
        }
        // SAFETY: cudarc already loaded this library under this name; this
        // only takes another reference to it.
        let lib = unsafe { libloading::Library::new("libcuda.so") }.ok()?;
        Some(Self { lib })
    }

    /// Sets a fault or the devices' shape (`rbsim_set`); panics when the
    /// simulator refuses it.
    pub fn set(&self, key: &str, value: u64) {
        let key = CString::new(key).expect("no NUL");
        // SAFETY: `rbsim_set` has this signature; `key` is NUL-terminated.
        let rc =
            unsafe { self.lib.get::<SetFn>(b"rbsim_set").expect("rbsim_set")(key.as_ptr(), value) };
        assert_eq!(rc, 0, "the simulator refused {key:?} = {value}");
    }

    /// A counter (`rbsim_get`).
    pub fn get_counter(&self, name: &str) -> u64 {
        let name = CString::new(name).expect("no NUL");
        // SAFETY: `rbsim_get` has this signature; `name` is NUL-terminated.
        unsafe { self.lib.get::<GetFn>(b"rbsim_get").expect("rbsim_get")(name.as_ptr()) }
    }

    /// Clears every fault (also done when this is dropped).
    pub fn reset(&self) {
        // SAFETY: `rbsim_reset` has this signature.
        unsafe {
            self.lib
                .get::<ResetFn>(b"rbsim_reset")
                .expect("rbsim_reset")()
        };
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.reset();
    }
}
