//! COPY OUT hands over one message per row. Passed on as they come, each row would be one
//! message to the target connection's task, one wake-up of that task and one update of the
//! progress counters, and the target's socket would be written in frames of about 4 kB. This
//! adapter gathers the rows that have already arrived into chunks instead: nothing waits for a
//! chunk to fill (whatever is there when the source has nothing more goes on at once), and a
//! chunk never grows past `CHUNK` bytes, which bounds what a worker holds in flight.

use bytes::{Bytes, BytesMut};
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The largest chunk passed on, in bytes.
pub const CHUNK: usize = 64 << 10;

pub struct Chunks<S> {
    inner: Pin<Box<S>>,
    buf: BytesMut,
    done: bool,
}

impl<S> Chunks<S> {
    pub fn new(inner: S) -> Self {
        Chunks {
            inner: Box::pin(inner),
            buf: BytesMut::new(),
            done: false,
        }
    }

    fn take(&mut self) -> Bytes {
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK);
        chunk
    }
}

impl<S, E> Stream for Chunks<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(row))) => {
                    if this.buf.is_empty() && row.len() >= CHUNK {
                        return Poll::Ready(Some(Ok(row)));
                    }
                    if this.buf.len() + row.len() > CHUNK {
                        // Pass on what is gathered; the row starts the next chunk.
                        let chunk = this.take();
                        this.buf.extend_from_slice(&row);
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    this.buf.extend_from_slice(&row);
                }
                Poll::Ready(Some(Err(e))) => {
                    // The COPY failed: what was gathered belongs to a transaction that will
                    // be rolled back, so it is dropped.
                    this.done = true;
                    this.buf.clear();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(if this.buf.is_empty() {
                        None
                    } else {
                        Some(Ok(this.take()))
                    });
                }
                Poll::Pending => {
                    return if this.buf.is_empty() {
                        Poll::Pending
                    } else {
                        Poll::Ready(Some(Ok(this.take())))
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{stream, StreamExt};

    fn rows(sizes: &[usize]) -> Vec<Result<Bytes, String>> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| Ok(Bytes::from(vec![i as u8; n])))
            .collect()
    }

    async fn collect(s: impl Stream<Item = Result<Bytes, String>>) -> Vec<Result<Bytes, String>> {
        Chunks::new(s).collect().await
    }

    #[tokio::test]
    async fn rows_are_gathered_in_order_and_bounded() {
        let sizes: Vec<usize> = (0..5000).map(|i| 1 + (i * 37) % 300).collect();
        let input = rows(&sizes);
        let expected: Vec<u8> = input
            .iter()
            .flat_map(|r| r.as_ref().unwrap().to_vec())
            .collect();
        let out = collect(stream::iter(input)).await;
        assert!(out.len() > 1 && out.len() < 100, "{} chunks", out.len());
        let mut joined = Vec::new();
        for c in &out {
            let c = c.as_ref().unwrap();
            assert!(!c.is_empty() && c.len() <= CHUNK, "chunk of {}", c.len());
            joined.extend_from_slice(c);
        }
        assert_eq!(joined, expected);
    }

    #[tokio::test]
    async fn a_row_larger_than_a_chunk_goes_whole() {
        let out = collect(stream::iter(rows(&[10, CHUNK + 5, 20]))).await;
        let lens: Vec<usize> = out.iter().map(|c| c.as_ref().unwrap().len()).collect();
        assert_eq!(lens, vec![10, CHUNK + 5, 20]);
    }

    #[tokio::test]
    async fn what_has_arrived_goes_on_when_the_source_waits() {
        // Two rows, then nothing for now (None stands for a poll that finds nothing), then
        // one more.
        let mut script: std::collections::VecDeque<Option<&'static [u8]>> =
            [Some(&b"ab"[..]), Some(b"cd"), None, Some(b"ef")].into();
        let source = stream::poll_fn(move |cx| match script.pop_front() {
            Some(Some(row)) => Poll::Ready(Some(Ok::<_, String>(Bytes::from_static(row)))),
            Some(None) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Ready(None),
        });
        let mut chunks = Chunks::new(source);
        assert_eq!(chunks.next().await.unwrap().unwrap(), "abcd");
        assert_eq!(chunks.next().await.unwrap().unwrap(), "ef");
        assert!(chunks.next().await.is_none());
        assert!(chunks.next().await.is_none());
    }

    #[tokio::test]
    async fn an_error_ends_the_stream() {
        let mut input = rows(&[3, 4]);
        input.push(Err("broken".into()));
        input.extend(rows(&[5]));
        let out = collect(stream::iter(input)).await;
        assert_eq!(out, vec![Err("broken".to_string())]);
    }
}
