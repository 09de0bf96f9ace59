//! One streamed chat completion request, run on a small shared tokio runtime: the HTTP
//! exchange (reqwest, rustls), the SSE decoding and the JSON classification happen there, and
//! the items wait in a queue that the caller empties a batch at a time.
//!
//! One attempt per [`ChatStream`]: whether and when to try again is the caller's (the
//! `openai` SDK's own policy, applied in Python to the [`Failure`] this reports).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use tokio::sync::Notify;

use super::delta::{classify, Item};
use super::sse::SseDecoder;

/// Items a stream may hold before the network side waits for the caller to take some.
const QUEUE_LIMIT: usize = 4096;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // One worker: the work per stream is small (a read, a parse), and the machine's other
        // cores belong to the caller's threads.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ferrograph-http")
            .enable_all()
            .build()
            .expect("the HTTP runtime starts")
    })
}

/// How a request failed. `before_body` says whether the response body had not started yet
/// (a failure there may be retried; a failure mid-stream may not).
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The server answered with a status other than 2xx (always before the body).
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Timeout {
        message: String,
        before_body: bool,
    },
    Connection {
        message: String,
        before_body: bool,
    },
}

/// Connection settings shared by the requests of one model: a pool of connections.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// `proxy`: a URL every request goes through; else the environment's proxies
    /// (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`), as httpx does.
    pub fn new(connect_timeout: Option<Duration>, proxy: Option<&str>) -> Result<Self, String> {
        // No Nagle: a request's head and body go in separate writes, and the second would
        // wait for the server's delayed ACK of the first (~40 ms on every reused connection).
        let mut builder = reqwest::Client::builder().tcp_nodelay(true);
        if let Some(timeout) = connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(proxy) = proxy {
            builder = builder.proxy(reqwest::Proxy::all(proxy).map_err(|e| e.to_string())?);
        }
        // reqwest's client spawns nothing until used, but its DNS resolver wants a runtime.
        let _guard = runtime().enter();
        Ok(Self {
            client: builder.build().map_err(|e| e.to_string())?,
        })
    }

    /// Starts POSTing `body` to `url` and streaming the answer's events.
    /// `read_timeout` bounds the wait for the response head and for each read of the body.
    pub fn stream(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        read_timeout: Option<Duration>,
    ) -> ChatStream {
        let shared = Arc::new(Shared::default());
        let mut request = self.client.post(url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let task = runtime().spawn(run(request, read_timeout, shared.clone()));
        ChatStream { shared, task }
    }
}

/// What the caller gets at a time: the items that arrived, and the end once it came
/// (`Some(Ok(()))` after `[DONE]` or the body's end; the failure otherwise).
#[derive(Debug, Default)]
pub struct Batch {
    pub items: Vec<Item>,
    pub end: Option<Result<(), Failure>>,
}

type Wake = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    items: Vec<Item>,
    end: Option<Result<(), Failure>>,
    /// Called once when there is something new for a caller that found nothing.
    wake: Option<Wake>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// A blocked caller waits here.
    filled: Condvar,
    /// The network side waits here while the queue is full.
    room: Notify,
}

impl Shared {
    fn push(&self, item: Item) -> bool {
        let mut queue = self.queue.lock();
        queue.items.push(item);
        let full = queue.items.len() >= QUEUE_LIMIT;
        let wake = queue.wake.take();
        drop(queue);
        self.filled.notify_one();
        if let Some(wake) = wake {
            wake(); // outside the lock: it may take the GIL
        }
        full
    }

    fn finish(&self, end: Result<(), Failure>) {
        let mut queue = self.queue.lock();
        queue.end = Some(end);
        let wake = queue.wake.take();
        drop(queue);
        self.filled.notify_one();
        if let Some(wake) = wake {
            wake();
        }
    }

    fn take(queue: &mut Queue) -> Batch {
        Batch {
            items: std::mem::take(&mut queue.items),
            end: queue.end.take(),
        }
    }
}

/// One request's events, handed over in batches. Dropping it stops the request.
pub struct ChatStream {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ChatStream {
    /// Waits until there are items or the end, and takes them all.
    pub fn next_batch(&self) -> Batch {
        loop {
            if let Some(batch) = self.next_batch_within(Duration::from_secs(3600)) {
                return batch;
            }
        }
    }

    /// `next_batch`, waiting at most `limit` (None: nothing came in time). A caller that must
    /// stay responsive (to Ctrl-C) waits in slices.
    pub fn next_batch_within(&self, limit: Duration) -> Option<Batch> {
        let deadline = std::time::Instant::now() + limit;
        let mut queue = self.shared.queue.lock();
        while queue.items.is_empty() && queue.end.is_none() {
            if self
                .shared
                .filled
                .wait_until(&mut queue, deadline)
                .timed_out()
                && queue.items.is_empty()
                && queue.end.is_none()
            {
                return None;
            }
        }
        let batch = Shared::take(&mut queue);
        drop(queue);
        self.shared.room.notify_one();
        Some(batch)
    }

    /// Takes what is there without waiting; if there is nothing, `wake` is called (once, from
    /// the network thread) when there is.
    pub fn try_batch(&self, wake: Wake) -> Option<Batch> {
        let mut queue = self.shared.queue.lock();
        if queue.items.is_empty() && queue.end.is_none() {
            queue.wake = Some(wake);
            return None;
        }
        let batch = Shared::take(&mut queue);
        drop(queue);
        self.shared.room.notify_one();
        Some(batch)
    }

    /// Stops the request (the connection is dropped if the body is not over).
    pub fn close(&self) {
        self.task.abort();
        self.shared.queue.lock().wake = None;
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        self.close();
    }
}

fn describe(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn failure(error: &reqwest::Error, before_body: bool) -> Failure {
    let message = describe(error);
    if error.is_timeout() {
        Failure::Timeout {
            message,
            before_body,
        }
    } else {
        Failure::Connection {
            message,
            before_body,
        }
    }
}

async fn within<T>(
    limit: Option<Duration>,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
        None => Some(work.await),
    }
}

async fn run(
    request: reqwest::RequestBuilder,
    read_timeout: Option<Duration>,
    shared: Arc<Shared>,
) {
    let end = exchange(request, read_timeout, &shared).await;
    shared.finish(end);
}

async fn exchange(
    request: reqwest::RequestBuilder,
    read_timeout: Option<Duration>,
    shared: &Shared,
) -> Result<(), Failure> {
    let timed_out = |before_body| Failure::Timeout {
        message: "timed out".into(),
        before_body,
    };
    let mut response = within(read_timeout, request.send())
        .await
        .ok_or_else(|| timed_out(true))?
        .map_err(|e| failure(&e, true))?;
    let status = response.status();
    if !status.is_success() {
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = within(read_timeout, response.bytes())
            .await
            .ok_or_else(|| timed_out(true))?
            .map_err(|e| failure(&e, true))?;
        return Err(Failure::Status {
            status: status.as_u16(),
            headers,
            body: body.to_vec(),
        });
    }
    let mut decoder = SseDecoder::new();
    let mut done = false;
    loop {
        let Some(bytes) = within(read_timeout, response.chunk())
            .await
            .ok_or_else(|| timed_out(false))?
            .map_err(|e| failure(&e, false))?
        else {
            return Ok(());
        };
        if done {
            continue; // after [DONE]: read the body to its end so the connection is reused
        }
        let mut full = false;
        decoder.feed(&bytes, |data| {
            if done {
                return;
            }
            match classify(data) {
                Some(item) => full |= shared.push(item),
                None => done = true,
            }
        });
        if full {
            shared.room.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// Serves one connection on 127.0.0.1 with `response` (after reading the request head and
    /// body), then closes it; returns the URL.
    fn serve_once(response: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/v1/chat/completions",
            listener.local_addr().unwrap()
        );
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.ends_with(b"{}") {
                let n = socket.read(&mut buf).unwrap();
                if n == 0 {
                    return;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            socket.write_all(&response).unwrap();
        });
        url
    }

    fn collect(stream: &ChatStream) -> (Vec<Item>, Result<(), Failure>) {
        let mut items = Vec::new();
        loop {
            let batch = stream.next_batch();
            items.extend(batch.items);
            if let Some(end) = batch.end {
                return (items, end);
            }
        }
    }

    fn chunked(events: &[&str], complete: bool) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        transfer-encoding: chunked\r\n\r\n"
            .to_vec();
        for event in events {
            let data = format!("data: {event}\n\n");
            out.extend(format!("{:x}\r\n{data}\r\n", data.len()).into_bytes());
        }
        if complete {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        out
    }

    fn start(url: &str) -> ChatStream {
        let client = HttpClient::new(Some(Duration::from_secs(5)), None).unwrap();
        client.stream(
            url,
            vec![("content-type".into(), "application/json".into())],
            b"{}".to_vec(),
            None,
        )
    }

    #[test]
    fn a_stream_gives_its_items_then_ends_at_done() {
        let text = r#"{"choices": [{"delta": {"content": "Hi"}}]}"#;
        let url = serve_once(chunked(&[text, text, "[DONE]", text], true));
        let (items, end) = collect(&start(&url));
        assert_eq!(end, Ok(()));
        assert_eq!(items.len(), 2, "nothing after [DONE]");
        assert!(items
            .iter()
            .all(|i| matches!(i, Item::Delta { content, .. } if content == "Hi")));
    }

    #[test]
    fn an_error_status_comes_back_with_its_body() {
        let body = r#"{"error": {"message": "no"}}"#;
        let response = format!(
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let url = serve_once(response.into_bytes());
        let (items, end) = collect(&start(&url));
        assert!(items.is_empty());
        let Err(Failure::Status {
            status,
            headers,
            body: got,
        }) = end
        else {
            panic!("{end:?}")
        };
        assert_eq!((status, got), (429, body.as_bytes().to_vec()));
        assert!(headers.contains(&("retry-after".into(), "1".into())));
    }

    #[test]
    fn a_body_cut_short_is_a_connection_failure_after_its_items() {
        let text = r#"{"choices": [{"delta": {"content": "Hi"}}]}"#;
        let url = serve_once(chunked(&[text], false));
        let (items, end) = collect(&start(&url));
        assert_eq!(items.len(), 1);
        assert!(
            matches!(
                end,
                Err(Failure::Connection {
                    before_body: false,
                    ..
                })
            ),
            "{end:?}"
        );
    }

    #[test]
    fn nothing_listening_is_a_connection_failure_before_the_body() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (_, end) = collect(&start(&format!("http://127.0.0.1:{port}/v1")));
        assert!(
            matches!(
                end,
                Err(Failure::Connection {
                    before_body: true,
                    ..
                })
            ),
            "{end:?}"
        );
    }
}
