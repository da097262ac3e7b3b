//! `GET /containerLogs/{ns}/{pod}/{container}`: the container's log as `text/plain`,
//! streamed chunk by chunk (hyper flushes each chunk while the stream waits for more, so a
//! follower sees lines as they are written).

use super::params::{log_options, Query, Target};
use super::{runtime_status, status_response, Body};
use crate::runtime_api::ContainerRuntime;
use futures::StreamExt;
use http::{header, HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

pub(crate) async fn serve(
    runtime: &dyn ContainerRuntime,
    target: &Target,
    query: &Query,
) -> Response<Body> {
    let opts = match log_options(query) {
        Ok(o) => o,
        Err(s) => return status_response(&s),
    };
    match runtime
        .logs(&target.namespace, &target.pod, &target.container, opts)
        .await
    {
        Err(e) => status_response(&runtime_status(&e)),
        Ok(stream) => {
            let body =
                BodyExt::boxed_unsync(StreamBody::new(stream.map(|chunk| chunk.map(Frame::data))));
            let mut resp = Response::new(body);
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            resp
        }
    }
}
