//! The global rate's schedule (`workload::rate`): what the engine pays per publish under
//! `--rate` to learn when the device is next due.
//!
//! Sequential order is arithmetic. Random order inverts one seeded permutation per second it
//! looks at: with N >= D the device is found in the first second or the next; with N < D it
//! looks at D/N seconds on average (cut at 64 s), so the figure per second looked at is the
//! one that scales: "amortised, one inverse permutation per device per second of the run".

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use mqblast::workload::rate::{Due, RateOrder, RatePlan, RateSchedule, NS_PER_S};

fn schedule(n: u64, d: u64, order: RateOrder) -> RateSchedule {
    RateSchedule::new(&RatePlan {
        messages_per_s: n,
        devices: d,
        first_device_index: 0,
        order,
        seed: 42,
        alarms_per_s: 0,
        alarm_storm: None,
    })
    .expect("a valid rate")
}

/// Walk device after device through its next due time, as publishes do.
fn next_due(c: &mut Criterion, name: &str, n: u64, d: u64, order: RateOrder) {
    let s = schedule(n, d, order);
    let mut device = 0;
    let mut t_ns = 3_600 * NS_PER_S;
    c.bench_function(name, |b| {
        b.iter(|| {
            device = (device + 7_919) % d;
            t_ns += 1_000;
            black_box(s.due_at_or_after(black_box(device), t_ns))
        })
    });
}

fn sequential(c: &mut Criterion) {
    next_due(
        c,
        "rate_next_due_sequential_1e4_per_s_1e6_devices",
        10_000,
        1_000_000,
        RateOrder::Sequential,
    );
}

fn random_n_at_least_d(c: &mut Criterion) {
    next_due(
        c,
        "rate_next_due_random_1e4_per_s_1e4_devices",
        10_000,
        10_000,
        RateOrder::Random,
    );
}

fn random_per_second_looked_at(c: &mut Criterion) {
    // N = 1 over 10^6 devices: almost every question looks at all 64 seconds of the look-ahead
    // and answers NotBefore; the time per second looked at is this figure / 64.
    let s = schedule(1, 1_000_000, RateOrder::Random);
    assert!(matches!(
        s.due_at_or_after(5, 0),
        Due::NotBefore(_) | Due::At(_)
    ));
    next_due(
        c,
        "rate_next_due_random_64_seconds_looked_at",
        1,
        1_000_000,
        RateOrder::Random,
    );
}

criterion_group!(
    benches,
    sequential,
    random_n_at_least_d,
    random_per_second_looked_at
);
criterion_main!(benches);
