//! The Pregel/BSP superstep state machine.
//!
//! A run alternates two phases over a [`Plan`]:
//! 1. [`RunState::next_tasks`] lists the tasks of the next superstep: one push task per `Send`
//!    written in the previous step, then one pull task per node whose trigger channels changed
//!    since it last ran.
//! 2. The caller runs them (on any threads) and hands their writes to [`RunState::apply`], which
//!    applies them all at once, in task-path order, through the channels. Writes are therefore
//!    invisible to the other tasks of the same step.
//!
//! Values are generic (`V`): the engine holds them and never looks inside. Reducers are supplied
//! by the caller through [`Reduce`], so this module runs, and is tested, without Python.
//!
//! Step numbering follows LangGraph: the input is written at step -1, the start node runs at
//! step 0, and with a recursion limit `L` the run fails before preparing step `L + 1`.

use crate::plan::{ChannelId, ChannelKind, EdgeWrite, KeyKind, NodeId, Plan, START_NODE};

mod saved;
pub use saved::{Mark, Saved};

/// Where a task comes from; also the order in which a step's writes are applied
/// (pull tasks by node name, then push tasks by the order their `Send`s were written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskPath {
    /// Position of the node in [`Plan::nodes_by_name`].
    Pull(usize),
    /// Index of the `Send` among those written in the previous step.
    Push(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub node: NodeId,
    pub path: TaskPath,
}

/// One write made by a task.
#[derive(Debug)]
pub enum Write<V> {
    /// A value for state key `key` (a channel id below `plan.keys`).
    Key(ChannelId, V),
    /// Route to a node (a conditional edge or `Command(goto=...)`).
    Goto(NodeId),
    /// Start a push task of `node` with this argument in the next step.
    Send(NodeId, V),
    /// The task's node failed and its error handler's writes stand in for its own: the
    /// node's edges do not fire (only the handler's routes do), as in LangGraph.
    Handled,
}

/// The writes of one finished task.
#[derive(Debug)]
pub struct TaskWrites<V> {
    pub task: Task,
    pub writes: Vec<Write<V>>,
}

/// Folds the values written to a reducer key in one step into its current value.
pub trait Reduce<V> {
    type Error;
    fn reduce(
        &mut self,
        key: ChannelId,
        current: Option<V>,
        updates: Vec<V>,
    ) -> Result<V, Self::Error>;
}

#[derive(Debug, PartialEq, Eq)]
pub enum ApplyError<E> {
    /// Two or more values for a last-value key in one step.
    ConcurrentUpdate {
        key: ChannelId,
    },
    /// A write names a channel that is not a state key.
    NotAKey {
        channel: ChannelId,
    },
    Reducer(E),
}

/// The recursion limit was reached before the graph stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfSteps;

/// What the last [`RunState::apply`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// State keys that received at least one write, in key order.
    pub written_keys: Vec<ChannelId>,
}

/// Per-channel bookkeeping that is not a user value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    /// State keys keep their value in [`RunState::values`].
    Key,
    Ephemeral {
        set: bool,
    },
    AfterFinish {
        set: bool,
        finished: bool,
    },
    Barrier {
        arrived: Vec<bool>,
        finished: bool,
        after_finish: bool,
    },
}

impl Marker {
    fn new(kind: &ChannelKind) -> Marker {
        match kind {
            ChannelKind::Key(_) => Marker::Key,
            ChannelKind::Ephemeral => Marker::Ephemeral { set: false },
            ChannelKind::AfterFinish => Marker::AfterFinish {
                set: false,
                finished: false,
            },
            ChannelKind::Barrier {
                sources,
                after_finish,
            } => Marker::Barrier {
                arrived: vec![false; *sources],
                finished: false,
                after_finish: *after_finish,
            },
        }
    }
}

/// The whole mutable state of one run: channel values, versions and what each node has seen.
/// It is a plain value, so it can be snapshotted (cloned) and restored by the caller.
#[derive(Debug, Clone)]
pub struct RunState<V> {
    /// Values of the state keys (`None`: empty).
    values: Vec<Option<V>>,
    markers: Vec<Marker>,
    versions: Vec<u64>,
    /// `seen[node][i]`: version of the node's i-th trigger when the node last ran.
    seen: Vec<Vec<u64>>,
    /// `Send`s written in the previous step, in application order.
    sends: Vec<(NodeId, V)>,
    /// Channels that became available in the last apply (the candidates for the next step).
    updated: Vec<ChannelId>,
    /// Channels whose version the last apply moved only by consuming them (a barrier that
    /// let its node run, a deferred trigger): LangGraph does not count them as updated.
    consumed: Vec<ChannelId>,
    version: u64,
    step: i64,
    stop: i64,
}

impl<V> RunState<V> {
    /// A run whose state keys start at `initial` (one entry per key) and whose input is
    /// written to the start node's channel, as LangGraph's step -1 does.
    pub fn new(plan: &Plan, initial: Vec<Option<V>>, recursion_limit: i64) -> Self {
        assert_eq!(initial.len(), plan.keys, "one initial value per state key");
        let mut values = initial;
        values.extend((plan.keys..plan.channels.len()).map(|_| None));
        let mut state = RunState {
            values,
            markers: plan.channels.iter().map(|c| Marker::new(&c.kind)).collect(),
            versions: vec![0; plan.channels.len()],
            seen: plan
                .nodes
                .iter()
                .map(|n| vec![0; n.triggers.len()])
                .collect(),
            sends: Vec::new(),
            updated: Vec::new(),
            consumed: Vec::new(),
            version: 1,
            step: -1,
            stop: -1 + recursion_limit + 1,
        };
        let start = plan.nodes[START_NODE].entry;
        state.markers[start] = Marker::Ephemeral { set: true };
        state.versions[start] = state.version;
        state.updated.push(start);
        state.step = 0;
        state
    }

    pub fn step(&self) -> i64 {
        self.step
    }

    /// The current value of state key `key`.
    pub fn value(&self, key: ChannelId) -> Option<&V> {
        self.values[key].as_ref()
    }

    /// The argument of the push task at `index` of the current step.
    pub fn send_arg(&self, index: usize) -> &V {
        &self.sends[index].1
    }

    fn available(&self, channel: ChannelId) -> bool {
        match &self.markers[channel] {
            Marker::Key => self.values[channel].is_some(),
            Marker::Ephemeral { set } => *set,
            Marker::AfterFinish { set, finished } => *set && *finished,
            Marker::Barrier {
                arrived,
                finished,
                after_finish,
            } => arrived.iter().all(|a| *a) && (!after_finish || *finished),
        }
    }

    /// The tasks of the current step: push tasks first, then triggered nodes by name.
    /// Fails once the step number passes the recursion limit.
    pub fn next_tasks(&self, plan: &Plan) -> Result<Vec<Task>, OutOfSteps> {
        if self.step > self.stop {
            return Err(OutOfSteps);
        }
        let mut tasks: Vec<Task> = self
            .sends
            .iter()
            .enumerate()
            .map(|(index, (node, _))| Task {
                node: *node,
                path: TaskPath::Push(index),
            })
            .collect();
        let mut candidates: Vec<NodeId> = self
            .updated
            .iter()
            .flat_map(|&c| plan.triggered_by[c].iter().copied())
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let mut pulls: Vec<Task> = candidates
            .into_iter()
            .filter(|&node| {
                plan.nodes[node]
                    .triggers
                    .iter()
                    .zip(&self.seen[node])
                    .any(|(&c, &seen)| self.available(c) && self.versions[c] > seen)
            })
            .map(|node| Task {
                node,
                path: TaskPath::Pull(plan.name_rank[node]),
            })
            .collect();
        pulls.sort_by_key(|t| t.path);
        tasks.extend(pulls);
        Ok(tasks)
    }

    /// Applies the writes of every task of the current step and advances to the next step.
    pub fn apply<R: Reduce<V>>(
        &mut self,
        plan: &Plan,
        mut results: Vec<TaskWrites<V>>,
        reducer: &mut R,
    ) -> Result<Applied, ApplyError<R::Error>> {
        results.sort_by_key(|r| r.task.path);
        self.version += 1;
        let version = self.version;
        self.consumed.clear();

        // What the tasks read: mark it seen, then let barriers and deferred triggers reset.
        for result in &results {
            if let TaskPath::Pull(_) = result.task.path {
                let node = &plan.nodes[result.task.node];
                for (i, &c) in node.triggers.iter().enumerate() {
                    self.seen[result.task.node][i] = self.versions[c];
                }
                for &c in &node.triggers {
                    if self.consume(c) {
                        self.versions[c] = version;
                        self.consumed.push(c);
                    }
                }
            }
        }

        // Group the writes by channel, keeping task-path order within each channel.
        let mut key_writes: Vec<Vec<V>> = (0..plan.keys).map(|_| Vec::new()).collect();
        let mut touched = vec![false; plan.channels.len()];
        let mut sends = Vec::new();
        for result in results {
            let mut handled = false;
            for write in result.writes {
                match write {
                    Write::Key(key, value) => {
                        if key >= plan.keys {
                            return Err(ApplyError::NotAKey { channel: key });
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
            if handled {
                continue;
            }
            for edge in &plan.nodes[result.task.node].edge_writes {
                match *edge {
                    EdgeWrite::Trigger(c) => touched[c] |= self.arrive(c, None),
                    EdgeWrite::Barrier { channel, slot } => {
                        touched[channel] |= self.arrive(channel, Some(slot))
                    }
                }
            }
        }

        let applied = Applied {
            written_keys: self.write_keys(plan, key_writes, &mut touched, reducer)?,
        };

        // Channels not written this step see the step end: ephemeral triggers expire.
        self.updated.clear();
        for (c, &was_touched) in touched.iter().enumerate() {
            if was_touched {
                self.versions[c] = version;
                if self.available(c) {
                    self.updated.push(c);
                }
            } else {
                self.expire(plan, c, version);
            }
        }
        self.sends = sends;

        // Nothing left to trigger: deferred nodes may now run.
        if self
            .updated
            .iter()
            .all(|&c| plan.triggered_by[c].is_empty())
        {
            for c in 0..plan.channels.len() {
                if self.finish(c) {
                    self.versions[c] = version;
                    if self.available(c) {
                        self.updated.push(c);
                    }
                }
            }
        }
        let updated = &self.updated;
        self.consumed.retain(|c| !updated.contains(c));
        self.step += 1;
        Ok(applied)
    }

    /// Channels whose version the last apply moved only by consuming them (see
    /// `consumed`): their version is new, yet they were not updated.
    pub fn consumed_only(&self) -> &[ChannelId] {
        &self.consumed
    }

    /// Records a write to a trigger or barrier channel; true if the channel changed.
    /// Folds each state key's writes of one step into its value (one value for a last-value
    /// key, the reducer for the others), marking the keys written in `touched`; returns
    /// them in key order.
    fn write_keys<R: Reduce<V>>(
        &mut self,
        plan: &Plan,
        key_writes: Vec<Vec<V>>,
        touched: &mut [bool],
        reducer: &mut R,
    ) -> Result<Vec<ChannelId>, ApplyError<R::Error>> {
        let mut written = Vec::new();
        for (key, updates) in key_writes.into_iter().enumerate() {
            if updates.is_empty() {
                continue;
            }
            let ChannelKind::Key(kind) = plan.channels[key].kind else {
                unreachable!("state keys come first in the plan")
            };
            let value = match kind {
                KeyKind::LastValue | KeyKind::Ephemeral => {
                    if updates.len() > 1 {
                        return Err(ApplyError::ConcurrentUpdate { key });
                    }
                    updates.into_iter().next()
                }
                KeyKind::Reducer => Some(
                    reducer
                        .reduce(key, self.values[key].take(), updates)
                        .map_err(ApplyError::Reducer)?,
                ),
            };
            self.values[key] = value;
            touched[key] = true;
            written.push(key);
        }
        Ok(written)
    }

    /// The end of a step that did not write channel `c`: an ephemeral trigger, or an
    /// ephemeral state key, loses its value (a new version, as LangGraph's step bump gives).
    /// Inlined into `apply`'s pass over every channel, where most have nothing to expire:
    /// as a call it cost more than the rest of the pass.
    #[inline(always)]
    fn expire(&mut self, plan: &Plan, c: ChannelId, version: u64) {
        match &mut self.markers[c] {
            Marker::Ephemeral { set } if *set => {
                *set = false;
                self.versions[c] = version;
            }
            Marker::Key
                if self.values[c].is_some()
                    && plan.channels[c].kind == ChannelKind::Key(KeyKind::Ephemeral) =>
            {
                self.values[c] = None;
                self.versions[c] = version;
            }
            _ => {}
        }
    }

    fn arrive(&mut self, channel: ChannelId, slot: Option<usize>) -> bool {
        match &mut self.markers[channel] {
            Marker::Ephemeral { set } => {
                *set = true;
                true
            }
            Marker::AfterFinish { set, finished } => {
                *set = true;
                *finished = false;
                true
            }
            Marker::Barrier { arrived, .. } => {
                let slot = slot.expect("barrier writes name their source");
                !std::mem::replace(&mut arrived[slot], true)
            }
            Marker::Key => unreachable!("edges never write state keys"),
        }
    }

    /// A task read `channel`: complete barriers and finished deferred triggers reset.
    fn consume(&mut self, channel: ChannelId) -> bool {
        match &mut self.markers[channel] {
            Marker::Barrier {
                arrived,
                finished,
                after_finish,
            } if arrived.iter().all(|a| *a) && (!*after_finish || *finished) => {
                arrived.iter_mut().for_each(|a| *a = false);
                *finished = false;
                true
            }
            Marker::AfterFinish { set, finished } if *finished => {
                *set = false;
                *finished = false;
                true
            }
            _ => false,
        }
    }

    fn finish(&mut self, channel: ChannelId) -> bool {
        match &mut self.markers[channel] {
            Marker::AfterFinish {
                set: true,
                finished,
            } if !*finished => {
                *finished = true;
                true
            }
            Marker::Barrier {
                arrived,
                finished,
                after_finish: true,
            } if !*finished && arrived.iter().all(|a| *a) => {
                *finished = true;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{GraphSpec, KeySpec, NodeSpec, END, START};

    /// Appends lists: the `operator.add` of the tests.
    struct Concat;
    impl Reduce<Vec<String>> for Concat {
        type Error = ();
        fn reduce(
            &mut self,
            _key: ChannelId,
            current: Option<Vec<String>>,
            updates: Vec<Vec<String>>,
        ) -> Result<Vec<String>, ()> {
            let mut acc = current.unwrap_or_default();
            for u in updates {
                acc.extend(u);
            }
            Ok(acc)
        }
    }

    fn spec(nodes: &[&str], edges: &[(&str, &str)]) -> GraphSpec {
        GraphSpec {
            keys: vec![
                KeySpec {
                    name: "log".into(),
                    kind: KeyKind::Reducer,
                },
                KeySpec {
                    name: "last".into(),
                    kind: KeyKind::LastValue,
                },
            ],
            nodes: nodes
                .iter()
                .map(|n| NodeSpec {
                    name: n.to_string(),
                    ..Default::default()
                })
                .collect(),
            edges: edges
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    /// Runs every node as "append my name to `log`", routing with `route` after each node.
    /// Returns the names that ran, step by step, and the final log.
    fn run(
        plan: &Plan,
        limit: i64,
        mut route: impl FnMut(&str, &[String]) -> Vec<Write<Vec<String>>>,
    ) -> Result<(Vec<Vec<String>>, Vec<String>), OutOfSteps> {
        let mut state: RunState<Vec<String>> = RunState::new(plan, vec![None, None], limit);
        let mut steps = Vec::new();
        loop {
            let tasks = state.next_tasks(plan)?;
            if tasks.is_empty() {
                break;
            }
            let log = state.value(0).cloned().unwrap_or_default();
            let mut names = Vec::new();
            let results = tasks
                .iter()
                .map(|&task| {
                    let name = plan.nodes[task.node].name.clone();
                    let mut writes = vec![];
                    if task.node != START_NODE {
                        writes.push(Write::Key(0, vec![name.clone()]));
                    }
                    writes.extend(route(&name, &log));
                    names.push(name);
                    TaskWrites { task, writes }
                })
                .collect();
            steps.push(names);
            state.apply(plan, results, &mut Concat).unwrap();
        }
        Ok((steps, state.value(0).cloned().unwrap_or_default()))
    }

    fn no_route(_: &str, _: &[String]) -> Vec<Write<Vec<String>>> {
        vec![]
    }

    /// Runs `plan` to its end, each task writing `writes(node name)`; `after` sees the state
    /// after each step's apply.
    fn apply_each_step(
        plan: &Plan,
        writes: impl Fn(&str) -> Vec<Write<Vec<String>>>,
        mut after: impl FnMut(&RunState<Vec<String>>),
    ) {
        let mut state: RunState<Vec<String>> = RunState::new(plan, vec![None, None], 25);
        loop {
            let tasks = state.next_tasks(plan).unwrap();
            if tasks.is_empty() {
                break;
            }
            let results = tasks
                .iter()
                .map(|&task| TaskWrites {
                    task,
                    writes: writes(&plan.nodes[task.node].name),
                })
                .collect();
            state.apply(plan, results, &mut Concat).unwrap();
            after(&state);
        }
    }

    #[test]
    fn ephemeral_key_is_emptied_by_a_step_that_does_not_write_it() {
        let mut s = spec(&["a", "b"], &[(START, "a"), ("a", "b")]);
        s.keys[1].kind = KeyKind::Ephemeral;
        let plan = Plan::compile(&s).unwrap();
        let mut seen = Vec::new();
        apply_each_step(
            &plan,
            |name| {
                if name == "a" {
                    vec![Write::Key(1, vec!["set".to_string()])]
                } else {
                    vec![]
                }
            },
            |state| seen.push((state.value(1).cloned(), state.channel_version(1))),
        );
        // start; a writes it; b does not (emptied, with a new version).
        assert_eq!(seen[0], (None, 0));
        assert_eq!(seen[1].0, Some(vec!["set".to_string()]));
        assert_eq!(seen[2].0, None);
        assert!(seen[2].1 > seen[1].1);
    }

    #[test]
    fn chain_runs_one_node_per_step() {
        let plan =
            Plan::compile(&spec(&["a", "b"], &[(START, "a"), ("a", "b"), ("b", END)])).unwrap();
        let (steps, log) = run(&plan, 25, no_route).unwrap();
        assert_eq!(steps, vec![vec!["__start__"], vec!["a"], vec!["b"]]);
        assert_eq!(log, vec!["a", "b"]);
    }

    #[test]
    fn recursion_limit_counts_the_start_step() {
        let plan = Plan::compile(&spec(&["a", "b"], &[(START, "a"), ("a", "b")])).unwrap();
        // Steps 0 (start), 1 (a), 2 (b); the empty step 3 is checked against the limit too.
        assert!(run(&plan, 3, no_route).is_ok());
        assert_eq!(run(&plan, 2, no_route).unwrap_err(), OutOfSteps);
    }

    #[test]
    fn fan_out_applies_writes_in_name_order_not_completion_order() {
        let plan =
            Plan::compile(&spec(&["zed", "amy"], &[(START, "zed"), (START, "amy")])).unwrap();
        let (steps, log) = run(&plan, 25, no_route).unwrap();
        assert_eq!(steps[1], vec!["amy", "zed"]);
        assert_eq!(log, vec!["amy", "zed"]);
    }

    #[test]
    fn join_waits_for_every_source() {
        let mut s = spec(
            &["a", "b", "slow", "c"],
            &[(START, "a"), (START, "b"), ("b", "slow")],
        );
        s.waiting_edges
            .push((vec!["a".into(), "slow".into()], "c".into()));
        let plan = Plan::compile(&s).unwrap();
        let (steps, _) = run(&plan, 25, no_route).unwrap();
        assert_eq!(
            steps,
            vec![vec!["__start__"], vec!["a", "b"], vec!["slow"], vec!["c"]]
        );
    }

    #[test]
    fn a_consumed_barrier_is_not_updated() {
        // LangGraph's `updated_channels` leaves out a barrier whose node consumed it: its
        // version moves, yet nothing was written to it.
        let mut s = spec(&["a", "b", "c"], &[(START, "a"), (START, "b")]);
        s.waiting_edges
            .push((vec!["a".into(), "b".into()], "c".into()));
        let plan = Plan::compile(&s).unwrap();
        let barrier = (0..plan.channels.len())
            .find(|&c| plan.channels[c].name.starts_with("join:"))
            .expect("the join's barrier");
        let mut consumed = Vec::new();
        let mut before = 0;
        apply_each_step(
            &plan,
            |_| vec![],
            |state| {
                let now = state.channel_version(barrier);
                consumed.push((now != before, state.consumed_only().contains(&barrier)));
                before = now;
            },
        );
        // start; a and b arrive (written); c runs and consumes it (moved, not updated).
        assert_eq!(consumed, vec![(false, false), (true, false), (true, true)]);
    }

    #[test]
    fn writes_are_invisible_within_a_step() {
        let plan = Plan::compile(&spec(&["a", "b"], &[(START, "a"), (START, "b")])).unwrap();
        let mut seen_logs = Vec::new();
        run(&plan, 25, |name, log| {
            seen_logs.push((name.to_string(), log.to_vec()));
            vec![]
        })
        .unwrap();
        assert!(seen_logs.iter().all(|(_, log)| log.is_empty()));
    }

    #[test]
    fn conditional_loop_and_sends() {
        let plan = Plan::compile(&spec(&["loop", "worker"], &[(START, "loop")])).unwrap();
        let worker = plan.node_id("worker").unwrap();
        let looper = plan.node_id("loop").unwrap();
        let (steps, log) = run(&plan, 25, |name, log| match name {
            "loop" if log.len() < 3 => vec![Write::Goto(looper)],
            "loop" => vec![
                Write::Send(worker, vec!["x".into()]),
                Write::Send(worker, vec!["y".into()]),
            ],
            _ => vec![],
        })
        .unwrap();
        // start, loop while the log is shorter than 3 (three gotos), the loop that sends, workers
        assert_eq!(steps.len(), 6, "{steps:?}");
        assert_eq!(steps[5], vec!["worker", "worker"]);
        assert_eq!(log.iter().filter(|n| *n == "worker").count(), 2);
    }

    #[test]
    fn two_writes_to_a_last_value_key_conflict() {
        let plan = Plan::compile(&spec(&["a", "b"], &[(START, "a"), (START, "b")])).unwrap();
        let mut state = RunState::new(&plan, vec![None, None], 25);
        let start = state.next_tasks(&plan).unwrap();
        let results = start
            .into_iter()
            .map(|task| TaskWrites {
                task,
                writes: vec![],
            })
            .collect();
        state.apply(&plan, results, &mut Concat).unwrap();
        let tasks = state.next_tasks(&plan).unwrap();
        assert_eq!(tasks.len(), 2);
        let results = tasks
            .into_iter()
            .map(|task| TaskWrites {
                task,
                writes: vec![Write::Key(1, vec!["v".to_string()])],
            })
            .collect();
        assert_eq!(
            state.apply(&plan, results, &mut Concat).unwrap_err(),
            ApplyError::ConcurrentUpdate { key: 1 }
        );
    }

    #[test]
    fn deferred_node_runs_after_the_others_finish() {
        let mut s = spec(
            &["a", "long1", "long2", "final"],
            &[
                (START, "a"),
                (START, "long1"),
                ("long1", "long2"),
                ("a", "final"),
                ("long2", "final"),
            ],
        );
        s.nodes[3].defer = true;
        let plan = Plan::compile(&s).unwrap();
        let (steps, _) = run(&plan, 25, no_route).unwrap();
        let last = steps.last().unwrap();
        assert_eq!(last, &vec!["final".to_string()]);
        assert_eq!(
            steps.iter().flatten().filter(|n| *n == "final").count(),
            1,
            "{steps:?}"
        );
    }
}
