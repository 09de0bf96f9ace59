//! The config a task's node sees on the direct driver, and the context variable it is set in.
//!
//! Every task whose node is the user's code gets its own config, as LangGraph's: the run's
//! config with `metadata` (the run's, the node's, the task's `langgraph_*` keys) and
//! `configurable` (the run's, `checkpoint_ns`, `__pregel_task_id`) its own new dicts. It cannot
//! be built lazily, only for nodes that read it: any function can call `get_config()` or a
//! runnable (which reads langchain's context variable), the variable's `get` is a C call with
//! no hook, and a stand-in for the dict (a subclass filled on first read) would show through
//! (`type(config) is dict`, C-level dict reads and comparisons). So it is built cheaply
//! instead: the task id and `checkpoint_ns` written by hand, and every key a task sets already
//! present, at its final position, in what is copied (so each copy is one allocation and no
//! resize, and the key order is what setting them one by one gave).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::schedule::TaskPath;

/// What a node's task configs are made from (built once per graph).
pub(super) struct NodeConfig {
    /// `"<node name>:"`, the start of a task's `checkpoint_ns`.
    ns_prefix: String,
    /// A pull task's metadata: the node's own and the `langgraph_*` keys, those set per task
    /// (`langgraph_step`, `langgraph_checkpoint_ns`) as placeholders where they end up.
    pull_metadata: Py<PyDict>,
    /// The same for a push task (`Send`), whose `langgraph_path` is set per task too.
    push_metadata: Py<PyDict>,
}

impl NodeConfig {
    /// From the node's name and the metadata its pull and push tasks share (the Python
    /// side's `task_metadata`, which is left as it is).
    pub(super) fn new(
        py: Python<'_>,
        name: &str,
        pull_metadata: &Bound<'_, PyDict>,
        push_metadata: &Bound<'_, PyDict>,
    ) -> PyResult<Self> {
        let pull = pull_metadata.copy()?;
        let push = push_metadata.copy()?;
        // In the order `task_config` sets them: an existing key keeps its place.
        for (template, keys) in [
            (&pull, &["langgraph_step", "langgraph_checkpoint_ns"][..]),
            (
                &push,
                &[
                    "langgraph_step",
                    "langgraph_path",
                    "langgraph_checkpoint_ns",
                ][..],
            ),
        ] {
            for key in keys {
                if !template.contains(key)? {
                    template.set_item(key, py.None())?;
                }
            }
        }
        Ok(NodeConfig {
            ns_prefix: format!("{name}:"),
            pull_metadata: pull.unbind(),
            push_metadata: push.unbind(),
        })
    }
}

/// What every task config of a run is copied from.
pub(super) struct RunConfig<'py> {
    /// The run's config with `callbacks` cleared; `metadata` and `configurable` are replaced.
    pub(super) config: Bound<'py, PyDict>,
    /// `configurable` less the task's own entries: the caller's, the run's `Runtime`
    /// (`__pregel_runtime`), and `__ferrograph_run` / `__ferrograph_task` set to None (no
    /// `GraphRun`, no streaming); see [`prime_configurable`].
    pub(super) configurable: Bound<'py, PyDict>,
    /// Run metadata that goes under every task's own (None: there is none).
    pub(super) metadata: Option<Bound<'py, PyDict>>,
}

impl<'py> RunConfig<'py> {
    /// A run's: `metadata` kept only when it has keys.
    pub(super) fn new(
        config: Bound<'py, PyDict>,
        configurable: Bound<'py, PyDict>,
        metadata: Option<Bound<'py, PyDict>>,
    ) -> Self {
        RunConfig {
            config,
            configurable,
            metadata: metadata.filter(|m| !m.is_empty()),
        }
    }
}

/// Makes a run's `configurable` (a dict of the run's own) ready for [`task_config`]'s copies:
/// the keys each task sets, added at the end where missing (where setting them per task put
/// them). Idempotent.
pub(super) fn prime_configurable(configurable: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = configurable.py();
    for key in [
        intern!(py, "checkpoint_ns"),
        intern!(py, "__pregel_task_id"),
    ] {
        if !configurable.contains(key)? {
            configurable.set_item(key, py.None())?;
        }
    }
    Ok(())
}

/// The config a task's node sees: the run's, with the task's metadata and identifiers;
/// `owner`, when given, is the `Task` object of a checkpointed run (`__ferrograph_task`,
/// where the node's `interrupt()` and the graphs it runs find their thread).
#[allow(clippy::too_many_arguments)]
pub(super) fn task_config<'py>(
    py: Python<'py>,
    run: &RunConfig<'py>,
    node: &NodeConfig,
    path: TaskPath,
    id: &Bound<'py, PyString>,
    id_text: &str,
    step: i64,
    owner: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut ns = String::with_capacity(node.ns_prefix.len() + id_text.len());
    ns.push_str(&node.ns_prefix);
    ns.push_str(id_text);
    let checkpoint_ns = PyString::new(py, &ns);
    let template = match path {
        TaskPath::Pull(_) => node.pull_metadata.bind(py),
        TaskPath::Push(_) => node.push_metadata.bind(py),
    };
    // Task keys win over the node's metadata, which wins over the run's.
    let metadata = match &run.metadata {
        Some(base) => {
            let merged = base.copy()?;
            merged.update(template.as_mapping())?;
            merged
        }
        None => template.copy()?,
    };
    metadata.set_item(intern!(py, "langgraph_step"), step)?;
    if let TaskPath::Push(index) = path {
        let path = PyTuple::new(
            py,
            [
                intern!(py, "__pregel_push").clone().into_any(),
                index.into_pyobject(py)?.into_any(),
                false.into_pyobject(py)?.to_owned().into_any(),
            ],
        )?;
        metadata.set_item(intern!(py, "langgraph_path"), path)?;
    }
    metadata.set_item(intern!(py, "langgraph_checkpoint_ns"), &checkpoint_ns)?;
    let configurable = run.configurable.copy()?;
    configurable.set_item(intern!(py, "checkpoint_ns"), checkpoint_ns)?;
    configurable.set_item(intern!(py, "__pregel_task_id"), id)?;
    if let Some(owner) = owner {
        configurable.set_item(intern!(py, "__ferrograph_task"), owner)?;
    }
    let config = run.config.copy()?;
    config.set_item(intern!(py, "metadata"), metadata)?;
    config.set_item(intern!(py, "configurable"), configurable)?;
    Ok(config)
}

/// langchain-core's `var_child_runnable_config`, with its `set` and `reset` looked up once.
pub(super) struct ConfigVar {
    set: Py<PyAny>,
    reset: Py<PyAny>,
}

impl<'a, 'py> FromPyObject<'a, 'py> for ConfigVar {
    type Error = PyErr;

    fn extract(var: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = var.py();
        Ok(ConfigVar {
            set: var.getattr(intern!(py, "set"))?.unbind(),
            reset: var.getattr(intern!(py, "reset"))?.unbind(),
        })
    }
}

impl ConfigVar {
    /// `call()` with `config` set in the variable (reset after, whatever `call` gives).
    pub(super) fn call_in<'py, T>(
        &self,
        config: &Bound<'py, PyDict>,
        call: impl FnOnce() -> T,
    ) -> PyResult<T> {
        let py = config.py();
        let token = self.set.bind(py).call1((config,))?;
        let result = call();
        self.reset.bind(py).call1((token,))?;
        Ok(result)
    }
}
