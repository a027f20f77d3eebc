//! The reader: a task of its own that runs the query page after page, each page from the
//! cursor of the last row it read, and hands the records over through a bounded channel.
//!
//! Why a separate task that pages ahead: the database's work and the row conversion overlap with
//! the sink writing and the state being saved, instead of waiting for each other page by page.
//! The channel is bounded, so the reader is at most a few chunks ahead and memory stays bounded
//! whatever the table's size; the run still saves a page's cursor only after it delivered the
//! page ([`Message::PageEnd`]). Dropping the receiver ends the reader at its next chunk.

use tokio::sync::mpsc;

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

/// Starts reading pages as `plan` says; the receiver gets them in order, and an error ends them.
pub fn spawn(pool: &Pool, plan: Plan) -> mpsc::Receiver<Result<Message, Error>> {
    let ahead = AHEAD.max(plan.page_size as usize / fetch::CHUNK);
    let (sender, receiver) = mpsc::channel(ahead);
    let pool = pool.clone();
    tokio::spawn(async move {
        if let Err(error) = pages(&pool, plan, &sender).await {
            let _ = sender.send(Err(error)).await;
        }
    });
    receiver
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
