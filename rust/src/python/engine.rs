//! Bindings for graph compilation and the superstep state machine.
//!
//! Python values are held as `Py<PyAny>` and never copied. The boundary is crossed once per
//! step for planning (`next_tasks`), once per step for applying every task's writes (`apply`),
//! and once per task to read its input (`read`).

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyIndexError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyAnyMethods, PyDict, PyList, PySet, PyString, PyTuple, PyType};

use crate::plan::{self, BranchSpec, GraphSpec, KeyKind, KeySpec, NodeSpec, Plan, PlanError};
use crate::plan::{ChannelKind, EdgeWrite};
use crate::schedule::{
    ApplyError, Mark, Reduce, RunState, Saved, Task, TaskPath, TaskWrites, Write,
};

create_exception!(
    _core,
    ConcurrentUpdate,
    PyException,
    "Several values were written to a last-value state key in one step (args: key name)."
);
create_exception!(
    _core,
    OutOfSteps,
    PyException,
    "The recursion limit was reached before the graph stopped."
);

fn plan_error(e: PlanError) -> PyErr {
    PyValueError::new_err(e.0)
}

/// `validate_node_name(name, existing)`: `add_node`'s name checks.
#[pyfunction]
fn validate_node_name(name: &str, existing: Vec<String>) -> PyResult<()> {
    let existing: Vec<&str> = existing.iter().map(String::as_str).collect();
    plan::validate_node_name(name, &existing).map_err(plan_error)
}

/// A compiled graph: validated topology plus channel layout.
#[pyclass(frozen, module = "ferrograph._core")]
pub struct GraphPlan {
    pub(crate) plan: Plan,
    /// Interned key names, reused for every state dict built.
    pub(crate) key_names: Vec<Py<PyString>>,
    /// Channel and node names as Python strings (their hashes kept), for the checkpoint's
    /// dicts built every step.
    channel_names: Vec<Py<PyString>>,
    node_names: Vec<Py<PyString>>,
}

#[pymethods]
impl GraphPlan {
    /// Validates the graph (LangGraph's messages on `ValueError`) and compiles it.
    #[new]
    #[pyo3(signature = (keys, nodes, edges, waiting_edges, branches, interrupt_before, interrupt_after, ephemeral_keys=Vec::new()))]
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn new(
        py: Python<'_>,
        keys: Vec<(String, bool)>,
        nodes: Vec<(String, bool, Vec<String>)>,
        edges: Vec<(String, String)>,
        waiting_edges: Vec<(Vec<String>, String)>,
        branches: Vec<(String, String, Option<Vec<String>>)>,
        interrupt_before: Vec<String>,
        interrupt_after: Vec<String>,
        ephemeral_keys: Vec<String>,
    ) -> PyResult<Self> {
        let spec = GraphSpec {
            keys: keys
                .into_iter()
                .map(|(name, reducer)| {
                    let kind = if reducer {
                        KeyKind::Reducer
                    } else if ephemeral_keys.contains(&name) {
                        KeyKind::Ephemeral
                    } else {
                        KeyKind::LastValue
                    };
                    KeySpec { name, kind }
                })
                .collect(),
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
            interrupt_before,
            interrupt_after,
        };
        let plan = Plan::compile(&spec).map_err(plan_error)?;
        let key_names = spec
            .keys
            .iter()
            .map(|k| PyString::intern(py, &k.name).unbind())
            .collect();
        let channel_names = plan
            .channels
            .iter()
            .map(|c| PyString::intern(py, &c.name).unbind())
            .collect();
        let node_names = plan
            .nodes
            .iter()
            .map(|n| PyString::intern(py, &n.name).unbind())
            .collect();
        Ok(GraphPlan {
            plan,
            key_names,
            channel_names,
            node_names,
        })
    }

    /// Node names by node id; id 0 is `__start__`.
    #[getter]
    fn node_names(&self) -> Vec<String> {
        self.plan.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Channel names by channel id; state keys come first.
    #[getter]
    fn channel_names(&self) -> Vec<String> {
        self.plan.channels.iter().map(|c| c.name.clone()).collect()
    }

    /// `langgraph_triggers` of a node's pull tasks.
    fn trigger_names<'py>(&self, py: Python<'py>, node: usize) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.node(node)?.trigger_names)
    }

    fn node_id(&self, name: &str) -> Option<usize> {
        self.plan.node_id(name)
    }

    /// What a node writes every time it completes (its static edges), as LangGraph records
    /// them among the task's writes: `(channel, None)` for a trigger, `(channel, node)` for
    /// a barrier.
    fn static_writes(&self, node: usize) -> PyResult<Vec<(String, Option<String>)>> {
        let plan = &self.plan;
        let name = &self.node(node)?.name;
        Ok(self
            .node(node)?
            .edge_writes
            .iter()
            .map(|edge| match *edge {
                EdgeWrite::Trigger(c) => (plan.channels[c].name.clone(), None),
                EdgeWrite::Barrier { channel, .. } => {
                    (plan.channels[channel].name.clone(), Some(name.clone()))
                }
            })
            .collect())
    }

    fn interrupts_before(&self, node: usize) -> PyResult<bool> {
        Ok(self.node(node)?.interrupt_before)
    }

    fn interrupts_after(&self, node: usize) -> PyResult<bool> {
        Ok(self.node(node)?.interrupt_after)
    }
}

impl GraphPlan {
    fn node(&self, node: usize) -> PyResult<&crate::plan::PlanNode> {
        self.plan
            .nodes
            .get(node)
            .ok_or_else(|| PyIndexError::new_err(format!("no node {node} in this graph")))
    }
}

/// Calls the Python reducers of a step's reducer keys.
pub(crate) struct PyReducers<'a, 'py> {
    pub(crate) py: Python<'py>,
    pub(crate) reducers: &'a [Option<Py<PyAny>>],
}

impl Reduce<Py<PyAny>> for PyReducers<'_, '_> {
    type Error = PyErr;

    fn reduce(
        &mut self,
        key: usize,
        current: Option<Py<PyAny>>,
        updates: Vec<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let reducer = self.reducers[key]
            .as_ref()
            .expect("reducer keys are given a reducer")
            .bind(self.py);
        let py = self.py;
        // A `DeltaChannel` key (LangGraph's batch reducer): the step's writes in one call.
        static DELTA_REDUCER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        if reducer.get_type().is(DELTA_REDUCER.import(
            py,
            "ferrograph.pregel._delta",
            "DeltaReducer",
        )?) {
            let updates = PyList::new(py, updates)?;
            return Ok(reducer
                .call_method1(intern!(py, "fold"), (current, updates))?
                .unbind());
        }
        let mut updates = updates.into_iter();
        // An empty key takes its first update as is, as LangGraph's reducer channels do.
        let mut acc = match current {
            Some(value) => value,
            None => {
                let first = updates.next().expect("reduce is called with updates");
                overwritten_value(py, &first)?.unwrap_or(first)
            }
        };
        // `Overwrite(value)` replaces the value; the step's other updates are then dropped.
        let mut overwritten = false;
        for update in updates {
            if let Some(value) = overwritten_value(py, &update)? {
                if overwritten {
                    let errors = py.import(intern!(py, "ferrograph.errors"))?;
                    return Err(PyErr::from_value(
                        errors.call_method0(intern!(py, "overwritten_twice"))?,
                    ));
                }
                acc = value;
                overwritten = true;
            } else if !overwritten {
                acc = reducer.call1((acc, update))?.unbind();
            }
        }
        Ok(acc)
    }
}

/// The value of an `Overwrite` (ours, LangGraph's own class, or the dict forms LangGraph also
/// takes: `{"__overwrite__": v}`, `{"type": "__overwrite__", "value": v}`); None for any other
/// value.
fn overwritten_value(py: Python<'_>, value: &Py<PyAny>) -> PyResult<Option<Py<PyAny>>> {
    static OVERWRITE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let value = value.bind(py);
    if let Ok(dict) = value.cast::<PyDict>() {
        if dict.len() == 1 {
            if let Some(v) = dict.get_item(intern!(py, "__overwrite__"))? {
                return Ok(Some(v.unbind()));
            }
        }
        if let Some(kind) = dict.get_item(intern!(py, "type"))? {
            if kind.eq(intern!(py, "__overwrite__"))? {
                if let Some(v) = dict.get_item(intern!(py, "value"))? {
                    return Ok(Some(v.unbind()));
                }
            }
        }
        return Ok(None);
    }
    let overwrite = OVERWRITE.import(py, "ferrograph.types", "Overwrite")?;
    if value.is_instance(overwrite)? {
        return Ok(Some(value.getattr(intern!(py, "value"))?.unbind()));
    }
    // LangGraph's (from a graph LangGraph built, run through `ferrograph.adapt`), by name:
    // ferrograph does not import LangGraph.
    let kind = value.get_type();
    if kind.name()?.to_cow()? == "Overwrite" && kind.module()?.to_cow()? == "langgraph.types" {
        return Ok(Some(value.getattr(intern!(py, "value"))?.unbind()));
    }
    Ok(None)
}

/// One task's writes as handed to [`Run::apply`]: `(task_index, [(kind, target, value)])`.
type PyTaskWrites = (usize, Vec<(u8, usize, Py<PyAny>)>);

/// Write kinds in the tuples handed to [`Run::apply`].
pub(crate) const WRITE_KEY: u8 = 0;
pub(crate) const WRITE_GOTO: u8 = 1;
pub(crate) const WRITE_SEND: u8 = 2;
/// The task's node failed and its error handler's writes stand in (see `Write::Handled`).
pub(crate) const WRITE_HANDLED: u8 = 3;

/// The state of one run of a [`GraphPlan`].
#[pyclass(module = "ferrograph._core")]
pub struct Run {
    plan: Py<GraphPlan>,
    pub(super) state: RunState<Py<PyAny>>,
    pub(super) reducers: Vec<Option<Py<PyAny>>>,
    /// The tasks returned by the last `next_tasks`, addressed by index in `apply`.
    pub(super) tasks: Vec<Task>,
    /// What the last `checkpoint_changes` reported (None: nothing yet).
    reported: Option<Reported>,
}

/// The run as `checkpoint_changes` last reported it, to report only what changed since.
struct Reported {
    versions: Vec<u64>,
    marks: Vec<Mark>,
    seen: Vec<Vec<u64>>,
}

/// One change of the run since `Reported`, as a checkpoint records it (see
/// [`Run::walk_changes`]).
enum Change<'py, 'a> {
    /// A channel's version moved (the saver's name for it).
    Version(&'a Py<PyString>, Bound<'py, PyAny>),
    /// A channel's value to record: its value now (None: gone); `version_changed` whether
    /// its version moved by an update (a channel's mark may change without it, and a
    /// barrier's version moves when its node consumes it, which LangGraph does not count as
    /// an update).
    Value {
        name: &'a Py<PyString>,
        /// The channel's id (names sort as ids do not).
        channel: usize,
        value: Option<Bound<'py, PyAny>>,
        key: bool,
        version_changed: bool,
    },
    /// A node's row of `versions_seen` changed (empty: the node has none now).
    Seen(&'a Py<PyString>, Bound<'py, PyDict>),
}

impl Run {
    /// Walks what changed since `reported` (updated to now), channels in plan order then
    /// nodes, handing each change to `on`: the one walk behind `checkpoint_changes` and
    /// `checkpoint_into`.
    fn walk_changes<'py, 'a>(
        &'a self,
        py: Python<'py>,
        reported: &mut Reported,
        version_names: &Bound<'py, PyList>,
        start_value: &Py<PyAny>,
        mut on: impl FnMut(Change<'py, 'a>) -> PyResult<()>,
    ) -> PyResult<()> {
        let graph = self.plan.get();
        let plan = &graph.plan;
        let state = &self.state;
        let name_of = |v: u64| -> PyResult<Bound<'py, PyAny>> {
            version_names
                .get_item(v as usize)
                .map_err(|_| PyValueError::new_err(format!("no name for channel version {v}")))
        };
        let mut sources: Option<Vec<Vec<String>>> = None;
        let start = plan.nodes[crate::plan::START_NODE].entry;
        for (c, channel) in plan.channels.iter().enumerate() {
            let version = state.channel_version(c);
            if version == 0 {
                continue;
            }
            let name = &graph.channel_names[c];
            let version_changed = version != reported.versions[c];
            if version_changed {
                on(Change::Version(name, name_of(version)?))?;
                reported.versions[c] = version;
            }
            if c < plan.keys {
                if version_changed {
                    on(Change::Value {
                        name,
                        channel: c,
                        value: state.value(c).map(|v| v.bind(py).clone()),
                        key: true,
                        version_changed,
                    })?;
                }
                continue;
            }
            let mark = state.mark(c);
            if !version_changed && mark == reported.marks[c] && !(c == start && mark == Mark::Set) {
                continue;
            }
            let value = mark_value(py, &mark, &channel.kind, c == start, start_value, || {
                sources.get_or_insert_with(|| barrier_sources(plan))[c].clone()
            })?;
            on(Change::Value {
                name,
                channel: c,
                value,
                key: false,
                version_changed: version_changed && !state.consumed_only().contains(&c),
            })?;
            reported.marks[c] = mark;
        }
        for (n, node) in plan.nodes.iter().enumerate() {
            let now = state.seen_versions(n);
            if reported.seen[n].as_slice() == now {
                continue;
            }
            let node_seen = PyDict::new(py);
            for (&c, &v) in node.triggers.iter().zip(now) {
                if v != 0 {
                    node_seen.set_item(&graph.channel_names[c], name_of(v)?)?;
                }
            }
            on(Change::Seen(&graph.node_names[n], node_seen))?;
            reported.seen[n].clear();
            reported.seen[n].extend_from_slice(now);
        }
        Ok(())
    }

    /// The `Send`s the next step runs, as `[(node name, arg), ...]`.
    fn sends_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let plan = &self.plan.get().plan;
        let sends = PyList::empty(py);
        for (node, arg) in self.state.sends() {
            sends.append((plan.nodes[*node].name.as_str(), arg.bind(py)))?;
        }
        Ok(sends)
    }
}

#[pymethods]
impl Run {
    /// `reducers[k]` folds writes to key `k` (None: last value); `initial[k]` is its start value.
    #[new]
    fn new(
        plan: Py<GraphPlan>,
        reducers: Vec<Option<Py<PyAny>>>,
        initial: Vec<Option<Py<PyAny>>>,
        recursion_limit: i64,
    ) -> PyResult<Self> {
        let keys = plan.get().plan.keys;
        if reducers.len() != keys || initial.len() != keys {
            return Err(PyValueError::new_err(format!(
                "expected {keys} reducers and initial values"
            )));
        }
        let state = RunState::new(&plan.get().plan, initial, recursion_limit);
        Ok(Run {
            plan,
            state,
            reducers,
            tasks: Vec::new(),
            reported: None,
        })
    }

    #[getter]
    fn step(&self) -> i64 {
        self.state.step()
    }

    /// The tasks of the current step as `(node_id, push_index or None, send_arg or None)`;
    /// raises `OutOfSteps` past the recursion limit.
    fn next_tasks<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let plan = &self.plan.get().plan;
        self.tasks = self
            .state
            .next_tasks(plan)
            .map_err(|_| OutOfSteps::new_err(()))?;
        planned_items(py, &self.state, &self.tasks)
    }

    /// Applies the writes of the current step's tasks: `results` holds
    /// `(task_index, [(kind, target, value), ...])` with kind 0 = state key write,
    /// 1 = goto node, 2 = send to node. Returns the ids of the keys written.
    fn apply(&mut self, py: Python<'_>, results: Vec<PyTaskWrites>) -> PyResult<Vec<usize>> {
        let plan_ref = self.plan.get();
        let plan = &plan_ref.plan;
        let mut task_writes = Vec::with_capacity(results.len());
        for (index, writes) in results {
            let task = *self
                .tasks
                .get(index)
                .ok_or_else(|| PyValueError::new_err(format!("no task {index} in this step")))?;
            let writes = writes
                .into_iter()
                .map(|(kind, target, value)| engine_write(plan, kind, target, value))
                .collect::<PyResult<Vec<_>>>()?;
            task_writes.push(TaskWrites { task, writes });
        }
        let mut reducers = PyReducers {
            py,
            reducers: &self.reducers,
        };
        self.state
            .apply(plan, task_writes, &mut reducers)
            .map(|applied| applied.written_keys)
            .map_err(|e| apply_error(py, plan_ref, e))
    }

    /// The names of the channels whose version the last step moved only by consuming them
    /// (a barrier whose node ran): not among LangGraph's `updated_channels`.
    #[getter]
    fn consumed_channels(&self) -> Vec<String> {
        let plan = &self.plan.get().plan;
        self.state
            .consumed_only()
            .iter()
            .map(|&c| plan.channels[c].name.clone())
            .collect()
    }

    /// Each channel's version (0: never written), by channel id.
    #[getter]
    fn channel_versions(&self) -> Vec<u64> {
        let channels = self.plan.get().plan.channels.len();
        (0..channels)
            .map(|c| self.state.channel_version(c))
            .collect()
    }

    /// The newest version given to a channel (versions are 1, 2, ... in apply order).
    #[getter]
    fn latest_version(&self) -> u64 {
        self.state.latest_version()
    }

    /// What changed in the run as a checkpoint records it (LangGraph's terms) since the last
    /// call, or all of it on the first call or with `reset`:
    /// `(values, removed, versions, seen, sends)`: `values` the changed channel values
    /// (`{name: value}`; `start_value` is what the start channel holds when set, the run's
    /// input), `removed` the names of channels whose value is gone, `versions` the changed
    /// channel versions (`{name: version_names[v]}`, the saver's names), `seen` the changed
    /// rows of `versions_seen` (`{node: {channel: version name}}`, a new dict per row; an
    /// empty row: the node is to be dropped), and `sends` as `[(node name, arg), ...]`.
    fn checkpoint_changes<'py>(
        &mut self,
        py: Python<'py>,
        version_names: Bound<'py, PyList>,
        start_value: Py<PyAny>,
        reset: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let plan = &self.plan.get().plan;
        if reset {
            self.reported = None;
        }
        let channels = plan.channels.len();
        let mut reported = self.reported.take().unwrap_or_else(|| Reported {
            versions: vec![0; channels],
            marks: vec![Mark::Unset; channels],
            seen: plan
                .nodes
                .iter()
                .map(|n| vec![0; n.triggers.len()])
                .collect(),
        });
        let values = PyDict::new(py);
        let removed = PyList::empty(py);
        let versions = PyDict::new(py);
        let seen = PyDict::new(py);
        self.walk_changes(
            py,
            &mut reported,
            &version_names,
            &start_value,
            |change| match change {
                Change::Version(name, named) => versions.set_item(name, named),
                Change::Value {
                    name,
                    value: Some(value),
                    ..
                } => values.set_item(name, value),
                Change::Value { name, .. } => removed.append(name),
                Change::Seen(node, row) => seen.set_item(node, row),
            },
        )?;
        self.reported = Some(reported);
        let sends = self.sends_list(py)?;
        PyTuple::new(
            py,
            [
                values.into_any(),
                removed.into_any(),
                versions.into_any(),
                seen.into_any(),
                sends.into_any(),
            ],
        )
    }

    /// `checkpoint_changes` since the last call (not the first), merged into the kept dicts
    /// of the newest checkpoint: `values` (`channel_values`), `versions`
    /// (`channel_versions`) and `seen` (`versions_seen`) are updated in place, and
    /// `(changed, updated, sends)` returned: `changed` the channel versions that changed
    /// (`{name: version name}`), `updated` the sorted names of changed channels that hold a
    /// value now, less those only consumed (LangGraph's `updated_channels`), `sends` as
    /// `checkpoint_changes` gives them.
    /// The state keys in `untracked` (LangGraph's `UntrackedValue`) get versions, never values.
    #[pyo3(signature = (version_names, start_value, values, versions, seen, untracked=None))]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn checkpoint_into<'py>(
        &mut self,
        py: Python<'py>,
        version_names: Bound<'py, PyList>,
        start_value: Py<PyAny>,
        values: Bound<'py, PyDict>,
        versions: Bound<'py, PyDict>,
        seen: Bound<'py, PyDict>,
        untracked: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut reported = self
            .reported
            .take()
            .ok_or_else(|| PyValueError::new_err("no checkpoint reported yet"))?;
        let changed = PyDict::new(py);
        let mut updated: Vec<(usize, &Py<PyString>)> = Vec::new();
        self.walk_changes(py, &mut reported, &version_names, &start_value, |change| {
            match change {
                Change::Version(name, named) => {
                    versions.set_item(name, &named)?;
                    changed.set_item(name, named)?;
                }
                Change::Value {
                    name,
                    channel,
                    value: Some(value),
                    key,
                    version_changed,
                } => {
                    let skip = key
                        && match &untracked {
                            Some(keys) => keys.contains(name)?,
                            None => false,
                        };
                    if !skip {
                        values.set_item(name, value)?;
                        if version_changed {
                            updated.push((channel, name));
                        }
                    }
                }
                Change::Value { name, .. } => {
                    if values.contains(name)? {
                        values.del_item(name)?;
                    }
                }
                Change::Seen(node, row) => {
                    if !row.is_empty() {
                        seen.set_item(node, row)?;
                    } else if seen.contains(node)? {
                        seen.del_item(node)?;
                    }
                }
            }
            Ok(())
        })?;
        let channels = &self.plan.get().plan.channels;
        updated.sort_unstable_by(|a, b| channels[a.0].name.cmp(&channels[b.0].name));
        let updated = PyList::new(py, updated.into_iter().map(|(_, name)| name))?;
        self.reported = Some(reported);
        let sends = self.sends_list(py)?;
        PyTuple::new(
            py,
            [changed.into_any(), updated.into_any(), sends.into_any()],
        )
    }

    /// A run continuing from a checkpoint saved at `step`: `channel_values` as
    /// `checkpoint()` returns them, versions as integers (`channel_versions[name]`,
    /// `versions_seen[node][channel]`), `sends` as `[(node id, arg), ...]`. Channels and
    /// nodes the plan does not have are ignored. With `rank`, versions are the saver's names
    /// and `rank[name]` is each one's integer.
    #[staticmethod]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (plan, reducers, channel_values, channel_versions, versions_seen, sends, step, recursion_limit, rank=None))]
    fn restore(
        plan: Py<GraphPlan>,
        reducers: Vec<Option<Py<PyAny>>>,
        channel_values: Bound<'_, PyDict>,
        channel_versions: Bound<'_, PyDict>,
        versions_seen: Bound<'_, PyDict>,
        sends: Vec<(usize, Py<PyAny>)>,
        step: i64,
        recursion_limit: i64,
        rank: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let version = |v: Bound<'_, PyAny>| -> PyResult<u64> {
            match &rank {
                Some(rank) => match rank.get_item(v)? {
                    Some(r) => r.extract::<u64>(),
                    None => Err(PyValueError::new_err("a version with no rank")),
                },
                None => v.extract::<u64>(),
            }
        };
        let p = &plan.get().plan;
        if reducers.len() != p.keys {
            return Err(PyValueError::new_err(format!(
                "expected {} reducers",
                p.keys
            )));
        }
        let sources = barrier_sources(p);
        let mut values = Vec::with_capacity(p.keys);
        let mut marks = Vec::with_capacity(p.channels.len());
        let mut versions = Vec::with_capacity(p.channels.len());
        for (c, channel) in p.channels.iter().enumerate() {
            let name = channel.name.as_str();
            versions.push(match channel_versions.get_item(name)? {
                Some(v) => version(v)?,
                None => 0,
            });
            let value = channel_values.get_item(name)?;
            if c < p.keys {
                values.push(value.map(Bound::unbind));
                marks.push(Mark::Unset);
                continue;
            }
            marks.push(match (&channel.kind, value) {
                (_, None) => Mark::Unset,
                (ChannelKind::Ephemeral, Some(_)) => Mark::Set,
                (ChannelKind::AfterFinish, Some(v)) => Mark::AfterFinish {
                    finished: v.get_item(1)?.is_truthy()?,
                },
                (ChannelKind::Barrier { after_finish, .. }, Some(v)) => {
                    let (names, finished) = if *after_finish {
                        (v.get_item(0)?, v.get_item(1)?.is_truthy()?)
                    } else {
                        (v, false)
                    };
                    let arrived = sources[c]
                        .iter()
                        .map(|s| names.contains(s.as_str()))
                        .collect::<PyResult<Vec<bool>>>()?;
                    Mark::Barrier { arrived, finished }
                }
                (ChannelKind::Key(_), Some(_)) => unreachable!("state keys come first"),
            });
        }
        let mut seen = Vec::with_capacity(p.nodes.len());
        for node in &p.nodes {
            let node_seen = versions_seen.get_item(node.name.as_str())?;
            let mut row = Vec::with_capacity(node.triggers.len());
            for &c in &node.triggers {
                let v = match &node_seen {
                    Some(d) => match d.get_item(p.channels[c].name.as_str()) {
                        Ok(v) => version(v)?,
                        Err(_) => 0,
                    },
                    None => 0,
                };
                row.push(v);
            }
            seen.push(row);
        }
        for (node, _) in &sends {
            if *node >= p.nodes.len() {
                return Err(PyValueError::new_err(format!("no node {node}")));
            }
        }
        let saved = Saved {
            values,
            marks,
            versions,
            seen,
            sends,
            step,
        };
        let state = RunState::restore(p, saved, recursion_limit);
        Ok(Run {
            plan,
            state,
            reducers,
            tasks: Vec::new(),
            reported: None,
        })
    }

    /// Moves on to the next step number without running a step (a fork checkpoint takes
    /// the number of the step it was restored at).
    fn advance_step(&mut self) {
        self.state.advance_step();
    }

    /// Writes a new input into a restored run (see `RunState::write_input`).
    fn write_input(&mut self) {
        self.state.write_input(&self.plan.get().plan);
    }

    /// Applies writes made from outside a step (`update_state`, a resume's `Command`), as
    /// `apply` takes one task's; with `as_node`, that node's static edges fire too. Returns
    /// the ids of the keys written.
    #[pyo3(signature = (writes, as_node=None))]
    fn apply_external(
        &mut self,
        py: Python<'_>,
        writes: Vec<(u8, usize, Py<PyAny>)>,
        as_node: Option<usize>,
    ) -> PyResult<Vec<usize>> {
        let plan_ref = self.plan.get();
        let plan = &plan_ref.plan;
        if as_node.is_some_and(|n| n >= plan.nodes.len()) {
            return Err(PyValueError::new_err("no such node"));
        }
        let writes = writes
            .into_iter()
            .map(|(kind, target, value)| engine_write(plan, kind, target, value))
            .collect::<PyResult<Vec<_>>>()?;
        let mut reducers = PyReducers {
            py,
            reducers: &self.reducers,
        };
        self.state
            .apply_external(plan, writes, as_node, &mut reducers)
            .map_err(|e| apply_error(py, plan_ref, e))
    }

    /// The current values of `keys` (all keys when None) as a dict; empty keys are left out.
    #[pyo3(signature = (keys=None))]
    fn read<'py>(&self, py: Python<'py>, keys: Option<Vec<usize>>) -> PyResult<Bound<'py, PyDict>> {
        let plan = self.plan.get();
        match keys {
            Some(keys) => read_state(py, plan, &self.state, &keys),
            None => read_state(py, plan, &self.state, 0..plan.key_names.len()),
        }
    }
}

/// What a checkpoint holds for a trigger channel in state `mark` (None: nothing, it is
/// unset), in LangGraph's terms: the run's input for the start channel, None for a set
/// trigger, `(None, finished)` for a deferred node's, the set of arrived sources (with
/// `finished` when it waits for the run's end) for a barrier. `sources` gives a barrier's
/// source names in slot order.
fn mark_value<'py>(
    py: Python<'py>,
    mark: &Mark,
    kind: &ChannelKind,
    is_start: bool,
    start_value: &Py<PyAny>,
    sources: impl FnOnce() -> Vec<String>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(Some(match mark {
        Mark::Unset => return Ok(None),
        Mark::Set if is_start => start_value.bind(py).clone(),
        Mark::Set => py.None().into_bound(py),
        Mark::AfterFinish { finished } => (py.None(), *finished).into_pyobject(py)?.into_any(),
        Mark::Barrier { arrived, finished } => {
            let sources = sources();
            let names = PySet::empty(py)?;
            for (slot, &did) in arrived.iter().enumerate() {
                if did {
                    names.add(sources[slot].as_str())?;
                }
            }
            match kind {
                ChannelKind::Barrier {
                    after_finish: true, ..
                } => (names, *finished).into_pyobject(py)?.into_any(),
                _ => names.into_any(),
            }
        }
    }))
}

/// Per barrier channel, the names of its sources in slot order (empty for other channels).
fn barrier_sources(plan: &Plan) -> Vec<Vec<String>> {
    let mut sources: Vec<Vec<String>> = plan
        .channels
        .iter()
        .map(|c| match c.kind {
            ChannelKind::Barrier { sources, .. } => vec![String::new(); sources],
            _ => Vec::new(),
        })
        .collect();
    for node in &plan.nodes {
        for edge in &node.edge_writes {
            if let EdgeWrite::Barrier { channel, slot } = *edge {
                sources[channel][slot] = node.name.clone();
            }
        }
    }
    sources
}

/// The values of `keys` in `state` as a dict keyed by name; empty keys are left out.
pub(crate) fn read_state<'py>(
    py: Python<'py>,
    plan: &GraphPlan,
    state: &RunState<Py<PyAny>>,
    keys: impl IntoIterator<Item = impl std::borrow::Borrow<usize>>,
) -> PyResult<Bound<'py, PyDict>> {
    let names = &plan.key_names;
    let dict = PyDict::new(py);
    for key in keys {
        let key = *key.borrow();
        if let Some(value) = names.get(key).and(state.value(key)) {
            dict.set_item(names[key].bind(py), value.bind(py))?;
        }
    }
    Ok(dict)
}

/// A step's planned `tasks` as `Run.next_tasks` describes them: `(node_id, push_index or
/// None, send_arg or None)`.
pub(super) fn planned_items<'py>(
    py: Python<'py>,
    state: &RunState<Py<PyAny>>,
    tasks: &[Task],
) -> PyResult<Bound<'py, PyList>> {
    let items = tasks.iter().map(|task| match task.path {
        TaskPath::Pull(_) => (task.node, None, None),
        TaskPath::Push(index) => (
            task.node,
            Some(index),
            Some(state.send_arg(index).clone_ref(py)),
        ),
    });
    PyList::new(py, items)
}

/// One write as the Python side describes it, `(kind, target, value)`, checked against `plan`.
pub(crate) fn engine_write(
    plan: &Plan,
    kind: u8,
    target: usize,
    value: Py<PyAny>,
) -> PyResult<Write<Py<PyAny>>> {
    match kind {
        WRITE_KEY if target < plan.keys => Ok(Write::Key(target, value)),
        WRITE_GOTO if target < plan.nodes.len() => Ok(Write::Goto(target)),
        WRITE_SEND if target < plan.nodes.len() => Ok(Write::Send(target, value)),
        WRITE_HANDLED => Ok(Write::Handled),
        _ => Err(PyValueError::new_err(format!(
            "invalid write ({kind}, {target})"
        ))),
    }
}

/// A failed apply as the Python exception the run loop translates.
pub(crate) fn apply_error(py: Python<'_>, plan: &GraphPlan, e: ApplyError<PyErr>) -> PyErr {
    match e {
        ApplyError::ConcurrentUpdate { key } => {
            ConcurrentUpdate::new_err(plan.key_names[key].clone_ref(py))
        }
        ApplyError::NotAKey { channel } => {
            PyValueError::new_err(format!("channel {channel} is not a state key"))
        }
        ApplyError::Reducer(e) => e,
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<GraphPlan>()?;
    m.add_class::<Run>()?;
    m.add_function(wrap_pyfunction!(validate_node_name, m)?)?;
    m.add("ConcurrentUpdate", m.py().get_type::<ConcurrentUpdate>())?;
    m.add("OutOfSteps", m.py().get_type::<OutOfSteps>())?;
    Ok(())
}
