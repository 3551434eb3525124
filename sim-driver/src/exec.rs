//! Streams run their work in order on a worker thread of their own; a
//! kernel's blocks become resident when an SM has room (and no fault holds
//! them back), each block then running on a thread of its own in a private
//! instance of the kernel's host twin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::abi::*;
use crate::world::{CHANGED, Guard, Op, wait, world};

/// How often waiting threads look again (faults are recorded without a
/// notification: a signal handler cannot take a lock).
const POLL: Duration = Duration::from_millis(5);

/// Queues `op` on stream `id`, starting its worker if it has none.
pub fn enqueue(g: &mut Guard, id: u64, op: Op) {
    let stream = g.streams.get_mut(&id).expect("a checked stream");
    stream.ops.push_back(op);
    if !stream.worker {
        stream.worker = true;
        std::thread::Builder::new()
            .name(format!("sim-stream-{id}"))
            .spawn(move || worker(id))
            .expect("spawning a simulated stream's worker");
    }
}

/// Runs stream `id`'s work until it has none.
fn worker(id: u64) {
    let mut g = world();
    loop {
        let Some(stream) = g.streams.get_mut(&id) else {
            return;
        };
        let Some(op) = stream.ops.front() else {
            stream.worker = false;
            if stream.destroyed {
                g.streams.remove(&id);
            }
            CHANGED.notify_all();
            return;
        };
        match op {
            Op::Copy(c) => {
                // SAFETY: both ranges were checked when the copy was queued
                // (device memory or page-locked memory of ours, which the
                // library may not free while work on it is queued).
                unsafe { std::ptr::copy(c.src as *const u8, c.dst as *mut u8, c.len) };
            }
            &Op::Kernel(launch) => g = run_kernel(g, launch),
        }
        let ctx = g.streams.get(&id).map(|s| s.ctx);
        let dead = ctx.is_some_and(|c| g.contexts.get(&c).is_none_or(|c| c.sticky != 0));
        if let Some(s) = g.streams.get_mut(&id) {
            s.ops.pop_front();
            if dead {
                // A faulted context runs nothing more.
                s.ops.clear();
            }
        }
        CHANGED.notify_all();
    }
}

/// Makes `launch`'s blocks resident one by one and waits until all have
/// returned or the launch faulted.
fn run_kernel(mut g: Guard, launch: u64) -> Guard {
    let Some(l) = g.launches.get(&launch) else {
        return g;
    };
    let (grid, device, threads, ctx) = (l.grid, l.device, l.threads, l.ctx);
    for block in 0..grid {
        let sm = loop {
            let dead = g.contexts.get(&ctx).is_none_or(|c| c.sticky != 0)
                || g.launches.get(&launch).is_none_or(|l| !l.active());
            if dead {
                return finish(g, launch);
            }
            let started = g.launches[&launch].launched;
            let ready = !g.faults.stall && started.elapsed() >= g.faults.start_delay;
            if ready && let Some(sm) = g.place(device, threads) {
                break sm;
            }
            g = wait(g, POLL);
        };
        let l = g.launches.get_mut(&launch).expect("checked above");
        l.resident.insert(block, sm);
        let (twin, params, entry) = (
            Arc::clone(&l.twin),
            Arc::clone(&l.params),
            l.entry.name.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("sim-block-{launch}-{block}"))
            .spawn(move || run_block(launch, block, twin, params, entry, threads));
        if let Err(e) = spawned {
            eprintln!("ringbridge-sim: cannot start block {block} of launch {launch}: {e}");
            g.fault_launch(launch, LAUNCH_OUT_OF_RESOURCES);
            return finish(g, launch);
        }
    }
    loop {
        let done = g
            .launches
            .get(&launch)
            .is_none_or(|l| l.blocks_left == 0 || l.fault != 0);
        if done {
            return finish(g, launch);
        }
        g = wait(g, POLL);
    }
}

fn finish(mut g: Guard, launch: u64) -> Guard {
    if let Some(l) = g.launches.get_mut(&launch) {
        l.done = true;
        if l.blocks_left == 0 {
            g.launches.remove(&launch);
        }
    }
    CHANGED.notify_all();
    g
}

/// One block: an instance of the twin, the entry run in it until it returns.
fn run_block(
    launch: u64,
    block: u32,
    twin: Arc<crate::twin::Twin>,
    params: Arc<Vec<u8>>,
    entry: String,
    threads: u32,
) {
    let instance = match twin.acquire() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("ringbridge-sim: {e}");
            let mut g = world();
            g.fault_launch(launch, LAUNCH_OUT_OF_RESOURCES);
            block_returned(&mut g, launch, block);
            return;
        }
    };
    world().running_in.insert(instance.slot, launch);
    let status = instance.run(&entry, &params, block, threads);
    let mut g = world();
    g.running_in.remove(&instance.slot);
    if status == -1 {
        // The twin refused its parameters: a null or misaligned ring pointer,
        // or a parameter space of the wrong size. On a GPU the kernel would
        // dereference what it got.
        eprintln!(
            "ringbridge-sim: block {block} of `{entry}` (launch {launch}) refused its \
             parameters (a null or misaligned region, or a parameter space that does not \
             match the entry's signature): reported as an illegal address"
        );
        g.fault_launch(launch, ILLEGAL_ADDRESS);
    }
    block_returned(&mut g, launch, block);
    drop(g);
    twin.release(instance);
}

fn block_returned(g: &mut Guard, launch: u64, block: u32) {
    let Some(l) = g.launches.get_mut(&launch) else {
        return;
    };
    l.blocks_left = l.blocks_left.saturating_sub(1);
    let (device, threads) = (l.device, l.threads);
    let sm = l.resident.remove(&block);
    if l.done && l.blocks_left == 0 {
        g.launches.remove(&launch);
    }
    if let Some(sm) = sm {
        g.unplace(device, sm, threads);
    }
    CHANGED.notify_all();
}

/// Waits until stream `id` has no work, for at most `horizon`; `Err` with
/// the running kernel's description when it still has some.
pub fn drain(mut g: Guard, id: u64, horizon: Duration) -> (Guard, Result<(), String>) {
    let start = Instant::now();
    loop {
        let Some(s) = g.streams.get(&id) else {
            return (g, Ok(()));
        };
        if s.ops.is_empty() || g.contexts.get(&s.ctx).is_none_or(|c| c.sticky != 0) {
            return (g, Ok(()));
        }
        if start.elapsed() >= horizon {
            let kernel = s.ops.iter().find_map(|op| match op {
                Op::Kernel(l) => g.launches.get(l).map(|x| x.describe(*l)),
                Op::Copy(_) => None,
            });
            return (g, Err(kernel.unwrap_or_else(|| "a copy".into())));
        }
        g = wait(g, POLL);
    }
}
