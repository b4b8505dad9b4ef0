//! API identity: which API a channel speaks, and which revision of its
//! specification. Function ids are positions in a specification, so a guest
//! and a worker built from different revisions must not talk: the guest
//! names its API in a [`MsgKind::Hello`] as the first message on a channel,
//! and the worker accepts it only if it serves that API at that revision.

use crate::wire::{Decoder, Encoder, Header, MsgKind, Status};

/// The version of the call protocol itself (message kinds, header and
/// encoding), sent in the hello's flags.
pub const PROTOCOL_VERSION: u32 = 1;

/// An API and the revision of its specification, as the code generated from
/// that specification names it (`API` in each generated module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiId {
    /// The name in the specification's `api` header (`opencl`, `cuda`).
    pub name: &'static str,
    /// The version in that header.
    pub version: &'static str,
    /// The specification's revision (see `lapis::Spec::revision`).
    pub revision: u64,
}

impl std::fmt::Display for ApiId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (spec revision {:016x})",
            self.name, self.version, self.revision
        )
    }
}

/// The hello a guest sends first on a channel.
pub fn hello_message(api: &ApiId) -> Vec<u8> {
    let mut e = Encoder::with_header(
        Vec::new(),
        Header {
            kind: MsgKind::Hello,
            flags: PROTOCOL_VERSION,
            func: 0,
            call_id: 0,
        },
    );
    e.str(api.name);
    e.str(api.version);
    e.u64(api.revision);
    e.into_inner()
}

/// Why a worker refused a channel's hello, in words for both sides' logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// The worker's side of the hello: which of `served` the message `msg`
/// names, or why none. The reply to send (to call 0) comes with either.
pub fn accept_hello(msg: &[u8], served: &[ApiId]) -> (Result<usize, Refusal>, Vec<u8>) {
    let result = choose(msg, served);
    let (status, text) = match &result {
        Ok(i) => (Status::Ok, served[*i].to_string()),
        Err(r) => (Status::Refused, r.0.clone()),
    };
    // A call sent before any hello gets its answer under its own id.
    let (func, call_id) = Decoder::new(msg).map_or((0, 0), |(h, _)| (h.func, h.call_id));
    let mut e = Encoder::with_header(
        Vec::new(),
        Header {
            kind: MsgKind::Reply,
            flags: status as u32,
            func,
            call_id,
        },
    );
    e.str(&text);
    (result, e.into_inner())
}

fn choose(msg: &[u8], served: &[ApiId]) -> Result<usize, Refusal> {
    let list = || {
        let names: Vec<String> = served.iter().map(ToString::to_string).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let (h, mut d) = Decoder::new(msg).map_err(|e| Refusal(format!("malformed hello: {e}")))?;
    if h.kind != MsgKind::Hello {
        return Err(Refusal(format!(
            "the first message on a channel must name its API (got a {:?}); this worker serves {}",
            h.kind,
            list()
        )));
    }
    if h.flags != PROTOCOL_VERSION {
        return Err(Refusal(format!(
            "the guest speaks call protocol version {}, this worker version {PROTOCOL_VERSION}",
            h.flags
        )));
    }
    let fields = (|| Ok::<_, crate::wire::WireError>((d.string()?, d.string()?, d.u64()?)))();
    let (name, version, revision) = fields.map_err(|e| Refusal(format!("malformed hello: {e}")))?;
    d.finish()
        .map_err(|e| Refusal(format!("malformed hello: {e}")))?;
    let guest = format!("{name} {version} (spec revision {revision:016x})");
    match served.iter().position(|a| a.name == name) {
        None => Err(Refusal(format!(
            "this worker does not serve the API of the guest, {guest}; it serves {}",
            list()
        ))),
        Some(i) if served[i].revision != revision || served[i].version != version => {
            Err(Refusal(format!(
                "the guest was built from {guest}, the worker from {}: rebuild the guest library and the worker from the same specification",
                served[i]
            )))
        }
        Some(i) => Ok(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ApiId = ApiId {
        name: "opencl",
        version: "3.0",
        revision: 0x1234,
    };
    const B: ApiId = ApiId {
        name: "testapi",
        version: "1.0",
        revision: 0x99,
    };

    fn status(reply: &[u8]) -> Status {
        Status::from_u32(Decoder::new(reply).unwrap().0.flags).unwrap()
    }

    #[test]
    fn the_named_api_at_its_revision_is_chosen() {
        let (r, reply) = accept_hello(&hello_message(&B), &[A, B]);
        assert_eq!(r, Ok(1));
        assert_eq!(status(&reply), Status::Ok);
    }

    #[test]
    fn another_revision_or_api_is_refused_with_both_sides_named() {
        let old = ApiId {
            revision: 0x1111,
            ..A
        };
        let (r, reply) = accept_hello(&hello_message(&old), &[A, B]);
        let msg = r.unwrap_err().0;
        assert!(
            msg.contains("0000000000001111") && msg.contains("0000000000001234"),
            "{msg}"
        );
        assert_eq!(status(&reply), Status::Refused);
        let (r, _) = accept_hello(&hello_message(&B), &[A]);
        assert!(r.unwrap_err().0.contains("does not serve"));
    }

    #[test]
    fn a_call_or_garbage_before_the_hello_is_refused() {
        let call = Encoder::with_header(
            Vec::new(),
            Header {
                kind: MsgKind::Call,
                flags: 1,
                func: 0,
                call_id: 5,
            },
        )
        .into_inner();
        assert!(accept_hello(&call, &[A]).0.is_err());
        assert!(accept_hello(&[1, 2, 3], &[A]).0.is_err());
        let mut trailing = hello_message(&A);
        trailing.push(0);
        assert!(accept_hello(&trailing, &[A]).0.is_err());
    }
}
