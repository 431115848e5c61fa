//! A process nobody scrapes must not keep its histogram samples (issue 23: a worker without
//! `worker.metrics_listen` grew by every sample it ever took). Its own test binary: the
//! allocator below counts every live byte of the process, so nothing else may run in it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as it is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SAMPLES: u64 = 300_000;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn record_one_of_each() {
    smsq::metrics::provider_call("ronglian", Duration::from_millis(3));
    smsq::metrics::queue_wait(Duration::from_millis(1));
    smsq::metrics::enqueue_to_accepted(Duration::from_millis(40));
}

#[test]
fn samples_nobody_scrapes_are_folded_into_buckets_and_freed() {
    smsq::metrics::install().expect("the recorder installs in a fresh process");
    // The histograms exist, and their first samples were folded, before the baseline.
    record_one_of_each();
    let settle = Instant::now();
    std::thread::sleep(smsq::metrics::UPKEEP_EVERY * 2);
    let baseline = live();

    for _ in 1..SAMPLES {
        record_one_of_each();
    }
    let after_recording = live() - baseline;

    // Nobody renders: only the upkeep may free the queued samples (3 × 8 bytes each, ~7 MB).
    // The process keeps working meanwhile, as a worker does: the recorder frees drained
    // blocks through epoch-based reclamation, which makes progress as threads record.
    let deadline = Instant::now() + Duration::from_secs(20);
    let bound = 256 * 1024;
    let mut trickle = 0;
    loop {
        for _ in 0..20 {
            record_one_of_each();
        }
        trickle += 20;
        let held = live() - baseline;
        if held < bound {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{held} bytes still held {:?} after recording {SAMPLES} samples of 3 histograms \
             (+{after_recording} right after): samples are kept until someone scrapes",
            settle.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Folded, not dropped: a scrape still counts every sample.
    let text = smsq::metrics::render(None);
    for name in [
        "smsq_provider_call_seconds_count",
        "smsq_queue_wait_seconds_count",
        "smsq_enqueue_to_accepted_seconds_count",
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"));
        let count: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unreadable: {line}"));
        assert_eq!(count, SAMPLES + trickle, "{line}");
    }
}
