//! The request as routing and the proxy's own headers read it: an index
//! over the head's bytes seen through `decide::RequestView`, and the
//! request id (the client's, or one minted without allocating).

use http::HeaderValue;

use super::head::{self, Framing, Kind};
use crate::proxy::decide::RequestView;
use crate::proxy::headers::{cookie_in, new_request_id_bytes};
use crate::proxy::mirror::BodySize;
use crate::proxy::route_http::{self, Facts};
use crate::proxy::ConnInfo;

/// The request as routing reads it.
pub(super) struct View<'a> {
    pub buf: &'a [u8],
    pub req: &'a head::Request,
}

impl View<'_> {
    fn text(&self, r: &std::ops::Range<u32>) -> Option<&str> {
        std::str::from_utf8(&self.buf[r.start as usize..r.end as usize]).ok()
    }
    pub fn values<'s>(&'s self, kind: Kind) -> impl DoubleEndedIterator<Item = &'s [u8]> + 's {
        self.req
            .fields
            .iter()
            .filter(move |f| f.kind == kind)
            .map(|f| &self.buf[f.value.start as usize..f.value.end as usize])
    }
}

impl<'a> View<'a> {
    /// What the route features read (`route_http`).
    pub fn facts(
        &self,
        conn: &'a ConnInfo,
        client: std::net::IpAddr,
        remote_addr: &'a [u8],
        rid: &'a Rid,
    ) -> Facts<'a> {
        let at = |r: &std::ops::Range<u32>| &self.buf[r.start as usize..r.end as usize];
        let origin = std::str::from_utf8(at(&self.req.origin)).unwrap_or("/");
        let host = self.req.authority.as_ref().or(self.req.host.as_ref());
        Facts {
            client,
            remote_addr,
            request_id: rid.bytes(),
            host: host.map_or(&b""[..], at),
            scheme: conn.proto.as_bytes(),
            request_uri: origin.as_bytes(),
            path: std::str::from_utf8(at(&self.req.path)).unwrap_or("/"),
            query: route_http::query_of(origin),
            content_length: match self.req.framing {
                Framing::Length(n) => Some(n),
                _ => None,
            },
        }
    }
}

impl RequestView for View<'_> {
    fn host(&self) -> Option<&str> {
        self.req
            .authority
            .as_ref()
            .or(self.req.host.as_ref())
            .and_then(|r| self.text(r))
    }
    fn path(&self) -> &str {
        self.text(&self.req.path).unwrap_or("/")
    }
    fn header(&self, name: &http::HeaderName) -> Option<&[u8]> {
        let name = name.as_str().as_bytes();
        self.req
            .fields
            .iter()
            .find(|f| {
                let n = &self.buf[f.name.start as usize..f.name.end as usize];
                n.eq_ignore_ascii_case(name)
            })
            .map(|f| &self.buf[f.value.start as usize..f.value.end as usize])
    }
    fn cookie(&self, name: &str) -> Option<&[u8]> {
        cookie_in(self.values(Kind::Cookie), name)
    }
    fn mirror_facts(&self) -> Option<(&[u8], BodySize)> {
        let r = self.req;
        let body = match r.framing {
            Framing::Length(n) => BodySize::of(Some(n), false),
            Framing::Chunked | Framing::Close => BodySize::Unknown,
            Framing::None => BodySize::None,
        };
        let method = &self.buf[r.method.start as usize..r.method.end as usize];
        (!r.upgrade).then_some((method, body))
    }
}

/// The request id: the client's, or one minted here (written without
/// allocating; a `HeaderValue` is made only for errors and the log).
pub(super) enum Rid {
    Client(HeaderValue),
    Minted([u8; 32]),
}

impl Rid {
    /// The client's `X-Request-Id` when it is a valid value, else a new one.
    pub fn of(buf: &[u8], req: &head::Request) -> Rid {
        let client = req
            .fields
            .iter()
            .find(|f| f.kind == Kind::XRequestId)
            .and_then(|f| {
                HeaderValue::from_bytes(&buf[f.value.start as usize..f.value.end as usize]).ok()
            });
        match client {
            Some(v) => Rid::Client(v),
            None => Rid::Minted(new_request_id_bytes()),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Rid::Client(v) => v.as_bytes(),
            Rid::Minted(b) => b,
        }
    }

    pub fn value(&self) -> HeaderValue {
        match self {
            Rid::Client(v) => v.clone(),
            Rid::Minted(b) => {
                HeaderValue::from_bytes(b).unwrap_or_else(|_| HeaderValue::from_static("0"))
            }
        }
    }
}
