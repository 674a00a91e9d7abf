//! Group commit: one writer task per kind of write collects the jobs that arrive while a
//! transaction is running and writes them all in the next one. On SQLite each commit is an
//! fsync and the audit chain serialises writers, so committing each job on its own caps a
//! hot path near a thousand a second; together, a batch costs about one. Every caller still
//! gets its answer only after the transaction holding its row has committed, so an answer
//! means the row is durable.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::{StorageError, Store};

type Reply<R> = oneshot::Sender<Result<R, StorageError>>;

/// The handle of a group-commit writer; cheap to clone.
pub(crate) struct GroupCommit<J, R> {
    tx: mpsc::Sender<(J, Reply<R>)>,
    what: &'static str,
}

impl<J, R> Clone for GroupCommit<J, R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            what: self.what,
        }
    }
}

impl<J, R> std::fmt::Debug for GroupCommit<J, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").field("what", &self.what).finish()
    }
}

impl<J: Send + 'static, R: Send + 'static> GroupCommit<J, R> {
    /// Starts the writer: `write` stores up to `max_batch` jobs in one transaction and
    /// answers each (in order), or fails the whole batch (then nothing was written).
    pub(crate) fn start<F, Fut>(store: Store, what: &'static str, max_batch: usize, write: F) -> Self
    where
        F: Fn(Store, Vec<J>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Result<R, StorageError>>, StorageError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<(J, Reply<R>)>(4096);
        tokio::spawn(run(rx, store, what, max_batch, 1, write));
        Self { tx, what }
    }

    /// The same writer on a thread of its own, with a runtime of its own: its batches never
    /// wait behind the requests the process's runtime is busy with, and what it connects
    /// there (see `issuance::postgres`) is polled by that runtime alone. Up to `in_flight`
    /// batches are written at once: the next is sent while the one before commits (`write`
    /// must keep concurrent batches apart, as `issuance::postgres` does with a connection
    /// each and the audit head handed from one to the next).
    pub(crate) fn start_on_thread<F, Fut>(
        store: Store,
        what: &'static str,
        max_batch: usize,
        in_flight: usize,
        write: F,
    ) -> std::io::Result<Self>
    where
        F: Fn(Store, Vec<J>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Result<R, StorageError>>, StorageError>>,
    {
        let (tx, rx) = mpsc::channel::<(J, Reply<R>)>(4096);
        // The runtime is made on the thread (one dropped within the process's runtime would
        // panic), which says whether it could.
        let (started, outcome) = std::sync::mpsc::sync_channel::<std::io::Result<()>>(1);
        std::thread::Builder::new()
            .name(format!("fleetca-{what}"))
            .spawn(
                move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => {
                        let _ = started.send(Ok(()));
                        runtime.block_on(run(rx, store, what, max_batch, in_flight, write));
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                },
            )?;
        outcome
            .recv()
            .map_err(|_| std::io::Error::other("the writer's thread ended before its runtime started"))??;
        Ok(Self { tx, what })
    }

    /// Queues `job` and waits for its transaction to commit.
    pub(crate) async fn submit(&self, job: J) -> Result<R, StorageError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((job, reply))
            .await
            .map_err(|_| StorageError::Unavailable(format!("the {} writer stopped", self.what)))?;
        rx.await
            .map_err(|_| StorageError::Internal(format!("the {} writer dropped a request", self.what)))?
    }
}

/// The writer's loop: takes what is waiting (up to `max_batch`), writes it, answers each;
/// with `in_flight` above one, takes the next batch while earlier ones are being written.
async fn run<J, R, F, Fut>(
    mut rx: mpsc::Receiver<(J, Reply<R>)>,
    store: Store,
    what: &'static str,
    max_batch: usize,
    in_flight: usize,
    write: F,
) where
    F: Fn(Store, Vec<J>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<R, StorageError>>, StorageError>>,
{
    use futures_util::StreamExt;
    let mut writing = futures_util::stream::FuturesUnordered::new();
    let mut open = true;
    while open || !writing.is_empty() {
        let mut batch = Vec::with_capacity(max_batch);
        tokio::select! {
            taken = rx.recv_many(&mut batch, max_batch), if open && writing.len() < in_flight.max(1) => {
                if taken == 0 {
                    open = false;
                    continue;
                }
                let (jobs, replies): (Vec<J>, Vec<Reply<R>>) = batch.into_iter().unzip();
                let rows = jobs.len();
                let written = write(store.clone(), jobs);
                writing.push(async move { answer(written.await, replies, what, rows) });
            }
            Some(()) = writing.next(), if !writing.is_empty() => {}
        }
    }
}

/// Answers each job of a batch with its result, or all of them with the batch's failure.
fn answer<R>(
    written: Result<Vec<Result<R, StorageError>>, StorageError>,
    replies: Vec<Reply<R>>,
    what: &str,
    rows: usize,
) {
    match written {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, rows, "{what} batch failed");
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
