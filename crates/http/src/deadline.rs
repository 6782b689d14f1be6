//! A deadline on reading a request body (`server.body_read_timeout_ms`).
//!
//! actix-web bounds how long a client may take to send the request head
//! (`client_request_timeout`) but not the body: a client that sends a body one byte at a time
//! would hold its connection open for as long as it likes. This middleware gives the whole body
//! one deadline, counted from when the request reached the application. When it passes, the
//! body stream ends with an error (so the handler stops waiting), the client gets 408
//! `request_timeout` and the connection is closed. Reading a body never blocks a worker thread
//! (actix is asynchronous), so other requests are served all the while.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::rt::time::{sleep, Sleep};
use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage, HttpResponse};
use futures::Stream;

use crate::HttpLimits;

/// The request's body stream, cut off at a deadline.
struct DeadlineStream<S> {
    inner: S,
    deadline: Pin<Box<Sleep>>,
    fired: Arc<AtomicBool>,
    done: bool,
}

impl<S> Stream for DeadlineStream<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.done = true;
                    self.fired.store(true, Ordering::Release);
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body not received in time",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Middleware: bounds the time the whole request body may take to arrive
/// ([`HttpLimits::body_read_timeout`]; zero disables it).
pub async fn limit_body_time(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let timeout = req
        .app_data::<web::Data<HttpLimits>>()
        .map_or(HttpLimits::default().body_read_timeout, |l| {
            l.body_read_timeout
        });
    if timeout == Duration::ZERO {
        return next.call(req).await.map(|r| r.map_into_left_body());
    }
    let fired = Arc::new(AtomicBool::new(false));
    let stream = DeadlineStream {
        inner: req.take_payload(),
        deadline: Box::pin(sleep(timeout)),
        fired: fired.clone(),
        done: false,
    };
    req.set_payload(Payload::from(
        Box::pin(stream) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
    ));
    let outcome = next.call(req).await;
    if !fired.load(Ordering::Acquire) {
        return outcome.map(|r| r.map_into_left_body());
    }
    match outcome {
        Ok(response) => Ok(response.into_response(timed_out()).map_into_right_body()),
        // An inner middleware gave up on the body with an error: answer the same 408.
        Err(_) => Err(actix_web::error::InternalError::from_response(
            "request body not received in time",
            timed_out(),
        )
        .into()),
    }
}

fn timed_out() -> HttpResponse {
    HttpResponse::RequestTimeout()
        .insert_header((header::CONNECTION, "close"))
        .json(serde_json::json!({
            "detail": "Request body not received in time",
            "code": "request_timeout",
        }))
}
