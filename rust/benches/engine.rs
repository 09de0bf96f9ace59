//! Engine costs with no Python involved: a superstep of the scheduler (plan + apply) and a
//! chunk's trip through the channel, alone and contended.
//!
//! `cargo bench --bench engine`

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrograph::plan::{GraphSpec, KeyKind, KeySpec, NodeSpec, Plan, END, START};
use ferrograph::schedule::{Reduce, RunState, TaskWrites, Write};
use ferrograph::stream::{ChunkChannel, Drain, Subscription, Tag};

struct Sum;
impl Reduce<u64> for Sum {
    type Error = ();
    fn reduce(&mut self, _: usize, current: Option<u64>, updates: Vec<u64>) -> Result<u64, ()> {
        Ok(current.unwrap_or(0) + updates.into_iter().sum::<u64>())
    }
}

/// A plan with one reducer key, the given nodes and edges.
fn plan(names: &[String], edges: Vec<(String, String)>) -> Plan {
    Plan::compile(&GraphSpec {
        keys: vec![KeySpec {
            name: "x".into(),
            kind: KeyKind::Reducer,
        }],
        nodes: names.iter().map(NodeSpec::named).collect(),
        edges,
        ..Default::default()
    })
    .unwrap()
}

fn chain(n: usize) -> Plan {
    let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let mut edges = vec![(START.to_string(), names[0].clone())];
    edges.extend(names.windows(2).map(|w| (w[0].clone(), w[1].clone())));
    edges.push((names[n - 1].clone(), END.to_string()));
    plan(&names, edges)
}

fn fan_out(n: usize) -> Plan {
    let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
    let edges = names
        .iter()
        .map(|n| (START.to_string(), n.clone()))
        .collect();
    plan(&names, edges)
}

/// Runs a whole plan where every task writes 1 to the reducer key; returns the steps run.
fn run(plan: &Plan) -> usize {
    let mut state: RunState<u64> = RunState::new(plan, vec![None], 10_000);
    let mut steps = 0;
    loop {
        let tasks = state.next_tasks(plan).unwrap();
        if tasks.is_empty() {
            return steps;
        }
        steps += 1;
        let results = tasks
            .into_iter()
            .map(|task| TaskWrites {
                task,
                writes: vec![Write::Key(0, 1)],
            })
            .collect();
        state.apply(plan, results, &mut Sum).unwrap();
    }
}

fn scheduler(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler");
    let plan = chain(100);
    group.throughput(Throughput::Elements(101));
    group.bench_function("chain100 (per superstep = time / 101)", |b| {
        b.iter(|| black_box(run(&plan)))
    });
    let plan = fan_out(256);
    group.throughput(Throughput::Elements(257));
    group.bench_function("fan-out 256 (one step of 256 tasks)", |b| {
        b.iter(|| black_box(run(&plan)))
    });
    group.finish();
}

fn channel(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk channel");
    group.throughput(Throughput::Elements(1));
    let ch = Arc::new(ChunkChannel::new(4096, Subscription::all()));
    let producer = ch.producer(Tag::default());
    group.bench_function("push + drain, one thread, batches of 256", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            let mut left = iters;
            while left > 0 {
                let n = left.min(256);
                for i in 0..n {
                    producer.push(2, i).unwrap();
                }
                let Drain::Chunks(batch) = ch.drain(256, Some(Duration::ZERO)) else {
                    unreachable!()
                };
                black_box(batch);
                left -= n;
            }
            start.elapsed()
        })
    });
    let filtered = Arc::new(ChunkChannel::new(
        4096,
        Subscription::new(Some(vec![1]), 1 << 2),
    ));
    let other = filtered.producer(Tag::default());
    group.bench_function("push filtered out at the producer", |b| {
        b.iter(|| black_box(other.push(2, 7u64).unwrap()))
    });
    for producers in [4u32, 64] {
        group.bench_function(
            format!("{producers} producers, 1 consumer, capacity 1024"),
            |b| {
                b.iter_custom(|iters| {
                    let ch = Arc::new(ChunkChannel::new(1024, Subscription::all()));
                    let per = iters / producers as u64 + 1;
                    let start = Instant::now();
                    let handles: Vec<_> = (0..producers)
                        .map(|p| {
                            let producer = ch.producer(Tag {
                                node: p,
                                ..Default::default()
                            });
                            thread::spawn(move || {
                                for i in 0..per {
                                    producer.push(2, i).unwrap();
                                }
                            })
                        })
                        .collect();
                    let mut received = 0;
                    while received < per * producers as u64 {
                        if let Drain::Chunks(batch) = ch.drain(1024, Some(Duration::from_secs(5))) {
                            received += batch.len() as u64;
                        }
                    }
                    for h in handles {
                        h.join().unwrap();
                    }
                    start.elapsed() * iters as u32 / (per * producers as u64) as u32
                })
            },
        );
    }
    group.finish();
}

criterion_group!(engine, scheduler, channel);
criterion_main!(engine);
