//! `KV.Pipeline`: the calls a gateway makes most, as messages of one
//! long-lived stream per pair of nodes (TiKV's `BatchCommands` does the
//! same).
//!
//! A unary gRPC call opens an HTTP/2 stream: headers each way, the routing
//! of the service stack, a task on the server, trailers. For a point read
//! served from memory that costs more than the read. Here each call is an
//! entry of a `PipelineRequest` carrying its id, each answer an entry of a
//! `PipelineResponse` carrying the same id; whatever is queued when a side
//! sends travels in one message, and answers come in any order (a read does
//! not wait behind a write's Raft round).
//!
//! The client side keeps one stream per node address, opened on first use
//! and again after it breaks; calls in flight on a broken stream fail with
//! `UNAVAILABLE`, as a unary call on a broken connection does, and the
//! caller's retries take over. A call not answered within the client's RPC
//! timeout fails with `DEADLINE_EXCEEDED`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tessera_proto::kv::{self as pb, kv_client::KvClient as PbKvClient};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::services::KvService;

pub(crate) use pb::pipelined_call::Call;
pub(crate) use pb::pipelined_reply::Reply;

/// The answers of one pipeline, as the server's response stream: each
/// message carries every answer ready when it is polled.
pub struct Replies {
    rx: mpsc::UnboundedReceiver<pb::PipelinedReply>,
}

impl Stream for Replies {
    type Item = Result<pb::PipelineResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(first) = std::task::ready!(self.rx.poll_recv(cx)) else {
            return Poll::Ready(None);
        };
        let mut replies = vec![first];
        while let Ok(reply) = self.rx.try_recv() {
            replies.push(reply);
        }
        Poll::Ready(Some(Ok(pb::PipelineResponse { replies })))
    }
}

/// Serves a pipeline: each call is answered as soon as it is done, in any
/// order. A call that is done at once (a read served from the leader's
/// snapshot) is answered by the task that reads the stream; one that waits
/// (a Raft round, a lock) goes on as a task of its own, so that it holds
/// up nothing behind it. The stream of answers ends once the caller's
/// stream has ended, or the node began to stop, and every call read has
/// answered. (Calls the node did not read fail at the caller as
/// `UNAVAILABLE`: they never ran.)
pub(crate) fn serve(service: Arc<KvService>, mut calls: Streaming<pb::PipelineRequest>) -> Replies {
    let (tx, rx) = mpsc::unbounded_channel();
    let closed = crate::services::closed(service.closing());
    tokio::spawn(async move {
        tokio::pin!(closed);
        loop {
            let request = tokio::select! {
                request = calls.next() => match request {
                    Some(Ok(request)) => request,
                    _ => break,
                },
                _ = &mut closed => break,
            };
            for call in request.calls {
                let (service, tx) = (service.clone(), tx.clone());
                let id = call.id;
                let mut answer = Box::pin(async move {
                    match call.call {
                        Some(request) => service.answer(request).await,
                        None => failed(&Status::invalid_argument(
                            "a pipelined call without a request",
                        )),
                    }
                });
                let send = move |reply| {
                    let _ = tx.send(pb::PipelinedReply {
                        id,
                        reply: Some(reply),
                    });
                };
                match futures::poll!(answer.as_mut()) {
                    Poll::Ready(reply) => send(reply),
                    Poll::Pending => {
                        tokio::spawn(async move { send(answer.await) });
                    }
                }
            }
        }
    });
    Replies { rx }
}

/// The reply that stands for a failed call.
pub(crate) fn failed(status: &Status) -> Reply {
    Reply::Failed(pb::CallFailed {
        code: status.code() as i32,
        message: status.message().to_string(),
    })
}

type Answer = oneshot::Sender<Result<Reply, Status>>;

/// The client side of one node's pipeline: a handle on the task that owns
/// the stream, or, for the client's own node, its service itself (the call
/// runs on the caller's task, without the network).
#[derive(Clone)]
pub(crate) enum Pipeline {
    Remote(mpsc::UnboundedSender<(Call, Answer)>),
    Local(Arc<KvService>),
}

impl Pipeline {
    /// A pipeline over `channel`; the stream opens with the first call.
    /// Must be called within the runtime.
    pub fn open(channel: Channel) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(channel, rx));
        Self::Remote(tx)
    }

    /// Makes one call, waiting at most `timeout` for its answer.
    pub async fn call(&self, call: Call, timeout: Duration) -> Result<Reply, Status> {
        let no_answer = || Status::deadline_exceeded(format!("no answer within {timeout:?}"));
        let tx = match self {
            Pipeline::Remote(tx) => tx,
            Pipeline::Local(service) => {
                return match tokio::time::timeout(timeout, service.answer(call)).await {
                    Ok(reply) => result_of(Some(reply)),
                    Err(_) => Err(no_answer()),
                }
            }
        };
        let (answer, reply) = oneshot::channel();
        tx.send((call, answer))
            .map_err(|_| Status::unavailable("the pipeline to the node is closed"))?;
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Status::unavailable("the pipeline to the node closed")),
            Err(_) => Err(no_answer()),
        }
    }
}

/// A reply as the caller sees it: a failed call is its status.
fn result_of(reply: Option<Reply>) -> Result<Reply, Status> {
    match reply {
        Some(Reply::Failed(failed)) => {
            Err(Status::new(tonic::Code::from(failed.code), failed.message))
        }
        Some(reply) => Ok(reply),
        None => Err(Status::internal("a pipelined reply without an answer")),
    }
}

/// Calls waiting for their answers, by id.
#[derive(Default)]
struct InFlight {
    next_id: u64,
    waiting: HashMap<u64, Answer>,
}

impl InFlight {
    /// Gives each queued call an id, and returns them as one message.
    fn take(&mut self, queued: Vec<(Call, Answer)>) -> pb::PipelineRequest {
        if self.waiting.len() > 1024 {
            // Callers that gave up (timed out) leave their entries behind.
            self.waiting.retain(|_, answer| !answer.is_closed());
        }
        let calls = queued
            .into_iter()
            .map(|(call, answer)| {
                self.next_id += 1;
                self.waiting.insert(self.next_id, answer);
                pb::PipelinedCall {
                    id: self.next_id,
                    call: Some(call),
                }
            })
            .collect();
        pb::PipelineRequest { calls }
    }

    fn answer(&mut self, reply: pb::PipelinedReply) {
        let Some(answer) = self.waiting.remove(&reply.id) else {
            return;
        };
        let _ = answer.send(result_of(reply.reply));
    }

    /// Fails every call waiting: the stream broke.
    fn fail_all(&mut self, status: &Status) {
        for (_, answer) in self.waiting.drain() {
            let _ = answer.send(Err(Status::unavailable(format!(
                "the pipeline to the node broke: {}",
                status.message()
            ))));
        }
    }
}

/// Takes the first queued call and whatever else is queued behind it.
fn drain(
    first: (Call, Answer),
    rx: &mut mpsc::UnboundedReceiver<(Call, Answer)>,
) -> Vec<(Call, Answer)> {
    let mut queued = vec![first];
    while let Ok(next) = rx.try_recv() {
        queued.push(next);
    }
    queued
}

/// Owns the stream: sends queued calls, hands out answers, and opens a new
/// stream for the next call after one breaks. Ends once every handle is
/// gone and every call has its answer.
async fn run(channel: Channel, mut rx: mpsc::UnboundedReceiver<(Call, Answer)>) {
    let mut in_flight = InFlight::default();
    while let Some(first) = rx.recv().await {
        let (out, out_rx) = mpsc::unbounded_channel();
        let _ = out.send(in_flight.take(drain(first, &mut rx)));
        let mut client = PbKvClient::new(channel.clone())
            .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::MAX_MESSAGE_BYTES);
        let mut replies = match client.pipeline(UnboundedReceiverStream::new(out_rx)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                in_flight.fail_all(&status);
                continue;
            }
        };
        let mut open = true;
        loop {
            tokio::select! {
                queued = rx.recv(), if open => match queued {
                    Some(first) => {
                        let _ = out.send(in_flight.take(drain(first, &mut rx)));
                    }
                    None => open = false,
                },
                reply = replies.message() => match reply {
                    Ok(Some(response)) => {
                        for reply in response.replies {
                            in_flight.answer(reply);
                        }
                    }
                    Ok(None) => {
                        in_flight.fail_all(&Status::unavailable("the node ended the stream"));
                        break;
                    }
                    Err(status) => {
                        in_flight.fail_all(&status);
                        break;
                    }
                },
            }
            if !open && in_flight.waiting.is_empty() {
                return;
            }
        }
        if !open {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Call {
        Call::Timestamps(pb::TimestampsRequest {
            count: 1,
            read_key: Vec::new(),
        })
    }

    fn reply(id: u64, reply: Reply) -> pb::PipelinedReply {
        pb::PipelinedReply {
            id,
            reply: Some(reply),
        }
    }

    #[test]
    fn answers_reach_their_callers_by_id_in_any_order() {
        let mut in_flight = InFlight::default();
        let (first, mut first_rx) = oneshot::channel();
        let (second, mut second_rx) = oneshot::channel();
        let sent = in_flight.take(vec![(call(), first), (call(), second)]);
        let ids: Vec<u64> = sent.calls.iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        let timestamps = |first| {
            Reply::Timestamps(pb::TimestampsResponse {
                first,
                ..Default::default()
            })
        };
        in_flight.answer(reply(ids[1], timestamps(7)));
        in_flight.answer(reply(ids[0], failed(&Status::invalid_argument("bad"))));
        // An answer nobody waits for is dropped.
        in_flight.answer(reply(99, timestamps(1)));
        match second_rx.try_recv() {
            Ok(Ok(Reply::Timestamps(response))) => assert_eq!(response.first, 7),
            other => panic!("unexpected {other:?}"),
        }
        match first_rx.try_recv() {
            Ok(Err(status)) => {
                assert_eq!(status.code(), tonic::Code::InvalidArgument);
                assert_eq!(status.message(), "bad");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(in_flight.waiting.is_empty());
    }

    #[test]
    fn a_broken_stream_fails_every_call_waiting_as_unavailable() {
        let mut in_flight = InFlight::default();
        let (answer, mut rx) = oneshot::channel();
        in_flight.take(vec![(call(), answer)]);
        in_flight.fail_all(&Status::internal("connection reset"));
        match rx.try_recv() {
            Ok(Err(status)) => assert_eq!(status.code(), tonic::Code::Unavailable),
            other => panic!("unexpected {other:?}"),
        }
        assert!(in_flight.waiting.is_empty());
    }
}
