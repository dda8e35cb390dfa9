//! The one raw MQTT collector of the integration tests: a subscriber on its own thread that
//! keeps every PUBLISH it receives as a [`Delivery`] (when its read returned, topic, payload),
//! for tests that check what each message says, not only how many came (that is
//! [`super::Subscriber`]). Each test parses the deliveries its own way (points per device,
//! alarms per second, ...).
//!
//! Why it exists: presets, rate, gateway and gateway_rate each carried a copy of this loop.
//! It shares no code with mqblast (hand-written packets from `super`), so what it sees is
//! proof that the broker delivered it.
//!
//! Bounds: at most [`DELIVERIES_MAX`] deliveries and [`PAYLOAD_BYTES_MAX`] payload bytes are
//! kept; the one past either ends the collector with an error, which fails the test (the runs
//! here deliver a few thousand). A read error, the broker closing, a malformed or unexpected
//! packet fail the test too: at the next [`Collector::settle`] or [`Collector::snapshot`], or
//! when the collector is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{harness_client_id, open_subscription, serve_subscription, Publish};

/// Most deliveries one collector keeps.
pub const DELIVERIES_MAX: usize = 200_000;
/// Most payload bytes one collector keeps, all deliveries together.
pub const PAYLOAD_BYTES_MAX: usize = 256 << 20;
/// How long nothing may arrive before [`Collector::settle`] takes the deliveries as complete.
const QUIET: Duration = Duration::from_millis(500);

/// One PUBLISH as the collector received it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// When the read that completed the packet returned.
    pub at: Instant,
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Default)]
struct Kept {
    deliveries: Vec<Delivery>,
    payload_bytes: usize,
    /// Why the receiving thread ended early, if it did.
    error: Option<String>,
}

/// A subscriber keeping every delivery, subscribed (SUBACK read) before `start` returns, with
/// its own client id. Stopped (DISCONNECT) on drop.
pub struct Collector {
    filter: String,
    kept: Arc<Mutex<Kept>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// A QoS 0 subscription to `filter` on the broker at `127.0.0.1:port`.
    pub fn start(port: u16, filter: &str) -> Collector {
        Collector::with_qos(port, filter, 0)
    }

    /// A subscription at `qos` (1 and 2 are acknowledged so the broker keeps sending).
    pub fn with_qos(port: u16, filter: &str, qos: u8) -> Collector {
        let client_id = harness_client_id("collector");
        let (stream, buf) = open_subscription(port, &client_id, None, &[filter], qos);
        let kept = Arc::new(Mutex::new(Kept::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (kept, stop) = (Arc::clone(&kept), Arc::clone(&stop));
            std::thread::spawn(move || {
                let result =
                    serve_subscription(stream, buf, &stop, |at, publish| keep(&kept, at, publish));
                if let Err(e) = result {
                    lock(&kept).error = Some(e);
                }
            })
        };
        Collector {
            filter: filter.to_string(),
            kept,
            stop,
            thread: Some(thread),
        }
    }

    /// Deliveries so far.
    pub fn count(&self) -> usize {
        lock(&self.kept).deliveries.len()
    }

    /// Every delivery so far, in arrival order. Fails the test if the collector failed.
    pub fn snapshot(&self) -> Vec<Delivery> {
        self.assert_alive();
        lock(&self.kept).deliveries.clone()
    }

    /// The deliveries once at least `at_least` have arrived and then none for half a second
    /// (an excess has time to show), bounded by `timeout`: the caller asserts the count.
    /// Fails the test at once if the collector failed.
    pub fn settle(&self, at_least: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        let mut last = (self.count(), Instant::now());
        while Instant::now() < deadline {
            self.assert_alive();
            let count = self.count();
            if count != last.0 {
                last = (count, Instant::now());
            } else if count >= at_least && last.1.elapsed() >= QUIET {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.snapshot()
    }

    /// Panics with the reason the receiving thread ended, if it did.
    fn assert_alive(&self) {
        if let Some(e) = &lock(&self.kept).error {
            panic!("collector on {:?} failed: {e}", self.filter);
        }
        if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            panic!("collector on {:?}: its thread panicked", self.filter);
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let panicked = self.thread.take().is_some_and(|t| t.join().is_err());
        // A failure after the last look still fails the test, unless it is failing already.
        if !std::thread::panicking() {
            assert!(
                !panicked,
                "collector on {:?}: its thread panicked",
                self.filter
            );
            if let Some(e) = &lock(&self.kept).error {
                panic!("collector on {:?} failed: {e}", self.filter);
            }
        }
    }
}

/// Keep one delivery, or refuse it at the bounds.
fn keep(kept: &Mutex<Kept>, at: Instant, publish: &Publish) -> Result<(), String> {
    let mut kept = lock(kept);
    let payload_bytes = kept.payload_bytes + publish.payload.len();
    if kept.deliveries.len() == DELIVERIES_MAX || payload_bytes > PAYLOAD_BYTES_MAX {
        return Err(format!(
            "more than {DELIVERIES_MAX} deliveries or {PAYLOAD_BYTES_MAX} payload bytes"
        ));
    }
    kept.payload_bytes = payload_bytes;
    kept.deliveries.push(Delivery {
        at,
        topic: publish.topic.to_string(),
        payload: publish.payload.to_vec(),
    });
    Ok(())
}

/// The lock, even if a panic poisoned it (the data stays consistent: one push at a time).
fn lock(kept: &Mutex<Kept>) -> MutexGuard<'_, Kept> {
    kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
