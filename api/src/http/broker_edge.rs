//! The brokers' edge: what a `/broker/*` request passes through on its way to its family's
//! handler, and nothing else. These are the hot path (thousands a second, each answered from
//! memory in microseconds), so they are mounted as a scope of their own ahead of the rest of
//! the API and get one middleware, [`BrokerEdge`], instead of the API's stack of four (the
//! request id and span, the request metrics, the problem handler and the router's layers,
//! each a boxed future moved on every poll). It does what those did for these routes:
//! counts the request by route and status through handles made once, logs a failed or slow
//! one, answers any error that is not already ours as problem+json, and marks the response
//! `nosniff`. Brokers get no request id (they never read one) and no span.

use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use futures_util::future::LocalBoxFuture;

use crate::http::metrics;

/// The brokers' one middleware; `metrics: false` is the benchmark's baseline (no counting).
#[derive(Clone, Copy)]
pub struct BrokerEdge {
    pub metrics: bool,
}

impl<S, B> Transform<S, ServiceRequest> for BrokerEdge
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = BrokerEdgeService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BrokerEdgeService {
            service,
            metrics: self.metrics,
        }))
    }
}

pub struct BrokerEdgeService<S> {
    service: S,
    metrics: bool,
}

impl<S, B> Service<ServiceRequest> for BrokerEdgeService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let counted = self.metrics.then(|| metrics::BrokerCount::of(req.method(), req.path()));
        let answer = self.service.call(req);
        Box::pin(async move {
            let res = match answer.await {
                Ok(res) => res,
                Err(e) => {
                    // An error the handlers did not turn into an answer: counted, and
                    // answered by actix from the error.
                    if let Some(count) = counted {
                        count.record(e.as_response_error().status_code().as_u16(), started.elapsed());
                    }
                    return Err(e);
                }
            };
            let status = res.status().as_u16();
            let elapsed = started.elapsed();
            if let Some(count) = counted {
                count.record(status, elapsed);
            }
            if status >= 400 || elapsed.as_millis() >= 500 {
                let path = res.request().path();
                let ms = elapsed.as_secs_f64() * 1000.0;
                if elapsed.as_millis() >= 500 {
                    tracing::info!(%path, status, ms, "served");
                } else {
                    tracing::debug!(%path, status, ms, "served");
                }
            }
            let mut res = if status >= 400 {
                match crate::error::problemize(res)? {
                    ErrorHandlerResponse::Response(res) => res,
                    ErrorHandlerResponse::Future(answer) => answer.await?,
                }
            } else {
                res.map_into_left_body()
            };
            res.headers_mut()
                .insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            Ok(res)
        })
    }
}
