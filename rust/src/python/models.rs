//! Bindings of the OpenAI-compatible streaming client (`crate::models`): `HttpClient` starts
//! requests, `ChatStream` hands their items to Python a batch at a time, waiting with the GIL
//! released (sync callers) or waking an event loop (async callers).

use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use serde_json::Value;

use crate::models::{Batch, ChatStream, Failure, HttpClient, Item};

/// How long a blocked `next_batch` waits between checks for signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

fn seconds(value: Option<f64>) -> Option<Duration> {
    value
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// A pool of connections with its connect timeout and proxy.
#[pyclass(name = "HttpClient", frozen, module = "ferrograph._core")]
pub struct PyHttpClient {
    inner: HttpClient,
}

#[pymethods]
impl PyHttpClient {
    #[new]
    #[pyo3(signature = (connect_timeout=None, proxy=None))]
    fn new(connect_timeout: Option<f64>, proxy: Option<&str>) -> PyResult<Self> {
        HttpClient::new(seconds(connect_timeout), proxy)
            .map(|inner| Self { inner })
            .map_err(pyo3::exceptions::PyValueError::new_err)
    }

    /// Starts a streamed chat completion: POSTs `body` to `url` with `headers`.
    #[pyo3(signature = (url, headers, body, read_timeout=None))]
    fn stream(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        read_timeout: Option<f64>,
    ) -> PyChatStream {
        PyChatStream {
            inner: self.inner.stream(url, headers, body, seconds(read_timeout)),
        }
    }
}

/// The events of one request. A batch is `(items, end)`: each item a `str` (a bare text
/// delta), a tuple `(content, assistant, tool_calls)` (a bare delta with a role or tool call
/// fragments `(index, id, name, arguments)`), a `dict` (any other event, decoded) or `bytes`
/// (data for the caller to decode); `end` None while the stream goes on, else
/// `(kind, message, before_body, status, headers, body)` with kind `"done"`, `"status"`,
/// `"timeout"` or `"connection"`.
#[pyclass(name = "ChatStream", frozen, module = "ferrograph._core")]
pub struct PyChatStream {
    inner: ChatStream,
}

#[pymethods]
impl PyChatStream {
    /// The next batch, waiting (GIL released) for one; signals (Ctrl-C) are checked every
    /// 100 ms of waiting, as a socket read of the `openai` SDK would be interrupted.
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let inner = &self.inner;
        loop {
            if let Some(batch) = py.detach(|| inner.next_batch_within(SIGNAL_CHECK)) {
                return batch_to_py(py, batch);
            }
            py.check_signals()?;
        }
    }

    /// The batch there is, or None: then `waker()` is called once (from a thread of ours,
    /// with the GIL) when there is one. It must only schedule work
    /// (`loop.call_soon_threadsafe`).
    fn try_batch<'py>(
        &self,
        py: Python<'py>,
        waker: Py<PyAny>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let wake = Box::new(move || wake_later(waker));
        match self.inner.try_batch(wake) {
            Some(batch) => batch_to_py(py, batch).map(Some),
            None => Ok(None),
        }
    }

    /// Stops the request.
    fn close(&self) {
        self.inner.close();
    }
}

/// Wakers run on one thread of their own, which takes the GIL once for all the wakers due:
/// the network thread never waits for the GIL (its other streams go on), and a burst of
/// streams becoming ready costs one GIL hand-over, not one per stream.
fn wake_later(waker: Py<PyAny>) {
    static WAKERS: OnceLock<Sender<Py<PyAny>>> = OnceLock::new();
    let sender = WAKERS.get_or_init(|| {
        let (sender, receiver) = channel::<Py<PyAny>>();
        std::thread::Builder::new()
            .name("ferrograph-http-wake".into())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    Python::attach(|py| {
                        for waker in std::iter::once(first).chain(receiver.try_iter()) {
                            if let Err(err) = waker.call0(py) {
                                err.write_unraisable(py, None);
                            }
                        }
                    });
                }
            })
            .expect("the waker thread starts");
        sender
    });
    // The receiver lives as long as the process: sending cannot fail.
    let _ = sender.send(waker);
}

fn batch_to_py<'py>(py: Python<'py>, batch: Batch) -> PyResult<Bound<'py, PyTuple>> {
    let items = PyList::empty(py);
    for item in batch.items {
        items.append(item_to_py(py, item)?)?;
    }
    let end = match batch.end {
        None => py.None().into_bound(py),
        Some(Ok(())) => (
            "done",
            "",
            false,
            0u16,
            Vec::<(String, String)>::new(),
            PyBytes::new(py, b""),
        )
            .into_pyobject(py)?
            .into_any(),
        Some(Err(failure)) => failure_to_py(py, failure)?,
    };
    (items, end).into_pyobject(py)
}

fn failure_to_py(py: Python<'_>, failure: Failure) -> PyResult<Bound<'_, PyAny>> {
    let none: Vec<(String, String)> = Vec::new();
    let tuple = match failure {
        Failure::Status {
            status,
            headers,
            body,
        } => ("status", "", true, status, headers, PyBytes::new(py, &body)).into_pyobject(py)?,
        Failure::Timeout {
            message,
            before_body,
        } => (
            "timeout",
            message,
            before_body,
            0u16,
            none,
            PyBytes::new(py, b""),
        )
            .into_pyobject(py)?,
        Failure::Connection {
            message,
            before_body,
        } => (
            "connection",
            message,
            before_body,
            0u16,
            none,
            PyBytes::new(py, b""),
        )
            .into_pyobject(py)?,
    };
    Ok(tuple.into_any())
}

fn item_to_py(py: Python<'_>, item: Item) -> PyResult<Bound<'_, PyAny>> {
    Ok(match item {
        Item::Delta {
            content,
            assistant: false,
            tool_calls,
        } if tool_calls.is_empty() => PyString::new(py, &content).into_any(),
        Item::Delta {
            content,
            assistant,
            tool_calls,
        } => {
            let calls = tool_calls
                .into_iter()
                .map(|c| (c.index, c.id, c.name, c.arguments))
                .collect::<Vec<_>>();
            (content, assistant, calls).into_pyobject(py)?.into_any()
        }
        Item::Json(value) => json_to_py(py, &value)?,
        Item::Raw(data) => PyBytes::new(py, &data).into_any(),
    })
}

/// A JSON value as `json.loads` gives it.
fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(values) => {
            let list = PyList::empty(py);
            for v in values {
                list.append(json_to_py(py, v)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyHttpClient>()?;
    m.add_class::<PyChatStream>()?;
    Ok(())
}
