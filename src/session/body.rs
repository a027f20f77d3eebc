//! Reading a response body into memory with a ceiling.
//!
//! Why not `Response::bytes()`: it buffers whatever the server sends. A misbehaving or hostile
//! source can answer with gigabytes (or a small gzip bomb: the client decompresses), and the
//! process runs out of memory, taking every other task with it. `Content-Length` alone is no
//! guard: a chunked body has none, and a compressed one states the compressed size. So the
//! bytes are counted as they arrive and reading stops at the first chunk past the limit.

use bytes::{Bytes, BytesMut};
use reqwest::Response;

use super::Error;
use crate::config::ByteSize;

/// Reads `response`'s body, failing with [`Error::BodyTooLarge`] as soon as it is known to be
/// longer than `limit`: from `Content-Length` before reading, else while streaming.
pub async fn read_body(mut response: Response, limit: ByteSize) -> Result<Bytes, Error> {
    let max = limit.bytes();
    let too_large = |response: &Response| Error::BodyTooLarge {
        url: crate::redact::url(response.url().as_str()),
        limit,
    };
    if response.content_length().is_some_and(|length| length > max) {
        return Err(too_large(&response));
    }
    let mut body = BytesMut::new();
    loop {
        let chunk = response.chunk().await.map_err(|source| Error::BodyRead {
            url: crate::redact::url(response.url().as_str()),
            source: source.without_url(),
        })?;
        let Some(chunk) = chunk else {
            return Ok(body.freeze());
        };
        if (body.len() + chunk.len()) as u64 > max {
            return Err(too_large(&response));
        }
        body.extend_from_slice(&chunk);
    }
}
