//! The success-path cost of one guarded call with every pattern on
//! (deadline and stage budget, rate limit, token and cost reservation,
//! retry budget, breaker, bulkhead, telemetry), next to tower's own
//! `LoadShed` + `ConcurrencyLimit` + `RateLimit` + `Timeout` stack around
//! the same immediate dependency, and a bare call for the floor. Each is
//! measured on one thread and with two threads calling at once.
//!
//! `cargo bench -p ballast-agent --bench guard_overhead`
//!
//! Criterion runs without its default features (plotters, rayon): the
//! statistics are what the comparison needs. Criterion's line shows the
//! mean (slope); each benchmark also prints the median time per call over
//! its samples, which is the figure the target is stated in. The "side by
//! side" benchmarks time the guard and tower's stack in every sample, one
//! right after the other, so that both see the machine at the same speed.

mod guard_support;

use agent::DependencyError;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use guard_support::{guard, guarded};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// Samples per benchmark; the median is taken over these.
const SAMPLES: usize = 100;

/// Runs one benchmark whose routine times `iters` calls itself, then
/// prints the median time per call over the measured samples (the last
/// `SAMPLES` calls of the routine; the ones before are criterion's warm-up).
fn bench_median(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    name: &str,
    mut routine: impl FnMut(u64) -> Duration,
) {
    let mut per_call: Vec<f64> = Vec::new();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let elapsed = routine(iters);
            per_call.push(elapsed.as_nanos() as f64 / iters.max(1) as f64);
            elapsed
        })
    });
    if per_call.len() >= SAMPLES {
        let mut measured = per_call.split_off(per_call.len() - SAMPLES);
        measured.sort_by(f64::total_cmp);
        let median = (measured[SAMPLES / 2 - 1] + measured[SAMPLES / 2]) / 2.0;
        println!("median {group_name}/{name}: {median:.1} ns per call");
    }
}

/// Runs one benchmark whose routine times `iters` calls of the guard and
/// then `iters` of tower's stack, and prints the median time per call of
/// each over the measured samples, and their ratio. Each sample measures
/// both within milliseconds of each other, so a change in the machine's
/// speed during the run (a neighbour on a shared host) reaches both alike,
/// where benchmarks run one after the other can each fall in a different
/// phase.
fn bench_side_by_side(
    group: &mut BenchmarkGroup<'_, WallTime>,
    group_name: &str,
    mut routine: impl FnMut(u64) -> (Duration, Duration),
) {
    let mut per_call: Vec<(f64, f64)> = Vec::new();
    group.bench_function("guard and tower, side by side", |b| {
        b.iter_custom(|iters| {
            let (guard, tower) = routine(iters);
            let n = iters.max(1) as f64;
            per_call.push((guard.as_nanos() as f64 / n, tower.as_nanos() as f64 / n));
            guard + tower
        })
    });
    if per_call.len() >= SAMPLES {
        let measured = per_call.split_off(per_call.len() - SAMPLES);
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            (v[SAMPLES / 2 - 1] + v[SAMPLES / 2]) / 2.0
        };
        let guard = median(measured.iter().map(|m| m.0).collect());
        let tower = median(measured.iter().map(|m| m.1).collect());
        println!(
            "median {group_name}/side by side: guard {guard:.1} ns, tower {tower:.1} ns per call, ratio {:.2}",
            guard / tower
        );
    }
}

/// tower's equivalent stack: shed when not ready, at most 1000 in flight
/// (shared by all threads, like the guard's bulkhead), a rate limit as
/// generous as the policy's, and the dependency's 40 s timeout.
fn tower_stack(
    limit: Arc<Semaphore>,
) -> impl Service<u64, Response = u64, Error = tower::BoxError, Future: Send> + Send {
    ServiceBuilder::new()
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(limit))
        .rate_limit(1_000_000_000, Duration::from_secs(1))
        .timeout(Duration::from_secs(40))
        .service(service_fn(|x: u64| async move {
            Ok::<_, Infallible>(black_box(x))
        }))
}

async fn towered<S>(svc: &mut S)
where
    S: Service<u64, Response = u64, Error = tower::BoxError>,
{
    let r = svc.ready().await;
    let out = match r {
        Ok(s) => s.call(black_box(1)).await,
        Err(e) => Err(e),
    };
    black_box(out.is_ok());
}

fn single_thread(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("1 thread");
    let g = guard();
    bench_median(&mut group, "1 thread", "bare call", |iters| {
        rt.block_on(async {
            let t = Instant::now();
            for _ in 0..iters {
                let r: Result<u64, DependencyError> = async { Ok(black_box(1u64)) }.await;
                black_box(r.is_ok());
            }
            t.elapsed()
        })
    });
    bench_median(&mut group, "1 thread", "ballast guard", |iters| {
        rt.block_on(async {
            let t = Instant::now();
            for _ in 0..iters {
                guarded(&g).await;
            }
            t.elapsed()
        })
    });
    bench_median(&mut group, "1 thread", "tower stack", |iters| {
        rt.block_on(async {
            let mut svc = tower_stack(Arc::new(Semaphore::new(1000)));
            let t = Instant::now();
            for _ in 0..iters {
                towered(&mut svc).await;
            }
            t.elapsed()
        })
    });
    bench_side_by_side(&mut group, "1 thread", |iters| {
        rt.block_on(async {
            let mut svc = tower_stack(Arc::new(Semaphore::new(1000)));
            let t = Instant::now();
            for _ in 0..iters {
                guarded(&g).await;
            }
            let guard = t.elapsed();
            let t = Instant::now();
            for _ in 0..iters {
                towered(&mut svc).await;
            }
            (guard, t.elapsed())
        })
    });
    group.finish();
}

/// Runs `calls` on two OS threads at once, each driving its own
/// current-thread runtime; the figure is the wall time from the moment both
/// start until both finish. (Two tasks on one two-worker runtime were
/// sometimes run side by side and sometimes one after the other on the
/// same worker, which moved the figure by a factor of three from run to
/// run.)
fn on_two_threads<F, Fut>(runtimes: &[tokio::runtime::Runtime; 2], calls: F) -> Duration
where
    F: Fn(usize) -> Fut + Sync,
    Fut: std::future::Future<Output = ()>,
{
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let threads: Vec<_> = runtimes
            .iter()
            .enumerate()
            .map(|(i, rt)| {
                let (start, calls) = (&start, &calls);
                s.spawn(move || {
                    // Made inside the runtime: tower's rate limit makes its
                    // timer on creation.
                    let fut = {
                        let _runtime = rt.enter();
                        calls(i)
                    };
                    start.wait();
                    let t = Instant::now();
                    rt.block_on(fut);
                    t
                })
            })
            .collect();
        let started: Vec<Instant> = threads
            .into_iter()
            .map(|t| t.join().expect("the bench thread"))
            .collect();
        let first = started.iter().min().copied().unwrap_or_else(Instant::now);
        first.elapsed()
    })
}

/// Two threads share one guard (or one concurrency limit), each making
/// half the calls; the figure is wall time per call, so contention on the
/// shared state shows.
fn two_threads(c: &mut Criterion) {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    };
    let runtimes = [runtime(), runtime()];
    let mut group = c.benchmark_group("2 threads");
    let g = guard();
    bench_median(&mut group, "2 threads", "ballast guard", |iters| {
        on_two_threads(&runtimes, |_| {
            let g = g.clone();
            async move {
                for _ in 0..iters / 2 {
                    guarded(&g).await;
                }
            }
        })
    });
    let limit = Arc::new(Semaphore::new(1000));
    bench_median(&mut group, "2 threads", "tower stack", |iters| {
        // tower's rate limiter is not Clone: each thread has its own, the
        // concurrency limit is shared.
        on_two_threads(&runtimes, |_| {
            let mut svc = tower_stack(limit.clone());
            async move {
                for _ in 0..iters / 2 {
                    towered(&mut svc).await;
                }
            }
        })
    });
    bench_side_by_side(&mut group, "2 threads", |iters| {
        let guard = on_two_threads(&runtimes, |_| {
            let g = g.clone();
            async move {
                for _ in 0..iters / 2 {
                    guarded(&g).await;
                }
            }
        });
        let tower = on_two_threads(&runtimes, |_| {
            let mut svc = tower_stack(limit.clone());
            async move {
                for _ in 0..iters / 2 {
                    towered(&mut svc).await;
                }
            }
        });
        (guard, tower)
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = single_thread, two_threads
}
criterion_main!(benches);
