//! NOTIFY frames and their LIST-OF-MESSAGES (SPOE.txt §3.2.6 "Frame: NOTIFY"; docs/protocol.md
//! §4, §5):
//!
//! ```text
//! LIST-OF-MESSAGES := { NAME NB-ARGS:u8 { ARG-NAME TYPED-DATA }*NB-ARGS }*
//! ```
//!
//! [`Notify::parse`] validates the whole list once; the iterators then walk it lazily without
//! copying and cannot fail.

use crate::codec::Reader;
use crate::data::TypedData;
use crate::error::DecodeError;
use crate::error::EncodeError;
use crate::frame::{Flags, FrameHeader, FrameType, FrameWriter};
use crate::frame::{Frame, FrameId, StreamId};

/// Builds one NOTIFY frame in place (for tools and tests that play HAProxy). Messages are
/// appended in order; one that does not fit is refused whole, leaving a valid frame.
#[derive(Debug)]
pub struct NotifyWriter<'a> {
    frame: FrameWriter<'a>,
    max_len: u32,
}

impl<'a> NotifyWriter<'a> {
    /// Starts a NOTIFY (FIN set) for (`stream_id`, `frame_id`) at the start of `out`;
    /// `max_frame_size` is the negotiated one.
    pub fn new(
        out: &'a mut [u8],
        stream_id: StreamId,
        frame_id: FrameId,
        max_frame_size: u32,
    ) -> Result<Self, EncodeError> {
        let header = FrameHeader {
            frame_type: FrameType::Notify,
            flags: Flags::FIN,
            stream_id,
            frame_id,
        };
        Ok(NotifyWriter {
            frame: FrameWriter::begin(out, &header)?,
            max_len: max_frame_size,
        })
    }

    /// Appends a message: its name, NB-ARGS, then each argument's name and typed value.
    pub fn message(&mut self, name: &[u8], args: &[Arg<'_>]) -> Result<(), EncodeError> {
        let nb_args = u8::try_from(args.len()).map_err(|_| EncodeError::TooManyArgs(args.len()))?;
        let w = self.frame.payload();
        let start = w.position();
        let written = w.string(name).and_then(|()| w.u8(nb_args)).and_then(|()| {
            args.iter()
                .try_for_each(|arg| w.string(arg.name).and_then(|()| w.typed(&arg.value)))
        });
        let result = match written {
            Ok(()) if self.frame.length() > self.max_len as usize => {
                Err(EncodeError::FrameTooBig { max: self.max_len })
            }
            other => other,
        };
        if result.is_err() {
            self.frame.payload().truncate(start);
        }
        result
    }

    /// Completes the frame; returns its size in bytes, LENGTH included.
    pub fn finish(self) -> usize {
        // Every append was checked against `max_len`, so the only failure left is impossible.
        self.frame.finish(self.max_len).unwrap_or(0)
    }
}

/// A validated NOTIFY: its ids and a view over its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notify<'a> {
    /// The stream the event belongs to; the ACK echoes it.
    pub stream_id: StreamId,
    /// The frame within the stream; the ACK echoes it.
    pub frame_id: FrameId,
    payload: &'a [u8],
    /// The first message, found by the validation pass: HAProxy's NOTIFYs usually carry one, so
    /// iterating does not walk it twice.
    first: Option<Message<'a>>,
    /// What follows the first message.
    rest: &'a [u8],
}

impl<'a> Notify<'a> {
    /// Validates a LIST-OF-MESSAGES payload (a NOTIFY's, or the reassembly of its fragments).
    #[inline(always)]
    pub fn parse(
        stream_id: StreamId,
        frame_id: FrameId,
        payload: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let first = if r.is_empty() {
            None
        } else {
            Some(read_message(&mut r)?)
        };
        let rest = r.rest();
        if !rest.is_empty() {
            validate_messages(rest)?;
        }
        Ok(Notify {
            stream_id,
            frame_id,
            payload,
            first,
            rest,
        })
    }

    /// Validates a NOTIFY frame's payload, taking the ids from its header.
    #[inline(always)]
    pub fn from_frame(frame: &Frame<'a>) -> Result<Self, DecodeError> {
        Notify::parse(frame.header.stream_id, frame.header.frame_id, frame.payload)
    }

    /// The messages, in frame order. HAProxy puts every message bound to the event in one NOTIFY;
    /// it may be empty (HAProxy 3.1.0 up to 3.3-dev6 can send such NOTIFYs; docs/protocol.md §5).
    #[inline(always)]
    pub fn messages(&self) -> Messages<'a> {
        Messages {
            first: self.first,
            r: Reader::new(self.rest),
        }
    }

    /// The raw LIST-OF-MESSAGES bytes.
    pub const fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// Validates the messages after the first (a NOTIFY usually has one: kept out of line).
#[inline(never)]
fn validate_messages(payload: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(payload);
    while !r.is_empty() {
        read_message(&mut r)?;
    }
    Ok(())
}

/// The next message of a validated list (the messages after the first) and what follows it.
#[inline(never)]
fn next_message(list: &[u8]) -> Option<(Message<'_>, &[u8])> {
    let mut r = Reader::new(list);
    // Validated by `Notify::parse`: an error cannot happen here and would end the list.
    let message = read_message(&mut r).ok()?;
    Some((message, r.rest()))
}

#[inline(always)]
fn read_message<'a>(r: &mut Reader<'a>) -> Result<Message<'a>, DecodeError> {
    let name = r.string()?;
    let nb_args = r.u8()?;
    let start = r.rest();
    for _ in 0..nb_args {
        r.string()?;
        r.skip_typed()?;
    }
    let used = start.len() - r.rest().len();
    Ok(Message {
        name,
        nb_args,
        args: start.get(..used).unwrap_or_default(),
    })
}

/// Iterator over the messages of a [`Notify`].
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    first: Option<Message<'a>>,
    r: Reader<'a>,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;
    #[inline(always)]
    fn next(&mut self) -> Option<Message<'a>> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        if self.r.is_empty() {
            return None;
        }
        let (message, rest) = next_message(self.r.rest())?;
        self.r = Reader::new(rest);
        Some(message)
    }
}

/// One message: a name and its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The `spoe-message` name (bytes; not necessarily UTF-8).
    pub name: &'a [u8],
    nb_args: u8,
    args: &'a [u8],
}

impl<'a> Message<'a> {
    /// NB-ARGS.
    pub const fn nb_args(&self) -> u8 {
        self.nb_args
    }

    /// The arguments, in order. Names may be empty (`args src` sends an unnamed argument) or
    /// repeated.
    #[inline(always)]
    pub fn args(&self) -> Args<'a> {
        Args {
            r: Reader::new(self.args),
            left: self.nb_args,
        }
    }

    /// The first argument named `name`.
    pub fn arg(&self, name: &[u8]) -> Option<TypedData<'a>> {
        self.args().find(|a| a.name == name).map(|a| a.value)
    }
}

/// Iterator over the arguments of a [`Message`].
#[derive(Clone, Debug)]
pub struct Args<'a> {
    r: Reader<'a>,
    left: u8,
}

/// One argument of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg<'a> {
    /// The argument's name; empty for unnamed config arguments.
    pub name: &'a [u8],
    /// Its value.
    pub value: TypedData<'a>,
}

impl<'a> Iterator for Args<'a> {
    type Item = Arg<'a>;
    #[inline(always)]
    fn next(&mut self) -> Option<Arg<'a>> {
        self.left = self.left.checked_sub(1)?;
        let name = self.r.string().ok()?;
        let value = self.r.typed().ok()?;
        Some(Arg { name, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(self.left), Some(usize::from(self.left)))
    }
}
