//! Captures everything logged on the current thread, at every level, into a buffer: `tracing`
//! events and, through the `log` bridge, the records of crates that use `log` (reqwest).
//!
//! The subscriber is the thread's default, so use it from a current-thread runtime
//! (`#[tokio::test]`'s default): then every task of the test, including the HTTP client's
//! connection tasks, logs into the buffer.

use std::io;
use std::sync::{Arc, Mutex};

use tracing::dispatcher::DefaultGuard;
use tracing_subscriber::util::SubscriberInitExt;

/// The captured log; capturing stops when it is dropped.
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: DefaultGuard,
}

/// Starts capturing at TRACE level.
pub fn capture() -> LogCapture {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    let guard = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || Sink(sink.clone()))
        .finish()
        .set_default();
    LogCapture {
        buffer,
        _guard: guard,
    }
}

impl LogCapture {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
