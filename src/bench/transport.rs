//! The HTTP/2 transport under the bench's tonic clients.
//!
//! tonic's `Channel` sends a unary request in two writes: hyper's HTTP/2 client cannot give the
//! body flow-control capacity before h2 has opened the stream, so it pipes the body from a task
//! of its own, and the connection flushes the HEADERS frame before the DATA frame is queued: two
//! system calls, a task spawned and a hand-over through tonic's buffer for every call, all on the
//! load generator's CPU, which shares the machine with the server and Redis. grpc-go's
//! transport, for one, queues a unary call's frames and flushes them together.
//!
//! [`H2Channel`] does that under tonic: the generated clients, the codec and `Status` are tonic's,
//! over the `h2` crate's client directly. The request's one message is handed to h2 with the
//! headers, and h2 buffers it until the stream opens, so the connection writes HEADERS and DATA
//! in one go. `--transport channel` keeps tonic's `Channel`, to measure one against the other.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};

use super::args::TransportKind;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One HTTP/2 connection, shared by every clone.
#[derive(Clone)]
pub struct H2Channel {
    send: h2::client::SendRequest<Bytes>,
    /// How long a call may take before it fails with `DEADLINE_EXCEEDED`.
    timeout: Duration,
}

impl H2Channel {
    /// Opens HTTP/2 on a connected stream and drives the connection on a task of its own.
    pub async fn handshake<T>(io: T) -> Result<Self, h2::Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (send, connection) = h2::client::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("creditd bench: the HTTP/2 connection ended: {e}");
            }
        });
        Ok(H2Channel {
            send,
            timeout: Duration::from_secs(3600),
        })
    }

    pub fn with_timeout(self, timeout: Duration) -> Self {
        H2Channel { timeout, ..self }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for H2Channel {
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each call waits for its own clone's turn (`ready` below).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let (send, timeout) = (self.send.clone(), self.timeout);
        let call = async move {
            let (head, body) = request.into_parts();
            // A unary call's body is one encoded message, ready at once.
            let message = body.collect().await?.to_bytes();
            let mut send = send.ready().await?;
            let (response, mut stream) =
                send.send_request(http::Request::from_parts(head, ()), message.is_empty())?;
            if !message.is_empty() {
                // Buffered by h2 until the stream opens; needs no capacity yet.
                stream.send_data(message, true)?;
            }
            let response = response.await?;
            Ok(response.map(|recv| {
                tonic::body::Body::new(RecvBody {
                    recv,
                    data_done: false,
                })
            }))
        };
        Box::pin(async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(answer) => answer,
                Err(_) => Err(Box::new(tonic::Status::deadline_exceeded(format!(
                    "no answer within {timeout:?}"
                ))) as BoxError),
            }
        })
    }
}

/// A response body read from h2: the DATA frames, then the trailers (where gRPC's status is).
struct RecvBody {
    recv: h2::RecvStream,
    data_done: bool,
}

impl http_body::Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match self.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    // Hand the window back, as hyper does, so the server may send more.
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => self.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match self.recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}

/// The transport of one bench connection: tonic's `Channel`, or [`H2Channel`].
#[derive(Clone)]
pub enum Transport {
    Channel(tonic::transport::Channel),
    H2(H2Channel),
}

impl Transport {
    /// Connects to `target` (`http://HOST:PORT` or `unix:/PATH`) the way `kind` says; every call
    /// fails with `DEADLINE_EXCEEDED` after `timeout`.
    pub async fn connect(
        kind: TransportKind,
        target: &str,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Self, BoxError> {
        match kind {
            TransportKind::Channel => {
                let endpoint = crate::net::endpoint(target)?
                    .connect_timeout(connect_timeout)
                    .timeout(timeout);
                Ok(Transport::Channel(
                    crate::net::connect(endpoint, target).await?,
                ))
            }
            TransportKind::H2 => {
                let dial = async {
                    match crate::net::unix_path(target) {
                        Some(path) => {
                            let stream = tokio::net::UnixStream::connect(path).await?;
                            H2Channel::handshake(stream).await.map_err(BoxError::from)
                        }
                        None => {
                            let uri: http::Uri = target.parse()?;
                            let host = uri.host().ok_or_else(|| format!("no host in {target}"))?;
                            // An IPv6 address comes bracketed, as in the URL.
                            let host = host.trim_start_matches('[').trim_end_matches(']');
                            let port = uri.port_u16().unwrap_or(80);
                            let stream = tokio::net::TcpStream::connect((host, port)).await?;
                            stream.set_nodelay(true)?;
                            H2Channel::handshake(stream).await.map_err(BoxError::from)
                        }
                    }
                };
                let channel = tokio::time::timeout(connect_timeout, dial)
                    .await
                    .map_err(|_| format!("connecting to {target} timed out"))??;
                Ok(Transport::H2(channel.with_timeout(timeout)))
            }
        }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Transport {
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Transport::Channel(channel) => channel.poll_ready(cx).map_err(BoxError::from),
            Transport::H2(channel) => channel.poll_ready(cx),
        }
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        match self {
            Transport::Channel(channel) => {
                let call = channel.call(request);
                Box::pin(async move { call.await.map_err(BoxError::from) })
            }
            Transport::H2(channel) => channel.call(request),
        }
    }
}
