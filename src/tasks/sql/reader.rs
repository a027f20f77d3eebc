//! The reader: a task of its own that runs the query page after page, each page from the
//! cursor of the last row it read, and hands the rows over in chunks through a bounded channel,
//! each chunk converted to records on a task of its own (`fetch::forward`).
//!
//! Why a separate task that pages ahead: the database's work and the row conversion overlap with
//! the sink writing and the state being saved, instead of waiting for each other page by page.
//! The channel is bounded, so the reader is at most about a page ahead (the larger of 8 chunks
//! and a page's worth) and memory stays at about two pages whatever the table's size; the run
//! still saves a page's cursor only after it delivered the page ([`Message::PageEnd`]).
//! Dropping the [`Reader`] aborts the reader task at once, so a run that stops (cancelled, a
//! sink error) leaves no query running behind it; chunks already sent finish converting and
//! are dropped.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::cursor::Cursor;
use super::error::Error;
use super::fetch::{self, Chunk, Query};
use super::placeholders::Param;
use super::pool::Pool;

/// Chunks the reader may be ahead of the run, at least: a page's worth when pages are larger,
/// so the next page is read while the sink writes this one and its cursor is saved.
const AHEAD: usize = 8;

/// What the reader hands over, in order.
#[derive(Debug)]
pub enum Message {
    /// Records, with the cursor of the last one.
    Rows(Chunk),
    /// The page before is complete; `short` when it was the last one.
    PageEnd {
        /// Fewer rows than a page (or the one query of a snapshot): nothing more to read.
        short: bool,
    },
}

/// How to page through the query.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The query, without binds (each page binds its own).
    pub query: Query,
    /// What each of its parameters is.
    pub params: Vec<Param>,
    /// The cursor columns; none for a snapshot (one query).
    pub columns: Vec<String>,
    /// Rows per page (`{limit}`).
    pub page_size: u32,
    /// Where the first page starts.
    pub start: Option<Cursor>,
}

/// The pages of a running reader task, which is aborted when this is dropped.
pub struct Reader {
    receiver: mpsc::Receiver<Result<Message, Error>>,
    task: JoinHandle<()>,
}

impl Reader {
    /// The next message; `None` when the reader task ended without one.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.receiver.recv().await
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts reading pages as `plan` says; the reader gets them in order, and an error ends them.
pub fn spawn(pool: &Pool, plan: Plan) -> Reader {
    let ahead = AHEAD.max(plan.page_size as usize / fetch::CHUNK);
    let (sender, receiver) = mpsc::channel(ahead);
    let pool = pool.clone();
    let task = tokio::spawn(async move {
        if let Err(error) = pages(&pool, plan, &sender).await {
            let _ = sender.send(Err(error)).await;
        }
    });
    Reader { receiver, task }
}

async fn pages(pool: &Pool, plan: Plan, sender: &fetch::Sender) -> Result<(), Error> {
    let mut cursor = plan.start;
    loop {
        let binds = cursor
            .as_ref()
            .map(|cursor| cursor.binds(&plan.params, plan.page_size))
            .unwrap_or_default();
        let query = Query {
            binds,
            ..plan.query.clone()
        };
        let sent = fetch::read(pool, &query, &plan.columns, sender).await?;
        if sent.gone {
            return Ok(());
        }
        cursor = sent.last.or(cursor);
        let short = plan.columns.is_empty() || sent.rows < u64::from(plan.page_size);
        let end = Message::PageEnd { short };
        if sender.send(Ok(end)).await.is_err() || short {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropping_the_reader_aborts_its_task() {
        let (held, gone) = tokio::sync::oneshot::channel::<()>();
        let (_sender, receiver) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        drop(Reader { receiver, task });
        tokio::time::timeout(std::time::Duration::from_secs(5), gone)
            .await
            .expect("the task was aborted")
            .expect_err("it ended without sending");
    }
}
