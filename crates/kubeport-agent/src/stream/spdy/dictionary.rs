//! The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1).
//!
//! Both zlib streams of a SPDY/3 session are primed with it, and the zlib header of the
//! first block names it by its Adler-32, so it must be byte-exact. The specification defines
//! it as a list of length-prefixed header words followed by a run of unprefixed status codes,
//! dates and media types; it is built here from that definition.

use std::sync::LazyLock;

/// Words that appear in the dictionary each preceded by its length as a big-endian u32.
const PREFIXED_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The unprefixed tail of the dictionary.
const TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information",
    "204 No Content",
    "301 Moved Permanently",
    "400 Bad Request",
    "401 Unauthorized",
    "403 Forbidden",
    "404 Not Found",
    "500 Internal Server Error",
    "501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
    "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut d = Vec::with_capacity(1423);
    for word in PREFIXED_WORDS {
        d.extend_from_slice(&(word.len() as u32).to_be_bytes());
        d.extend_from_slice(word.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
});

/// The dictionary bytes.
pub fn dictionary() -> &'static [u8] {
    &DICTIONARY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_has_the_specified_size_and_edges() {
        let d = dictionary();
        // Draft 3 gives the dictionary as 1423 bytes.
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b",*,enq=0."));
    }
}
