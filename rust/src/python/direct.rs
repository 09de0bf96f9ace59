//! The direct driver: a whole `invoke` run in Rust, which calls the nodes itself.
//!
//! `invoke` streams nothing, so a run needs no channel, no task objects and no generator: per
//! superstep the driver plans the tasks ([`RunState::next_tasks`]), builds each task's input
//! and config (LangGraph's `langgraph_*` metadata, a fresh task id), calls the node with the
//! config set in langchain's context variable, turns a returned dict into writes, and applies
//! the step ([`RunState::apply`]). Anything less common goes back to the Python helpers the
//! streaming loop uses too (a node that is a runnable, is async, has a retry policy or asks for
//! `config`; a return value that is not a dict; conditional edges; input that is not a dict),
//! so both drivers share one definition of those behaviours.
//!
//! A step with several tasks is shared out by the policy the streaming loop uses too
//! ([`super::crew`]): the calling thread runs tasks itself, and workers are recruited only once
//! the step proves slow (the scout, polling, finds it still running), each worker bringing in
//! two more.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::crew::{Crew, CrewWork, StepCrew};
use super::engine::{apply_error, engine_write, read_state, GraphPlan, OutOfSteps, PyReducers};
use super::task_config::{prime_configurable, task_config, ConfigVar, NodeConfig, RunConfig};
use super::thread_save::ThreadSave;
use crate::plan::START_NODE;
use crate::schedule::{RunState, Task, TaskPath, TaskWrites, Write};
use crate::task_id;

pub(super) type Writes = Vec<Write<Py<PyAny>>>;

/// What a task's node gave: its writes and, when the run streams `updates`, its payload
/// there (`update_payload`'s: None when it wrote no state key).
pub(super) struct Finished {
    pub(super) writes: Writes,
    pub(super) update: Option<Py<PyAny>>,
}

/// How long the calling thread waits for workers before looking at signals (Ctrl-C is only
/// seen between waits).
pub(super) const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// How the driver calls a node.
enum NodeCall {
    /// A plain function of the state: called as `f(input)` inside the task's config.
    Plain(Py<PyAny>),
    /// Anything else: `NodeRunner.call(input, config)` does it (and sets the config itself).
    Runner(Py<PyAny>),
}

pub(super) struct DirectNode {
    pub(super) name: Py<PyString>,
    /// None for the start node, which maps the run's input instead.
    call: Option<NodeCall>,
    input_ids: Vec<usize>,
    /// Turns the input dict into the node's input schema object (Pydantic, dataclass).
    coerce: Option<Py<PyAny>>,
    /// What its tasks' configs are made from.
    config: NodeConfig,
    /// The node has conditional edges, evaluated by `branch_writes`.
    branches: bool,
}

/// A compiled graph as the direct driver runs it (built once per graph).
#[pyclass(frozen, module = "ferrograph._core")]
pub struct DirectGraph {
    pub(super) plan: Py<GraphPlan>,
    pub(super) nodes: Vec<DirectNode>,
    /// State key name -> key id.
    key_ids: Py<PyDict>,
    /// By key id: whether the graph's input schema has the key.
    input_keys: Vec<bool>,
    pub(super) reducers: Vec<Option<Py<PyAny>>>,
    pub(super) hooks: Hooks,
}

/// The Python side's helpers (see the module doc), passed as a dict keyed by field name:
/// module functions called with the graph the run is given, so the graph and this object form
/// no cycle.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(super) struct Hooks {
    /// langchain-core's `var_child_runnable_config`.
    context_var: ConfigVar,
    /// `pregel._write.map_input(graph, value, strict)`.
    map_input: Py<PyAny>,
    /// `pregel._write.output_writes(graph, name, output)` -> `(writes, pairs)`.
    output_writes: Py<PyAny>,
    /// `_direct.update_payload(graph, pairs)`: a task's `updates` payload from the `(key,
    /// value)` state writes `output_writes` made of its result.
    update_payload: Py<PyAny>,
    /// `pregel._write.branch_writes(graph, name, config, state, writes, result)` -> writes.
    branch_writes: Py<PyAny>,
    /// `note_task_error(error, name, task_id)` -> the error the task reports.
    note_error: Py<PyAny>,
    /// `own_command(error)`: a node's failure that is a `ParentCommand` from a graph the node
    /// called, as the node's own `Command`; re-raises any other error.
    pub(super) own_command: Py<PyAny>,
    /// `note_preparing_error(error, name, path)`: for a failure reading a task's input.
    note_preparing_error: Py<PyAny>,
    /// `paused(error, into) -> bool`: whether a node's failure is a pause at `interrupt()`
    /// (its questions appended to the list `into`): the task then has no writes and the
    /// run stops once the step is applied.
    paused: Py<PyAny>,
    /// The worker pool's `submit(fn)`.
    pub(super) submit: Py<PyAny>,
    /// The scout's `watch(fn)`.
    watch: Py<PyAny>,
    /// `raise_drained(control)`: raises `GraphDrained` for a run whose `RunControl` was asked
    /// to drain.
    pub(super) drained: Py<PyAny>,
    /// `ferrograph.runtime.RunControl`: a control of exactly this class is asked whether to
    /// drain by reading its `_drain_reason` slot (a C-level read) rather than its
    /// `drain_requested` property (a Python call per step).
    pub(super) run_control: Py<PyAny>,
    /// `pregel._write.PUSHED_WRITES`: per task id, the writes its node made with
    /// `push_message`, applied before what it returned.
    pushed_writes: Py<PyDict>,
}

impl Hooks {
    /// Whether `control` is a `RunControl` itself (not a subclass, which may answer
    /// `drain_requested` its own way): its drain state is then read from its slot (see
    /// [`Hooks::check_drain`]).
    pub(super) fn plain_control(&self, control: Option<&Bound<'_, PyAny>>) -> bool {
        control.is_some_and(|c| c.get_type().is(self.run_control.bind(c.py())))
    }

    /// Whether the run was asked to drain (stop after this step); the `drained` hook is told
    /// when it was. A `RunControl` itself (`plain`, not a subclass, which may answer
    /// `drain_requested` its own way) is read without the property call: the property is
    /// `_drain_reason is not None`.
    pub(super) fn check_drain(&self, control: &Bound<'_, PyAny>, plain: bool) -> PyResult<()> {
        let py = control.py();
        let drained = if plain {
            !control.getattr(intern!(py, "_drain_reason"))?.is_none()
        } else {
            control
                .getattr(intern!(py, "drain_requested"))?
                .is_truthy()?
        };
        if drained {
            self.drained.call1(py, (control,))?;
        }
        Ok(())
    }
}

/// A node as the Python side describes it to [`DirectGraph::new`].
type NodeArgs = (
    Option<Py<PyAny>>,
    bool,
    Vec<usize>,
    Option<Py<PyAny>>,
    Py<PyDict>,
    Py<PyDict>,
    bool,
);

/// What is fixed for one run: the config every task's config is copied from.
pub(super) struct RunArgs<'py> {
    pub(super) input: Bound<'py, PyAny>,
    /// Who the run is for: the graph and how its input is checked.
    pub(super) caller: Caller,
    pub(super) config: RunConfig<'py>,
}

/// One task, ready to run: what the node is called with.
pub(super) struct Prepared {
    pub(super) task: Task,
    pub(super) id: Py<PyString>,
    pub(super) input: Py<PyAny>,
    /// None for the start node without conditional edges (no code of the user's sees it).
    pub(super) config: Option<Py<PyDict>>,
    /// For nodes with conditional edges: the state at the step's start.
    state: Option<Py<PyDict>>,
}

#[pymethods]
impl DirectGraph {
    #[new]
    #[pyo3(signature = (plan, nodes, key_ids, input_keys, reducers, hooks))]
    fn new(
        py: Python<'_>,
        plan: Py<GraphPlan>,
        nodes: Vec<NodeArgs>,
        key_ids: Py<PyDict>,
        input_keys: Vec<bool>,
        reducers: Vec<Option<Py<PyAny>>>,
        hooks: Hooks,
    ) -> PyResult<Self> {
        let compiled = plan.get();
        if nodes.len() != compiled.plan.nodes.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "expected {} nodes",
                compiled.plan.nodes.len()
            )));
        }
        let nodes = nodes
            .into_iter()
            .zip(&compiled.plan.nodes)
            .map(
                |(
                    (call, plain, input_ids, coerce, pull_metadata, push_metadata, branches),
                    node,
                )| {
                    Ok(DirectNode {
                        name: PyString::intern(py, &node.name).unbind(),
                        call: call.map(|f| {
                            if plain {
                                NodeCall::Plain(f)
                            } else {
                                NodeCall::Runner(f)
                            }
                        }),
                        input_ids,
                        coerce,
                        config: NodeConfig::new(
                            py,
                            &node.name,
                            pull_metadata.bind(py),
                            push_metadata.bind(py),
                        )?,
                        branches,
                    })
                },
            )
            .collect::<PyResult<_>>()?;
        Ok(DirectGraph {
            plan,
            nodes,
            key_ids,
            input_keys,
            reducers,
            hooks,
        })
    }

    /// Runs `graph` (the `CompiledStateGraph` this was built for) on `input` to the end and
    /// returns the values of `result_keys`.
    /// Raises `OutOfSteps` past the recursion limit, `ConcurrentUpdate` for two writes to a
    /// last-value key in one step, and a task's own exception (with its note) when it fails.
    /// Before each step that has tasks to run, the run stops with `GraphDrained` when its
    /// `control` (a `RunControl`) was asked to drain, and `stop_check`, when given, is called:
    /// what it raises stops the run there (an `ainvoke` whose caller was cancelled while a
    /// sync node ran).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (graph, input, strict, initial, recursion_limit, config, configurable, metadata, result_keys, max_concurrency, stop_check, control, paused))]
    fn invoke<'py>(
        slf: &Bound<'py, Self>,
        graph: Py<PyAny>,
        input: Bound<'py, PyAny>,
        strict: bool,
        initial: Vec<Option<Py<PyAny>>>,
        recursion_limit: i64,
        config: Bound<'py, PyDict>,
        configurable: Bound<'py, PyDict>,
        metadata: Option<Bound<'py, PyDict>>,
        result_keys: Vec<usize>,
        max_concurrency: Option<usize>,
        stop_check: Option<Bound<'py, PyAny>>,
        control: Option<Bound<'py, PyAny>>,
        paused: Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let py = slf.py();
        let caller = Caller {
            graph,
            strict,
            paused: paused.clone().unbind(),
        };
        let graph = slf.get();
        let compiled = graph.plan.get();
        let plan = &compiled.plan;
        if initial.len() != plan.keys {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "expected {} initial values",
                plan.keys
            )));
        }
        prime_configurable(&configurable)?;
        let run = RunArgs {
            input,
            caller,
            config: RunConfig::new(config, configurable, metadata),
        };
        let plain_control = graph.hooks.plain_control(control.as_ref());
        let mut state = RunState::new(plan, initial, recursion_limit);
        loop {
            let tasks = state
                .next_tasks(plan)
                .map_err(|_| OutOfSteps::new_err(()))?;
            if tasks.is_empty() {
                break;
            }
            if let Some(control) = &control {
                graph.hooks.check_drain(control, plain_control)?;
            }
            if let Some(check) = &stop_check {
                check.call0()?;
            }
            let step = state.step();
            let prepared = tasks
                .iter()
                .map(|&task| graph.prepare(py, &run, &state, task, step))
                .collect::<PyResult<Vec<_>>>()?;
            let results = if prepared.len() == 1 {
                let task = prepared.into_iter().next().expect("one task");
                let writes = graph.run_task(py, &task, &run.caller, false)?.writes;
                vec![TaskWrites {
                    task: task.task,
                    writes,
                }]
            } else {
                run_shared(slf, prepared, &run, max_concurrency, None)?
                    .expect("a run without a thread ends its steps")
            };
            let mut reducers = PyReducers {
                py,
                reducers: &graph.reducers,
            };
            state
                .apply(plan, results, &mut reducers)
                .map_err(|e| apply_error(py, compiled, e))?;
            if !paused.is_empty() {
                break; // a node paused at `interrupt()`: the run stops after its step
            }
        }
        read_state(py, compiled, &state, &result_keys)
    }
}

impl DirectGraph {
    /// The task's input and config, built on the calling thread before the step runs (so the
    /// state they read is the step's, whichever thread runs the task).
    pub(super) fn prepare<'py>(
        &self,
        py: Python<'py>,
        run: &RunArgs<'py>,
        state: &RunState<Py<PyAny>>,
        task: Task,
        step: i64,
    ) -> PyResult<Prepared> {
        let id = PyString::new(py, task_id::next_id().as_str());
        self.prepare_as(py, run, state, task, step, id, None)
    }

    /// `prepare` for a task whose id the caller made (`id`), and whose config carries its
    /// `Task` object (`owner`: see [`task_config`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prepare_as<'py>(
        &self,
        py: Python<'py>,
        run: &RunArgs<'py>,
        state: &RunState<Py<PyAny>>,
        task: Task,
        step: i64,
        id: Bound<'py, PyString>,
        owner: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Prepared> {
        let node = &self.nodes[task.node];
        let input = match task.path {
            TaskPath::Push(index) => state.send_arg(index).clone_ref(py),
            TaskPath::Pull(_) if task.node == START_NODE => run.input.clone().unbind(),
            TaskPath::Pull(_) => {
                let values = read_state(py, self.plan.get(), state, &node.input_ids)?;
                match &node.coerce {
                    Some(coerce) => coerce
                        .bind(py)
                        .call1((values,))
                        .inspect_err(|e| {
                            let path = (intern!(py, "__pregel_pull"), node.name.bind(py));
                            // Best effort, as in `run_task`: the caller gets the error itself.
                            let _ = self
                                .hooks
                                .note_preparing_error
                                .call1(py, (e.value(py), node.name.bind(py), path));
                        })?
                        .unbind(),
                    None => values.into_any().unbind(),
                }
            }
        };
        let state_now = if node.branches {
            Some(read_state(py, self.plan.get(), state, 0..self.input_keys.len())?.unbind())
        } else {
            None
        };
        let config = if task.node == START_NODE && !node.branches {
            None
        } else {
            Some(
                task_config(
                    py,
                    &run.config,
                    &node.config,
                    task.path,
                    &id,
                    id.to_str()?,
                    step,
                    owner,
                )?
                .unbind(),
            )
        };
        Ok(Prepared {
            task,
            id: id.unbind(),
            input,
            config,
            state: state_now,
        })
    }

    /// Runs a prepared task: calls its node and turns what it returned (and its conditional
    /// edges) into writes. A failure is the error `note_task_error` makes of it (noted with
    /// its task), as in the streaming loop. With `want_update`, the result carries the
    /// task's `updates` payload too.
    pub(super) fn run_task(
        &self,
        py: Python<'_>,
        task: &Prepared,
        caller: &Caller,
        want_update: bool,
    ) -> PyResult<Finished> {
        match self.run_node(py, task, caller, want_update) {
            Ok(finished) => Ok(finished),
            Err(e) => self.task_failed(py, task, caller, e),
        }
    }

    /// A task whose node failed with `e`: no writes when it paused at `interrupt()`, else the
    /// error `note_task_error` makes of it.
    pub(super) fn task_failed(
        &self,
        py: Python<'_>,
        task: &Prepared,
        caller: &Caller,
        e: PyErr,
    ) -> PyResult<Finished> {
        let paused = self
            .hooks
            .paused
            .call1(py, (e.value(py), caller.paused.bind(py)))?;
        if paused.is_truthy(py)? {
            let _ = self.take_pushed(py, task);
            // No writes; its edges do not fire.
            return Ok(Finished {
                writes: vec![Write::Handled],
                update: None,
            });
        }
        // A failed node's pushed writes are dropped with its other writes.
        let _ = self.take_pushed(py, task);
        let node = &self.nodes[task.task.node];
        // Best effort: if the hook fails, the task's own error is what the caller gets.
        Err(
            match self
                .hooks
                .note_error
                .call1(py, (e.value(py), node.name.bind(py), task.id.bind(py)))
            {
                Ok(error) => PyErr::from_value(error.into_bound(py)),
                Err(_) => e,
            },
        )
    }

    /// The writes the task's node pushed (`push_message`), taken out of `PUSHED_WRITES`.
    fn take_pushed<'py>(
        &self,
        py: Python<'py>,
        task: &Prepared,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let pushed = self.hooks.pushed_writes.bind(py);
        if pushed.is_empty() {
            return Ok(None);
        }
        let id = task.id.bind(py);
        let found = pushed.get_item(id)?;
        if found.is_some() {
            pushed.del_item(id)?;
        }
        Ok(found)
    }

    pub(super) fn run_node(
        &self,
        py: Python<'_>,
        task: &Prepared,
        caller: &Caller,
        want_update: bool,
    ) -> PyResult<Finished> {
        let node = &self.nodes[task.task.node];
        let input = task.input.bind(py);
        let config = task.config.as_ref().map(|c| c.bind(py));
        let output = match (&node.call, config) {
            (None, _) => self.map_input(py, caller, input)?,
            (Some(NodeCall::Plain(f)), Some(config)) => {
                let output = self
                    .hooks
                    .context_var
                    .call_in(config, || f.bind(py).call1((input,)))?;
                match output {
                    Ok(output) => output,
                    // A `Command(graph=PARENT)` from a graph the node called is this node's
                    // result (the hook re-raises anything else).
                    Err(e) => self.hooks.own_command.bind(py).call1((e.value(py),))?,
                }
            }
            (Some(NodeCall::Runner(f)), Some(config)) => f.bind(py).call1((input, config))?,
            (Some(_), None) => unreachable!("nodes other than the start node have a config"),
        };
        self.output_finished(py, task, caller, &output, want_update)
    }

    /// What a task's node returned (`output`), as its writes (what it pushed first, then its
    /// result's, then its conditional edges').
    pub(super) fn output_finished(
        &self,
        py: Python<'_>,
        task: &Prepared,
        caller: &Caller,
        output: &Bound<'_, PyAny>,
        want_update: bool,
    ) -> PyResult<Finished> {
        let node = &self.nodes[task.task.node];
        let input = task.input.bind(py);
        let config = task.config.as_ref().map(|c| c.bind(py));
        let pushed = self.take_pushed(py, task)?;
        let (mut writes, update) = match pushed {
            // What the node pushed comes first, as the update of a `Command` in a list.
            Some(pushed) => {
                let combined = PyList::new(py, [pushed, output.clone()])?;
                self.output_writes(py, caller, node, combined.as_any(), want_update)?
            }
            None => self.output_writes(py, caller, node, output, want_update)?,
        };
        if node.branches {
            let state = task.state.as_ref().expect("prepared with its state");
            // Routers also see the extra keys of a dict result (the start node's: the input).
            let result = if node.call.is_none() { input } else { output };
            writes =
                self.branch_writes(py, caller, node, config, state.bind(py), writes, result)?;
        }
        Ok(Finished { writes, update })
    }

    /// The start node's output: the run's input as a dict of input-schema keys.
    fn map_input<'py>(
        &self,
        py: Python<'py>,
        caller: &Caller,
        input: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let strict = caller.strict;
        if let Ok(dict) = input.cast_exact::<PyDict>() {
            let key_ids = self.key_ids.bind(py);
            let mapped = PyDict::new(py);
            let mut plain = true;
            for (k, v) in dict.iter() {
                match key_ids.get_item(&k)? {
                    Some(id) if self.input_keys[id.extract::<usize>()?] => mapped.set_item(k, v)?,
                    Some(_) => {}
                    None if strict => {
                        plain = false; // map_input names the unknown keys
                        break;
                    }
                    None => {}
                }
            }
            if plain {
                return Ok(mapped.into_any());
            }
        }
        self.hooks
            .map_input
            .bind(py)
            .call1((caller.graph.bind(py), input, strict))
    }

    /// A node's return value as writes: a dict's known keys here, anything else (`Command`,
    /// state objects, lists of commands, errors) by `output_writes`. With `want_update`, also
    /// the `updates` payload of those writes (as `update_payload` makes it: a dict of the
    /// state keys written, None for none).
    fn output_writes(
        &self,
        py: Python<'_>,
        caller: &Caller,
        node: &DirectNode,
        output: &Bound<'_, PyAny>,
        want_update: bool,
    ) -> PyResult<(Writes, Option<Py<PyAny>>)> {
        if let Ok(dict) = output.cast_exact::<PyDict>() {
            let key_ids = self.key_ids.bind(py);
            let mut writes = Vec::with_capacity(dict.len());
            let payload = if want_update {
                Some(PyDict::new(py))
            } else {
                None
            };
            for (k, v) in dict.iter() {
                if let Some(id) = key_ids.get_item(&k)? {
                    if let Some(payload) = &payload {
                        payload.set_item(&k, &v)?;
                    }
                    writes.push(Write::Key(id.extract()?, v.unbind()));
                }
            }
            let update = payload.map(|p| {
                if p.is_empty() {
                    py.None()
                } else {
                    p.into_any().unbind()
                }
            });
            return Ok((writes, update));
        }
        if output.is_none() {
            return Ok((Vec::new(), want_update.then(|| py.None())));
        }
        let described = self.hooks.output_writes.bind(py).call1((
            caller.graph.bind(py),
            node.name.bind(py),
            output,
        ))?;
        let update = if want_update {
            Some(
                self.hooks
                    .update_payload
                    .call1(py, (caller.graph.bind(py), described.get_item(1)?))?,
            )
        } else {
            None
        };
        Ok((self.engine_writes(&described.get_item(0)?)?, update))
    }

    /// `writes` extended with the routes of the node's conditional edges; `result` is what
    /// the node returned.
    #[allow(clippy::too_many_arguments)]
    fn branch_writes(
        &self,
        py: Python<'_>,
        caller: &Caller,
        node: &DirectNode,
        config: Option<&Bound<'_, PyDict>>,
        state: &Bound<'_, PyDict>,
        writes: Writes,
        result: &Bound<'_, PyAny>,
    ) -> PyResult<Writes> {
        let described = describe_writes(py, &writes)?;
        drop(writes);
        let routed = self.hooks.branch_writes.bind(py).call1((
            caller.graph.bind(py),
            node.name.bind(py),
            config,
            state,
            described,
            result,
        ))?;
        self.engine_writes(&routed)
    }

    /// Writes described as `(kind, target, value)` tuples.
    fn engine_writes(&self, described: &Bound<'_, PyAny>) -> PyResult<Writes> {
        let plan = &self.plan.get().plan;
        described
            .try_iter()?
            .map(|item| {
                let (kind, target, value): (u8, usize, Py<PyAny>) = item?.extract()?;
                engine_write(plan, kind, target, value)
            })
            .collect()
    }
}

/// `writes` as the Python side describes them: a list of `(kind, target, value)` tuples (the
/// form `Run.apply` takes and a `GraphRun` task's `writes` hold).
pub(super) fn describe_writes<'py>(
    py: Python<'py>,
    writes: &Writes,
) -> PyResult<Bound<'py, PyList>> {
    let described = PyList::empty(py);
    for write in writes {
        let (kind, target, value) = match write {
            Write::Key(key, value) => (super::engine::WRITE_KEY, *key, value.clone_ref(py)),
            Write::Goto(node) => (super::engine::WRITE_GOTO, *node, py.None()),
            Write::Send(node, arg) => (super::engine::WRITE_SEND, *node, arg.clone_ref(py)),
            Write::Handled => (super::engine::WRITE_HANDLED, 0, py.None()),
        };
        described.append((kind, target, value))?;
    }
    Ok(described)
}

/// A step with several tasks, shared between the calling thread and recruited workers.
pub(super) struct SharedStep {
    graph: Py<DirectGraph>,
    pub(super) tasks: Vec<Prepared>,
    /// Who runs which task, and how many workers may be recruited.
    pub(super) crew: Crew,
    pub(super) outcomes: Vec<Mutex<Option<PyResult<Finished>>>>,
    pub(super) progress: Mutex<Progress>,
    pub(super) changed: Condvar,
    caller: Caller,
    /// For a streaming run (see [`super::direct_stream`]): whether tasks make their `updates`
    /// payload, and each task's own list for the questions it pauses with (empty otherwise:
    /// the run's list in `caller` takes them).
    want_update: bool,
    pub(super) pauses: Vec<Py<PyList>>,
    /// For a checkpointed run's step (see [`super::direct_thread`]): what each task's end
    /// tells the thread.
    thread: Option<ThreadTasks>,
}

/// A checkpointed run's step on the direct driver: each task's `Task` object, and the
/// thread's calls as a task ends (see [`super::direct_thread`]).
pub(super) struct ThreadTasks {
    pub(super) owners: Vec<Py<PyAny>>,
    /// `task_finished(task)`: saves the writes the task holds.
    pub(super) finished: Py<PyAny>,
    /// `task_failed(task, error)`: records the failure or pause on the task (and saves it);
    /// returns the error that fails the step, or None (a pause or a refused answer: the
    /// other tasks run on, and the Python loop ends the step).
    pub(super) failed: Py<PyAny>,
    /// Whether a task ended so (the step is then the Python loop's to end).
    pub(super) handed: std::sync::atomic::AtomicBool,
}

impl ThreadTasks {
    /// Runs task `task` of a checkpointed step (its `Task` object `owner`): its writes saved
    /// as it ends (by `fast`, for a task `thread_save` named, when it can; else set on
    /// `owner` and saved by `finished_call`), or its failure recorded there. A failure that
    /// fails the step is the `Err`; a task that paused (or refused its answer) gives no
    /// writes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
        py: Python<'_>,
        graph: &DirectGraph,
        task: &Prepared,
        caller: &Caller,
        owner: &Bound<'_, PyAny>,
        finished_call: &Bound<'_, PyAny>,
        failed_call: &Bound<'_, PyAny>,
        fast: Option<(&ThreadSave, usize)>,
    ) -> PyResult<Option<Finished>> {
        let failure = match graph.run_node(py, task, caller, false) {
            Ok(finished) => {
                let saved_in_rust = match fast {
                    Some((fast, node)) => fast.task_ended(py, owner, node, &finished.writes),
                    None => Ok(false),
                };
                let saved = match saved_in_rust {
                    Ok(true) => Ok(()),
                    Ok(false) => {
                        let writes = describe_writes(py, &finished.writes)?;
                        owner.setattr(intern!(py, "writes"), writes)?;
                        finished_call.call1((owner,)).map(drop)
                    }
                    Err(e) => Err(e),
                };
                match saved {
                    Ok(()) => return Ok(Some(finished)),
                    // Saving its writes failed: that is the task's failure, as in the
                    // Python loop.
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        let stop = failed_call.call1((owner, failure.value(py)))?;
        if stop.is_none() {
            Ok(None)
        } else {
            Err(PyErr::from_value(stop))
        }
    }
}

/// The graph a run is for, and whether its input may only name state keys (a caller's own
/// input; a parent graph's state handed to a subgraph may carry more).
pub(super) struct Caller {
    pub(super) graph: Py<PyAny>,
    pub(super) strict: bool,
    /// The questions of the tasks that paused at `interrupt()` (the run stops after the step).
    pub(super) paused: Py<PyList>,
}

impl Caller {
    pub(super) fn clone_ref(&self, py: Python<'_>) -> Caller {
        Caller {
            graph: self.graph.clone_ref(py),
            strict: self.strict,
            paused: self.paused.clone_ref(py),
        }
    }
}

pub(super) struct Progress {
    /// Tasks not finished yet (claimed or not).
    pub(super) pending: usize,
    /// The first task that failed.
    pub(super) failed: Option<usize>,
    /// Tasks that finished, in the order they did (a streaming run hands their items on in
    /// that order).
    pub(super) ended: VecDeque<usize>,
}

impl Progress {
    /// None while the caller must wait; once the step is over for it, the task that failed
    /// first, if any.
    fn settled(&self) -> Option<Option<usize>> {
        (self.pending == 0 || self.failed.is_some()).then_some(self.failed)
    }
}

impl SharedStep {
    /// A step of `tasks` for `caller`'s run, at most `limit` runners at once (the caller
    /// included). For a streaming run, `stream` says whether tasks make their `updates`
    /// payload; workers alone then run the tasks (at most `limit` at once), and each task
    /// keeps the questions it pauses with apart.
    pub(super) fn new(
        graph: &Bound<'_, DirectGraph>,
        tasks: Vec<Prepared>,
        caller: &Caller,
        limit: Option<usize>,
        stream: Option<bool>,
        thread: Option<ThreadTasks>,
    ) -> Self {
        let py = graph.py();
        let count = tasks.len();
        SharedStep {
            graph: graph.clone().unbind(),
            outcomes: (0..count).map(|_| Mutex::new(None)).collect(),
            tasks,
            crew: if stream.is_some() {
                // Every task on a worker: the caller hands each one's items on as it ends.
                Crew::workers_only(count, limit, graph.get().hooks.submit.clone_ref(py))
            } else {
                Crew::new(count, limit, graph.get().hooks.submit.clone_ref(py))
            },
            progress: Mutex::new(Progress {
                pending: count,
                failed: None,
                ended: VecDeque::with_capacity(if stream.is_some() { count } else { 0 }),
            }),
            changed: Condvar::new(),
            caller: caller.clone_ref(py),
            want_update: stream == Some(true),
            pauses: if stream.is_some() {
                (0..count).map(|_| PyList::empty(py).unbind()).collect()
            } else {
                Vec::new()
            },
            thread,
        }
    }

    /// Runs task `index` and records its outcome; true when it failed.
    fn run_recorded(&self, py: Python<'_>, index: usize) -> bool {
        let graph = self.graph.get();
        let outcome = if let Some(thread) = &self.thread {
            let owner = thread.owners[index].bind(py);
            ThreadTasks::run(
                py,
                graph,
                &self.tasks[index],
                &self.caller,
                owner,
                thread.finished.bind(py),
                thread.failed.bind(py),
                None,
            )
            .map(|ran| {
                ran.unwrap_or_else(|| {
                    thread
                        .handed
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    Finished {
                        writes: Vec::new(),
                        update: None,
                    }
                })
            })
        } else {
            self.run_plain(py, graph, index)
        };
        self.record(index, outcome)
    }

    /// `run_recorded`'s run of a task of a run without a thread.
    fn run_plain(&self, py: Python<'_>, graph: &DirectGraph, index: usize) -> PyResult<Finished> {
        match self.pauses.get(index) {
            Some(paused) => {
                let caller = Caller {
                    graph: self.caller.graph.clone_ref(py),
                    strict: self.caller.strict,
                    paused: paused.clone_ref(py),
                };
                graph.run_task(py, &self.tasks[index], &caller, self.want_update)
            }
            None => graph.run_task(py, &self.tasks[index], &self.caller, self.want_update),
        }
    }

    /// Records task `index`'s outcome; true when it failed.
    fn record(&self, index: usize, outcome: PyResult<Finished>) -> bool {
        let failed = outcome.is_err();
        *self.outcomes[index].lock() = Some(outcome);
        let mut progress = self.progress.lock();
        progress.pending -= 1;
        progress.ended.push_back(index);
        if failed && progress.failed.is_none() {
            progress.failed = Some(index);
        }
        drop(progress);
        self.changed.notify_all();
        failed
    }
}

impl CrewWork for SharedStep {
    fn crew(&self) -> &Crew {
        &self.crew
    }

    /// On a worker: a failure is recorded for the caller, which stops the step.
    fn run(&self, py: Python<'_>, index: usize) {
        self.run_recorded(py, index);
    }
}

/// Runs a step's tasks on the calling thread and on the workers it turns out to need; returns
/// their writes in task order, or the first failure (tasks not started by then never start).
/// With `thread` (a checkpointed run's step), None when a task paused or refused its answer
/// (the step is the Python loop's to end; every task ran).
pub(super) fn run_shared(
    graph: &Bound<'_, DirectGraph>,
    tasks: Vec<Prepared>,
    run: &RunArgs<'_>,
    max_concurrency: Option<usize>,
    thread: Option<ThreadTasks>,
) -> PyResult<Option<Vec<TaskWrites<Py<PyAny>>>>> {
    let py = graph.py();
    let step = Arc::new(SharedStep::new(
        graph,
        tasks,
        &run.caller,
        max_concurrency,
        None,
        thread,
    ));
    if step.crew.helpers() > 0 {
        let crew = Bound::new(py, StepCrew::of(&step))?;
        graph.get().hooks.watch.bind(py).call1((crew,))?;
    }
    let outcome = drive_step(py, &step);
    let never_started = step.crew.close(); // after a failure or Ctrl-C nothing more starts
    if outcome.is_err() && step.progress.lock().failed.is_some() {
        // A task failed: as LangGraph's executor does on leaving, the tasks already running
        // end before the error goes on (none runs on once the caller has it).
        wait_for_running(py, &step, never_started)?;
    }
    outcome?;
    if step
        .thread
        .as_ref()
        .is_some_and(|t| t.handed.load(std::sync::atomic::Ordering::Relaxed))
    {
        return Ok(None);
    }
    let tasks = step.tasks.iter().map(|t| t.task).collect::<Vec<_>>();
    tasks
        .into_iter()
        .zip(&step.outcomes)
        .map(|(task, outcome)| {
            let writes = outcome.lock().take().expect("every task finished")?.writes;
            Ok(TaskWrites { task, writes })
        })
        .collect::<PyResult<_>>()
        .map(Some)
}

/// The calling thread's share of a step: tasks until none is unclaimed, then a wait for the
/// workers' (with the GIL released, waking to look at signals).
fn drive_step(py: Python<'_>, step: &Arc<SharedStep>) -> PyResult<()> {
    while let Some(index) = step.crew.claim() {
        if step.run_recorded(py, index) {
            return Err(take_failure(step, index));
        }
    }
    loop {
        // Most often the caller ran every task itself: then it keeps the GIL (whoever waits
        // for it, the scout say, would keep the caller waiting in turn).
        let mut settled = step.progress.lock().settled();
        if settled.is_none() {
            settled = py.detach(|| {
                let mut progress = step.progress.lock();
                if progress.settled().is_none() {
                    step.changed.wait_for(&mut progress, SIGNAL_CHECK_INTERVAL);
                }
                progress.settled()
            });
        }
        match settled {
            Some(None) => return Ok(()),
            Some(Some(index)) => return Err(take_failure(step, index)),
            None => py.check_signals()?,
        }
    }
}

/// Waits (the GIL released, waking to look at signals) until only the `never_started` tasks
/// are still pending: every claimed task has ended.
pub(super) fn wait_for_running(
    py: Python<'_>,
    step: &Arc<SharedStep>,
    never_started: usize,
) -> PyResult<()> {
    loop {
        let running = py.detach(|| {
            let mut progress = step.progress.lock();
            if progress.pending > never_started {
                step.changed.wait_for(&mut progress, SIGNAL_CHECK_INTERVAL);
            }
            progress.pending > never_started
        });
        if !running {
            return Ok(());
        }
        py.check_signals()?;
    }
}

fn take_failure(step: &SharedStep, index: usize) -> PyErr {
    match step.outcomes[index].lock().take() {
        Some(Err(e)) => e,
        _ => unreachable!("task {index} was recorded as failed"),
    }
}

/// Draws a new random prefix for task ids (done at import; call again in a forked child).
#[pyfunction]
fn reseed_task_ids() {
    task_id::reseed();
}

/// A new task id (see [`task_id`]).
#[pyfunction]
fn new_task_id() -> String {
    task_id::next()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    task_id::reseed();
    m.add_class::<DirectGraph>()?;
    m.add_function(wrap_pyfunction!(new_task_id, m)?)?;
    m.add_function(wrap_pyfunction!(reseed_task_ids, m)?)?;
    Ok(())
}
