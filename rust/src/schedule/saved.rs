//! A run's state as a checkpoint records it, and a run restored from one.
//!
//! A checkpoint (LangGraph's format) holds, per channel, a value (state keys), a mark (the
//! trigger channels: set or not, finished or not, which sources of a barrier arrived) and a
//! version; per node, the versions of its triggers it last saw; and the `Send`s pending for
//! the next step. Versions here are the engine's integers: the caller maps them to and from
//! the saver's own version strings (one new version per applied step, in order), so that
//! comparisons between versions mean the same on both sides.
//!
//! Besides the snapshot and restore, this module has the two state changes LangGraph makes
//! outside a step: writing a new input into a restored run (the tasks the checkpoint left
//! pending are dropped), and applying writes made from outside (`update_state`, a resume's
//! `Command(update=...)`).

use super::{Marker, Reduce, RunState, Write};
use crate::plan::{ChannelId, ChannelKind, EdgeWrite, NodeId, Plan, START_NODE};

/// The state of a channel that is not a state key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// Nothing written (or consumed since).
    Unset,
    /// An ephemeral trigger holds its write.
    Set,
    /// The trigger of a deferred node holds its write; `finished`: visible to the node.
    AfterFinish { finished: bool },
    /// Which sources of a barrier arrived (in the plan's slot order); `finished` as above.
    Barrier { arrived: Vec<bool>, finished: bool },
}

/// Everything a checkpoint records of a run.
#[derive(Debug)]
pub struct Saved<V> {
    /// Per state key.
    pub values: Vec<Option<V>>,
    /// Per channel (ignored for state keys).
    pub marks: Vec<Mark>,
    /// Per channel: 0 when the channel was never written.
    pub versions: Vec<u64>,
    /// Per node, per trigger (in the plan's trigger order).
    pub seen: Vec<Vec<u64>>,
    pub sends: Vec<(NodeId, V)>,
    /// The step the checkpoint was saved at (-1 for the input checkpoint).
    pub step: i64,
}

impl<V> RunState<V> {
    /// The mark of channel `c` (`Unset` for state keys).
    pub fn mark(&self, c: ChannelId) -> Mark {
        match &self.markers[c] {
            Marker::Key | Marker::Ephemeral { set: false } => Mark::Unset,
            Marker::Ephemeral { set: true } => Mark::Set,
            Marker::AfterFinish { set: false, .. } => Mark::Unset,
            Marker::AfterFinish {
                set: true,
                finished,
            } => Mark::AfterFinish {
                finished: *finished,
            },
            Marker::Barrier {
                arrived, finished, ..
            } => Mark::Barrier {
                arrived: arrived.clone(),
                finished: *finished,
            },
        }
    }

    /// The version of channel `c` (0: never written).
    pub fn channel_version(&self, c: ChannelId) -> u64 {
        self.versions[c]
    }

    /// The versions of `node`'s triggers when it last ran (0: never).
    pub fn seen_versions(&self, node: NodeId) -> &[u64] {
        &self.seen[node]
    }

    /// The newest version given to any channel.
    pub fn latest_version(&self) -> u64 {
        self.version
    }

    /// The `Send`s the next step runs, in order.
    pub fn sends(&self) -> &[(NodeId, V)] {
        &self.sends
    }

    /// A run continuing from `saved`: its next step is `saved.step + 1`, and it may run
    /// `recursion_limit` more steps, as LangGraph counts them.
    pub fn restore(plan: &Plan, saved: Saved<V>, recursion_limit: i64) -> Self {
        assert_eq!(saved.values.len(), plan.keys, "one value per state key");
        assert_eq!(
            saved.marks.len(),
            plan.channels.len(),
            "one mark per channel"
        );
        assert_eq!(
            saved.versions.len(),
            plan.channels.len(),
            "one version per channel"
        );
        let mut values = saved.values;
        values.extend((plan.keys..plan.channels.len()).map(|_| None));
        let markers = plan
            .channels
            .iter()
            .zip(saved.marks)
            .map(|(channel, mark)| marker_from(&channel.kind, mark))
            .collect();
        let seen = plan
            .nodes
            .iter()
            .zip(saved.seen)
            .map(|(node, mut seen)| {
                seen.resize(node.triggers.len(), 0);
                seen
            })
            .collect();
        let step = saved.step + 1;
        let mut state = RunState {
            values,
            markers,
            version: saved.versions.iter().copied().max().unwrap_or(0),
            versions: saved.versions,
            seen,
            sends: saved.sends,
            updated: Vec::new(),
            consumed: Vec::new(),
            step,
            stop: step + recursion_limit + 1,
        };
        // Every channel that may trigger is a candidate: which nodes run is decided by
        // versions against what each node saw, as LangGraph decides it on a resume.
        state.updated = (0..plan.channels.len())
            .filter(|&c| state.available(c))
            .collect();
        state
    }

    /// Moves to the next step number without running one (LangGraph's fork checkpoint
    /// takes a step number of its own). The recursion limit still counts from the restore.
    pub fn advance_step(&mut self) {
        self.step += 1;
    }

    /// Writes a new input into a restored run, as LangGraph's input step does: the tasks
    /// the checkpoint left pending are dropped (their triggers count as seen), as are
    /// pending `Send`s, and the start node is triggered. The step advances by one (the input
    /// checkpoint takes the current step number).
    pub fn write_input(&mut self, plan: &Plan) {
        let pending: Vec<NodeId> = match self.next_tasks(plan) {
            Ok(tasks) => tasks
                .iter()
                .filter(|t| matches!(t.path, super::TaskPath::Pull(_)))
                .map(|t| t.node)
                .collect(),
            Err(_) => Vec::new(),
        };
        let dropped_any = !pending.is_empty() || !self.sends.is_empty();
        self.version += 1;
        let version = self.version;
        for &node in &pending {
            self.mark_seen_and_consume(plan, node, version);
        }
        self.sends.clear();
        let start = plan.nodes[START_NODE].entry;
        self.markers[start] = Marker::Ephemeral { set: true };
        self.versions[start] = version;
        if dropped_any {
            // LangGraph's step bump: triggers nobody took are cleared.
            for c in 0..plan.channels.len() {
                if c != start {
                    self.expire(plan, c, version);
                }
            }
        }
        self.updated = vec![start];
        self.step += 1;
        self.stop += 1;
    }

    /// Applies writes made from outside a step (`update_state`, a resume's `Command`): state
    /// key writes, routes and `Send`s, plus the static edges of `as_node` when given (the
    /// node the update is made as). Unlike a step, this does not advance the step number;
    /// with `as_node`, triggers nobody took are cleared as after a step.
    pub fn apply_external<R: Reduce<V>>(
        &mut self,
        plan: &Plan,
        writes: Vec<Write<V>>,
        as_node: Option<NodeId>,
        reducer: &mut R,
    ) -> Result<Vec<ChannelId>, super::ApplyError<R::Error>> {
        self.version += 1;
        let version = self.version;
        let mut touched = vec![false; plan.channels.len()];
        let mut key_writes: Vec<Vec<V>> = (0..plan.keys).map(|_| Vec::new()).collect();
        let mut sends = Vec::new();
        let mut handled = false;
        for write in writes {
            match write {
                Write::Key(key, value) => {
                    if key >= plan.keys {
                        return Err(super::ApplyError::NotAKey { channel: key });
                    }
                    key_writes[key].push(value);
                }
                Write::Goto(node) => {
                    let entry = plan.nodes[node].entry;
                    touched[entry] |= self.arrive(entry, None);
                }
                Write::Send(node, arg) => sends.push((node, arg)),
                Write::Handled => handled = true,
            }
        }
        if let (Some(node), false) = (as_node, handled) {
            for edge in &plan.nodes[node].edge_writes {
                match *edge {
                    EdgeWrite::Trigger(c) => touched[c] |= self.arrive(c, None),
                    EdgeWrite::Barrier { channel, slot } => {
                        touched[channel] |= self.arrive(channel, Some(slot))
                    }
                }
            }
        }
        let written = self.write_keys(plan, key_writes, &mut touched, reducer)?;
        self.updated.clear();
        for (c, &was_touched) in touched.iter().enumerate() {
            if was_touched {
                self.versions[c] = version;
            } else if as_node.is_some() {
                self.expire(plan, c, version);
            }
        }
        self.updated = (0..plan.channels.len())
            .filter(|&c| self.available(c))
            .collect();
        // The pending `Send`s are replaced by those written (LangGraph's tasks channel takes
        // one step's at a time); an update made as a node ends the step, dropping them.
        if !sends.is_empty() || as_node.is_some() {
            self.sends = sends;
        }
        Ok(written)
    }

    fn mark_seen_and_consume(&mut self, plan: &Plan, node: NodeId, version: u64) {
        let triggers = &plan.nodes[node].triggers;
        for (i, &c) in triggers.iter().enumerate() {
            self.seen[node][i] = self.versions[c];
        }
        for &c in triggers {
            if self.consume(c) {
                self.versions[c] = version;
            }
        }
    }
}

fn marker_from(kind: &ChannelKind, mark: Mark) -> Marker {
    match (kind, mark) {
        (ChannelKind::Key(_), _) => Marker::Key,
        (ChannelKind::Ephemeral, Mark::Set) => Marker::Ephemeral { set: true },
        (ChannelKind::Ephemeral, _) => Marker::Ephemeral { set: false },
        (ChannelKind::AfterFinish, Mark::AfterFinish { finished }) => Marker::AfterFinish {
            set: true,
            finished,
        },
        (ChannelKind::AfterFinish, Mark::Set) => Marker::AfterFinish {
            set: true,
            finished: false,
        },
        (ChannelKind::AfterFinish, _) => Marker::AfterFinish {
            set: false,
            finished: false,
        },
        (
            ChannelKind::Barrier {
                sources,
                after_finish,
            },
            mark,
        ) => {
            let (mut arrived, finished) = match mark {
                Mark::Barrier { arrived, finished } => (arrived, finished),
                _ => (Vec::new(), false),
            };
            arrived.resize(*sources, false);
            Marker::Barrier {
                arrived,
                finished,
                after_finish: *after_finish,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{GraphSpec, KeyKind, KeySpec, NodeSpec, END, START};
    use crate::schedule::{TaskWrites, Write};

    struct Last;
    impl Reduce<i64> for Last {
        type Error = ();
        fn reduce(&mut self, _: ChannelId, cur: Option<i64>, up: Vec<i64>) -> Result<i64, ()> {
            Ok(cur.unwrap_or(0) + up.iter().sum::<i64>())
        }
    }

    fn chain() -> Plan {
        Plan::compile(&GraphSpec {
            keys: vec![KeySpec {
                name: "n".into(),
                kind: KeyKind::Reducer,
            }],
            nodes: ["a", "b", "c"]
                .iter()
                .map(|n| NodeSpec::named(*n))
                .collect(),
            edges: [(START, "a"), ("a", "b"), ("b", "c"), ("c", END)]
                .iter()
                .map(|(x, y)| (x.to_string(), y.to_string()))
                .collect(),
            ..Default::default()
        })
        .unwrap()
    }

    fn snapshot(plan: &Plan, s: &RunState<i64>) -> Saved<i64> {
        Saved {
            values: (0..plan.keys).map(|k| s.value(k).copied()).collect(),
            marks: (0..plan.channels.len()).map(|c| s.mark(c)).collect(),
            versions: (0..plan.channels.len())
                .map(|c| s.channel_version(c))
                .collect(),
            seen: (0..plan.nodes.len())
                .map(|n| s.seen_versions(n).to_vec())
                .collect(),
            sends: s.sends().to_vec(),
            step: s.step() - 1,
        }
    }

    /// Runs one step: every task adds 1 to `n`.
    fn step(plan: &Plan, s: &mut RunState<i64>) -> Vec<NodeId> {
        let tasks = s.next_tasks(plan).unwrap();
        let nodes = tasks.iter().map(|t| t.node).collect();
        let results = tasks
            .into_iter()
            .map(|task| TaskWrites {
                task,
                writes: if task.node == START_NODE {
                    vec![]
                } else {
                    vec![Write::Key(0, 1)]
                },
            })
            .collect();
        s.apply(plan, results, &mut Last).unwrap();
        nodes
    }

    #[test]
    fn a_restored_run_continues_where_the_saved_one_stopped() {
        let plan = chain();
        let mut original = RunState::new(&plan, vec![None], 100);
        step(&plan, &mut original); // __start__
        step(&plan, &mut original); // a
        let mut restored = RunState::restore(&plan, snapshot(&plan, &original), 100);
        assert_eq!(restored.step(), original.step());
        let b = plan.node_id("b").unwrap();
        let c = plan.node_id("c").unwrap();
        assert_eq!(step(&plan, &mut restored), vec![b]);
        assert_eq!(step(&plan, &mut restored), vec![c]);
        assert!(restored.next_tasks(&plan).unwrap().is_empty());
        assert_eq!(restored.value(0), Some(&3));
    }

    #[test]
    fn a_new_input_drops_the_pending_tasks_and_starts_over() {
        let plan = chain();
        let mut original = RunState::new(&plan, vec![None], 100);
        step(&plan, &mut original);
        step(&plan, &mut original); // b is pending
        let mut restored = RunState::restore(&plan, snapshot(&plan, &original), 100);
        restored.write_input(&plan);
        assert_eq!(step(&plan, &mut restored), vec![START_NODE]);
        let a = plan.node_id("a").unwrap();
        assert_eq!(step(&plan, &mut restored), vec![a]);
    }

    #[test]
    fn an_update_as_a_node_fires_its_edges() {
        let plan = chain();
        let mut original = RunState::new(&plan, vec![None], 100);
        step(&plan, &mut original);
        step(&plan, &mut original); // b is pending
        let b = plan.node_id("b").unwrap();
        let c = plan.node_id("c").unwrap();
        original
            .apply_external(&plan, vec![Write::Key(0, 10)], Some(b), &mut Last)
            .unwrap();
        assert_eq!(original.value(0), Some(&11));
        assert_eq!(step(&plan, &mut original), vec![c]);
    }
}
