//! The direct driver for `ainvoke`: a run of async nodes planned and applied in Rust, its
//! nodes awaited by the event loop.
//!
//! A run the direct driver could `invoke` (see [`super::direct`]), of a graph whose nodes all
//! run on the loop (async functions, runnables) and whose routers are plain functions, is
//! driven by a small coroutine (`pregel._direct_async`): [`DirectAsyncRun::next_step`]
//! applies the step just awaited, plans and prepares the next one (each task's input and
//! config as the sync driver makes them: [`DirectGraph::prepare`]) and hands back, per task,
//! what to await; the coroutine awaits it (in place for a step of one task, as tasks of the
//! loop for several) and hands the result back to [`DirectAsyncRun::finish`], which turns it
//! into the task's writes as the sync driver does ([`DirectGraph::output_finished`]). The
//! start node only maps the input: it runs in Rust, never awaited.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::direct::{Caller, DirectGraph, Prepared, Writes};
use super::engine::{apply_error, read_state, PyReducers};
use super::held_run::HeldRun;
use crate::schedule::{TaskPath, TaskWrites};

/// How a node is awaited.
struct AsyncCall {
    /// A plain async function of the state: awaited as `f(input)`, the task's config set in
    /// langchain's context variable by the awaiting coroutine (None: the node is not plain).
    plain: Option<Py<PyAny>>,
    /// `NodeRunner.acall(input, config)`, which sets the config itself (injected parameters,
    /// retries, timeouts, error handlers, runnables).
    runner: Py<PyAny>,
}

/// A node as the Python side describes it to [`DirectAsyncGraph::new`]: None for the start
/// node, else `(plain_action_or_None, acall)`.
type CallArgs = Option<(Option<Py<PyAny>>, Py<PyAny>)>;

/// A compiled graph as the async direct driver runs it (built once per graph, when every
/// node runs on the loop).
#[pyclass(frozen, module = "ferrograph._core")]
pub struct DirectAsyncGraph {
    direct: Py<DirectGraph>,
    /// By node id; None for the start node.
    calls: Vec<Option<AsyncCall>>,
    /// `pregel._write.TimedArg`: a `Send`'s argument carrying its task's timeout.
    timed_arg: Py<PyAny>,
    /// The `configurable` key a task's own timeout goes under (`CONFIG_KEY_TIMEOUT`).
    timeout_key: Py<PyString>,
}

#[pymethods]
impl DirectAsyncGraph {
    /// `calls` by node id: None for the start node, else `(plain_action_or_None, acall)`.
    #[new]
    fn new(
        direct: Py<DirectGraph>,
        calls: Vec<CallArgs>,
        timed_arg: Py<PyAny>,
        timeout_key: Py<PyString>,
    ) -> PyResult<Self> {
        if calls.len() != direct.get().nodes.len() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "expected {} nodes",
                direct.get().nodes.len()
            )));
        }
        Ok(DirectAsyncGraph {
            direct,
            calls: calls
                .into_iter()
                .map(|c| c.map(|(plain, runner)| AsyncCall { plain, runner }))
                .collect(),
            timed_arg,
            timeout_key,
        })
    }
}

/// One `ainvoke` run on the async direct driver (see the module doc); made and driven by
/// `pregel._direct_async.ainvoke_direct`, which turns its errors into LangGraph's.
#[pyclass(module = "ferrograph._core")]
pub struct DirectAsyncRun {
    graph: Py<DirectAsyncGraph>,
    run: HeldRun,
    result_ids: Vec<usize>,
    /// The step being awaited: its tasks, whether each was handed out as a plain function,
    /// and the writes of those that finished.
    tasks: Vec<Prepared>,
    plain: Vec<bool>,
    writes: Vec<Option<Writes>>,
    over: bool,
}

#[pymethods]
impl DirectAsyncRun {
    /// As `DirectGraph.invoke`'s arguments (`paused` collects the questions of a pause).
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (graph, caller, input, strict, initial, recursion_limit, config, configurable, metadata, result_ids, control, paused))]
    fn new(
        py: Python<'_>,
        graph: Py<DirectAsyncGraph>,
        caller: Py<PyAny>,
        input: Py<PyAny>,
        strict: bool,
        initial: Vec<Option<Py<PyAny>>>,
        recursion_limit: i64,
        config: Py<PyDict>,
        configurable: Py<PyDict>,
        metadata: Option<Py<PyDict>>,
        result_ids: Vec<usize>,
        control: Option<Py<PyAny>>,
        paused: Py<PyList>,
    ) -> PyResult<Self> {
        let direct = graph.get().direct.get();
        if result_ids.iter().any(|&k| k >= direct.plan.get().plan.keys) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "result keys do not match the graph",
            ));
        }
        let caller = Caller {
            graph: caller,
            strict,
            paused,
        };
        let run = HeldRun::new(
            py,
            direct,
            caller,
            input,
            initial,
            recursion_limit,
            config,
            configurable,
            metadata,
            control,
        )?;
        Ok(DirectAsyncRun {
            graph,
            run,
            result_ids,
            tasks: Vec::new(),
            plain: Vec::new(),
            writes: Vec::new(),
            over: false,
        })
    }

    /// Applies the step just awaited (every task of it must have finished), then plans the
    /// next step with something to await: a list of `(fn, input, config, plain)` per task,
    /// awaited as `fn(input)` inside `config` when `plain`, else as `fn(input, config)`, its
    /// outcome handed to `finish` / `failed` by its index. None once the run is over.
    /// Raises `OutOfSteps` past the recursion limit, `ConcurrentUpdate` for two writes to a
    /// last-value key in one step, `GraphDrained` when the run's control was asked to drain.
    fn next_step<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        if !self.tasks.is_empty() {
            self.apply(py)?;
        }
        let graph = self.graph.clone_ref(py);
        let graph = graph.get();
        let direct = graph.direct.get();
        while !self.over {
            let Some(mut prepared) = self.run.next_prepared(py, direct)? else {
                self.over = true;
                break;
            };
            let items = PyList::empty(py);
            self.plain.clear();
            self.writes.clear();
            for task in &mut prepared {
                match &graph.calls[task.task.node] {
                    None => {
                        // The start node: the input mapped here, nothing to await.
                        let finished = direct.run_task(py, task, &self.run.caller, false)?;
                        self.plain.push(false);
                        self.writes.push(Some(finished.writes));
                    }
                    Some(call) => {
                        let timed = graph.untime(py, task)?;
                        let config = task.config.as_ref().expect("a node's task has a config");
                        let (f, plain) = match &call.plain {
                            Some(f) if !timed => (f, true),
                            _ => (&call.runner, false),
                        };
                        items.append((f, &task.input, config, plain))?;
                        self.plain.push(plain);
                        self.writes.push(None);
                    }
                }
            }
            self.tasks = prepared;
            if !items.is_empty() {
                return Ok(Some(items));
            }
            self.apply(py)?;
        }
        Ok(None)
    }

    /// Task `index` returned `output`: its writes are recorded. Returns the error the run
    /// fails with when turning `output` into writes failed (noted with the task), else None.
    fn finish(
        &mut self,
        py: Python<'_>,
        index: usize,
        output: Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let graph = self.graph.clone_ref(py);
        let direct = graph.get().direct.get();
        let task = self.task(index)?;
        let outcome = match direct.output_finished(py, task, &self.run.caller, &output, false) {
            Ok(finished) => Ok(finished),
            Err(e) => direct.task_failed(py, task, &self.run.caller, e),
        };
        self.record(py, index, outcome)
    }

    /// Task `index` raised `error`: a pause at `interrupt()` (no writes, the run stops after
    /// the step) and a `ParentCommand` from a graph a plain node called (the node's own
    /// `Command`) are recorded; anything else is returned, noted with the task, for the run to
    /// fail with.
    fn failed(
        &mut self,
        py: Python<'_>,
        index: usize,
        error: Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let graph = self.graph.clone_ref(py);
        let direct = graph.get().direct.get();
        self.task(index)?;
        let mut error = PyErr::from_value(error);
        if self.plain[index] {
            // The runner does this itself for the nodes it calls (`own_command` re-raises
            // anything but a `ParentCommand`).
            match direct.hooks.own_command.bind(py).call1((error.value(py),)) {
                Ok(command) => return self.finish(py, index, command),
                Err(e) => error = e,
            }
        }
        let outcome = direct.task_failed(py, &self.tasks[index], &self.run.caller, error);
        self.record(py, index, outcome)
    }

    /// The values of the result keys, once the run is over.
    fn result<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let direct = self.graph.get().direct.get();
        read_state(
            py,
            direct.plan.get(),
            &self.run.state.lock(),
            &self.result_ids,
        )
    }
}

impl DirectAsyncGraph {
    /// A push task whose argument is a `TimedArg` (a `Send` with a timeout): its input becomes
    /// the argument itself and its config carries the timeout, as `GraphRun` prepares it; true
    /// then (the runner applies the timeout).
    fn untime(&self, py: Python<'_>, task: &mut Prepared) -> PyResult<bool> {
        if !matches!(task.task.path, TaskPath::Push(_)) {
            return Ok(false);
        }
        let input = task.input.bind(py);
        if !input.get_type().is(self.timed_arg.bind(py)) {
            return Ok(false);
        }
        let arg = input.getattr(intern!(py, "arg"))?.unbind();
        let timeout = input.getattr(intern!(py, "timeout"))?;
        if let Some(config) = &task.config {
            if let Some(configurable) = config.bind(py).get_item(intern!(py, "configurable"))? {
                configurable.set_item(self.timeout_key.bind(py), timeout)?;
            }
        }
        task.input = arg;
        Ok(true)
    }
}

impl DirectAsyncRun {
    fn task(&self, index: usize) -> PyResult<&Prepared> {
        match (self.tasks.get(index), self.writes.get(index)) {
            (Some(task), Some(None)) => Ok(task),
            _ => Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "task {index} is not awaited in this step"
            ))),
        }
    }

    /// Records a task's outcome: its writes, or the error returned for the run to fail with.
    fn record(
        &mut self,
        py: Python<'_>,
        index: usize,
        outcome: PyResult<super::direct::Finished>,
    ) -> PyResult<Option<Py<PyAny>>> {
        match outcome {
            Ok(finished) => {
                self.writes[index] = Some(finished.writes);
                Ok(None)
            }
            Err(e) => {
                self.over = true;
                Ok(Some(e.into_value(py).into_any()))
            }
        }
    }

    /// Applies the step whose tasks all finished; a pause at `interrupt()` ends the run.
    fn apply(&mut self, py: Python<'_>) -> PyResult<()> {
        let tasks = std::mem::take(&mut self.tasks);
        let writes = std::mem::take(&mut self.writes);
        if self.over {
            return Ok(()); // a task failed: the step is not applied
        }
        let results = tasks
            .iter()
            .zip(writes)
            .map(|(task, writes)| match writes {
                Some(writes) => Ok(TaskWrites {
                    task: task.task,
                    writes,
                }),
                None => Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "a task of the step did not finish",
                )),
            })
            .collect::<PyResult<Vec<_>>>()?;
        let direct = self.graph.get().direct.get();
        let compiled = direct.plan.get();
        let mut reducers = PyReducers {
            py,
            reducers: &direct.reducers,
        };
        self.run
            .state
            .lock()
            .apply(&compiled.plan, results, &mut reducers)
            .map_err(|e| apply_error(py, compiled, e))?;
        if !self.run.caller.paused.bind(py).is_empty() {
            self.over = true; // a node paused at `interrupt()`: the run stops after its step
        }
        Ok(())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DirectAsyncGraph>()?;
    m.add_class::<DirectAsyncRun>()?;
    Ok(())
}
