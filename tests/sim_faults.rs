//! Faults only the simulated driver can make on demand (sim-driver/): each
//! ends in the typed error the README promises, leaves nothing behind, and
//! leaves the next bridge free to launch. Run by scripts/test.sh through
//! scripts/sim-driver.sh; elsewhere every test says it was skipped (on a
//! real GPU too: these faults cannot be made there).

mod common;

use std::time::{Duration, Instant};

use common::sim::Sim;
use ringbridge::cuda::Reservation;
use ringbridge::{Backend, Bridge, BridgeBuilder, Error, StripedBridge};

/// A small, quick bridge on the CUDA backend (32 threads: the faults are
/// about the driver, not the block).
fn cuda() -> BridgeBuilder {
    common::patient_on_sim(Bridge::builder().backend(Backend::Cuda).capacity(16)).block_size(32)
}

/// This process's GPU turn and the simulator, or `None` (skipped, saying
/// why). Bind them in this order, `let Some((_turn, sim))`: bindings drop
/// in reverse, so the simulator's faults are reset before the next test
/// takes the turn (the other way round, a finished test's reset could wipe
/// the faults the next one had just set).
fn sim(test: &str) -> Option<(common::GpuTurn, Sim)> {
    let Some(sim) = Sim::get() else {
        eprintln!("{test}: skipped: needs the simulated driver (scripts/sim-driver.sh)");
        return None;
    };
    let turn = common::gpu_or_skip(test)?;
    Some((turn, sim))
}

/// Launches, round-trips and shuts down a bridge: the device is usable.
fn works(builder: BridgeBuilder) {
    let bridge = builder.launch().expect("the next bridge launches");
    assert_eq!(bridge.round_trip(b"ok").unwrap().payload, b"pl");
    bridge.shutdown().unwrap();
}

/// What the simulator holds for the library: allocations, modules, streams.
fn held(sim: &Sim) -> [u64; 4] {
    ["host_allocs", "device_allocs", "modules", "streams"].map(|c| sim.get_counter(c))
}

/// Waits (up to 60 s) until no launch of ours is active in the simulator.
fn settle(sim: &Sim) {
    let start = Instant::now();
    while sim.get_counter("active_launches") != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "a launch never ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sim_out_of_memory_is_an_alloc_error_and_leaks_nothing() {
    let Some((_turn, sim)) = sim("sim_out_of_memory_is_an_alloc_error_and_leaks_nothing") else {
        return;
    };
    let before = held(&sim);
    sim.set("fail_alloc", 1);
    let err = cuda().launch().unwrap_err();
    assert!(matches!(&err, Error::Alloc { .. }), "{err}");
    assert!(
        err.to_string().contains("CUDA_ERROR_OUT_OF_MEMORY"),
        "{err}"
    );
    assert_eq!(held(&sim), before);
    // A bridge-owned device buffer, the launch's first allocation.
    sim.set("fail_alloc", 1);
    let err = cuda()
        .buffer(ringbridge::buffer::BufferInit::zeroed(4096))
        .launch()
        .unwrap_err();
    assert!(matches!(&err, Error::Alloc { .. }), "{err}");
    assert_eq!(held(&sim), before);
    works(cuda());
}

#[test]
fn sim_failed_launch_is_a_cuda_error_and_leaks_nothing() {
    let Some((_turn, sim)) = sim("sim_failed_launch_is_a_cuda_error_and_leaks_nothing") else {
        return;
    };
    let before = held(&sim);
    sim.set("fail_launch", 1);
    let err = cuda().launch().unwrap_err();
    assert!(
        matches!(&err, Error::Cuda { call: "cuLaunchKernel", message } if message.contains("OUT_OF_RESOURCES")),
        "{err}"
    );
    assert_eq!(held(&sim), before);
    works(cuda());
}

/// A striped group whose one launch fails: no block of it runs, nothing
/// is left counted or allocated, and the next bridge launches (the group's
/// views and engines are made before the launch, so nothing can fail after
/// it without the group stopping).
#[test]
fn sim_failed_striped_launch_leaves_nothing_running() {
    let Some((_turn, sim)) = sim("sim_failed_striped_launch_leaves_nothing_running") else {
        return;
    };
    let before = held(&sim);
    sim.set("fail_launch", 1);
    let err = StripedBridge::launch(cuda(), 3).unwrap_err();
    assert!(matches!(&err, Error::Cuda { .. }), "{err}");
    assert_eq!(sim.get_counter("active_launches"), 0);
    assert_eq!(held(&sim), before);
    let group = StripedBridge::launch(cuda(), 3).expect("the next group launches");
    drop(group);
    works(cuda());
}

#[test]
fn sim_module_that_does_not_load_is_an_invalid_image() {
    let Some((_turn, sim)) = sim("sim_module_that_does_not_load_is_an_invalid_image") else {
        return;
    };
    let before = held(&sim);
    sim.set("fail_module", 1);
    let err = cuda().launch().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidImage(m) if m.contains("NO_BINARY_FOR_GPU")),
        "{err}"
    );
    assert_eq!(held(&sim), before);
    works(cuda());
}

/// Blocks that become resident late (a slow start) still launch.
#[test]
fn sim_slow_start_still_launches() {
    let Some((_turn, sim)) = sim("sim_slow_start_still_launches") else {
        return;
    };
    sim.set("start_delay_ms", 300);
    let start = Instant::now();
    works(cuda());
    assert!(start.elapsed() >= Duration::from_millis(300));
}

/// The defect: a launch that cannot become resident beside this process's
/// running kernels used to be accepted, time out, leave its kernel counted
/// for good and its context leaking every free, so every later bridge was
/// refused. Now it is refused up front with `DeviceFull`, and once the
/// running bridge stops the device takes the next one.
#[test]
fn sim_a_launch_that_cannot_be_resident_is_refused_and_the_next_works() {
    let Some((_turn, sim)) =
        sim("sim_a_launch_that_cannot_be_resident_is_refused_and_the_next_works")
    else {
        return;
    };
    sim.set("sms", 1);
    sim.set("blocks_per_sm", 1);
    let builder = cuda().launch_timeout(Duration::from_secs(5));
    let reservation = Reservation::builder(0)
        .bridge(&builder)
        .bridge(&builder)
        .reserve()
        .unwrap();
    let first = builder.clone().reservation(&reservation).launch().unwrap();
    let start = Instant::now();
    let err = builder
        .clone()
        .reservation(&reservation)
        .launch()
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::DeviceFull {
                device: 0,
                grid: 1,
                block: 32,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "refused, not timed out"
    );
    assert_eq!(first.round_trip(b"ab").unwrap().payload, b"bc");
    first.shutdown().unwrap();
    drop(first);
    let second = builder.reservation(&reservation).launch().unwrap();
    assert_eq!(second.round_trip(b"ok").unwrap().payload, b"pl");
    second.shutdown().unwrap();
    drop(second);
    drop(reservation);
    settle(&sim);
    // The devices' shape comes back with the other faults when `sim` drops.
}

/// A kernel held back by something outside this process (every SM busy):
/// the launch times out; once the SMs free up the kernel starts, sees
/// `terminate` and ends, and the next bridge launches instead of being
/// refused for good.
#[test]
fn sim_a_kernel_that_never_starts_times_out_and_is_released_later() {
    let Some((_turn, sim)) = sim("sim_a_kernel_that_never_starts_times_out_and_is_released_later")
    else {
        return;
    };
    sim.set("stall", 1);
    let err = cuda()
        .launch_timeout(Duration::from_millis(500))
        .shutdown_timeout(Duration::from_millis(200))
        .launch()
        .unwrap_err();
    assert!(matches!(&err, Error::Timeout { op: "launch", .. }), "{err}");
    assert_eq!(sim.get_counter("active_launches"), 1, "still queued");
    sim.set("stall", 0);
    settle(&sim);
    // The abandoned kernel is seen finished at the next check.
    works(cuda());
}
