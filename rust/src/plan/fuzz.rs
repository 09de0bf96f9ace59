//! Property tests: any graph description either compiles or is refused with a message —
//! never a panic — and a compiled plan can be scheduled to the end or to the recursion limit.

use proptest::prelude::*;

use super::*;
use crate::schedule::{Reduce, RunState, TaskWrites, Write};

/// Names mixing valid nodes, reserved names and characters, and unknown ones.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(String::from),
        1 => prop::sample::select(vec![START, END, "x|y", "p:q", "ghost", ""]).prop_map(String::from),
    ]
}

fn spec() -> impl Strategy<Value = GraphSpec> {
    (
        prop::collection::vec(
            (name(), any::<bool>(), prop::collection::vec(name(), 0..2)),
            0..6,
        ),
        prop::collection::vec((name(), name()), 0..10),
        prop::collection::vec((prop::collection::vec(name(), 1..4), name()), 0..3),
        prop::collection::vec(
            (
                name(),
                name(),
                prop::option::of(prop::collection::vec(name(), 0..3)),
            ),
            0..3,
        ),
        prop::collection::vec(name(), 0..2),
    )
        .prop_map(
            |(nodes, edges, waiting_edges, branches, interrupts)| GraphSpec {
                keys: vec![KeySpec {
                    name: "k".into(),
                    kind: KeyKind::LastValue,
                }],
                nodes: nodes
                    .into_iter()
                    .map(|(name, defer, ends)| NodeSpec { name, defer, ends })
                    .collect(),
                edges,
                waiting_edges,
                branches: branches
                    .into_iter()
                    .map(|(source, name, ends)| BranchSpec { source, name, ends })
                    .collect(),
                interrupt_before: interrupts,
                interrupt_after: Vec::new(),
            },
        )
}

struct NoReducers;
impl Reduce<()> for NoReducers {
    type Error = ();
    fn reduce(&mut self, _: ChannelId, _: Option<()>, _: Vec<()>) -> Result<(), ()> {
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn compile_never_panics_and_plans_run(spec in spec(), route in any::<u64>()) {
        let Ok(plan) = Plan::compile(&spec) else { return Ok(()) };
        let mut state: RunState<()> = RunState::new(&plan, vec![None], 30);
        let mut bits = route;
        while let Ok(tasks) = state.next_tasks(&plan) {
            if tasks.is_empty() {
                break;
            }
            // Each task routes to a pseudo-random node now and then (a conditional edge).
            let results = tasks
                .into_iter()
                .map(|task| {
                    bits = bits.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15;
                    let writes = if bits % 3 == 0 {
                        vec![Write::Goto(1 + (bits as usize >> 8) % (plan.nodes.len() - 1).max(1))]
                    } else {
                        vec![]
                    };
                    TaskWrites { task, writes }
                })
                .filter(|r| r.writes.iter().all(|w| !matches!(w, Write::Goto(n) if *n >= plan.nodes.len())))
                .collect();
            prop_assert!(state.apply(&plan, results, &mut NoReducers).is_ok());
        }
    }
}
