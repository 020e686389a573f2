//! Body plumbing: reading a bounded prefix before deciding, scanning a streamed remainder
//! for placeholders, and decoding/scrubbing/auditing the response as it streams back.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use airlock_credentials::aws::ChunkSigner;
use airlock_vault::{ContentDecoder, Scrubber};
use bytes::{Buf as _, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::upstream::{BoxError, UpBody};

/// An agent's request body: hyper's in the gateway, any body in the stages' tests.
pub trait AgentBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + Sync + Unpin + 'static {}
impl<B> AgentBody for B where B: Body<Data = Bytes, Error: Into<BoxError>> + Send + Sync + Unpin + 'static {}

/// What was read of a request body before the decision.
pub enum Prefetched<B = Incoming> {
    Empty,
    /// The whole body.
    Full(Bytes),
    /// The first bytes (more than the limit) and the unread rest.
    Partial(Bytes, B),
}

/// Reads up to `limit` bytes. A body that ends within the limit is `Full`.
pub async fn prefetch<B: AgentBody>(mut body: B, limit: usize) -> Result<Prefetched<B>, BoxError> {
    if body.is_end_stream() {
        return Ok(Prefetched::Empty);
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        // Request trailers are dropped: nothing upstream of a proxy relies on them, and they
        // would be one more place for a placeholder to leave unscanned.
        if let Ok(data) = frame.map_err(Into::into)?.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Ok(Prefetched::Partial(buf.freeze(), body));
            }
        }
    }
    Ok(if buf.is_empty() {
        Prefetched::Empty
    } else {
        Prefetched::Full(buf.freeze())
    })
}

/// Raised inside the streamed remainder when a placeholder bound elsewhere appears.
#[derive(Debug, thiserror::Error)]
#[error("exfiltration blocked: a placeholder appeared in the streamed body")]
pub struct StreamedExfiltration;

/// True when a window of body bytes holds a placeholder not bound to the destination.
pub type Forbidden = Box<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// The unread rest of a request body, scanned as it streams: if a placeholder whose
/// secret is not bound to this host appears, the upstream request is aborted. Trailers are
/// dropped (an unscanned header block), as in [`prefetch`].
pub struct ScannedRest<B = Incoming> {
    inner: B,
    forbidden: Forbidden,
    carry: Vec<u8>,
    keep: usize,
    pub tripped: Arc<AtomicBool>,
}

impl<B> ScannedRest<B> {
    pub fn new(inner: B, head: &[u8], keep: usize, forbidden: Forbidden) -> Self {
        let carry = head[head.len().saturating_sub(keep)..].to_vec();
        ScannedRest {
            inner,
            forbidden,
            carry,
            keep,
            tripped: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<B: AgentBody> Body for ScannedRest<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            return match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    // Look at the carried tail plus this chunk so a placeholder split
                    // across chunks is still seen.
                    let mut window = std::mem::take(&mut this.carry);
                    window.extend_from_slice(data);
                    if (this.forbidden)(&window) {
                        this.tripped.store(true, Ordering::SeqCst);
                        return Poll::Ready(Some(Err(Box::new(StreamedExfiltration))));
                    }
                    this.carry = window[window.len().saturating_sub(this.keep)..].to_vec();
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Called once when a response body finishes or is dropped: (bytes sent to the agent, completed).
pub type OnDone = Box<dyn FnOnce(u64, bool) + Send + Sync>;

/// Most decoded bytes produced per frame: with the decoder's window, it bounds the memory a
/// compressed response can make the gateway hold (a small bomb stays a slow stream).
const DECODED_FRAME: usize = 64 * 1024;

/// The upstream response body on its way to the agent: decoded from its content coding when
/// it has one, real secret values replaced by placeholders across chunk boundaries, trailers
/// scrubbed, bytes counted, the audit record written at the end.
pub struct ResponseBody {
    inner: UpBody,
    scrubber: Option<Scrubber>,
    decoder: Option<ContentDecoder>,
    /// Coded bytes received but not yet decoded.
    coded: Bytes,
    /// The upstream body ended (or sent its trailers, its last frame).
    ended: bool,
    /// Trailers wait until the scrubber's held-back bytes are out.
    trailers: Option<HeaderMap>,
    /// The scrubber's tail is out and the record written.
    finished: bool,
    bytes: u64,
    flushed: bool,
    on_done: Option<OnDone>,
}

impl ResponseBody {
    pub fn new(inner: UpBody, scrubber: Option<Scrubber>, decoder: Option<ContentDecoder>, on_done: OnDone) -> Self {
        ResponseBody {
            inner,
            scrubber,
            decoder,
            coded: Bytes::new(),
            ended: false,
            trailers: None,
            finished: false,
            bytes: 0,
            flushed: false,
            on_done: Some(on_done),
        }
    }

    fn done(&mut self, completed: bool) {
        if let Some(f) = self.on_done.take() {
            f(self.bytes, completed);
        }
    }

    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.flushed = true;
        self.done(false);
        Poll::Ready(Some(Err(e)))
    }

    /// Scrubs decoded (or plain) bytes; `None` when all of them are held back for now.
    fn emit(&mut self, data: Bytes) -> Option<Frame<Bytes>> {
        let out = match &mut self.scrubber {
            Some(s) => s.feed(&data),
            None => data,
        };
        self.bytes += out.len() as u64;
        (!out.is_empty()).then(|| Frame::data(out))
    }

    /// Decodes the next piece of `coded`: a frame, nothing yet (more input needed), or, once
    /// the upstream ended and the decoder is drained, the end of the decoded stream.
    fn decode_step(&mut self) -> Result<Step, BoxError> {
        let Some(dec) = self.decoder.as_mut() else {
            return Ok(Step::Drained);
        };
        if self.coded.is_empty() && !self.ended {
            return Ok(Step::NeedInput);
        }
        let mut out = Vec::new();
        let used = dec.decode(&self.coded, &mut out, DECODED_FRAME)?;
        self.coded.advance(used);
        if !out.is_empty() {
            return Ok(self.emit(Bytes::from(out)).map_or(Step::Again, Step::Frame));
        }
        if !self.ended {
            return Ok(if self.coded.is_empty() {
                Step::NeedInput
            } else {
                Step::Again
            });
        }
        dec.finish()?;
        self.decoder = None;
        Ok(Step::Drained)
    }
}

enum Step {
    Frame(Frame<Bytes>),
    /// Progress without output: step again.
    Again,
    NeedInput,
    /// The decoder (if any) has nothing more.
    Drained,
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.done(false);
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.flushed {
                return Poll::Ready(None);
            }
            match this.decode_step() {
                Err(e) => return this.fail(e),
                Ok(Step::Frame(f)) => return Poll::Ready(Some(Ok(f))),
                Ok(Step::Again) => continue,
                Ok(Step::NeedInput) => {}
                Ok(Step::Drained) if this.ended => {
                    // The held-back tail first, then the trailers, then the end.
                    if !this.finished {
                        this.finished = true;
                        let tail = this.scrubber.as_mut().map(|s| s.finish()).unwrap_or_default();
                        this.bytes += tail.len() as u64;
                        this.done(true);
                        if !tail.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(tail))));
                        }
                    }
                    this.flushed = true;
                    return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
                }
                Ok(Step::Drained) => {}
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if this.decoder.is_some() => this.coded = data,
                    Ok(data) => {
                        if let Some(f) = this.emit(data) {
                            return Poll::Ready(Some(Ok(f)));
                        }
                    }
                    Err(frame) => {
                        if let Ok(mut trailers) = frame.into_trailers() {
                            if let Some(s) = &this.scrubber {
                                crate::response::scrub_fields(&mut trailers, s);
                            }
                            this.trailers = Some(trailers);
                        }
                        this.ended = true;
                    }
                },
                Poll::Ready(Some(Err(e))) => return this.fail(e),
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.flushed
            || (self.scrubber.is_none()
                && self.decoder.is_none()
                && self.trailers.is_none()
                && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.scrubber.is_some() || self.decoder.is_some() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

pub fn boxed<B>(b: B) -> UpBody
where
    B: Body<Data = Bytes, Error = BoxError> + Send + Sync + 'static,
{
    b.boxed()
}

/// Two bodies, one after the other: the prefetched head, then the streamed rest.
pub struct Chain<A, B> {
    first: Option<A>,
    second: B,
}

impl<A, B> Chain<A, B> {
    pub fn new(first: A, second: B) -> Self {
        Chain {
            first: Some(first),
            second,
        }
    }
}

impl<A, B> Body for Chain<A, B>
where
    A: Body<Data = Bytes, Error = BoxError> + Unpin,
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.as_mut() {
            match Pin::new(first).poll_frame(cx) {
                Poll::Ready(None) => self.first = None,
                other => return other,
            }
        }
        Pin::new(&mut self.second).poll_frame(cx)
    }
}

/// An S3 signed-chunk body whose chunks are signed again as they stream (the prefetched head
/// went through the same signer before the request was sent). Bad framing aborts the upstream
/// request; trailers are dropped, as in [`prefetch`].
pub struct SignedChunks<B> {
    inner: B,
    signer: ChunkSigner,
    ended: bool,
}

impl<B> SignedChunks<B> {
    pub fn new(inner: B, signer: ChunkSigner) -> Self {
        SignedChunks {
            inner,
            signer,
            ended: false,
        }
    }
}

impl<B> Body for SignedChunks<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            return match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Some(data) = frame.data_ref() else {
                        continue;
                    };
                    match this.signer.push(data) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => {
                            this.ended = true;
                            Poll::Ready(Some(Err(Box::new(e))))
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.ended = true;
                    match this.signer.finish() {
                        Ok(()) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(Box::new(e)))),
                    }
                }
                Poll::Pending => Poll::Pending,
            };
        }
    }
}

/// Reads a body to its end if it fits in `max` bytes (a request held for approval must be
/// held whole). `None` when it is larger: such a request is denied, never approved blind.
pub async fn read_whole<B: AgentBody>(pre: Prefetched<B>, max: usize) -> Result<Option<Bytes>, BoxError> {
    let (head, mut rest) = match pre {
        Prefetched::Empty => return Ok(Some(Bytes::new())),
        Prefetched::Full(b) => return Ok((b.len() <= max).then_some(b)),
        Prefetched::Partial(head, rest) => (head, rest),
    };
    if head.len() > max {
        return Ok(None);
    }
    let mut buf = BytesMut::from(&head[..]);
    while let Some(frame) = rest.frame().await {
        if let Ok(data) = frame.map_err(Into::into)?.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > max {
                return Ok(None);
            }
        }
    }
    Ok(Some(buf.freeze()))
}
